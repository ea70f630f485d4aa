"""The bus task's rotation on a clock the test moves, with reads that take line time.

The client moves the clock on by each read's line time (:class:`LineTiming` at the bus's
speed, the reaction time chosen by the test), so the figures are those of a line that carries
one transaction at a time and nothing runs in real time.
"""

from __future__ import annotations

import itertools
from typing import Any

from bridge.core.budget import LineTiming, line_timing
from bridge.core.poller import BusPoller, CommandRequest
from tests.test_poller import Clock, ImageClient, make_poller, meter, run_until

#: The float of total power (two registers) and voltage A-N (the slowest quantity: full reads).
POWER_REGISTERS = (261, 3)
FULL_REGISTER = 293
#: The most registers a fast read of total power takes.
FAST_MOST = 4


def tiered(count: int, full_s: float, fast_s: float, **extra: Any) -> list[dict[str, Any]]:
    return [meter(f"m{u}", u, poll_interval=full_s, fast_interval=fast_s, fast_keys=["power_w"],
                  config_interval=600, **extra) for u in range(1, count + 1)]


def on_line(poller: BusPoller, client: ImageClient, reaction_s: float) -> LineTiming:
    """Reads cost the line time of the bus's speed with ``reaction_s`` per transaction."""
    timing = line_timing(poller.cfg, reaction_s)
    assert timing is not None
    client.line = timing
    return timing


def read_times(client: ImageClient, register: int | tuple[int, ...], since: float,
               most: int = 125) -> dict[int, list[float]]:
    """When each unit's reads of at most ``most`` registers that cover ``register`` ended,
    from ``since``."""
    wanted = (register,) if isinstance(register, int) else register
    times: dict[int, list[float]] = {}
    for (kind, unit, address, count), at in zip(client.log, client.at, strict=True):
        if kind == "read" and at >= since and count <= most and any(address <= r < address + count
                                                  for r in wanted):
            times.setdefault(unit, []).append(at)
    return times


def late_s(t: float, phase: float, period: float = 1.0) -> float:
    """How far ``t`` is after ``phase`` in its period (circular, from half a period early)."""
    return (t - phase + period / 2) % period - period / 2


def on_time(ts: list[float], period: float = 1.0) -> float:
    """The place in the period of the earliest of a meter's reads (circular)."""
    return (ts[0] + min(late_s(t, ts[0], period) for t in ts)) % period


def worst_gaps(times: dict[int, list[float]]) -> dict[int, float]:
    return {unit: max(b - a for a, b in itertools.pairwise(ts)) for unit, ts in times.items()}


async def test_each_tier_is_spread_evenly_over_its_period() -> None:
    clock = Clock()
    poller, client, _, _ = make_poller(tiered(10, 10.0, 1.0), clock=clock, transport="rtu_over_tcp",
                                       baudrate=19200)
    on_line(poller, client, 0.0011)
    await run_until(poller, clock, clock.now + 12.0)  # the first reads, then a full period
    since = clock.now
    await run_until(poller, clock, since + 30.0)
    power = read_times(client, POWER_REGISTERS, since)
    # Every meter's power read ends at the same place in each period, a tenth of a period
    # after the previous meter's, give or take a full read ahead of it.
    full_read_s = client.line.read_s(90) if client.line else 0.0
    places = {unit: on_time(ts) for unit, ts in power.items()}
    for unit, ts in power.items():
        assert max(late_s(t, places[unit]) for t in ts) <= full_read_s + 1e-6, unit
    assert [round((places[u + 1] - places[u]) % 1.0, 3) for u in range(1, 10)] == [0.1] * 9
    # Full reads 9 cycles apart (coprime with the 10 meters), never two in one 0.9 s window.
    full = sorted(t for ts in read_times(client, FULL_REGISTER, since).values() for t in ts)
    assert {round(b - a, 2) for a, b in itertools.pairwise(full)} == {0.9}


async def test_the_40_meter_promise_is_kept_when_the_line_has_room() -> None:
    """40 meters at 19200 baud, power every 0.9 s, everything every 29 s: the budget says 74 %
    of the line; the worst power gap is the period plus about one full read."""
    clock = Clock()
    poller, client, _, _ = make_poller(tiered(40, 29.0, 0.9), clock=clock, transport="rtu_over_tcp",
                                       baudrate=19200)
    timing = on_line(poller, client, 0.0011)
    await run_until(poller, clock, clock.now + 35.0)
    since = clock.now
    await run_until(poller, clock, since + 60.0)
    power = worst_gaps(read_times(client, POWER_REGISTERS, since))
    full = worst_gaps(read_times(client, FULL_REGISTER, since))
    assert len(power) == len(full) == 40
    assert max(power.values()) <= 0.9 + timing.read_s(90)  # 1.00 s; the issue asks <= 1.06 s
    assert max(full.values()) <= 29.0


async def test_every_meter_slows_down_alike_when_reads_cost_more_than_planned() -> None:
    """63 meters at 19200, power every 1.0 s: more than the line carries as configured, and
    each read costs 3 ms more than the budget assumed (a slow turnaround): every meter's power
    gap stretches by the same amount, none is starved, and the line is never idle."""
    clock = Clock()
    poller, client, _, _ = make_poller(tiered(63, 30.0, 1.0), clock=clock,
                                       transport="rtu_over_tcp", baudrate=19200)
    timing = on_line(poller, client, 0.0041)
    await run_until(poller, clock, clock.now + 40.0)
    since, first = clock.now, len(client.log)
    await run_until(poller, clock, since + 80.0)
    busy_s = sum(timing.read_s(count) for _, _, _, count in client.log[first:])
    assert busy_s >= clock.now - since - 1e-6
    power = worst_gaps(read_times(client, POWER_REGISTERS, since))
    assert len(power) == 63
    full_every = poller.rotations[0].full_every[0]
    assert full_every == 26  # the budget's stretch: 30 s / 1.11 s, no factor shared with 63
    # A meter waits for the 62 others; 3 of the 63 reads are full ones at worst.
    worst_s = 60 * timing.read_s(2) + 3 * timing.read_s(90)
    assert worst_s > 1.0  # the line cannot keep the configured period
    assert max(power.values()) <= worst_s + 1e-6
    assert max(power.values()) <= 1.05 * min(power.values())
    # The full reads stretch alike: every 26 cycles of the real length.
    full = worst_gaps(read_times(client, FULL_REGISTER, since))
    assert max(full.values()) <= full_every * max(power.values())


async def test_an_offline_meter_leaves_the_others_their_places() -> None:
    clock = Clock()
    poller, client, _, _ = make_poller(tiered(10, 20.0, 1.0), clock=clock, transport="rtu_over_tcp",
                                       baudrate=19200, offline_after=2,
                                       backoff_s=5.0, backoff_max_s=5.0)
    on_line(poller, client, 0.0011)
    await run_until(poller, clock, clock.now + 25.0)
    before = read_times(client, POWER_REGISTERS, clock.now - 5.0)
    client.dead.add(4)
    since = clock.now + 5.0  # meter 4 has gone offline by then
    await run_until(poller, clock, since + 20.0)
    assert not poller.meters["m4"].online
    after = read_times(client, POWER_REGISTERS, since)
    requests_to_4 = [at for (_, unit, _, _), at in zip(client.log, client.at, strict=True)
                     if unit == 4 and at >= since]
    assert len(requests_to_4) == 4  # one probe per back-off period, nothing in its slots
    assert client.line is not None
    allowed = client.timeout_s + client.line.read_s(90)
    for unit, ts in after.items():
        phase = on_time(before[unit])
        # Each live meter reads at its old place, later only by a probe's time-out or a full
        # read ahead of it in the cycle.
        late = [late_s(t, phase) for t in ts]
        assert min(late) >= -1e-6 and max(late) <= allowed, unit


async def test_a_meter_that_comes_back_takes_its_old_place() -> None:
    clock = Clock()
    poller, client, _, _ = make_poller(tiered(5, 20.0, 1.0), clock=clock, transport="rtu_over_tcp",
                                       baudrate=19200, offline_after=1,
                                       backoff_s=3.3, backoff_max_s=3.3)
    on_line(poller, client, 0.0011)
    await run_until(poller, clock, clock.now + 22.0)
    phase = on_time(read_times(client, POWER_REGISTERS, clock.now - 2.0, FAST_MOST)[3])
    client.dead.add(3)
    await run_until(poller, clock, clock.now + 5.0)
    assert not poller.meters["m3"].online
    client.dead.clear()
    await run_until(poller, clock, clock.now + 5.0)
    assert poller.meters["m3"].online
    since = clock.now
    await run_until(poller, clock, since + 5.0)
    fast = read_times(client, POWER_REGISTERS, since, FAST_MOST)[3]
    assert len(fast) == 5
    assert all(abs(late_s(t, phase)) < 1e-6 for t in fast)


async def test_commands_go_ahead_of_an_overdue_rotation() -> None:
    clock = Clock()
    poller, client, _, _ = make_poller(tiered(3, 20.0, 1.0, allow_writes=True), clock=clock)
    await run_until(poller, clock, clock.now + 2.0)
    clock.now += 3.5  # every slot is overdue
    client.log.clear()
    assert poller.submit(CommandRequest("m2", "ct_primary_a", b"200"))
    assert await poller.step() == 0.0
    assert client.log[0] == ("write", 2, 131, 200)
    # The command asked for the measurements under the new set-up: m2 reads everything in its
    # next slot, the others keep their fast reads.
    await run_until(poller, clock, clock.now + 1.0)
    reads = [(unit, count) for kind, unit, _, count in client.log if kind == "read"]
    assert (2, 90) in reads and (1, 2) in reads and (3, 2) in reads


async def test_a_continuous_bus_with_every_meter_offline_waits_for_the_probes() -> None:
    """``poll_interval: 0`` has no period: the slots of meters that are all offline must not
    pass one after another for ever (the bus task would never wait)."""
    clock = Clock()
    poller, client, _, _ = make_poller([meter("a", 1, poll_interval=0), meter("b", 2,
                                                                         poll_interval=0)],
                                       clock=clock, offline_after=1, backoff_s=2.0,
                                       transport="rtu_over_tcp", baudrate=19200)
    on_line(poller, client, 0.0011)
    await run_until(poller, clock, clock.now + 0.5)
    assert poller.meters["a"].polls >= 2 and poller.meters["b"].polls >= 2
    client.dead.update({1, 2})
    for _ in range(4):  # a failed read each takes the meters offline
        await poller.step()
    assert not poller.meters["a"].online and not poller.meters["b"].online
    wait = await poller.step()
    assert wait is not None and wait > 1.0  # the next probe, 2 s after the failure
