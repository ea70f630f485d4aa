"""The Leviton Series 4000-K (Veris E50C2 full data set) as data.

Every point of the E50 point map has one row here: the integer block 1-52 (values scaled by the
registers 138-141), the configuration block 129-154, the float block 257-346 (IEEE-754 copies of
the integer block, never scaled) and the firmware register 7001. Register numbers are the
manual's 1-based numbers.

The bridge publishes the measurements from the float block: one request of 90 registers carries
every quantity, and floats need no scale factor, so a front-panel change of CT or PT size can
never make the bridge decode a value with a stale exponent. The integer rows are kept for the
simulator, for ``read --integers`` and for cross-checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.meters.profile import AlarmBit, Command, Setting
from bridge.model.quantities import Visibility
from bridge.model.registers import Access, DataType, ReadBlock, Register

ALL_TYPES = frozenset({10, 11, 12, 31, 40})

MANUFACTURER = "Leviton"
MODEL = "Series 4000-K"
#: The product name the meter gives through function 0x2B.
IDENTIFICATION_PRODUCT = "Series 4000"

# ---------------------------------------------------------------------------------------------
# System types (register 130)


@dataclass(frozen=True, slots=True)
class SystemType:
    code: int
    label: str
    #: Phases with a CT input in use (currents, per-phase power, low-PF alarms).
    ct_phases: tuple[str, ...]
    #: Phases with a voltage connection (voltage and phase-loss alarms).
    voltage_phases: tuple[str, ...]
    neutral: bool


SYSTEM_TYPES: dict[int, SystemType] = {
    10: SystemType(10, "1-phase L-N 2-wire (10)", ("a",), ("a",), True),
    11: SystemType(11, "1-phase L-L 2-wire (11)", ("a",), ("a", "b"), False),
    12: SystemType(12, "Split phase 3-wire (12)", ("a", "b"), ("a", "b"), True),
    31: SystemType(31, "3-phase delta 3-wire (31)", ("a", "b", "c"), ("a", "b", "c"), False),
    40: SystemType(40, "3-phase wye 4-wire (40)", ("a", "b", "c"), ("a", "b", "c"), True),
}

#: System voltage (register 134) is line-to-line except in type 10, where it is line-to-neutral;
#: line-to-line over line-to-neutral for the other types (120/240 V split phase: 2).
SYSTEM_VOLTAGE_LN_TYPE = 10
LL_OVER_LN: dict[int, float] = {11: 2.0, 12: 2.0, 31: 3 ** 0.5, 40: 3 ** 0.5}

# Validity sets from the system-type table of the quick install guide (CT inputs, L-L and L-N
# voltage connections); "uncertain" = per-phase power in the types without a neutral, which the
# sources do not settle.
_T_ALL = ALL_TYPES
_T_LL = frozenset({11, 12, 31, 40})  # average L-L voltage
_T_LN = frozenset({10, 12, 40})  # average L-N voltage, phase-A L-N values
_T_AB = frozenset({11, 12, 31, 40})
_T_3L = frozenset({31, 40})
_T_BN = frozenset({12, 40})
_T_CN = frozenset({40})
_T_IB = frozenset({12, 31, 40})
_T_IC = frozenset({31, 40})
_P_A, _U_A = frozenset({10, 12, 40}), frozenset({11, 31})
_P_B, _U_B = frozenset({12, 40}), frozenset({31})
_P_C, _U_C = frozenset({40}), frozenset({31})

SCALE_I, SCALE_V, SCALE_W, SCALE_E = 138, 139, 140, 141

# ---------------------------------------------------------------------------------------------
# Integer block 1-52: 16-bit values scaled by 10**(138..141), 32-bit accumulators high word first.
#
# The fixed scale of integer power factor (6, 13-15) and frequency (26) is not documented; those
# rows carry no factor and the float copies are the published source.

_U16, _I16, _U32, _F32 = DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.FLOAT32


def _i(reg: int, id_: str, name: str, dtype: DataType, unit: str | None, key: str | None,
       scale: int | None, valid: frozenset[int] = _T_ALL, uncertain: frozenset[int] = frozenset(),
       phase: str | None = None, factor: float = 1.0) -> Register:
    return Register(id=id_, reg=reg, dtype=dtype, name=name, unit=unit, key=key, scale_reg=scale,
                    factor=factor, phase=phase, valid_types=valid, uncertain_types=uncertain)


_KW = 1000.0  # kW, kVAR, kVA -> W, var, VA

INTEGER_BLOCK: tuple[Register, ...] = (
    _i(1, "real_energy", "Real energy consumption", _U32, "kWh", "energy_kwh", SCALE_E),
    _i(3, "kw_total", "Total real power", _U16, "kW", "power_w", SCALE_W, factor=_KW),
    # Signedness of reactive power is not documented; int16 is safe (0x8000 is QNAN either way).
    _i(4, "kvar_total", "Total reactive power", _I16, "kVAR", "reactive_power_var", SCALE_W,
       factor=_KW),
    _i(5, "kva_total", "Total apparent power", _U16, "kVA", "apparent_power_va", SCALE_W,
       factor=_KW),
    _i(6, "pf_total", "Total power factor (fixed scale undocumented)", _U16, None, None, None),
    _i(7, "vll_avg", "Voltage L-L, average", _U16, "V", "voltage_ll_v", SCALE_V, _T_LL),
    _i(8, "vln_avg", "Voltage L-N, average", _U16, "V", "voltage_ln_v", SCALE_V, _T_LN),
    _i(9, "i_avg", "Current, average", _U16, "A", "current_a", SCALE_I),
    _i(10, "kw_a", "Real power, phase A", _U16, "kW", "power_a_w", SCALE_W, _P_A, _U_A, "a", _KW),
    _i(11, "kw_b", "Real power, phase B", _U16, "kW", "power_b_w", SCALE_W, _P_B, _U_B, "b", _KW),
    _i(12, "kw_c", "Real power, phase C", _U16, "kW", "power_c_w", SCALE_W, _P_C, _U_C, "c", _KW),
    _i(13, "pf_a", "Power factor, phase A (fixed scale undocumented)", _U16, None, None, None,
       _P_A, _U_A, "a"),
    _i(14, "pf_b", "Power factor, phase B (fixed scale undocumented)", _U16, None, None, None,
       _P_B, _U_B, "b"),
    _i(15, "pf_c", "Power factor, phase C (fixed scale undocumented)", _U16, None, None, None,
       _P_C, _U_C, "c"),
    _i(16, "v_ab", "Voltage A-B", _U16, "V", "voltage_ab_v", SCALE_V, _T_AB, phase="ab"),
    _i(17, "v_bc", "Voltage B-C", _U16, "V", "voltage_bc_v", SCALE_V, _T_3L, phase="bc"),
    _i(18, "v_ca", "Voltage C-A", _U16, "V", "voltage_ca_v", SCALE_V, _T_3L, phase="ca"),
    _i(19, "v_an", "Voltage A-N", _U16, "V", "voltage_an_v", SCALE_V, _T_LN, phase="an"),
    _i(20, "v_bn", "Voltage B-N", _U16, "V", "voltage_bn_v", SCALE_V, _T_BN, phase="bn"),
    _i(21, "v_cn", "Voltage C-N", _U16, "V", "voltage_cn_v", SCALE_V, _T_CN, phase="cn"),
    _i(22, "i_a", "Current, phase A", _U16, "A", "current_a_a", SCALE_I, _T_ALL, phase="a"),
    _i(23, "i_b", "Current, phase B", _U16, "A", "current_b_a", SCALE_I, _T_IB, phase="b"),
    _i(24, "i_c", "Current, phase C", _U16, "A", "current_c_a", SCALE_I, _T_IC, phase="c"),
    _i(25, "reserved_25", "Reserved (reads QNAN)", _U16, None, None, None, frozenset()),
    _i(26, "frequency", "Frequency (fixed scale undocumented)", _U16, "Hz", None, None),
    _i(27, "kvah", "Apparent energy consumption", _U32, "kVAh", "apparent_energy_kvah", SCALE_E),
    _i(29, "kvarh", "Reactive energy consumption", _U32, "kVARh", "reactive_energy_kvarh",
       SCALE_E),
    _i(31, "kva_a", "Apparent power, phase A", _U16, "kVA", "apparent_power_a_va", SCALE_W, _P_A,
       _U_A, "a", _KW),
    _i(32, "kva_b", "Apparent power, phase B", _U16, "kVA", "apparent_power_b_va", SCALE_W, _P_B,
       _U_B, "b", _KW),
    _i(33, "kva_c", "Apparent power, phase C", _U16, "kVA", "apparent_power_c_va", SCALE_W, _P_C,
       _U_C, "c", _KW),
    _i(34, "kvar_a", "Reactive power, phase A", _I16, "kVAR", "reactive_power_a_var", SCALE_W,
       _P_A, _U_A, "a", _KW),
    _i(35, "kvar_b", "Reactive power, phase B", _I16, "kVAR", "reactive_power_b_var", SCALE_W,
       _P_B, _U_B, "b", _KW),
    _i(36, "kvar_c", "Reactive power, phase C", _I16, "kVAR", "reactive_power_c_var", SCALE_W,
       _P_C, _U_C, "c", _KW),
    _i(37, "kw_demand_present", "Real power, present demand", _U16, "kW", "demand_power_w",
       SCALE_W, factor=_KW),
    _i(38, "kvar_demand_present", "Reactive power, present demand", _I16, "kVAR",
       "demand_reactive_power_var", SCALE_W, factor=_KW),
    _i(39, "kva_demand_present", "Apparent power, present demand", _U16, "kVA",
       "demand_apparent_power_va", SCALE_W, factor=_KW),
    _i(40, "kw_demand_max", "Real power, maximum demand", _U16, "kW", "max_demand_power_w",
       SCALE_W, factor=_KW),
    _i(41, "kvar_demand_max", "Reactive power, maximum demand", _I16, "kVAR",
       "max_demand_reactive_power_var", SCALE_W, factor=_KW),
    _i(42, "kva_demand_max", "Apparent power, maximum demand", _U16, "kVA",
       "max_demand_apparent_power_va", SCALE_W, factor=_KW),
    _i(43, "pulse_count_1", "Pulse counter 1 (energy output closures)", _U32, "pulses",
       "pulse_count", None),
    _i(45, "pulse_count_2", "Pulse counter 2 (reactive energy)", _U32, "pulses", None, None),
    _i(47, "kwh_a", "Real energy, phase A", _U32, "kWh", "energy_a_kwh", SCALE_E, _P_A, _U_A, "a"),
    _i(49, "kwh_b", "Real energy, phase B", _U32, "kWh", "energy_b_kwh", SCALE_E, _P_B, _U_B, "b"),
    _i(51, "kwh_c", "Real energy, phase C", _U32, "kWh", "energy_c_kwh", SCALE_E, _P_C, _U_C, "c"),
)

# ---------------------------------------------------------------------------------------------
# Float block 257-346: IEEE-754 single precision, high word first, never scaled.


def _f(reg: int, id_: str, name: str, unit: str | None, key: str | None,
       valid: frozenset[int] = _T_ALL, uncertain: frozenset[int] = frozenset(),
       phase: str | None = None, factor: float = 1.0) -> Register:
    return Register(id=id_, reg=reg, dtype=_F32, name=name, unit=unit, key=key, factor=factor,
                    phase=phase, valid_types=valid, uncertain_types=uncertain)


FLOAT_BLOCK: tuple[Register, ...] = (
    _f(257, "f_real_energy", "Real energy consumption", "kWh", "energy_kwh"),
    # 259 repeats 257 (a legacy duplicate kept from the Veris H8035 map).
    _f(259, "f_real_energy_dup", "Real energy consumption (duplicate)", "kWh", None),
    _f(261, "f_kw_total", "Total real power", "kW", "power_w", factor=_KW),
    _f(263, "f_kvar_total", "Total reactive power", "kVAR", "reactive_power_var", factor=_KW),
    _f(265, "f_kva_total", "Total apparent power", "kVA", "apparent_power_va", factor=_KW),
    _f(267, "f_pf_total", "Total power factor", None, "power_factor"),
    _f(269, "f_vll_avg", "Voltage L-L, average", "V", "voltage_ll_v", _T_LL),
    _f(271, "f_vln_avg", "Voltage L-N, average", "V", "voltage_ln_v", _T_LN),
    _f(273, "f_i_avg", "Current, average", "A", "current_a"),
    _f(275, "f_kw_a", "Real power, phase A", "kW", "power_a_w", _P_A, _U_A, "a", _KW),
    _f(277, "f_kw_b", "Real power, phase B", "kW", "power_b_w", _P_B, _U_B, "b", _KW),
    _f(279, "f_kw_c", "Real power, phase C", "kW", "power_c_w", _P_C, _U_C, "c", _KW),
    _f(281, "f_pf_a", "Power factor, phase A", None, "power_factor_a", _P_A, _U_A, "a"),
    _f(283, "f_pf_b", "Power factor, phase B", None, "power_factor_b", _P_B, _U_B, "b"),
    _f(285, "f_pf_c", "Power factor, phase C", None, "power_factor_c", _P_C, _U_C, "c"),
    _f(287, "f_v_ab", "Voltage A-B", "V", "voltage_ab_v", _T_AB, phase="ab"),
    _f(289, "f_v_bc", "Voltage B-C", "V", "voltage_bc_v", _T_3L, phase="bc"),
    _f(291, "f_v_ca", "Voltage C-A", "V", "voltage_ca_v", _T_3L, phase="ca"),
    _f(293, "f_v_an", "Voltage A-N", "V", "voltage_an_v", _T_LN, phase="an"),
    _f(295, "f_v_bn", "Voltage B-N", "V", "voltage_bn_v", _T_BN, phase="bn"),
    _f(297, "f_v_cn", "Voltage C-N", "V", "voltage_cn_v", _T_CN, phase="cn"),
    _f(299, "f_i_a", "Current, phase A", "A", "current_a_a", _T_ALL, phase="a"),
    _f(301, "f_i_b", "Current, phase B", "A", "current_b_a", _T_IB, phase="b"),
    _f(303, "f_i_c", "Current, phase C", "A", "current_c_a", _T_IC, phase="c"),
    _f(305, "f_reserved_305", "Reserved (reads QNAN)", None, None, frozenset()),
    _f(307, "f_frequency", "Frequency (phase A)", "Hz", "frequency_hz"),
    _f(309, "f_kvah", "Apparent energy consumption", "kVAh", "apparent_energy_kvah"),
    _f(311, "f_kvarh", "Reactive energy consumption", "kVARh", "reactive_energy_kvarh"),
    _f(313, "f_kva_a", "Apparent power, phase A", "kVA", "apparent_power_a_va", _P_A, _U_A, "a",
       _KW),
    _f(315, "f_kva_b", "Apparent power, phase B", "kVA", "apparent_power_b_va", _P_B, _U_B, "b",
       _KW),
    _f(317, "f_kva_c", "Apparent power, phase C", "kVA", "apparent_power_c_va", _P_C, _U_C, "c",
       _KW),
    _f(319, "f_kvar_a", "Reactive power, phase A", "kVAR", "reactive_power_a_var", _P_A, _U_A,
       "a", _KW),
    _f(321, "f_kvar_b", "Reactive power, phase B", "kVAR", "reactive_power_b_var", _P_B, _U_B,
       "b", _KW),
    _f(323, "f_kvar_c", "Reactive power, phase C", "kVAR", "reactive_power_c_var", _P_C, _U_C,
       "c", _KW),
    _f(325, "f_kw_demand_present", "Real power, present demand", "kW", "demand_power_w",
       factor=_KW),
    _f(327, "f_kvar_demand_present", "Reactive power, present demand", "kVAR",
       "demand_reactive_power_var", factor=_KW),
    _f(329, "f_kva_demand_present", "Apparent power, present demand", "kVA",
       "demand_apparent_power_va", factor=_KW),
    _f(331, "f_kw_demand_max", "Real power, maximum demand", "kW", "max_demand_power_w",
       factor=_KW),
    _f(333, "f_kvar_demand_max", "Reactive power, maximum demand", "kVAR",
       "max_demand_reactive_power_var", factor=_KW),
    _f(335, "f_kva_demand_max", "Apparent power, maximum demand", "kVA",
       "max_demand_apparent_power_va", factor=_KW),
    # Exact below 2**24 pulses (167 MWh at 10 Wh per pulse); the integer copy is 43-44.
    _f(337, "f_pulse_count_1", "Pulse counter 1", "pulses", "pulse_count"),
    _f(339, "f_pulse_count_2", "Pulse counter 2 (reactive energy)", "pulses", None),
    _f(341, "f_kwh_a", "Real energy, phase A", "kWh", "energy_a_kwh", _P_A, _U_A, "a"),
    _f(343, "f_kwh_b", "Real energy, phase B", "kWh", "energy_b_kwh", _P_B, _U_B, "b"),
    _f(345, "f_kwh_c", "Real energy, phase C", "kWh", "energy_c_kwh", _P_C, _U_C, "c"),
)

# ---------------------------------------------------------------------------------------------
# Configuration and status block 129-154, and the firmware register.


def _c(reg: int, id_: str, name: str, dtype: DataType = _U16, access: Access = Access.R,
       unit: str | None = None, key: str | None = None, scale: int | None = None,
       factor: float = 1.0) -> Register:
    return Register(id=id_, reg=reg, dtype=dtype, name=name, unit=unit, key=key, access=access,
                    scale_reg=scale, factor=factor, valid_types=_T_ALL)


REG_COMMAND = 129
REG_SYSTEM_TYPE = 130
REG_MAX_POWER = 135
REG_PULSE_CLOSURE = 145
REG_ALARMS = 146
REG_ENERGY_RESETS = 147
REG_POWER_UPS = 152
REG_FIRMWARE = 7001

CONFIG_BLOCK: tuple[Register, ...] = (
    _c(129, "command", "Command register (reads 0)", access=Access.W),
    _c(130, "system_type", "System type", access=Access.RW, key="system_type"),
    _c(131, "ct_primary", "CT primary current", access=Access.RW, unit="A", key="ct_primary_a"),
    _c(132, "ct_secondary", "CT output mode (1 = 1 V, 3 = 0.333 V)", access=Access.RW,
       key="ct_output"),
    _c(133, "pt_ratio", "PT ratio x 100", access=Access.RW, key="pt_ratio", factor=0.01),
    _c(134, "system_voltage", "System voltage", access=Access.RW, unit="V",
       key="system_voltage_v"),
    _c(135, "max_power", "Theoretical maximum power", unit="kW", key="max_power_w",
       scale=SCALE_W, factor=_KW),
    _c(136, "reserved_136", "Undocumented"),
    _c(137, "display_units", "Display units (0 = IEC, 1 = IEEE)", access=Access.RW,
       key="display_units"),
    _c(138, "scale_i", "Scale factor I (current)", _I16),
    _c(139, "scale_v", "Scale factor V (voltage)", _I16),
    _c(140, "scale_w", "Scale factor W (power)", _I16),
    _c(141, "scale_e", "Scale factor E (energy)", _I16),
    _c(142, "phase_loss_v_threshold", "Phase-loss voltage threshold", access=Access.RW,
       unit="%", key="phase_loss_voltage_pct"),
    _c(143, "phase_loss_imbalance", "Phase-loss imbalance threshold", access=Access.RW,
       unit="%", key="phase_loss_imbalance_pct"),
    _c(144, "pulse_energy", "Energy per pulse", access=Access.RW, unit="Wh", key="pulse_wh"),
    _c(145, "pulse_duration", "Pulse closure time", unit="ms", key="pulse_closure_ms"),
    _c(146, "diagnostic_alerts", "Diagnostic alert bitmap", key="alarms"),
    _c(147, "energy_reset_count", "Energy resets", key="energy_reset_count"),
    _c(148, "reserved_148", "Reserved"),
    _c(149, "demand_subintervals", "Demand sub-intervals", access=Access.RW,
       key="demand_subintervals"),
    _c(150, "demand_subinterval_s", "Demand sub-interval length", access=Access.RW, unit="s",
       key="demand_subinterval_s"),
    _c(151, "reserved_151", "Reserved"),
    _c(152, "power_up_count", "Power-ups", key="power_up_count"),
    _c(153, "output_config", "Output configuration"),
    _c(154, "reserved_154", "Reserved"),
)

FIRMWARE = _c(REG_FIRMWARE, "fw_version_os", "Firmware version (12345 = V12.345)")

ALL_REGISTERS: tuple[Register, ...] = (*INTEGER_BLOCK, *CONFIG_BLOCK, *FLOAT_BLOCK, FIRMWARE)
BY_REG: dict[int, Register] = {r.reg: r for r in ALL_REGISTERS}

#: The rows the measurement sweep reads: every keyed row of the float block.
MEASUREMENT_ROWS: tuple[Register, ...] = tuple(r for r in FLOAT_BLOCK if r.key)
#: Integer rows the fast tier may read in place of a float of the same key: total power is
#: one register (3, scaled by 140) instead of a float pair, when the scale is fine enough.
FAST_INTEGER_ROWS: tuple[Register, ...] = (BY_REG[3],)
#: The configuration block is read as one request (129-154).
CONFIG_READ = ReadBlock(CONFIG_BLOCK[0].reg, CONFIG_BLOCK[-1].last_reg - CONFIG_BLOCK[0].reg + 1,
                        CONFIG_BLOCK)

# ---------------------------------------------------------------------------------------------
# Diagnostic alert bitmap (register 146)


ALARM_BITS: tuple[AlarmBit, ...] = (
    AlarmBit(0, "voltage_out_of_range_a", "Voltage out of range A", "voltage", "a"),
    AlarmBit(1, "voltage_out_of_range_b", "Voltage out of range B", "voltage", "b"),
    AlarmBit(2, "voltage_out_of_range_c", "Voltage out of range C", "voltage", "c"),
    AlarmBit(3, "current_out_of_range_a", "Current out of range A", "ct", "a"),
    AlarmBit(4, "current_out_of_range_b", "Current out of range B", "ct", "b"),
    AlarmBit(5, "current_out_of_range_c", "Current out of range C", "ct", "c"),
    AlarmBit(6, "frequency_out_of_range", "Frequency out of range"),
    # A lost phase is what people need to see at once.
    AlarmBit(8, "phase_loss_a", "Phase loss A", "voltage", "a", Visibility.PRIMARY),
    AlarmBit(9, "phase_loss_b", "Phase loss B", "voltage", "b", Visibility.PRIMARY),
    AlarmBit(10, "phase_loss_c", "Phase loss C", "voltage", "c", Visibility.PRIMARY),
    AlarmBit(11, "low_power_factor_a", "Low power factor A", "ct", "a"),
    AlarmBit(12, "low_power_factor_b", "Low power factor B", "ct", "b"),
    AlarmBit(13, "low_power_factor_c", "Low power factor C", "ct", "c"),
    AlarmBit(14, "pulse_overrun", "Pulse output overrun", visibility=Visibility.PULSE_OUTPUT),
    AlarmBit(15, "pulse_weight_too_small", "Pulse weight too small",
             visibility=Visibility.PULSE_OUTPUT),
)

PHASE_LOSS_MASK = 0b111 << 8

# ---------------------------------------------------------------------------------------------
# Settings and commands (register 129)


SETTINGS: tuple[Setting, ...] = (
    Setting("system_type", 130, "System type", "select",
            options=tuple((t.label, t.code) for t in SYSTEM_TYPES.values()),
            icon="mdi:sine-wave", changes_validity=True, numeric_state=True),
    # Home Assistant's device page leaves about 90 px (14 px Roboto) for the name beside a
    # number box at 1400 px: `make test-ha` measures every name there. What the numbers are
    # for shows from the card they are in (Configuration) and the README's list.
    Setting("ct_primary_a", 131, "CT primary", "number", 1, 32000, 1, "A",
            icon="mdi:current-ac", device_class="current"),
    Setting("ct_output", 132, "CT output", "select", options=(("1V", 1), ("0.333V", 3)),
            icon="mdi:current-ac"),
    Setting("pt_ratio", 133, "PT ratio", "number", 0.01, 320.0, 0.01, None, factor=0.01,
            icon="mdi:transmission-tower"),
    Setting("system_voltage_v", 134, "System volts", "number", 82, 32000, 1, "V",
            icon="mdi:flash-triangle", device_class="voltage"),
    Setting("pulse_wh", 144, "Energy per pulse", "select",
            options=(("10 Wh", 10), ("100 Wh", 100), ("1 kWh", 1000), ("10 kWh", 10000)),
            icon="mdi:pulse", numeric_state=True, visibility=Visibility.PULSE_OUTPUT),
    Setting("demand_subintervals", 149, "Sub-intervals", "number", 1, 6, 1, None,
            icon="mdi:chart-timeline"),
    Setting("demand_subinterval_s", 150, "Sub-interval", "number", 0, 32767, 1,
            "s", excluded=((1, 9),), icon="mdi:timer-outline", device_class="duration"),
    Setting("phase_loss_voltage_pct", 142, "Min voltage", "number", 1, 99, 1,
            "%", icon="mdi:flash-alert"),
    Setting("phase_loss_imbalance_pct", 143, "Max imbalance", "number", 1, 99,
            1, "%", icon="mdi:scale-unbalanced"),
    Setting("display_units", 137, "Front-panel units", "select",
            options=(("IEC", 0), ("IEEE", 1)),
            icon="mdi:format-text", visibility=Visibility.SPECIALIST),
)

_ENERGY_KEYS = ("energy_kwh", "energy_a_kwh", "energy_b_kwh", "energy_c_kwh",
                "reactive_energy_kvarh", "apparent_energy_kvah")

COMMANDS: tuple[Command, ...] = (
    Command("reset_energy", "Reset energy", 30078, "mdi:restore", resets=_ENERGY_KEYS,
            guarded=True),
    Command("new_demand_interval", "New demand interval", 21211, "mdi:timer-refresh",
            min_interval_s=10.0),
    Command("reset_max_demand", "Reset maximum demand", 21212, "mdi:restore",
            min_interval_s=10.0, guarded=True),
    Command("reset_pulse_counters", "Reset pulse counter", 16498, "mdi:restore",
            resets=("pulse_count",), visibility=Visibility.PULSE_OUTPUT),
)

SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
COMMANDS_BY_KEY: dict[str, Command] = {c.key: c for c in COMMANDS}

#: Pulse closure times the meter can choose (register 145), slowest first.
PULSE_CLOSURE_MS = (500, 250, 100, 50, 25, 10)
PULSE_WEIGHTS_WH = (10, 100, 1000, 10000)


def pulse_max_power_w(weight_wh: float, closure_ms: float) -> float:
    """The highest power the pulse output can follow (open time >= closure time)."""
    return 1_800_000.0 * weight_wh / closure_ms


def pulse_weight_can_keep_up(weight_wh: float, max_power_w: float) -> bool:
    """Whether some closure time lets ``weight_wh`` follow the theoretical maximum power."""
    return pulse_max_power_w(weight_wh, min(PULSE_CLOSURE_MS)) >= max_power_w


def firmware_label(raw: int) -> str:
    """12345 -> 'V12.345' (the form the meter returns through function 0x2B)."""
    return f"V{raw // 1000}.{raw % 1000:03d}"
