"""The CPU case: CPU per 1000 meter polls of the bridge, of the bridge with MQTT unreachable, of a
bare pymodbus loop, and of the floor (the least a bridge must do per poll: read with t3.5 kept,
decode, serialise; and publish), measured in the same run on the same emulated line.

    python -m tests.bench.cpu [--window 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from typing import Any

from bridge.sim.broker import Broker
from tests.bench.run import Result, bare_cpu, floor_cpu, utilisation

BAUD, METERS = 115200, 10


async def cpu_case(broker: Broker, window_s: float, repeats: int) -> Result:
    """Rounds of (bridge, bare loop, bridge without MQTT, floor without and with publishing),
    each ratio taken against the loops of its own round: the machine is shared, and its load
    moves between rounds more than within one. The medians over the rounds are reported."""
    rounds = []
    for _ in range(repeats):
        run = await utilisation(broker, BAUD, METERS, window_s)
        bridge = run["cpu_s_per_1000_polls"]
        reference = (await bare_cpu(BAUD, METERS, window_s))["cpu_s_per_1000_polls"]
        quiet = (await utilisation(None, BAUD, METERS, window_s))["cpu_s_per_1000_polls"]
        floor = (await floor_cpu(None, BAUD, METERS, window_s))["cpu_s_per_1000_polls"]
        floor_mqtt = (await floor_cpu(broker, BAUD, METERS, window_s))["cpu_s_per_1000_polls"]
        rounds.append({
            "bridge_cpu_s_per_1000_polls": bridge,
            "bridge_without_mqtt_cpu_s_per_1000_polls": quiet,
            "bare_pymodbus_cpu_s_per_1000_polls": reference,
            "floor_cpu_s_per_1000_polls": floor,
            "floor_publishing_cpu_s_per_1000_polls": floor_mqtt,
            "ratio": round(bridge / reference, 3),
            "ratio_without_mqtt": round(quiet / reference, 3),
            # The work every poll needs, done plainly, against the bare loop.
            "floor_ratio": round(floor / reference, 3),
            "floor_publishing_ratio": round(floor_mqtt / reference, 3),
            # Like for like (neither publishes): what the bridge adds to the floor.
            "bridge_without_mqtt_over_floor": round(quiet / floor, 3),
            "mqtt_messages_per_poll": run["mqtt_messages_per_poll"],
            # The load during the round says how far to trust it.
            "load_average_1min": round(os.getloadavg()[0], 2),
        })
    out: Result = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    out.update({"baud": BAUD, "meters": METERS, "window_s": window_s, "rounds": rounds})
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    async def run() -> dict[str, Any]:
        with Broker() as broker:
            return await cpu_case(broker, args.window, args.repeats)

    print(json.dumps(asyncio.run(run()), indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
