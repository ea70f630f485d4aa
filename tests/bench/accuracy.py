"""Measure how closely the bus emulator keeps to ideal wire times on this machine.

    python -m tests.bench.accuracy [--rounds 20] [--spin-ms 1.0] [--pty]

For each baud rate, BusClient polls two simulated meters through the emulator; the table shows
the emulator's lateness per delivery (how long after its ideal instant a frame reached the meter
or the master) and the utilisation the master achieved (ideal / measured cycle time). The
lateness is the emulator's own error; it lengthens every transaction by about twice the mean.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bridge.modbus.client import BusClient
from bridge.modbus.links import Link, SerialLink, TcpLink
from bridge.sim.server import Simulator
from tests.bench.emulator import BusEmulator, read_sizes

#: (unit, 0-based address, count) read every round.
READS = [(1, 256, 90), (2, 0, 124), (1, 128, 26), (2, 256, 4)]
BAUDS = (9600, 19200, 38400, 115200)


async def measure(baud: int, rounds: int, spin_s: float, pty: bool) -> str:
    sim = Simulator.build([1, 2], 40, frozen=True)
    bus = await BusEmulator.for_simulator(sim, f"{baud} 8N1", spin_s=spin_s)
    link: Link
    if pty:
        link = SerialLink(await bus.serve_pty(), baud)
    else:
        host, port = await bus.serve_tcp()
        link = TcpLink(host, port, rtu=True, baudrate=baud)
    client = BusClient(link, timeout=2.0)
    try:
        await client.connect()
        started = time.monotonic()
        for _ in range(rounds):
            for read in READS:
                await client.read_registers(*read)
        measured = time.monotonic() - started
    finally:
        client.close()
        await bus.stop()
        await sim.stop()
    ideal = bus.ideal_s([read_sizes(count) for *_, count in READS] * rounds)
    t = bus.timing()
    return (f"{baud:>7} {bus.counters.transactions:>6} {measured:9.3f} {ideal:9.3f} "
            f"{ideal / measured:6.3f} {t.mean_ms:8.3f} {t.p50_ms:8.3f} {t.p99_ms:8.3f} "
            f"{t.max_ms:8.3f} {bus.counters.silence_violations:>4}")


async def main(rounds: int, spin_s: float, pty: bool) -> None:
    print(f"front end: {'pty' if pty else 'rtu over tcp'}, spin {spin_s * 1000:.1f} ms")
    print("   baud  reads  measured     ideal  util.  late ms: mean      p50      p99      max"
          "  t3.5")
    for baud in BAUDS:
        print(await measure(baud, rounds, spin_s, pty))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--spin-ms", type=float, default=1.0)
    parser.add_argument("--pty", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.spin_ms / 1000.0, args.pty))
