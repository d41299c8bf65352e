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
only for the few contacts left: 1.8 and 3.7 ms. ``lead`` picks that first part, a piece of the
term without common trigrams. The full term is still matched, so the result is the same with or
without a lead; only the work differs.

How common a trigram is comes from the statistics ANALYZE (or autovacuum) keeps on the name,
email and phone columns (``pg_stats``: the most common values and a histogram of ~100 more),
read once every few minutes per database: no table is scanned to find out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from threading import Lock
from time import monotonic
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

# A trigram held by this share of contacts is common: a posting list too long to look up once
# per candidate. ANALYZE's histogram has ~100 values per column, so shares are known to ~1%.
COMMON_SHARE = 0.03
# What a trigram that no sampled value holds is taken to cost.
UNSEEN_SHARE = 0.005
# Values read per column: a statistics target raised to 10,000 keeps 10,000 histogram values;
# their trigrams are counted on the request that finds the kept shares stale.
MAX_VALUES = 200
MAX_TERM = 200  # the longest search term (``contacts.schemas.SEARCH_MAX``)
SHARES_TTL_SECONDS = 300.0

# The statistics of the ``contacts`` table the session's queries see (its search path decides).
_STATISTICS = text(
    """
    SELECT s.null_frac,
           CAST(CAST(s.most_common_vals AS text) AS text[]) AS common_values,
           s.most_common_freqs AS common_shares,
           CAST(CAST(s.histogram_bounds AS text) AS text[]) AS histogram
    FROM pg_stats AS s
    JOIN pg_class AS c ON c.oid = CAST('contacts' AS regclass)
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE s.schemaname = n.nspname AND s.tablename = c.relname
      AND s.attname IN ('name', 'email', 'phone')
    """
)


@dataclass(frozen=True)
class Occurrence:
    """A trigram the index looks up for a piece of a term, when the piece spans
    ``term[start:end]``. ``run`` numbers the run of letters and digits it comes from."""

    trigram: str
    start: int
    end: int
    run: int


def occurrences(term: str) -> list[Occurrence]:
    """Every trigram pg_trgm extracts from ``ILIKE '%piece%'`` for some piece of ``term``.

    pg_trgm cuts the text into runs of letters and digits, lower-cased, and pads each run with
    two spaces before and one after, but a run touching a ``%`` is not padded on that side. So a
    padded trigram needs the separator next to the run inside the piece: ``"  a"`` of a run
    starting at ``i`` spans ``term[i - 1 : i + 1]``.
    """
    found: list[Occurrence] = []
    for number, (first, word) in enumerate(_runs(term)):
        low, last = word.lower(), first + len(word)  # ``last``: the separator after, if any
        pad_before, pad_after = first > 0, last < len(term)
        found.extend(
            Occurrence(low[i : i + 3], first + i, first + i + 3, number)
            for i in range(len(word) - 2)
        )
        if pad_before:
            found.append(Occurrence("  " + low[0], first - 1, first + 1, number))
            if len(word) > 1:
                found.append(Occurrence(" " + low[:2], first - 1, first + 2, number))
            elif pad_after:
                found.append(Occurrence(f" {low} ", first - 1, last + 1, number))
        if pad_after and len(word) > 1:
            found.append(Occurrence(low[-2:] + " ", last - 2, last + 1, number))
    return found


def trigrams(value: str) -> set[str]:
    """The trigrams pg_trgm indexes for ``value`` (``show_trgm``): every run padded, as the
    ``occurrences`` of ``f" {value} "`` would say, without placing them (the statistics hold
    hundreds of values)."""
    found: set[str] = set()
    for _, run in _runs(value):
        padded = f"  {run.lower()} "
        found.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return found


def lead(term: str, shares: Mapping[str, float]) -> str | None:
    """The piece of ``term`` to match before the whole term: of the pieces without a common
    trigram, the one the fewest contacts are expected to match, the longer of two alike.
    ``None`` if the term has no common trigram (it is cheap as it is) or no piece has a trigram
    and no common one (nothing rarer to start from).

    A piece's share is the product over its runs of each run's rarest trigram: the trigrams of
    one run come together (every "Novak" holds "nov", "ova" and "vak"), runs less so. A lead is
    ASCII: PostgreSQL lower-cases a pattern as a whole, and some collations lower a letter by
    its neighbours (a Greek final sigma), so a piece of another script need not match inside
    the term it was cut from.
    """
    if len(term) > MAX_TERM:
        return None
    found = occurrences(term)
    common = [item for item in found if shares.get(item.trigram, 0.0) >= COMMON_SHARE]
    if not common:
        return None
    # What a lead may not span: a common trigram, or a character that is not ASCII.
    barriers = [(item.start, item.end) for item in common]
    barriers += [(i, i + 1) for i, char in enumerate(term) if not char.isascii()]
    # The longest piece from a start stops one short of the first barrier beginning there or
    # later: ``stops[start]`` is where that barrier ends.
    stops = [len(term) + 1] * (len(term) + 1)
    for begin, stop in barriers:
        stops[begin] = min(stops[begin], stop)
    for index in range(len(term) - 1, -1, -1):
        stops[index] = min(stops[index], stops[index + 1])
    best, best_rank = None, (1.0, 0)
    end_before = -1
    for start in range(len(term)):
        # A later start that stops at the same place holds less: only the first is scored.
        end = stops[start] - 1
        if end == end_before:
            continue
        end_before = end
        inside = [item for item in found if item.start >= start and item.end <= end]
        if not inside:
            continue
        rarest: dict[int, float] = {}
        for item in inside:
            share = max(shares.get(item.trigram, 0.0), UNSEEN_SHARE)
            rarest[item.run] = min(share, rarest.get(item.run, 1.0))
        rank = (math.prod(rarest.values()), start - end)
        if rank < best_rank:
            best, best_rank = term[start:end], rank
    return best


@dataclass(frozen=True)
class _Kept:
    shares: Mapping[str, float]
    until: float


_kept: dict[str, _Kept] = {}
_refreshing = Lock()


def shares(session: Session) -> Mapping[str, float]:
    """The share of contacts whose search text holds each trigram, as far as the statistics of
    the session's database know (empty before its first ANALYZE). Kept for a few minutes:
    statistics change only when ANALYZE runs. One request at a time refreshes them; the others
    go on with the kept ones meanwhile."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    kept = _kept.get(key)
    if kept is None:
        _refreshing.acquire()
    elif kept.until > monotonic() or not _refreshing.acquire(blocking=False):
        return kept.shares
    try:
        kept = _kept.get(key)
        if kept is None or kept.until <= monotonic():
            found = shares_from_statistics(session.execute(_STATISTICS).all())
            kept = _kept[key] = _Kept(found, monotonic() + SHARES_TTL_SECONDS)
        return kept.shares
    finally:
        _refreshing.release()


def forget_shares() -> None:
    """Drop the kept statistics (tests that ANALYZE new data)."""
    _kept.clear()


def shares_from_statistics(columns: Iterable[Any]) -> Mapping[str, float]:
    """Per column (a ``pg_stats`` row), each most common value counts for its own share, each
    histogram value for an equal part of the rest; a trigram's shares in the three columns are
    added (an upper bound of the share of contacts holding it in any)."""
    total: defaultdict[str, float] = defaultdict(float)
    for column in columns:
        common_shares = [float(share) for share in column.common_shares or ()]
        common = sorted(zip(column.common_values or (), common_shares, strict=True), key=_second)
        for value, share in common[-MAX_VALUES:]:
            for trigram in trigrams(value):
                total[trigram] += share
        rest = 1.0 - float(column.null_frac or 0.0) - sum(common_shares)
        histogram = _evenly(column.histogram or [], MAX_VALUES)
        for value in histogram:
            for trigram in trigrams(value):
                total[trigram] += rest / len(histogram)
    return dict(total)


def _second(pair: tuple[str, float]) -> float:
    return pair[1]


def _evenly(values: Sequence[str], count: int) -> Sequence[str]:
    """At most ``count`` of ``values``, spread evenly (a histogram's bounds are sorted)."""
    if len(values) <= count:
        return values
    step = len(values) / count
    return [values[int(i * step)] for i in range(count)]


def _runs(value: str) -> Iterable[tuple[int, str]]:
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
