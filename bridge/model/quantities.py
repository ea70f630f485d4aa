"""The vocabulary of published quantities: one row per state key.

A state key is the contract between the bridge and its users (the README's table of state keys):
it names the quantity, its phase and its unit (``power_a_w``: real power, phase A, watts). Units
are the ones Home Assistant expects for the device class, so a value can be published as read,
without per-entity conversion in Home Assistant.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StateClass(StrEnum):
    MEASUREMENT = "measurement"
    TOTAL_INCREASING = "total_increasing"


class Visibility(StrEnum):
    """Whether an entity is shown by default in Home Assistant (one click away otherwise)."""

    #: Enabled by default.
    PRIMARY = "primary"
    #: Noisy or for specialists: created disabled.
    SPECIALIST = "specialist"
    #: The meter's pulse output: created disabled unless a pulse input counts it.
    PULSE_OUTPUT = "pulse_output"


@dataclass(frozen=True, slots=True)
class Quantity:
    """One published value of a meter."""

    key: str
    name: str
    unit: str | None
    device_class: str | None
    state_class: StateClass | None
    precision: int
    phase: str | None = None
    #: An accumulator: Home Assistant treats any decrease as a meter reset, so the bridge never
    #: publishes a value lower than the last one unless it knows the meter was reset.
    monotonic: bool = False
    diagnostic: bool = False
    icon: str | None = None
    #: A count: published as an integer even when the meter sends a float.
    integer: bool = False
    visibility: Visibility = Visibility.PRIMARY


def _per_phase(
    stem: str,
    name: str,
    unit: str | None,
    device_class: str | None,
    state_class: StateClass | None,
    precision: int,
    suffix: str,
    phases: tuple[str, ...] = ("a", "b", "c"),
    monotonic: bool = False,
    phase_visibility: Visibility = Visibility.PRIMARY,
) -> list[Quantity]:
    total_key = f"{stem}{suffix}"
    rows = [Quantity(total_key, name, unit, device_class, state_class, precision, None, monotonic)]
    for phase in phases:
        rows.append(
            Quantity(
                f"{stem}_{phase}{suffix}",
                f"{name} {phase.upper()}",
                unit,
                device_class,
                state_class,
                precision,
                phase,
                monotonic,
                visibility=phase_visibility,
            )
        )
    return rows


def _pair(phases: str) -> str:
    """``an`` -> ``A-N``: the two ends of a voltage."""
    return "-".join(phases.upper())


_M = StateClass.MEASUREMENT
_T = StateClass.TOTAL_INCREASING
_SPEC = Visibility.SPECIALIST
_PULSE = Visibility.PULSE_OUTPUT

QUANTITIES: tuple[Quantity, ...] = (
    *_per_phase("energy", "Energy", "kWh", "energy", _T, 3, "_kwh", monotonic=True),
    # Home Assistant 2025.4 has no reactive-energy device class: kvarh without one.
    Quantity("reactive_energy_kvarh", "Reactive energy", "kvarh", None, _T, 3,
             monotonic=True, icon="mdi:flash-outline"),
    Quantity("apparent_energy_kvah", "Apparent energy", "kVAh", None, _T, 3, monotonic=True,
             icon="mdi:flash"),
    *_per_phase("power", "Power", "W", "power", _M, 0, "_w"),
    *_per_phase("reactive_power", "Reactive power", "var", "reactive_power", _M, 0, "_var",
                phase_visibility=_SPEC),
    *_per_phase("apparent_power", "Apparent power", "VA", "apparent_power", _M, 0, "_va",
                phase_visibility=_SPEC),
    *_per_phase("power_factor", "Power factor", None, "power_factor", _M, 3, ""),
    Quantity("frequency_hz", "Frequency", "Hz", "frequency", _M, 2),
    # Averages over the phases say so: on a wye meter "Voltage L-N" reads like a total.
    Quantity("voltage_ln_v", "Average voltage L-N", "V", "voltage", _M, 1),
    *[Quantity(f"voltage_{p}_v", f"Voltage {_pair(p)}", "V", "voltage", _M, 1, p)
      for p in ("an", "bn", "cn")],
    Quantity("voltage_ll_v", "Average voltage L-L", "V", "voltage", _M, 1),
    *[Quantity(f"voltage_{p}_v", f"Voltage {_pair(p)}", "V", "voltage", _M, 1, p)
      for p in ("ab", "bc", "ca")],
    Quantity("current_a", "Average current", "A", "current", _M, 2),
    *_per_phase("current", "Current", "A", "current", _M, 2, "_a")[1:],
    Quantity("demand_power_w", "Demand power", "W", "power", _M, 0),
    Quantity("demand_reactive_power_var", "Demand reactive power", "var", "reactive_power", _M, 0,
             visibility=_SPEC),
    Quantity("demand_apparent_power_va", "Demand apparent power", "VA", "apparent_power", _M, 0,
             visibility=_SPEC),
    Quantity("max_demand_power_w", "Maximum demand power", "W", "power", _M, 0),
    Quantity("max_demand_reactive_power_var", "Maximum demand reactive power", "var",
             "reactive_power", _M, 0, visibility=_SPEC),
    Quantity("max_demand_apparent_power_va", "Maximum demand apparent power", "VA",
             "apparent_power", _M, 0, visibility=_SPEC),
    # A count has no unit ("1 pulses" reads badly); the state class keeps its statistics.
    Quantity("pulse_count", "Pulse count", None, None, _T, 0, monotonic=True,
             diagnostic=True, icon="mdi:counter", integer=True, visibility=_PULSE),
    # Read from the configuration block; diagnostic, not part of the measurement sweep.
    Quantity("max_power_w", "Theoretical maximum power", "W", "power", None, 0, diagnostic=True,
             visibility=_SPEC),
    Quantity("pulse_closure_ms", "Pulse closure time", "ms", "duration", None, 0,
             diagnostic=True, visibility=_PULSE),
    # Counts that only grow (a bridge restart starts read errors at 0 again, which
    # total_increasing takes as a reset): statistics show how often they moved.
    Quantity("energy_reset_count", "Energy resets", None, None, _T, 0, diagnostic=True,
             icon="mdi:restore", integer=True, visibility=_SPEC),
    Quantity("power_up_count", "Power-ups", None, None, _T, 0, diagnostic=True,
             icon="mdi:power", integer=True, visibility=_SPEC),
    # Bus statistics kept by the bridge for each meter.
    Quantity("read_errors", "Read errors", None, None, _T, 0, diagnostic=True,
             icon="mdi:alert-circle-outline", integer=True),
    Quantity("response_time_ms", "Response time", "ms", "duration", _M, 1, diagnostic=True,
             visibility=_SPEC),
)

BY_KEY: dict[str, Quantity] = {q.key: q for q in QUANTITIES}


def quantity(key: str) -> Quantity:
    """Return the vocabulary row for ``key`` (KeyError names the key)."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown state key {key!r}") from None


def published_decimals(q: Quantity) -> int:
    """Decimals a value keeps when published: one past the display precision.

    The meter is a class 0.2/0.5 instrument; float32 carries about seven significant digits, so
    the rest (``0.90187359``) is noise that would only reach templates and history.
    """
    return q.precision + 1


def published_resolution(key: str) -> float:
    """The step between two published values of ``key`` in its unit (0.1 for watts)."""
    return 10.0 ** -published_decimals(quantity(key))


def rounded(key: str, value: float) -> float:
    """``value`` at the resolution published for ``key`` (unknown keys unchanged)."""
    q = BY_KEY.get(key)
    if q is None:
        return value
    return round(value, published_decimals(q))
