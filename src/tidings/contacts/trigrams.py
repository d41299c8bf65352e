"""Which part of a search term PostgreSQL's trigram index should look up first.

A search is ``ILIKE '%term%'`` on the contact's search text, served by a pg_trgm GIN index. The
index takes the rarest of the term's trigrams as its candidates and, for every candidate, looks
up each of the term's other trigrams before it can decide. A trigram that most contacts hold
(``use`` and ``ser`` where every address is ``user…@``, ``com``, ``gma``, a phone's country and
area code) has a posting list as long as the table, and each look-up decodes one of its pages.
At a million contacts, ``user98765@`` read 742 index pages and took 15 ms for one match; a pasted
address, ``user98765@example15.com``, 50-110 ms.

Looked up as two conditions, ``ILIKE '%98765@%' AND ILIKE '%user98765@%'``, the index
intersects the first one's rare trigrams before it checks the second one's common ones, and
only for the few contacts left: 1.8 and 3.7 ms. ``lead`` picks that first part: the longest
piece of the term none of whose trigrams is common. The full term is still matched, so the
result is the same with or without a lead; only the work differs.

How common a trigram is comes from the statistics ANALYZE (or autovacuum) keeps on the name,
email and phone columns (``pg_stats``: the most common values and a histogram of ~100 more),
read once every few minutes per database: no table is scanned to find out.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from threading import Lock
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

# A trigram held by this share of contacts is common: a posting list too long to look up once
# per candidate. ANALYZE's histogram has ~100 values per column, so shares are known to ~1%.
COMMON_SHARE = 0.03
# What a trigram that no sampled value holds is taken to cost (the sample is ~100 values a column).
UNSEEN_SHARE = 0.005
# Terms longer than this are searched as they are (the longest piece is found by trying pieces).
MAX_TERM = 64
SHARES_TTL_SECONDS = 300.0

_STATISTICS = text(
    """
    SELECT null_frac,
           CAST(CAST(most_common_vals AS text) AS text[]) AS common_values,
           most_common_freqs AS common_shares,
           CAST(CAST(histogram_bounds AS text) AS text[]) AS histogram
    FROM pg_stats
    WHERE schemaname = current_schema() AND tablename = 'contacts'
      AND attname IN ('name', 'email', 'phone')
    """
)

_cache: dict[str, tuple[float, Mapping[str, float]]] = {}
_cache_lock = Lock()


def trigrams(value: str) -> set[str]:
    """The trigrams pg_trgm indexes for ``value`` (``show_trgm``): each run of letters and
    digits, lower-cased, padded with two spaces before and one after."""
    found: set[str] = set()
    for word in _words(value):
        found.update(_windows(f"  {word.lower()} "))
    return found


def pattern_trigrams(part: str) -> set[str]:
    """The trigrams the index looks up for ``ILIKE '%part%'``."""
    return set().union(*_pattern_words(part))


def lead(term: str, shares: Mapping[str, float]) -> str | None:
    """The piece of ``term`` to match before the whole term: of the pieces none of whose
    trigrams is common, the one the fewest contacts are expected to match, the longer of two
    alike. ``None`` if the term has no common trigram (it is cheap as it is), if every piece
    has one (nothing rarer to start from) or if the term is too long to try.

    A piece's share is the product over its words of each word's rarest trigram: the trigrams of
    one word come together (every "Novak" holds "nov", "ova" and "vak"), words less so.
    """
    if len(term) > MAX_TERM or not _has_common(pattern_trigrams(term), shares):
        return None
    # A longer piece holds every trigram of the pieces inside it, so its share is no larger
    # and, once it holds a common trigram, so does every piece around it. The best piece from
    # each start is therefore the longest without a common one, and that piece ends no earlier
    # than the best from the start before: one pass, two pointers.
    best, best_rank = None, (1.0, 0)
    end = 0
    for start in range(len(term)):
        end = max(end, start)
        while end < len(term) and not _has_common(pattern_trigrams(term[start : end + 1]), shares):
            end += 1
        words = [word for word in _pattern_words(term[start:end]) if word]
        if not words:
            continue
        share = math.prod(min(_share(trigram, shares) for trigram in word) for word in words)
        rank = (share, start - end)
        if rank < best_rank:
            best, best_rank = term[start:end], rank
    return best


def shares(session: Session) -> Mapping[str, float]:
    """The share of contacts whose search text holds each trigram, as far as the statistics of
    the session's database know (empty before its first ANALYZE). Kept for a few minutes:
    statistics change only when ANALYZE runs."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    rows = session.execute(_STATISTICS).all()
    found = _shares(rows)
    with _cache_lock:
        _cache[key] = (now + SHARES_TTL_SECONDS, found)
    return found


def forget_shares() -> None:
    """Drop the kept statistics (tests that ANALYZE new data)."""
    with _cache_lock:
        _cache.clear()


def _shares(columns: Iterable[Any]) -> Mapping[str, float]:
    """Per column (a ``pg_stats`` row), each most common value counts for its own share, each
    histogram value for an equal part of the rest; a trigram's shares in the three columns are
    added (an upper bound of the share of contacts holding it in any)."""
    total: defaultdict[str, float] = defaultdict(float)
    for column in columns:
        common_shares = [float(share) for share in column.common_shares or ()]
        for value, share in zip(column.common_values or (), common_shares, strict=True):
            for trigram in trigrams(value):
                total[trigram] += share
        histogram = column.histogram or []
        rest = 1.0 - float(column.null_frac or 0.0) - sum(common_shares)
        for value in histogram:
            for trigram in trigrams(value):
                total[trigram] += rest / len(histogram)
    return dict(total)


def _pattern_words(part: str) -> list[set[str]]:
    """The trigrams the index looks up for ``ILIKE '%part%'``, word by word: a word is padded
    only where it ends inside ``part``, not where it touches the wildcard."""
    words = []
    for start, word in _words_at(part):
        before = "" if start == 0 else "  "
        after = "" if start + len(word) == len(part) else " "
        words.append(set(_windows(f"{before}{word.lower()}{after}")))
    return words


def _share(trigram: str, shares: Mapping[str, float]) -> float:
    return max(shares.get(trigram, 0.0), UNSEEN_SHARE)


def _has_common(found: Iterable[str], shares: Mapping[str, float]) -> bool:
    return any(shares.get(trigram, 0.0) >= COMMON_SHARE for trigram in found)


def _words(value: str) -> Iterable[str]:
    return (word for _, word in _words_at(value))


def _words_at(value: str) -> Iterable[tuple[int, str]]:
    """Each run of letters and digits in ``value`` with where it starts."""
    start = None
    for index, char in enumerate(value):
        if char.isalnum():
            if start is None:
                start = index
        elif start is not None:
            yield start, value[start:index]
            start = None
    if start is not None:
        yield start, value[start:]


def _windows(padded: str) -> Iterable[str]:
    return (padded[i : i + 3] for i in range(len(padded) - 2))
