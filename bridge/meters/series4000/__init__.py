"""The Leviton Series 4000-K (Veris E50C2 full data set) as a meter profile.

``PROFILE`` is what the rest of the bridge uses; the modules beside this one hold the data
(``points``: every register, the system types, alarm bits, settings and commands), the decoding
of the set-up (``setup``), the validity rules (``validity``) and the command checks
(``commands``), and the commissioning check (``wiring``, over ``wiring_basis``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bridge.meters.findings import Finding
from bridge.meters.identity import identity_from_objects
from bridge.meters.profile import (
    AlarmBit,
    Command,
    Identity,
    MeterSetup,
    Rejection,
    Setting,
    Write,
)
from bridge.meters.series4000 import (
    commands,
    points,
    rules,
    setup,
    validity,
    wiring,
    wiring_basis,
)
from bridge.model.registers import ReadBlock, Register
from bridge.model.values import Number


@dataclass(frozen=True, slots=True)
class Series4000Profile:
    manufacturer: str = points.MANUFACTURER
    model: str = points.MODEL
    config_block: ReadBlock = points.CONFIG_READ
    firmware_register: int = points.REG_FIRMWARE
    command_register: int = points.REG_COMMAND
    system_types: tuple[int, ...] = tuple(points.SYSTEM_TYPES)
    settings: tuple[Setting, ...] = points.SETTINGS
    commands: tuple[Command, ...] = points.COMMANDS
    register_map: tuple[Register, ...] = points.ALL_REGISTERS
    fast_integer_rows: tuple[Register, ...] = points.FAST_INTEGER_ROWS
    reset_count_wait_s: float = rules.RESET_COUNT_WAIT_S
    wiring_info_codes: tuple[str, ...] = wiring_basis.INFO_CODES

    def system_type_label(self, code: int) -> str:
        st = points.SYSTEM_TYPES.get(code)
        return st.label if st else str(code)

    def decode_setup(self, words: Sequence[int]) -> MeterSetup:
        return setup.decode_setup(words)

    def valid_keys(self, system_type: int, reported: Collection[str] = ()) -> frozenset[str]:
        return setup.valid_state_keys(system_type, reported)

    def reported_uncertain(self, values: Mapping[str, Number | None],
                           system_type: int) -> frozenset[str]:
        return setup.reported_uncertain(values, system_type)

    def measurement_plan(self, system_type: int, reported: Collection[str] = (),
                         include_uncertain: bool = False) -> tuple[ReadBlock, ...]:
        return setup.measurement_plan(system_type, reported, include_uncertain)

    def alarm_bits(self, system_type: int) -> tuple[AlarmBit, ...]:
        return validity.alarm_bits_for(system_type)

    def repeated_keys(self, system_type: int) -> frozenset[str]:
        return validity.repeated_keys(system_type)

    def system_type_hint(self, before: MeterSetup, after: MeterSetup) -> str | None:
        return commands.system_type_hint(before, after)

    def identity(self, objects: Mapping[int, str]) -> Identity:
        return identity_from_objects(objects)  # numbered from 0 or from 1, read by content

    def identity_from_firmware(self, raw: int) -> Identity:
        return Identity(points.MANUFACTURER, None, points.firmware_label(raw))

    def parse_command(self, key: str, payload: bytes, setup: MeterSetup | None,
                      now: float = 0.0,
                      last_demand_command: float | None = None) -> Write | Rejection:
        return commands.parse_command(key, payload, setup, now, last_demand_command)

    def released_by(self, before: MeterSetup, after: MeterSetup) -> frozenset[str]:
        # Register 147 counts energy resets, ours and the front panel's alike.
        was = before.status.get("energy_reset_count")
        now = after.status.get("energy_reset_count")
        if was is None or now is None or was == now:
            return frozenset()
        return rules.CLEARED_BY_COUNTED_RESET

    def resets_of(self, command_key: str) -> tuple[str, ...]:
        command = points.COMMANDS_BY_KEY.get(command_key)
        return command.resets if command else ()

    def check_wiring(self, setup: MeterSetup,
                     values: Mapping[str, Number]) -> tuple[Finding, ...]:
        return wiring.check(wiring_basis.WiringReading(setup, values))


PROFILE = Series4000Profile()
