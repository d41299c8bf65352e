"""Choosing the lead of a search (``contacts.trigrams``): the piece of a term whose trigrams the
index can intersect cheaply before it checks the term's common ones."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tidings.contacts import trigrams
from tidings.contacts.trigrams import lead, pattern_trigrams

# As in an organization whose addresses all read user…@example.com: "use", "ser", "exa", … are
# held by every contact; digits are rare.
COMMON = {t: 1.0 for t in trigrams.trigrams("user@example.com")}


def test_a_value_has_the_trigrams_pg_trgm_indexes() -> None:
    assert trigrams.trigrams("Ann") == {"  a", " an", "ann", "nn "}
    # Words are runs of letters and digits, lower-cased; anything else separates them.
    assert trigrams.trigrams("Jo-Ann 7") == {
        "  j",
        " jo",
        "jo ",
        "  a",
        " an",
        "ann",
        "nn ",
        "  7",
        " 7 ",
    }
    assert trigrams.trigrams("--") == set()


def test_a_pattern_pads_a_word_only_where_it_ends_inside_the_term() -> None:
    # '%ann%' can match inside "Joanna": no padding at either wildcard.
    assert pattern_trigrams("ann") == {"ann"}
    # '%b cd%': "b" ends at the space (padded after), "cd" starts after it (padded before).
    assert pattern_trigrams("b cd") == {"  c", " cd"}
    assert pattern_trigrams("r98@") == {"r98", "98 "}
    assert pattern_trigrams("ab") == set()


def test_the_lead_is_the_rare_piece_of_a_term_with_common_trigrams() -> None:
    assert lead("user98765@", COMMON) == "er98765@"
    assert lead("user98765@example.com", COMMON) == "er98765@"
    assert lead("USER42", COMMON) == "ER42"  # the term's own spelling: ILIKE ignores case


def test_no_lead_when_the_term_is_cheap_as_it_is_or_all_common() -> None:
    assert lead("98765", COMMON) is None  # no common trigram: the whole term is the lead
    assert lead("example", COMMON) is None  # every piece holds a common trigram
    assert lead("user" + "9" * trigrams.MAX_TERM, COMMON) is None  # too long to try pieces
    # Before the first ANALYZE no trigram is known to be common: the term is searched whole.
    assert lead("user98765@", trigrams._shares([])) is None


def test_the_lead_is_the_rarest_piece_not_the_longest() -> None:
    shares = {**COMMON, "  1": 0.7, "nov": 0.02, "ova": 0.02, "vak": 0.02, "ak ": 0.02}
    # "Novak " has four trigrams held by 2% each; "1234" two that no sampled contact holds.
    assert lead("Novak 1234", shares) == "1234"


def test_shares_weigh_common_values_and_the_histogram() -> None:
    columns = [
        # 10% of emails are null, 30% are a@x.io; the histogram holds the other 60%.
        SimpleNamespace(
            null_frac=0.1,
            common_values=["a@x.io"],
            common_shares=[0.3],
            histogram=["b@x.io", "c@y.io"],
        ),
        SimpleNamespace(null_frac=1.0, common_values=None, common_shares=None, histogram=None),
    ]
    shares = trigrams._shares(columns)
    assert shares["  x"] == pytest.approx(0.3 + 0.3)
    assert shares["  y"] == pytest.approx(0.3)
    assert shares[" io"] == pytest.approx(0.9)
    assert "zzz" not in shares
