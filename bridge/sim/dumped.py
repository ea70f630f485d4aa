"""A meter served from a register dump (``simulate --from-dump``): exactly the image, static.

Reads get the dumped words, or the exception the meter gave for that range, or 03 when longer
than the meter took; 0x2B and 0x11 get the dumped answers; writes are refused (01), since a
dump cannot say how the meter would have changed. The request handling of every simulated meter
goes through the three functions at the end, so the server needs no knowledge of dumps.
"""

from __future__ import annotations

from bridge.meters.series4000 import points as s4k
from bridge.model.dump import RegisterDump, SlaveIdAnswer
from bridge.model.exception_codes import ILLEGAL_FUNCTION
from bridge.sim import model as sim_model
from bridge.sim.model import SimulatedMeter
from bridge.sim.quirks import identification_objects, read_refusal


class DumpedMeter(SimulatedMeter):
    def __init__(self, dump: RegisterDump, unit: int | None = None) -> None:
        system_type = dump.words.get(s4k.REG_SYSTEM_TYPE)
        super().__init__(unit or dump.unit,
                         system_type if system_type in s4k.SYSTEM_TYPES else 40, frozen=True,
                         firmware=dump.words.get(s4k.REG_FIRMWARE, 0))
        self.dump = dump

    def registers(self) -> dict[int, int]:
        return dict(self.dump.words)

    def tick(self, now: float | None = None) -> None:
        """Nothing moves in a dump."""

    def write(self, reg: int, values: list[int]) -> int | None:
        return ILLEGAL_FUNCTION


def refusal_of(meter: SimulatedMeter, first_reg: int, count: int) -> int | None:
    """The exception a read gets from ``meter``, or None."""
    if isinstance(meter, DumpedMeter):
        return meter.dump.refusal(first_reg, count)
    return read_refusal(meter.quirks, first_reg, count)


def identification_of(meter: SimulatedMeter) -> dict[int, str] | int:
    """The 0x2B objects of ``meter``, or the exception it answers."""
    if isinstance(meter, DumpedMeter):
        return meter.dump.identification
    objects = identification_objects(meter.quirks, meter.firmware)
    return ILLEGAL_FUNCTION if objects is None else objects


def slave_id_of(meter: SimulatedMeter) -> SlaveIdAnswer | int:
    """The answer of ``meter`` to function 0x11, or the exception it answers."""
    if isinstance(meter, DumpedMeter):
        return meter.dump.slave_id
    return SlaveIdAnswer(sim_model.SLAVE_ID, True, sim_model.SLAVE_ID_TEXT)
