"""What generic code knows about a meter model: the interface every meter profile implements.

The poller, the reader, discovery and the command line never import a particular meter: they
take a :class:`MeterProfile` (the way a Home Assistant integration takes entity descriptions
and mbmd a producer). A profile says which registers hold the set-up and the measurements, how
words become a :class:`MeterSetup`, which quantities the wiring makes valid, which alarms apply,
which settings and commands exist and whether a payload is acceptable, and how the meter names
itself. Everything here is pure: frozen values in, frozen values out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bridge.meters.findings import Finding
from bridge.model.quantities import Visibility
from bridge.model.registers import ReadBlock, Register
from bridge.model.values import Number, StateValue, is_number


@dataclass(frozen=True, slots=True)
class Identity:
    """How a meter names itself (function 0x2B, or its firmware register)."""

    vendor: str | None = None
    product: str | None = None
    firmware: str | None = None


@dataclass(frozen=True, slots=True)
class MeterSetup:
    """One decoded read of a meter's set-up and status registers."""

    system_type: int
    scales: Mapping[int, int]
    #: Settings as published: numbers, or option labels for selects (``ct_output``: ``"1V"``).
    settings: Mapping[str, StateValue]
    #: Status values as published (``max_power_w``, ``pulse_closure_ms``, ...).
    status: Mapping[str, Number]
    alarm_bitmap: int
    #: The register value of every setting, by setting key (what a write is checked against).
    raw_settings: Mapping[str, int] = field(default_factory=dict)
    #: Active alarms of the phases the wiring uses, by alarm key.
    alarms: tuple[str, ...] = ()
    #: The block's words as the meter sent them (the Modbus server answers from them).
    words: tuple[int, ...] = ()

    def setting_raw(self, key: str) -> int:
        return self.raw_settings[key]


@dataclass(frozen=True, slots=True)
class Setting:
    """A writable set-up register exposed as a Home Assistant control."""

    key: str
    reg: int
    name: str
    kind: str  # "number" | "select"
    minimum: float = 0
    maximum: float = 0
    step: float = 1
    unit: str | None = None
    #: For selects: label -> register value, in display order.
    options: tuple[tuple[str, int], ...] = ()
    #: Register value = engineering value / factor (PT ratio is stored x100).
    factor: float = 1.0
    #: Values inside [minimum, maximum] that the meter still refuses.
    excluded: tuple[tuple[float, float], ...] = ()
    icon: str | None = None
    #: Writing it changes the valid quantity set (the system type).
    changes_validity: bool = False
    #: Home Assistant's device class for a number (voltage, current, duration).
    device_class: str | None = None
    #: Published as the register's number, not the option's label (the select's template shows
    #: the label): values that are numbers to the user, like a system type or a pulse weight.
    numeric_state: bool = False
    visibility: Visibility = Visibility.PRIMARY


@dataclass(frozen=True, slots=True)
class Command:
    """A button: one value written to the command register."""

    key: str
    name: str
    value: int
    icon: str | None = None
    #: The meter ignores demand commands sent less than 10 s apart.
    min_interval_s: float = 0.0
    #: State keys the command legitimately lowers (so the bridge publishes the drop).
    resets: tuple[str, ...] = field(default=())
    #: Destroys what people bill from (energy totals, maximum demand): needs ``allow_resets``
    #: on the meter besides ``allow_writes``, and is created disabled in Home Assistant.
    guarded: bool = False
    visibility: Visibility = Visibility.PRIMARY


@dataclass(frozen=True, slots=True)
class AlarmBit:
    bit: int
    key: str
    name: str
    #: Which phase set decides whether the bit applies: "voltage", "ct" or None (always).
    phase_set: str | None = None
    phase: str | None = None
    #: PRIMARY: shown on the dashboard; otherwise a diagnostic entity (the meter's Problem
    #: entity gathers every bit).
    visibility: Visibility = Visibility.SPECIALIST


@dataclass(frozen=True, slots=True)
class Write:
    """Write ``value`` to register ``reg`` (holding register, function 0x06)."""

    setting: str
    requested: str
    reg: int
    value: int
    is_button: bool = False
    #: What the user should do next once the write is taken (e.g. the system voltage to set
    #: after a new PT ratio), or None.
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    setting: str
    requested: str
    error: str


class MeterProfile(Protocol):
    """A meter model as the generic parts of the bridge see it."""

    @property
    def manufacturer(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def config_block(self) -> ReadBlock:
        """The one read that carries the set-up, scale factors, alarms and status counters."""

    @property
    def firmware_register(self) -> int: ...

    @property
    def register_map(self) -> tuple[Register, ...]:
        """Every register of the meter's point map (what ``read --raw`` dumps)."""

    @property
    def fast_integer_rows(self) -> tuple[Register, ...]:
        """Scaled integer rows that carry a measurement key in fewer registers than its float:
        the fast tier reads one instead when its resolution under the meter's scale registers
        is at least as fine as the published one (``bridge.core.fast_plan``)."""

    @property
    def command_register(self) -> int:
        """The register the commands' values are written to."""

    @property
    def reset_count_wait_s(self) -> float:
        """How long after a reset command the meter may take to count it (see released_by)."""

    @property
    def system_types(self) -> tuple[int, ...]:
        """The wirings the meter supports (register values), in display order."""

    @property
    def settings(self) -> tuple[Setting, ...]: ...

    @property
    def commands(self) -> tuple[Command, ...]: ...

    def system_type_label(self, code: int) -> str: ...

    def decode_setup(self, words: Sequence[int]) -> MeterSetup: ...

    def valid_keys(self, system_type: int, reported: Collection[str] = ()) -> frozenset[str]:
        """Measurement keys valid for the wiring (uncertain ones only if ``reported``)."""

    def reported_uncertain(self, values: Mapping[str, Number | None],
                           system_type: int) -> frozenset[str]:
        """The keys the sources leave open for the wiring that the meter read as numbers."""

    def measurement_plan(self, system_type: int, reported: Collection[str] = (),
                         include_uncertain: bool = False) -> tuple[ReadBlock, ...]: ...

    def alarm_bits(self, system_type: int) -> tuple[AlarmBit, ...]:
        """The alarm bits that apply to the phases a wiring uses."""

    def repeated_keys(self, system_type: int) -> frozenset[str]:
        """Valid keys that only repeat another key under the wiring (phase A on a single-phase
        meter): published in the state, but no entity of their own."""

    def system_type_hint(self, before: MeterSetup, after: MeterSetup) -> str | None:
        """After a system-type change: what to set next when the present set-up no longer fits
        the new wiring (None: nothing)."""

    def identity(self, objects: Mapping[int, str]) -> Identity:
        """Identity from the device-identification objects (function 0x2B)."""

    def identity_from_firmware(self, raw: int) -> Identity:
        """Identity when the meter answers 0x2B with an exception: its firmware register."""

    def parse_command(self, key: str, payload: bytes, setup: MeterSetup | None,
                      now: float = 0.0,
                      last_demand_command: float | None = None) -> Write | Rejection: ...

    def released_by(self, before: MeterSetup, after: MeterSetup) -> frozenset[str]:
        """Accumulators a reset seen between two set-up reads lets drop (e.g. a front-panel
        energy reset counted by the meter)."""

    def resets_of(self, command_key: str) -> tuple[str, ...]:
        """Accumulators a command lowers on purpose."""

    @property
    def wiring_info_codes(self) -> tuple[str, ...]:
        """Wiring-check codes that only inform: they do not make the wiring a problem."""

    def check_wiring(self, setup: MeterSetup,
                     values: Mapping[str, Number]) -> tuple[Finding, ...]:
        """The commissioning check over one reading: what is wrong with the wiring or the
        set-up, each finding with its fix."""


def meter_state(setup: MeterSetup, values: Mapping[str, Number | None],
                valid: Collection[str]) -> dict[str, StateValue]:
    """The state object every verb publishes or prints: the valid measurements that are
    numbers, then the settings, the status values and the active alarms."""
    state: dict[str, StateValue] = {k: v for k, v in values.items()
                                    if k in valid and v is not None and is_number(v)}
    state.update(setup.settings)
    state.update(setup.status)
    state["alarms"] = list(setup.alarms)
    return state
