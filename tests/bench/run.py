"""``make bench`` / ``make bench-quick``: the bridge itself against a line-rate RS-485 bus.

    python -m tests.bench.run [--quick] [--repeats 3] [--out bench-results/latest.json]

Every figure is a ratio, or comes with its reference measured in the same run, because the
machine is shared and noisy; repeated runs are summarised by their median.

- utilisation: ideal wire time / measured time, the bridge polling continuously
  (``poll_interval: 0``), per baud rate and number of meters; t3.5 violations must be 0;
- the same with a 10 ms meter turnaround, and with one dead meter among ten;
- tiered polling (``tests/bench/tiered.py``): 40 meters at 19200 baud, power every 0.9 s and
  everything every 29 s, and 63 meters, power every 1.0 s and everything every 30 s: each
  meter's worst power-read and full-read gap on the emulator's timeline, against the issue's
  targets and the refresh the bus budget says is achievable;
- CPU seconds per 1000 meter polls (decode, validity, publish) against a bare pymodbus loop,
  and against the floor (``tests/bench/floor.py``: the work every poll needs, done plainly);
- resident memory with 63 meters, and its growth over the run;
- MQTT messages and bytes per meter poll, without and with a deadband;
- the status page's cost: utilisation and fast-tier freshness with a web client polling the API
  and holding the event stream open, against a window without it in the same run;
- the Modbus server: two clients reading a float block 100 times a second, against the same
  run without them (bus requests added, the bridge's poll rate and fast tier).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bridge.sim.broker import Broker, free_port
from bridge.sim.server import Simulator
from tests.bench import share, tiered, web_load
from tests.bench.emulator import BusEmulator
from tests.bench.harness import (
    ROOT,
    bridge_process,
    bus_config,
    counters_delta,
    cpu_s,
    ideal_s,
    mqtt_counter,
    rss_mb,
    wait_answered,
)
from tests.bench.limits import limited_reads

Result = dict[str, Any]


def meters_cfg(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": f"m{u}", "unit": u, "poll_interval": 0, **extra} for u in range(1, n + 1)]


async def utilisation(broker: Broker | None, baud: int, meters: int, window_s: float,
                      turnaround_s: float = 0.0, dead: frozenset[int] = frozenset(),
                      timeout: float = 1.0) -> Result:
    """``broker`` None: the bridge points at a port nobody listens on, so it publishes
    nothing (the CPU cost of MQTT, by difference)."""
    sim = Simulator.build(range(1, meters + 1), 40)
    bus = await BusEmulator.for_simulator(sim, f"{baud} 8N1", turnaround_s=turnaround_s,
                                          dead=set(dead))
    host, port = await bus.serve_tcp()
    live = meters - len(dead)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            broker_port = broker.port if broker else free_port()
            config = bus_config(host, port, baud, meters_cfg(meters), broker_port,
                                Path(tmp) / "state", timeout=timeout)
            async with mqtt_counter(broker.port if broker else None) as mqtt, \
                    bridge_process(config, Path(tmp)) as pid:
                # Warm-up: every live meter through its first reads (set-up, identity, full).
                await wait_answered(bus, 4 * live, 120)
                c0, t0, cpu0, m0, rss0 = (bus.counters.__class__(**vars(bus.counters)),
                                          time.monotonic(), cpu_s(pid), mqtt.snapshot(),
                                          rss_mb(pid))
                await asyncio.sleep(window_s)
                d = counters_delta(c0, bus.counters)
                elapsed = time.monotonic() - t0
                cpu, rss1 = cpu_s(pid) - cpu0, rss_mb(pid)
                msgs, nbytes = mqtt.messages - m0.messages, mqtt.bytes - m0.bytes
    finally:
        await bus.stop()
        await sim.stop()
    return {
        "baud": baud, "meters": meters, "dead": len(dead), "turnaround_ms": turnaround_s * 1e3,
        "window_s": round(elapsed, 2), "utilisation": round(ideal_s(bus, d) / elapsed, 4),
        "silence_violations": d.silence_violations, "collisions": d.collisions,
        "unstamped_reads": d.unstamped,  # requests stamped when read: the kernel's stamp missing
        "answered": d.answered, "unanswered": d.unanswered,
        "polls_per_s": round(d.answered / elapsed, 2),
        "sweep_s": round(elapsed / (d.answered / live), 3) if d.answered else None,
        "cpu_s_per_1000_polls": round(1000 * cpu / d.answered, 3) if d.answered else None,
        "rss_mb": round(rss0, 1), "rss_growth_mb": round(rss1 - rss0, 2),
        "mqtt_messages_per_poll": round(msgs / d.answered, 3) if d.answered else None,
        "mqtt_bytes_per_poll": round(nbytes / d.answered) if d.answered else None,
        "emulator_lateness_ms": round(bus.timing().mean_ms, 3),
    }


async def bare_cpu(baud: int, meters: int, window_s: float) -> Result:
    """CPU per 1000 polls of a bare pymodbus loop on the same emulated line."""
    return await loop_cpu("tests.bench.bare", baud, meters, window_s)


async def floor_cpu(broker: Broker | None, baud: int, meters: int, window_s: float) -> Result:
    """CPU per 1000 polls of the least a bridge must do (tests/bench/floor.py); ``broker``
    None: the states are serialised but not published."""
    publish = ("--broker", str(broker.port)) if broker else ()
    return await loop_cpu("tests.bench.floor", baud, meters, window_s,
                          ("--baud", str(baud), *publish))


async def loop_cpu(module: str, baud: int, meters: int, window_s: float,
                   args: tuple[str, ...] = ()) -> Result:
    """CPU per 1000 polls of a reference loop (a module run with ``--port`` and ``--units``)
    on an emulated line of its own."""
    sim = Simulator.build(range(1, meters + 1), 40)
    bus = await BusEmulator.for_simulator(sim, f"{baud} 8N1", turnaround_s=0.0)
    _, port = await bus.serve_tcp()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, "--port", str(port), "--units", str(meters), *args,
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE)
    try:
        await wait_answered(bus, 2 * meters, 60)
        c0, cpu0, t0 = bus.counters.answered, cpu_s(proc.pid), time.monotonic()
        await asyncio.sleep(window_s)
        polls, cpu = bus.counters.answered - c0, cpu_s(proc.pid) - cpu0
        elapsed = time.monotonic() - t0
    finally:
        proc.terminate()
        await proc.wait()
        await bus.stop()
        await sim.stop()
    return {"polls": polls, "polls_per_s": round(polls / elapsed, 2),
            "cpu_s_per_1000_polls": round(1000 * cpu / polls, 3)}


def max_gap(messages: list[tuple[float, bytes]], key: str, start: float, end: float) -> float:
    """The longest time a subscriber held the same value of ``key`` (its age before the next
    reading), over the window; the edges of the window count as readings."""
    times, last = [start], None
    for at, payload in messages:
        value = json.loads(payload).get(key)
        if value != last:
            times.append(at)
            last = value
    times.append(end)
    return max(b - a for a, b in itertools.pairwise(times))


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 3),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
            "max": round(ordered[-1], 3)}


async def repeat(n: int, make: Callable[[], Awaitable[Result]]) -> Result:
    """Median of ``n`` runs, key by key (lists of the runs kept for the record)."""
    runs = [await make() for _ in range(n)]
    if n == 1:
        return runs[0]
    out: Result = {}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in runs)
        else:
            out[key] = value
    out["runs"] = runs
    return out


async def main(quick: bool, repeats: int) -> Result:
    window = 2.0 if quick else 20.0
    results: Result = {"quick": quick, "repeats": repeats, "started": time.strftime("%F %T")}
    with Broker() as broker:
        grid = [(19200, 10)] if quick else [
            (b, m) for b in (9600, 19200, 38400) for m in (1, 10, 63)]
        results["utilisation"] = []
        for baud, meters in grid:
            r = await repeat(repeats, lambda b=baud, m=meters: utilisation(broker, b, m, window))
            results["utilisation"].append(r)
            print(f"utilisation {baud:>6} baud {meters:>2} meters: {r['utilisation']:.3f} "
                  f"(t3.5 violations {r['silence_violations']})", flush=True)
        results["turnaround_10ms"] = await repeat(repeats, lambda: utilisation(
            broker, 19200, 10, window, turnaround_s=0.010))
        alive = await repeat(repeats, lambda: utilisation(broker, 19200, 10, window * 2,
                                                          timeout=0.5))
        dead = await repeat(repeats, lambda: utilisation(broker, 19200, 10, window * 2,
                                                         dead=frozenset({5}), timeout=0.5))
        results["dead_meter"] = {
            "alive": alive, "one_dead": dead,
            "sweep_cost_s": round((dead["sweep_s"] or 0) - (alive["sweep_s"] or 0), 3),
            "live_rate_ratio": round(dead["polls_per_s"] / 9 / (alive["polls_per_s"] / 10), 3),
        }
        print(f"dead meter: sweep {alive['sweep_s']} -> {dead['sweep_s']} s", flush=True)
        from tests.bench.cpu import cpu_case  # it builds on this module's cases

        results["cpu"] = await cpu_case(broker, window, repeats)
        print(f"cpu: bridge {results['cpu']['ratio']}x a bare pymodbus loop", flush=True)
        results["mqtt"] = {
            "no_deadband": await repeat(repeats, lambda: mqtt_per_poll(broker, window, {})),
            "deadband": await repeat(repeats, lambda: mqtt_per_poll(broker, window, DEADBAND)),
        }
        if quick:  # the same keys from a small bus, to check the harness in under a minute
            results["tiered"] = await tiered.tiered(broker, 6.0, meters=10, full_s=4.0)
            results["tiered_40"] = results["tiered_sub"] = results["tiered"]
        else:
            results["tiered"] = await tiered.tiered(broker, 90.0, meters=63, fast_s=1.0,
                                                    full_s=30.0)
            results["tiered_40"] = await tiered.tiered(broker, 90.0, meters=40, fast_s=0.9,
                                                       full_s=29.0)
            results["tiered_sub"] = await tiered.tiered(broker, 90.0, meters=63, fast_s=1.0,
                                                        full_s=30.0, sub_meters=True)
        # A saturated line (the fast tier asks for more than it carries), windows of whole
        # full-read periods.
        results["web"] = (await web_load.web_cost(broker, 8.0, meters=10, baud=9600, full_s=4.0,
                                                  fast_s=0.2)
                          if quick else await web_load.web_cost(broker, 58.0))
        print(web_load.line(results["web"]), flush=True)
        t = results["tiered"]
        print(tiered.line(results["tiered_40"]), flush=True)
        print(tiered.line(t), flush=True)
        print(tiered.line(results["tiered_sub"]), flush=True)
        results["limited_reads"] = lr = await limited_reads(broker, window)
        print(f"meters taking at most 60 registers per read: "
              f"{lr['max_60']['requests_per_poll']} requests per poll, line time per poll "
              f"{lr['wire_time_ratio']:.2f}x that of meters taking 90", flush=True)
        results["shared_bus"] = await share.shared_bus(broker, 5.0 if quick else 20.0,
                                                       pairs=repeats)
        print(share.line(results["shared_bus"]), flush=True)
    results["finished"] = time.strftime("%F %T")
    return results


#: The deadbands of config.example.yaml.
DEADBAND = {"W": 5, "var": 5, "VA": 5, "V": 0.5, "A": 0.05}


async def mqtt_per_poll(broker: Broker, window: float, deadband: dict[str, float]) -> Result:
    """State messages and bytes per meter poll, 10 meters polled continuously at 115200 baud
    (after warm-up, so discovery and availability are not counted)."""
    sim = Simulator.build(range(1, 11), 40)
    bus = await BusEmulator.for_simulator(sim, "115200 8N1")
    host, port = await bus.serve_tcp()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = bus_config(host, port, 115200, meters_cfg(10), broker.port,
                                Path(tmp) / "state", publish={"deadband": deadband})
            async with mqtt_counter(broker.port, record=True) as mqtt, \
                    bridge_process(config, Path(tmp)):
                await wait_answered(bus, 60, 60)
                await asyncio.sleep(1.0)
                a0 = bus.counters.answered
                mqtt.states.clear()
                await asyncio.sleep(window)
                polls = bus.counters.answered - a0
                states = [p for messages in mqtt.states.values() for _, p in messages]
    finally:
        await bus.stop()
        await sim.stop()
    return {"deadband": deadband, "polls": polls,
            "mqtt_messages_per_poll": round(len(states) / polls, 3),
            "mqtt_bytes_per_poll": round(sum(map(len, states)) / polls)}


def table(results: Result) -> str:
    lines = ["| baud | meters | utilisation | t3.5 violations | sweep s | CPU s/1000 polls "
             "| RSS MB |", "|---|---|---|---|---|---|---|"]
    for r in results["utilisation"]:
        lines.append(f"| {r['baud']} | {r['meters']} | {r['utilisation']:.3f} | "
                     f"{r['silence_violations']} | {r['sweep_s']} | {r['cpu_s_per_1000_polls']} "
                     f"| {r['rss_mb']} |")
    t10 = results["turnaround_10ms"]
    dm = results["dead_meter"]
    cpu = results["cpu"]
    tr = results["tiered"]
    t40 = results["tiered_40"]
    mq = results["mqtt"]
    lr = results["limited_reads"]
    lines += [
        "",
        f"- 10 ms meter turnaround, 10 meters at 19200: utilisation {t10['utilisation']:.3f}, "
        f"t3.5 violations {t10['silence_violations']}",
        f"- one dead meter among 10 at 19200 (timeout 0.5 s): sweep {dm['alive']['sweep_s']} s "
        f"-> {dm['one_dead']['sweep_s']} s ({dm['sweep_cost_s']} s per sweep); the nine live "
        f"meters keep {dm['live_rate_ratio']:.0%} of their read rate",
        f"- CPU per 1000 meter polls ({cpu['meters']} meters at {cpu['baud']} baud): bridge "
        f"{cpu['bridge_cpu_s_per_1000_polls']} s ({cpu['mqtt_messages_per_poll']} MQTT "
        f"messages per poll), the bridge with MQTT unreachable "
        f"{cpu['bridge_without_mqtt_cpu_s_per_1000_polls']} s, a bare pymodbus loop "
        f"{cpu['bare_pymodbus_cpu_s_per_1000_polls']} s: {cpu['ratio']:.2f}x "
        f"({cpu['ratio_without_mqtt']:.2f}x without MQTT; medians of {len(cpu['rounds'])} "
        f"rounds, each against its own bare loop; 1-min load {cpu['load_average_1min']})",
        f"- the floor (tests/bench/floor.py: read with t3.5 kept, decode, serialise, nothing "
        f"else) {cpu['floor_cpu_s_per_1000_polls']} s per 1000 polls: {cpu['floor_ratio']:.2f}x "
        f"the bare loop, {cpu['floor_publishing_ratio']:.2f}x publishing every poll; the bridge "
        f"without MQTT is {cpu['bridge_without_mqtt_over_floor']:.2f}x the floor",
        tiered.line(t40),
        tiered.line(tr),
        tiered.line(results["tiered_sub"]),
        f"- memory with {tr['meters']} meters: {tr['rss_mb']} MB resident, growth "
        f"{tr['rss_growth_mb']} MB over {tr['window_s']} s",
        f"- meters that take at most 60 registers per read ({lr['max_60']['meters']} at "
        f"{lr['max_60']['baud']}): {lr['max_60']['requests_per_poll']} requests per poll "
        f"(plan {lr['max_60']['plan_registers']} registers) against "
        f"{lr['whole']['requests_per_poll']} ({lr['whole']['plan_registers']}); line time per "
        f"poll {lr['max_60']['wire_ms_per_poll']} ms against {lr['whole']['wire_ms_per_poll']}"
        f" ms ({lr['wire_time_ratio']:.2f}x); learning took "
        f"{lr['max_60']['learning']['refused']} refused requests in the first "
        f"{lr['max_60']['learning']['polls']} polls, none after",
        f"- MQTT per meter poll: {mq['no_deadband']['mqtt_messages_per_poll']} messages, "
        f"{mq['no_deadband']['mqtt_bytes_per_poll']} bytes without deadband; "
        f"{mq['deadband']['mqtt_messages_per_poll']} messages, "
        f"{mq['deadband']['mqtt_bytes_per_poll']} bytes with the example's deadbands",
        share.line(results["shared_bus"]),
    ]
    if "web" in results:
        lines.append(web_load.line(results["web"]))
    return "\n".join(lines)


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short run of each figure")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", default="bench-results/latest.json")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    results = asyncio.run(main(args.quick, repeats))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    text = table(results)
    out.with_suffix(".md").write_text(text + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
