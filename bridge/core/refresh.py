"""A meter's real refresh: the longest time between two successive successful reads of it over
the last minute (pure), what a user compares with the configured period.

Each read costs a few comparisons: only the gaps that can still be the longest of the window
are kept, a gap followed by a longer one never can be. The kept gaps are therefore ever
shorter, and few; at most :data:`GAPS_KEPT`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The refresh is the longest gap between reads over this long.
REFRESH_WINDOW_S = 60.0
#: Gaps kept at most (ever shorter ones, one a read: rare beyond a handful). Past it the one
#: before the newest goes, so the longest of the window is never lost while it is in it.
GAPS_KEPT = 16


@dataclass(frozen=True, slots=True)
class ReadGaps:
    #: When the last successful read completed (monotonic seconds); None before the first.
    last_at: float | None = None
    #: (when a gap ended, its seconds), oldest first, each shorter than the one before.
    gaps: tuple[tuple[float, float], ...] = ()


NO_READS = ReadGaps()


def note_read(gaps: ReadGaps, at: float) -> ReadGaps:
    """A successful read completed at ``at``."""
    if gaps.last_at is None:
        return ReadGaps(at)
    gap = at - gaps.last_at
    kept = [(end, g) for end, g in gaps.gaps if g > gap and end > at - REFRESH_WINDOW_S]
    if len(kept) >= GAPS_KEPT:
        del kept[-1]
    kept.append((at, gap))
    return ReadGaps(at, tuple(kept))


def refresh_s(gaps: ReadGaps, now: float) -> float | None:
    """The longest gap between two successive reads that ended within the window, or the time
    since the last read when that is longer (a meter no longer read); None before two reads."""
    if gaps.last_at is None or not gaps.gaps:
        return None
    in_window = [g for end, g in gaps.gaps if end > now - REFRESH_WINDOW_S]
    return max([now - gaps.last_at, *in_window])
