"""Pulses to energy and power (pure: frozen values in, frozen values out, no clock reads).

Counting uses the kernel's per-line sequence number: ``count += seqno - last_seqno``, so the
edges the kernel dropped from a full buffer still count. A new line request restarts the sequence
at 1: call :func:`reopened` first.

- energy_kwh = pulses x Wh-per-pulse / 1000 (:func:`energy_kwh`)
- power_w = Wh-per-pulse x 3600 / interval between the last two kernel timestamps; while no
  pulse arrives it is bounded by Wh x 3600 / time since the last pulse, and it is 0 once
  ``power_timeout_s`` has passed without one (:func:`power_w`).
- plausibility: the meter keeps its contact open at least as long as closed, so two pulses are
  at least 2 x closure time apart (register 145; 10 ms when unknown, the shortest it uses).
  Faster pulses (less a tolerance) are noise: they are not counted and are reported.
- the total never decreases.

Times are CLOCK_MONOTONIC nanoseconds (kernel event timestamps and ``time.monotonic_ns()``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from bridge.meters.series4000.points import PULSE_CLOSURE_MS, PULSE_WEIGHTS_WH

NS = 1_000_000_000


class PulseEdge(Protocol):
    """What counting needs from an edge event (``bridge.gpio.backend.EdgeEvent`` fits)."""

    @property
    def timestamp_ns(self) -> int: ...

    @property
    def line_seqno(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PulseParams:
    wh_per_pulse: float
    #: Power reads 0 after this long without a pulse (the lowest power shown is wh*3600/timeout).
    power_timeout_s: float = 300.0
    #: Closure time the meter chose (register 145); None: the shortest it can choose.
    closure_ms: float | None = None
    #: Accept intervals down to (1 - tolerance) x 2 x closure (timestamp jitter, debounce).
    tolerance: float = 0.2

    def __post_init__(self) -> None:
        if self.wh_per_pulse <= 0:
            raise ValueError(f"wh_per_pulse must be positive, not {self.wh_per_pulse}")
        if self.power_timeout_s <= 0:
            raise ValueError(f"power_timeout_s must be positive, not {self.power_timeout_s}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), not {self.tolerance}")

    @property
    def min_interval_ns(self) -> int:
        closure = self.closure_ms if self.closure_ms is not None else min(PULSE_CLOSURE_MS)
        return round(2 * closure * 1_000_000 * (1 - self.tolerance))


@dataclass(frozen=True, slots=True)
class PulseState:
    pulses: int
    #: When counting began (or the line was reopened): power is unknown until the timeout.
    started_ns: int
    last_seqno: int = 0
    #: Kernel timestamp of the last counted pulse.
    last_ns: int | None = None
    #: Mean interval per pulse between the last two counted events.
    interval_ns: float | None = None
    #: Totals since start: pulses only known from sequence gaps, and pulses refused as noise.
    dropped: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class Rejected:
    line_seqno: int
    timestamp_ns: int
    pulses: int
    interval_ns: float
    min_interval_ns: int

    def describe(self) -> str:
        return (f"{self.pulses} pulse(s) {self.interval_ns / 1e6:.1f} ms apart, faster than the "
                f"meter can emit ({self.min_interval_ns / 1e6:.1f} ms minimum): not counted")


@dataclass(frozen=True, slots=True)
class Counted:
    state: PulseState
    added: int
    #: Pulses in ``added`` that the kernel dropped (known only from sequence numbers).
    dropped: int
    rejected: tuple[Rejected, ...]


def start(pulses: int, now_ns: int) -> PulseState:
    if pulses < 0:
        raise ValueError(f"a pulse total cannot be negative ({pulses})")
    return PulseState(pulses=pulses, started_ns=now_ns)


def reopened(state: PulseState, now_ns: int) -> PulseState:
    """A new line request: sequence numbers restart and the old timestamp no longer pairs."""
    return replace(state, started_ns=now_ns, last_seqno=0, last_ns=None, interval_ns=None)


def count(state: PulseState, events: Iterable[PulseEdge], params: PulseParams) -> Counted:
    """Count a batch of pulse edges (already filtered to the counting edge by the kernel)."""
    added = dropped = 0
    rejected: list[Rejected] = []
    for ev in events:
        gap = ev.line_seqno - state.last_seqno
        if gap <= 0:  # the sequence restarted without reopened(): this event is one pulse
            gap = 1
        if state.last_ns is not None:
            per_pulse = (ev.timestamp_ns - state.last_ns) / gap
            if per_pulse < params.min_interval_ns:
                rejected.append(Rejected(ev.line_seqno, ev.timestamp_ns, gap, per_pulse,
                                         params.min_interval_ns))
                state = replace(state, last_seqno=ev.line_seqno,
                                rejected=state.rejected + gap)
                continue
            interval: float | None = per_pulse
        else:
            interval = None
        added += gap
        dropped += gap - 1
        state = replace(state, pulses=state.pulses + gap, last_seqno=ev.line_seqno,
                        last_ns=ev.timestamp_ns, interval_ns=interval,
                        dropped=state.dropped + gap - 1)
    return Counted(state, added, dropped, tuple(rejected))


def energy_kwh(pulses: int, wh_per_pulse: float) -> float:
    return pulses * wh_per_pulse / 1000


def power_w(state: PulseState, params: PulseParams, now_ns: int) -> float | None:
    """Present power, or None while it is not known yet (fewer than two pulses)."""
    timeout_ns = params.power_timeout_s * NS
    if state.last_ns is None:
        return 0.0 if now_ns - state.started_ns >= timeout_ns else None
    since = now_ns - state.last_ns
    if since >= timeout_ns:
        return 0.0
    if state.interval_ns is None or state.interval_ns <= 0:
        return None
    power = params.wh_per_pulse * 3600 * NS / state.interval_ns
    if since > state.interval_ns:
        power = min(power, params.wh_per_pulse * 3600 * NS / since)
    return power


def weight_problem(configured_wh: float, meter_wh: int) -> str | None:
    """Why a configured Wh per pulse cannot be used with the meter's register 144, if so."""
    if meter_wh not in PULSE_WEIGHTS_WH:
        return (f"the meter reports {meter_wh} Wh per pulse (register 144), not one of "
                f"{', '.join(map(str, PULSE_WEIGHTS_WH))}")
    if configured_wh != meter_wh:
        return (f"wh_per_pulse is {configured_wh:g} but the meter sends one pulse per "
                f"{meter_wh} Wh (register 144): set wh_per_pulse to {meter_wh}, or change the "
                f"meter's pulse_wh setting")
    return None


def debounce_problem(debounce_ms: float, closure_ms: float) -> str | None:
    """Why a debounce period would swallow the meter's pulses, if it would."""
    if debounce_ms >= closure_ms:
        return (f"debounce_ms {debounce_ms:g} is not shorter than the meter's pulse closure of "
                f"{closure_ms:g} ms (register 145): every pulse would be filtered out; use at "
                f"most {closure_ms / 2:g} ms")
    return None


@dataclass(frozen=True, slots=True)
class PulseCheck:
    """GPIO count against the meter's own closure counter (registers 43-44) since a baseline."""

    gpio_pulses: int
    meter_pulses: int

    @property
    def difference(self) -> int:
        """Positive: the GPIO counted extra pulses (noise); negative: it missed some."""
        return self.gpio_pulses - self.meter_pulses


def pulse_check(baseline: tuple[int, int], gpio_total: int, meter_count: int) -> PulseCheck | None:
    """Compare since ``baseline`` = (gpio_total, meter_count); None if the meter was reset.

    The two reads are not simultaneous, so a difference of one pulse can be in flight.
    """
    gpio0, meter0 = baseline
    if meter_count < meter0 or gpio_total < gpio0:
        return None
    return PulseCheck(gpio_total - gpio0, meter_count - meter0)
