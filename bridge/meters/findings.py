"""Findings of a check over a meter's readings, and how long they must hold (pure).

A finding is reported only when it is there in several readings in a row, and cleared only when
it has been gone for as many: a passing load change (a motor starting, a phase switched off for
a moment) neither raises nor clears anything. :func:`hold_step` is that rule for the running
bridge; :func:`persistent` is the same idea for a check over a fixed number of readings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

#: Readings in a row before a finding is reported, and before it is cleared.
HOLD_READS = 3


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


FindingKey = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    #: ``a b c`` for a CT, ``an bn cn ab bc ca`` for a voltage, None for the meter as a whole.
    phase: str | None
    message: str
    fix: str
    #: Extra fields of the finding (``suggested_system_type``), as published.
    extra: tuple[tuple[str, int | float | str], ...] = ()

    @property
    def key(self) -> FindingKey:
        """What identifies a finding from one reading to the next."""
        return (self.code, self.phase)

    @property
    def label(self) -> str:
        """``voltage_missing_cn``: the key as one word (attribute names in Home Assistant)."""
        return f"{self.code}_{self.phase}" if self.phase else self.code

    @property
    def blocking(self) -> bool:
        """An error or a warning: the installation needs attention."""
        return self.severity is not Severity.INFO

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity.value, "phase": self.phase,
                "message": self.message, "fix": self.fix, **dict(self.extra)}


def blocking(findings: Iterable[Finding]) -> bool:
    """Whether any finding is an error or a warning."""
    return any(f.blocking for f in findings)


def codes(findings: Iterable[Finding]) -> list[str]:
    """The codes of the findings, each once, in order."""
    return list(dict.fromkeys(f.code for f in findings))


def persistent(readings: Sequence[Sequence[Finding]]) -> tuple[Finding, ...]:
    """The findings present in every reading (as the last reading words them)."""
    if not readings:
        return ()
    keys = set.intersection(*({f.key for f in r} for r in readings))
    return tuple(f for f in readings[-1] if f.key in keys)


@dataclass(frozen=True, slots=True)
class FindingHold:
    """The reported findings, and the keys whose presence has differed for a few reads."""

    active: tuple[Finding, ...] = ()
    #: key -> readings in a row in which the key's presence differed from ``active``.
    pending: tuple[tuple[FindingKey, int], ...] = ()


@dataclass(frozen=True, slots=True)
class HoldChanges:
    raised: tuple[Finding, ...] = ()
    cleared: tuple[Finding, ...] = ()


def hold_step(hold: FindingHold, findings: Sequence[Finding],
              reads: int = HOLD_READS) -> tuple[FindingHold, HoldChanges]:
    """Fold one reading's findings into the hold: a finding is raised after ``reads`` readings
    in a row with it, and cleared after ``reads`` readings in a row without it. An active
    finding keeps the wording it was raised with: the measured values in a message move with
    every reading, and the published state should change only when the findings do."""
    now = {f.key: f for f in findings}
    active = {f.key: f for f in hold.active}
    counts = dict(hold.pending)
    pending: dict[FindingKey, int] = {}
    raised: list[Finding] = []
    cleared: list[Finding] = []
    for key in [*active, *(k for k in now if k not in active)]:
        if (key in now) == (key in active):
            continue
        streak = counts.get(key, 0) + 1
        if streak < reads:
            pending[key] = streak
        elif key in now:
            raised.append(now[key])
        else:
            cleared.append(active[key])
    gone = {f.key for f in cleared}
    kept = [f for f in hold.active if f.key not in gone]
    return (FindingHold((*kept, *raised), tuple(pending.items())),
            HoldChanges(tuple(raised), tuple(cleared)))


def state_keys(active: Sequence[Finding]) -> dict[str, list[str]]:
    """The findings in a meter's state: ``wiring``, the active codes (the contract), and
    ``wiring_findings``, one line per finding with its fix (Home Assistant's attributes)."""
    return {"wiring": codes(active),
            "wiring_findings": [f"{f.label}: {f.message} Fix: {f.fix}" for f in active]}
