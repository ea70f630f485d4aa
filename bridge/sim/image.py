"""The simulated meter's register image: its values encoded as the Series 4000 point map lays
them out (pure; the physics and the set-up are in :mod:`bridge.sim.model`)."""

from __future__ import annotations

from typing import Protocol

from bridge.meters.series4000 import points as s4k
from bridge.model import codec
from bridge.model.registers import DataType, Register
from bridge.sim.setup import Setup


class SimulatedMeter(Protocol):
    """What the image needs of :class:`bridge.sim.model.SimulatedMeter`."""

    setup: Setup
    values: dict[str, float | None]
    pulse_count_2: int
    firmware: int

    def config_values(self) -> dict[int, int]: ...


def register_image(meter: SimulatedMeter) -> dict[int, int]:
    """The meter's whole register image, keyed by 1-based register number."""
    image: dict[int, int] = dict.fromkeys(range(1, 129), codec.QNAN16)
    scales = meter.setup.scales()
    extra = {"pulse_count_2": float(meter.pulse_count_2)}
    for row in s4k.INTEGER_BLOCK:
        value = _value_for(meter, row.id, row.key, extra)
        if row.dtype.words == 2 and value is not None:
            # Accumulators wrap at 2**32 counts like the meter's.
            exp = (scales[row.scale_reg] if row.scale_reg else 0)
            counts = round(value / 10.0**exp) % (1 << 32)
            words = codec.encode_raw(row.dtype, counts)
        else:
            words = _encode_int(row, value, scales)
        for i, w in enumerate(words):
            image[row.reg + i] = w
    for row in s4k.FLOAT_BLOCK:
        value = _value_for(meter, row.id, row.key, extra)
        for i, w in enumerate(codec.encode(row, value, scales)):
            image[row.reg + i] = w
    image.update(meter.config_values())
    image[s4k.REG_FIRMWARE] = meter.firmware
    return image


def _value_for(meter: SimulatedMeter, row_id: str, key: str | None,
               extra: dict[str, float]) -> float | None:
    if row_id in ("f_real_energy_dup",):
        return meter.values["energy_kwh"]
    if row_id in ("pulse_count_2", "f_pulse_count_2"):
        return extra["pulse_count_2"]
    if row_id in ("pf_total", "pf_a", "pf_b", "pf_c"):
        # Undocumented fixed scale: the simulator uses 0.001 per count.
        k = {"pf_total": "power_factor", "pf_a": "power_factor_a", "pf_b": "power_factor_b",
             "pf_c": "power_factor_c"}[row_id]
        pf = meter.values.get(k)
        return None if pf is None else round(pf * 1000)
    if row_id == "frequency":
        f = meter.values.get("frequency_hz")
        return None if f is None else round(f * 100)
    if key is None:
        return None
    return meter.values.get(key)


def _encode_int(row: Register, value: float | None, scales: dict[int, int]) -> list[int]:
    if value is None:
        return codec.encode_raw(row.dtype, None)
    if row.scale_reg is None:
        return codec.encode_raw(row.dtype, round(value))
    exponent = scales[row.scale_reg] + row.exponent
    counts = round(value / 10.0**exponent)
    # Clamp like a saturated input: 0x8000 would read as QNAN.
    low = -0x7FFF if row.dtype is DataType.INT16 else 0
    return codec.encode_raw(row.dtype, min(max(counts, low), 0x7FFF))
