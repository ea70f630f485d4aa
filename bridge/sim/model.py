"""A simulated Series 4000-K: wiring, load, accumulators and set-up, as the meter behaves.

Physically consistent: per-phase voltage, current and power factor give P, Q and S; line-to-line
voltages come from the phasors of the wiring; averages use the active phases only; energy grows
with power over time; the pulse counter follows the pulse weight; the load wanders a little every
second. Quantities that are invalid for the system type read QNAN and follow register 130 when it
is written. Set-up writes are validated like the meter does: a value out of range is refused with
exception 03, a pulse weight that cannot keep up with the theoretical maximum power is silently
ignored (acknowledged, old value kept), and the demand commands are ignored when repeated within
10 s. The set-up rules are in ``sim_setup``; ``simulator`` only serves the registers.
"""

from __future__ import annotations

import cmath
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.meters.series4000 import points as s4k
from bridge.model.exception_codes import ILLEGAL_ADDRESS, ILLEGAL_VALUE
from bridge.model.registers import Access
from bridge.sim.image import register_image
from bridge.sim.quirks import Quirks
from bridge.sim.setup import (
    SUPPLY_V_LN,
    Setup,
    apply_write,
    nominal_system_voltage,
)

_PHASES = ("a", "b", "c")
#: Phase angles of the line-to-neutral voltages for each wiring (degrees).
_ANGLES = {10: (0.0,), 11: (0.0, 180.0), 12: (0.0, 180.0), 31: (0.0, -120.0, 120.0),
           40: (0.0, -120.0, 120.0)}
@dataclass
class Load:
    """The simulated load per phase; it wanders slowly unless frozen."""

    current_a: list[float] = field(default_factory=lambda: [21.0, 14.5, 9.2])
    pf: list[float] = field(default_factory=lambda: [0.93, 0.87, 0.96])
    lost: set[str] = field(default_factory=set)
    frequency_hz: float = 60.0
    #: Per-phase factor on the voltage the meter sees (a wiring fault; 0 = no voltage).
    voltage_scale: dict[str, float] = field(default_factory=dict)


class SimulatedMeter:
    """One Series 4000-K on the bus."""

    def __init__(self, unit: int, system_type: int = 40, *, seed: int | None = None,
                 frozen: bool = False, per_phase_without_neutral: bool = False,
                 firmware: int = 1051, clock: Callable[[], float] | None = None,
                 energy_kwh: float = 1234.5, ct_output_fixed: bool = False) -> None:
        import time

        self.unit = unit
        self.clock = clock or time.monotonic
        self.setup = Setup(system_type=system_type,
                           system_voltage_v=nominal_system_voltage(system_type))
        self.load = Load()
        self.rng = random.Random(seed if seed is not None else unit)
        self.frozen = frozen
        self.per_phase_without_neutral = per_phase_without_neutral
        #: Like a rope-CT 4000-R, whose CT output mode cannot be changed: writes get 03.
        self.ct_output_fixed = ct_output_fixed
        self.firmware = firmware
        self.quirks = Quirks()  # how it answers requests where real meters differ
        self._reset_due: float | None = None  # a 30078 waiting for the calculation cycle
        self.power_ups = 1
        self.energy_resets = 0
        self.alive = True
        # Accumulators (kWh, kVAh, kvarh) and per-phase real energy.
        self.energy_kwh = energy_kwh
        self.energy_phase_kwh = self._split_by_load(energy_kwh)
        self.apparent_kvah = energy_kwh * 1.08
        self.reactive_kvarh = energy_kwh * 0.41
        self.pulse_count = 0
        self.pulse_count_2 = 0
        self._pulse_residual_wh = 0.0
        self._pulse_residual_varh = 0.0
        # Demand: completed sub-interval averages (W, var, VA) and the running one.
        self._sub_done: deque[tuple[float, float, float]] = deque(maxlen=6)
        self._sub_acc = [0.0, 0.0, 0.0]
        self._sub_time = 0.0
        self.max_demand = (0.0, 0.0, 0.0)
        self._last_demand_cmd: float | None = None
        self.ignored_writes = 0
        self.writes: list[tuple[int, int]] = []
        self.pulse_listeners: list[Callable[[int], None]] = []
        self._t = self.clock()
        self._phase = self.rng.uniform(0, 2 * math.pi)
        self.values: dict[str, float | None] = {}
        self._recompute()

    # -- physics --------------------------------------------------------------------------

    def _split_by_load(self, total_kwh: float) -> list[float]:
        """The phases' share of a total, by their load: the phases with a CT add up to the
        total (on a single-phase meter phase A is the total)."""
        weights = [self.load.current_a[i] if p in self.system.ct_phases else 0.0
                   for i, p in enumerate(_PHASES)]
        return [total_kwh * w / sum(weights) for w in weights]

    @property
    def system(self) -> s4k.SystemType:
        return s4k.SYSTEM_TYPES[self.setup.system_type]

    def _phase_vectors(self) -> dict[str, complex]:
        """Line-to-neutral voltage phasors of the connected phases."""
        st = self.setup.system_type
        v_ln = SUPPLY_V_LN[st]
        out = {}
        for phase, angle in zip(_PHASES, _ANGLES[st], strict=False):
            scale = 0.0 if phase in self.load.lost else self.load.voltage_scale.get(phase, 1.0)
            mag = v_ln * scale * (1 + self._wander(phase, 0.004))
            out[phase] = cmath.rect(mag, math.radians(angle))
        return out

    def _wander(self, phase: str, amplitude: float) -> float:
        if self.frozen:
            return 0.0
        k = _PHASES.index(phase) if phase in _PHASES else 3
        t = self._t
        return amplitude * (math.sin(t / 37.0 + self._phase + k) + 0.3 * math.sin(t / 5.3 + k))

    def _recompute(self) -> None:
        st = self.setup.system_type
        system = self.system
        vec = self._phase_vectors()
        v: dict[str, float | None] = {}
        # Line-to-neutral voltages exist only with a neutral; line-to-line from the phasors.
        for p in ("a", "b", "c"):
            v[f"voltage_{p}n_v"] = abs(vec[p]) if system.neutral and p in vec else None
        pairs = {"ab": ("a", "b"), "bc": ("b", "c"), "ca": ("c", "a")}
        for name, (x, y) in pairs.items():
            ok = x in vec and y in vec and st != 10
            v[f"voltage_{name}_v"] = abs(vec[x] - vec[y]) if ok else None
        if st == 11:  # one L-L input between A and B, no neutral
            v["voltage_ab_v"] = abs(vec["a"] - vec["b"])
        ln = [x for x in (v["voltage_an_v"], v["voltage_bn_v"], v["voltage_cn_v"]) if x is not None]
        ll = [x for x in (v["voltage_ab_v"], v["voltage_bc_v"], v["voltage_ca_v"]) if x is not None]
        v["voltage_ln_v"] = sum(ln) / len(ln) if ln else None
        v["voltage_ll_v"] = sum(ll) / len(ll) if ll else None
        p_tot = q_tot = s_tot = 0.0
        per_phase_valid = system.neutral or self.per_phase_without_neutral
        currents = []
        for idx, p in enumerate(_PHASES):
            if p not in system.ct_phases:
                for key in (f"current_{p}_a", f"power_{p}_w", f"reactive_power_{p}_var",
                            f"apparent_power_{p}_va", f"power_factor_{p}"):
                    v[key] = None
                continue
            current = 0.0 if p in self.load.lost else self.load.current_a[idx] * (
                1 + self._wander(p, 0.05))
            pf = self.load.pf[idx] * (1 + self._wander(p, 0.005))
            pf = min(max(pf, 0.0), 1.0)
            # The voltage that drives the load on this CT: L-N with a neutral, L-L for type 11,
            # the virtual neutral (L-L / sqrt 3) of a delta.
            drive = abs(vec["a"] - vec["b"]) if st == 11 else abs(vec[p])
            s_va = drive * current
            p_w = s_va * pf
            q_var = math.sqrt(max(s_va * s_va - p_w * p_w, 0.0))
            p_tot, q_tot, s_tot = p_tot + p_w, q_tot + q_var, s_tot + s_va
            currents.append(current)
            v[f"current_{p}_a"] = current
            v[f"power_{p}_w"] = p_w if per_phase_valid else None
            v[f"reactive_power_{p}_var"] = q_var if per_phase_valid else None
            v[f"apparent_power_{p}_va"] = s_va if per_phase_valid else None
            v[f"power_factor_{p}"] = (p_w / s_va if s_va else 1.0) if per_phase_valid else None
        v["current_a"] = sum(currents) / len(currents)
        v["power_w"], v["reactive_power_var"], v["apparent_power_va"] = p_tot, q_tot, s_tot
        v["power_factor"] = p_tot / s_tot if s_tot else 1.0
        v["frequency_hz"] = (self.load.frequency_hz + (0 if self.frozen else 0.02 * math.sin(
            self._t / 11.0))) if "a" not in self.load.lost else None
        v["energy_kwh"] = self.energy_kwh
        v["apparent_energy_kvah"] = self.apparent_kvah
        v["reactive_energy_kvarh"] = self.reactive_kvarh
        for idx, p in enumerate(_PHASES):
            ok = p in system.ct_phases and per_phase_valid
            v[f"energy_{p}_kwh"] = self.energy_phase_kwh[idx] if ok else None
        present = self.present_demand()
        v["demand_power_w"], v["demand_reactive_power_var"], v["demand_apparent_power_va"] = present
        # The maximum includes the interval under way: never below the present demand.
        (v["max_demand_power_w"], v["max_demand_reactive_power_var"],
         v["max_demand_apparent_power_va"]) = (
            max(m, p) for m, p in zip(self.max_demand, present, strict=True))
        v["pulse_count"] = float(self.pulse_count)
        self.values = v

    def present_demand(self) -> tuple[float, float, float]:
        n = self.setup.demand_subintervals
        done = list(self._sub_done)[-n:]
        if not done:
            if self._sub_time <= 0:
                return (0.0, 0.0, 0.0)
            return tuple(x / self._sub_time for x in self._sub_acc)  # type: ignore[return-value]
        return tuple(sum(d[i] for d in done) / len(done) for i in range(3))  # type: ignore[return-value]

    def _close_subinterval(self) -> None:
        if self._sub_time > 0:
            self._sub_done.append(tuple(x / self._sub_time for x in self._sub_acc))  # type: ignore[arg-type]
        self._sub_acc = [0.0, 0.0, 0.0]
        self._sub_time = 0.0
        present = self.present_demand()
        self.max_demand = tuple(max(a, b) for a, b in zip(self.max_demand, present, strict=True))  # type: ignore[assignment]

    def tick(self, now: float | None = None) -> None:
        """Advance time: integrate energy and demand, emit pulses, move the load."""
        now = self.clock() if now is None else now
        if self._reset_due is not None and now >= self._reset_due:
            self._reset_due = None
            self._reset_energy()
        dt = now - self._t
        if dt <= 0:
            return
        self._t = now
        p_w = self.values.get("power_w") or 0.0
        q = self.values.get("reactive_power_var") or 0.0
        s = self.values.get("apparent_power_va") or 0.0
        self._demand(dt, p_w, q, s)
        if self.frozen:  # values stay put: accumulators do not grow
            self._recompute()
            return
        hours = dt / 3600.0
        self.energy_kwh += p_w * hours / 1000.0
        self.apparent_kvah += s * hours / 1000.0
        self.reactive_kvarh += q * hours / 1000.0
        for idx, p in enumerate(_PHASES):
            self.energy_phase_kwh[idx] += (self.values.get(f"power_{p}_w") or 0.0) * hours / 1000
        self._pulse_residual_wh += p_w * hours
        self._pulse_residual_varh += q * hours
        weight = self.setup.pulse_wh
        new_pulses = int(self._pulse_residual_wh // weight)
        if new_pulses:
            self._pulse_residual_wh -= new_pulses * weight
            self.pulse_count = (self.pulse_count + new_pulses) & 0xFFFFFFFF
            for listener in self.pulse_listeners:
                listener(new_pulses)
        extra = int(self._pulse_residual_varh // weight)
        if extra:
            self._pulse_residual_varh -= extra * weight
            self.pulse_count_2 = (self.pulse_count_2 + extra) & 0xFFFFFFFF
        self._recompute()

    def _demand(self, dt: float, p_w: float, q: float, s: float) -> None:
        """Demand sub-intervals (length 0 = closed by the master with command 21211)."""
        for i, x in enumerate((p_w, q, s)):
            self._sub_acc[i] += x * dt
        self._sub_time += dt
        length = self.setup.demand_subinterval_s
        if length and self._sub_time >= length:
            self._close_subinterval()

    # -- alarms ----------------------------------------------------------------------------

    def alarm_bitmap(self) -> int:
        bits = 0
        system = self.system
        st = self.setup
        nominal_ln = st.system_voltage_v if st.system_type == 10 else (
            st.system_voltage_v / (2 if st.system_type in (11, 12) else math.sqrt(3)))
        limit = nominal_ln * (1 - st.phase_loss_v_pct / 100.0)
        vec = self._phase_vectors()
        for idx, p in enumerate(_PHASES):
            if p in system.voltage_phases and abs(vec[p]) < limit:
                bits |= 1 << (8 + idx)
            if p in system.ct_phases:
                i = self.values.get(f"current_{p}_a") or 0.0
                if i > st.ct_primary_a * 1.2:
                    bits |= 1 << (3 + idx)
                pf = self.load.pf[idx]
                if pf < 0.5 and i > 0:
                    bits |= 1 << (11 + idx)
        if "a" in self.load.lost:
            bits |= 1 << 6
        closure = st.closure_ms()
        if closure is None:
            bits |= 1 << 15
        elif (self.values.get("power_w") or 0.0) > s4k.pulse_max_power_w(st.pulse_wh, closure):
            bits |= 1 << 14
        return bits

    # -- register image -------------------------------------------------------------------

    def config_values(self) -> dict[int, int]:
        st = self.setup
        scales = st.scales()
        max_power_raw = round(st.max_power_w() / 1000.0 / 10.0 ** scales[s4k.SCALE_W])
        closure = st.closure_ms()
        return {
            129: 0, 130: st.system_type, 131: st.ct_primary_a, 132: st.ct_output,
            133: st.pt_ratio_x100, 134: st.system_voltage_v, 135: min(max_power_raw, 32767),
            136: 0, 137: st.display_units,
            138: scales[138] & 0xFFFF, 139: scales[139] & 0xFFFF,
            140: scales[140] & 0xFFFF, 141: scales[141] & 0xFFFF,
            142: st.phase_loss_v_pct, 143: st.phase_loss_imbalance_pct, 144: st.pulse_wh,
            145: closure if closure is not None else 500, 146: self.alarm_bitmap(),
            147: self.energy_resets & 0x7FFF, 148: 0, 149: st.demand_subintervals,
            150: st.demand_subinterval_s, 151: 0, 152: self.power_ups & 0x7FFF, 153: 0, 154: 0,
        }

    def registers(self) -> dict[int, int]:
        """The meter's whole register image, keyed by 1-based register number."""
        return register_image(self)

    # -- writes ---------------------------------------------------------------------------

    def write(self, reg: int, values: list[int]) -> int | None:
        """Apply a write of consecutive registers; return a Modbus exception code or None.

        All registers are checked before any is changed, like one atomic set-up change.
        """
        regs = list(range(reg, reg + len(values)))
        for r in regs:
            row = s4k.BY_REG.get(r)
            if row is None or row.access is Access.R or r not in s4k.BY_REG:
                return ILLEGAL_ADDRESS
            if row.reg < 129 or row.reg > 154:
                return ILLEGAL_ADDRESS
        if self.ct_output_fixed and 132 in regs:
            return ILLEGAL_VALUE
        trial = Setup(**vars(self.setup))
        commands = []
        for r, value in zip(regs, values, strict=True):
            if r == s4k.REG_COMMAND:
                if value not in {c.value for c in s4k.COMMANDS}:
                    return ILLEGAL_VALUE
                commands.append(value)
                continue
            error = apply_write(trial, r, value)
            if error is not None:
                return error
        for r, value in zip(regs, values, strict=True):
            self.writes.append((r, value))
        # A pulse weight that cannot keep up with the maximum power is acknowledged but not taken.
        if trial.closure_ms() is None and trial.pulse_wh != self.setup.pulse_wh:
            self.ignored_writes += 1
            trial.pulse_wh = self.setup.pulse_wh
        self.setup = trial
        for value in commands:
            self._command(value)
        self._recompute()
        return None

    def _command(self, value: int) -> None:
        now = self.clock()
        if value == 30078 and self.quirks.reset_delay_s:
            self._reset_due = now + self.quirks.reset_delay_s  # at the next calculation cycle
        elif value == 30078:
            self._reset_energy()
        elif value == 16498:
            self._reset_pulses()
        elif value in (21211, 21212):
            if self._last_demand_cmd is not None and now - self._last_demand_cmd < 10.0:
                self.ignored_writes += 1
                return
            self._last_demand_cmd = now
            if value == 21211:
                self._close_subinterval()
            else:
                self.max_demand = self.present_demand()

    def _reset_energy(self) -> None:
        self.energy_kwh = self.apparent_kvah = self.reactive_kvarh = 0.0
        self.energy_phase_kwh = [0.0, 0.0, 0.0]
        self.energy_resets += 1
        if self.quirks.reset_clears_pulses:
            self._reset_pulses()
        self._recompute()

    def _reset_pulses(self) -> None:
        self.pulse_count = self.pulse_count_2 = 0
        self._pulse_residual_wh = self._pulse_residual_varh = 0.0

    # -- faults, for tests and the demo -----------------------------------------------------

    def lose_phase(self, phase: str, lost: bool = True) -> None:
        if lost:
            self.load.lost.add(phase)
        else:
            self.load.lost.discard(phase)
        self._recompute()

    def rewired(self) -> None:
        """Recompute the readings after a change of the wiring (``sim.faults``)."""
        self._recompute()

    def state(self) -> dict[str, float]:
        """The valid quantities as the bridge should publish them (the simulator's truth)."""
        return {k: v for k, v in self.values.items() if v is not None}


SLAVE_ID = 0xF7
SLAVE_ID_TEXT = "Leviton Series 4000 Power Meter Full Data Set"
