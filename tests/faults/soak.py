"""Long run of the bridge against simulated meters: memory, tasks and error counters over time.

    python -m tests.faults.soak --minutes 30 --meters 10
    python -m tests.faults.soak --minutes 60 --meters 63 --faults 0.05   # `make soak`
    python -m tests.faults.soak --minutes 8 --broker-outage-s 300         # broker gone 5 min

The simulated meters (and, with --faults, a fault-injecting proxy in front of them) run in a
child process; the bridge runs in this process, so its resident memory, traced Python memory
and task count are sampled directly. Prints a table of samples and writes them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bridge.app.service import Service
from bridge.config import parse_config
from bridge.sim.broker import Broker, free_port

ROOT = Path(__file__).resolve().parents[2]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def start_meters(meters: int, faults: float) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    args = [sys.executable, "-m", "bridge", "simulate", "--rtu-over-tcp",
            f"127.0.0.1:{port}", "--units", f"1-{meters}"]
    if faults:
        args = [sys.executable, "-m", "tests.faults.serve", "--port", str(port),
                "--units", f"1-{meters}", "--fault-rate", str(faults)]
    proc = await asyncio.create_subprocess_exec(*args, cwd=str(ROOT),
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)
    return proc, port


async def broker_outage(broker: Broker, service: Service, down_s: float,
                        after_s: float) -> dict[str, Any]:
    """Stop the broker for ``down_s``; how the bridge fared meanwhile and how fast it is back."""
    await asyncio.sleep(after_s)
    rss_before, connects = rss_mb(), service.link.connects
    broker.stop()
    print(f"broker stopped for {down_s:.0f} s", flush=True)
    queued_max, end = 0, time.monotonic() + down_s
    while time.monotonic() < end:
        await asyncio.sleep(1.0)
        queued_max = max(queued_max, service.link.queued)
    rss_down = rss_mb()
    broker.start()
    restarted = time.monotonic()
    while service.link.connects == connects:
        await asyncio.sleep(0.05)
    back_s = time.monotonic() - restarted
    print(f"broker back; bridge reconnected and republished after {back_s:.1f} s", flush=True)
    return {"down_s": down_s, "rss_before_mb": round(rss_before, 1),
            "rss_at_end_of_outage_mb": round(rss_down, 1), "queued_max": queued_max,
            "reconnected_after_s": round(back_s, 2)}


async def soak(minutes: float, meters: int, faults: float, sample_s: float,
               poll_interval: float, outage_s: float = 0.0) -> dict[str, Any]:
    broker = Broker().start()
    sim, port = await start_meters(meters, faults)
    state = Path(tempfile.mkdtemp(prefix="soak-"))
    config = parse_config({
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "buses": [{"name": "soak", "transport": "rtu_over_tcp", "host": "127.0.0.1",
                   "port": port, "timeout": 0.3, "offline_after": 3, "backoff_s": 2,
                   "backoff_max_s": 30,
                   "meters": [{"name": f"m{u}", "unit": u, "poll_interval": poll_interval}
                              for u in range(1, meters + 1)]}],
        "state_dir": str(state), "log_level": "warning"}, env={})
    service = Service(config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    outage = (asyncio.create_task(broker_outage(broker, service, outage_s, 2 * sample_s))
              if outage_s else None)
    tracemalloc.start()
    try:
        end = started + minutes * 60
        while time.monotonic() < end:
            await asyncio.sleep(sample_s)
            gc.collect()
            poller = service.pollers[0]
            rts = list(poller.meters.values())
            samples.append({
                "t_s": round(time.monotonic() - started),
                "rss_mb": round(rss_mb(), 1),
                "traced_kb": round(tracemalloc.get_traced_memory()[0] / 1024),
                "tasks": len(asyncio.all_tasks()),
                "polls": sum(rt.polls for rt in rts),
                "read_errors": sum(rt.errors for rt in rts),
                "online": sum(rt.online for rt in rts),
                "mqtt_published": service.link.published,
                "mqtt_queued": service.link.queued,
            })
            s = samples[-1]
            print(f"{s['t_s']:>6}s rss {s['rss_mb']:>6} MB traced {s['traced_kb']:>6} kB "
                  f"tasks {s['tasks']:>3} polls {s['polls']:>8} errors {s['read_errors']:>6} "
                  f"online {s['online']}/{meters}", flush=True)
        if outage is not None:
            await outage
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        sim.terminate()
        await sim.wait()
        broker.stop()
    result = {"minutes": minutes, "meters": meters, "fault_rate": faults,
              "poll_interval_s": poll_interval, "samples": samples}
    if outage is not None:
        result["broker_outage"] = outage.result()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--meters", type=int, default=10)
    parser.add_argument("--faults", type=float, default=0.0,
                        help="fraction of bad frames injected (0 = none)")
    parser.add_argument("--sample-s", type=float, default=30)
    parser.add_argument("--poll-interval", type=float, default=0.0,
                        help="seconds between full reads of each meter (0 = continuously)")
    parser.add_argument("--broker-outage-s", type=float, default=0.0,
                        help="stop the broker for this long, two samples into the run")
    parser.add_argument("--out", default="bench-results/soak.json")
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.meters, args.faults, args.sample_s,
                              args.poll_interval, args.broker_outage_s))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    first, last = result["samples"][1], result["samples"][-1]
    print(f"rss {first['rss_mb']} -> {last['rss_mb']} MB, traced {first['traced_kb']} -> "
          f"{last['traced_kb']} kB, tasks {first['tasks']} -> {last['tasks']}, "
          f"{last['polls']} polls, {last['read_errors']} read errors")
    if "broker_outage" in result:
        print(f"broker outage: {result['broker_outage']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
