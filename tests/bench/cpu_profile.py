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


#: Entries that are not the polling: the idle wait for the line, and the start-up's imports.
_NOT_POLLING = ("method 'poll' of 'select.epoll'", "builtins.compile", "builtins.exec",
                "marshal.loads", "<frozen", "<module>", "__build_class__", "_parser.py",
                "_compiler.py", "set_default_verify_paths")


def _where(func: tuple[str, int, str]) -> str:
    return f"{Path(func[0]).name}:{func[1]}({func[2]})"


def table(out: Path, polls: int, top: int, sort: str) -> str:
    """The ``top`` entries by ``sort`` ("tottime" or "cumulative") as a Markdown table, in ms
    per 1000 polls, without the idle wait and the start-up."""
    stats = pstats.Stats(str(out), stream=io.StringIO())
    stats.sort_stats(sort)
    rows = ["| function | calls/poll | own ms/1000 polls | cumulative ms/1000 polls |",
            "|---|---:|---:|---:|"]
    entries = stats.stats  # type: ignore[attr-defined]
    shown = 0
    for func in stats.fcn_list:  # type: ignore[attr-defined]
        where = _where(func)
        if any(skip in where or skip in func[0] for skip in _NOT_POLLING) \
                or (sort == "cumulative" and (Path(func[0]).name in _OUTER
                                              or func[2] in ("main", "cmd_run", "supervise"))):
            continue
        _cc, nc, tt, ct, _callers = entries[func]
        rows.append(f"| `{where}` | {nc / polls:.2f} | {1e6 * tt / polls:.1f} | "
                    f"{1e6 * ct / polls:.1f} |")
        shown += 1
        if shown == top:
            break
    return "\n".join(rows)


#: The frames every poll runs inside (the event loop, the process's start).
_OUTER = ("runners.py", "base_events.py", "events.py", "selectors.py")


def by_package(out: Path, polls: int) -> str:
    """Own time per 1000 polls by where the code lives, without the idle wait and start-up."""
    stats = pstats.Stats(str(out), stream=io.StringIO())
    groups: dict[str, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where, path = _where(func), func[0]
        if any(skip in where or skip in path for skip in _NOT_POLLING):
            continue
        if "/bridge/" in path:
            group = "bridge/" + path.split("/bridge/")[1].split("/")[0]
        elif "site-packages/" in path:
            group = path.split("site-packages/")[1].split("/")[0]
        elif path == "~":
            group = "C functions (" + ("socket send" if "send" in func[2] else "other") + ")"
        else:
            group = "standard library (" + Path(path).parent.name + ")"
        groups[group] = groups.get(group, 0.0) + tt
    rows = ["| where | own ms/1000 polls |", "|---|---:|"]
    rows += [f"| {g} | {1e6 * t / polls:.1f} |"
             for g, t in sorted(groups.items(), key=lambda kv: -kv[1])[:12]]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("bench-results/cpu.prof"))
    parser.add_argument("--no-mqtt", action="store_true", help="the broker's port closed")
    args = parser.parse_args()
    polls = asyncio.run(profile(args.seconds, args.out.resolve(), not args.no_mqtt))
    print(f"\nby package:\n{by_package(args.out, polls)}", flush=True)
    for sort in ("tottime", "cumulative"):
        print(f"\nby {sort}:\n{table(args.out, polls, args.top, sort)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
