"""Where the bridge's CPU goes in the bench's CPU case: the bridge under cProfile.

    python -m tests.bench.cpu_profile [--seconds 20] [--top 15] [--out bench-results/x.prof]

The CPU case of ``make bench`` (10 meters at 115200 baud, polled continuously, Mosquitto as the
broker) with ``python -m cProfile -m bridge run``; prints the functions with the most own time
and the most cumulative time per 1000 polls. cProfile slows Python code down by a factor that
differs between functions: the shares, not the absolute figures, are what it tells.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

from bridge.sim.broker import Broker, free_port
from bridge.sim.server import Simulator
from tests.bench.emulator import BusEmulator
from tests.bench.harness import ROOT, bus_config, mqtt_counter, wait_answered
from tests.bench.run import meters_cfg

BAUD, METERS = 115200, 10


async def profile(seconds: float, out: Path, mqtt: bool = True) -> int:
    """Run the CPU case for ``seconds`` under cProfile (``mqtt`` False: the broker's port is
    closed, so the bridge publishes nothing); returns the polls answered."""
    broker = Broker().start()
    sim = Simulator.build(range(1, METERS + 1), 40)
    bus = await BusEmulator.for_simulator(sim, f"{BAUD} 8N1", turnaround_s=0.0)
    host, port = await bus.serve_tcp()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench-config.yaml"
            import yaml

            path.write_text(yaml.safe_dump(bus_config(host, port, BAUD, meters_cfg(METERS),
                                                      broker.port if mqtt else free_port(),
                                                      Path(tmp) / "state")))
            async with mqtt_counter(broker.port):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "cProfile", "-o", str(out), "-m", "bridge", "run",
                    "--config", str(path), cwd=str(ROOT),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                await wait_answered(bus, 4 * METERS, 120)
                start = bus.counters.answered
                t0 = time.monotonic()
                await asyncio.sleep(seconds)
                polls = bus.counters.answered - start
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 30)
                print(f"{polls} polls in {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        await bus.stop()
        await sim.stop()
        broker.stop()
    return polls


def table(out: Path, polls: int, top: int, sort: str) -> str:
    """The ``top`` entries by ``sort`` ("tottime" or "cumulative") as a Markdown table, in ms
    per 1000 polls."""
    stats = pstats.Stats(str(out), stream=io.StringIO())
    stats.sort_stats(sort)
    rows = ["| function | calls/poll | own ms/1000 polls | cumulative ms/1000 polls |",
            "|---|---:|---:|---:|"]
    entries = stats.stats  # type: ignore[attr-defined]
    for func in stats.fcn_list[:top]:  # type: ignore[attr-defined]
        _cc, nc, tt, ct, _callers = entries[func]
        where = f"{Path(func[0]).name}:{func[1]}({func[2]})"
        rows.append(f"| `{where}` | {nc / polls:.2f} | {1e6 * tt / polls:.1f} | "
                    f"{1e6 * ct / polls:.1f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("bench-results/cpu.prof"))
    parser.add_argument("--no-mqtt", action="store_true", help="the broker's port closed")
    args = parser.parse_args()
    polls = asyncio.run(profile(args.seconds, args.out.resolve(), not args.no_mqtt))
    for sort in ("tottime", "cumulative"):
        print(f"\nby {sort}:\n{table(args.out, polls, args.top, sort)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
