"""Choosing the lead of a search (``contacts.trigrams``): the piece of a term whose trigrams the
index can intersect cheaply before it checks the term's common ones."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.contacts import trigrams
from tidings.contacts.trigrams import lead, occurrences

# As in an organization whose addresses all read user…@example.com: "use", "ser", "exa", … are
# held by every contact; digits are rare.
COMMON = dict.fromkeys(trigrams.trigrams("user@example.com"), 1.0)


def _pg_trgm_like(piece: str) -> set[str]:
    """What pg_trgm extracts from ``ILIKE '%piece%'``, written out as it reads: each run of
    letters and digits, padded with two spaces before and one after except where it touches a
    wildcard."""
    found: set[str] = set()
    run_start = None
    for index in range(len(piece) + 1):
        inside = index < len(piece) and piece[index].isalnum()
        if inside and run_start is None:
            run_start = index
        elif not inside and run_start is not None:
            before = "" if run_start == 0 else "  "
            after = "" if index == len(piece) else " "
            padded = before + piece[run_start:index].lower() + after
            found.update(padded[i : i + 3] for i in range(len(padded) - 2))
            run_start = None
    return found


def test_a_value_has_the_trigrams_pg_trgm_indexes() -> None:
    assert trigrams.trigrams("Ann") == {"  a", " an", "ann", "nn "}
    # Runs are letters and digits, lower-cased; anything else separates them.
    assert trigrams.trigrams("Jo-Ann 7") == {
        *("  j", " jo", "jo "),
        *("  a", " an", "ann", "nn "),
        *("  7", " 7 "),
    }
    assert trigrams.trigrams("--") == set()


def pattern_trigrams(piece: str) -> set[str]:
    """The trigrams the index looks up for ``ILIKE '%piece%'``."""
    return {found.trigram for found in occurrences(piece)}


def test_a_pattern_pads_a_run_only_where_it_ends_inside_the_term() -> None:
    # '%ann%' can match inside "Joanna": no padding at either wildcard.
    assert pattern_trigrams("ann") == {"ann"}
    # '%b cd%': "b" ends at the space (padded after), "cd" starts after it (padded before).
    assert pattern_trigrams("b cd") == {"  c", " cd"}
    assert pattern_trigrams("r98@") == {"r98", "98 "}
    assert pattern_trigrams("ab") == set()


@settings(max_examples=300, deadline=None)
@given(term=st.text("ab1 @._\\%é", max_size=12), data=st.data())
def test_the_trigrams_of_every_piece_are_the_occurrences_it_spans(
    term: str, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(term)))
    end = data.draw(st.integers(start, len(term)))
    spanned = {o.trigram for o in occurrences(term) if o.start >= start and o.end <= end}
    assert spanned == _pg_trgm_like(term[start:end])


def test_the_lead_is_the_rare_piece_of_a_term_with_common_trigrams() -> None:
    assert lead("user98765@", COMMON) == "er98765@"
    assert lead("user98765@example.com", COMMON) == "er98765@"
    assert lead("USER42", COMMON) == "ER42"  # the term's own spelling: ILIKE ignores case


def test_no_lead_when_the_term_is_cheap_as_it_is_or_all_common() -> None:
    assert lead("98765", COMMON) is None  # no common trigram: the whole term is the lead
    assert lead("example", COMMON) is None  # every piece holds a common trigram
    assert lead("user" + "9" * trigrams.MAX_TERM, COMMON) is None  # longer than a search
    # Before the first ANALYZE no trigram is known to be common: the term is searched whole.
    assert lead("user98765@", trigrams.shares_from_statistics([])) is None


def test_the_lead_is_the_rarest_piece_not_the_longest() -> None:
    shares = {**COMMON, "  1": 0.7, "nov": 0.02, "ova": 0.02, "vak": 0.02, "ak ": 0.02}
    # "Novak " has four trigrams held by 2% each; "1234" two that no sampled contact holds.
    assert lead("Novak 1234", shares) == "1234"


def test_a_lead_is_ascii() -> None:
    """Under an ICU collation PostgreSQL lowers ``ΚΩΣ`` to ``κως`` (a final sigma) but
    ``ΚΩΣΤΑΣ`` to ``κωστας``: a Greek piece need not match inside its own term."""
    shares = {"  k": 1.0, "γσδ": 0.001}
    assert lead("ΑΒΓΣΔ k", shares) is None
    assert lead("user77 Σίσυφος", COMMON) == "er77 "


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
    shares = trigrams.shares_from_statistics(columns)
    assert shares["  x"] == pytest.approx(0.3 + 0.3)
    assert shares["  y"] == pytest.approx(0.3)
    assert shares[" io"] == pytest.approx(0.9)
    assert "zzz" not in shares


def test_a_large_statistics_target_is_read_in_part() -> None:
    histogram = [f"user{i:05}@example.com" for i in range(10_000)]
    column = SimpleNamespace(null_frac=0, common_values=[], common_shares=[], histogram=histogram)
    shares = trigrams.shares_from_statistics([column])
    assert shares["use"] == pytest.approx(1.0)
    # Every 10,000/300th value: the first digits still spread over all of them.
    assert shares["r00"] == pytest.approx(0.1, abs=0.01)
