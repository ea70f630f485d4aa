"""The CPU case: CPU per 1000 meter polls of the bridge, of the bridge with MQTT unreachable, and
of a bare pymodbus loop, measured in the same run on the same emulated line.

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
from tests.bench.run import Result, bare_cpu, utilisation

BAUD, METERS = 115200, 10


async def cpu_case(broker: Broker, window_s: float, repeats: int) -> Result:
    """Rounds of (bridge, bare loop, bridge without MQTT), each ratio taken against the bare
    loop of its own round: the machine is shared, and its load moves between rounds more than
    within one. The medians over the rounds are reported."""
    rounds = []
    for _ in range(repeats):
        bridge = await utilisation(broker, BAUD, METERS, window_s)
        bare = await bare_cpu(BAUD, METERS, window_s)
        quiet = await utilisation(None, BAUD, METERS, window_s)
        reference = bare["cpu_s_per_1000_polls"]
        rounds.append({
            "bridge_cpu_s_per_1000_polls": bridge["cpu_s_per_1000_polls"],
            "bridge_without_mqtt_cpu_s_per_1000_polls": quiet["cpu_s_per_1000_polls"],
            "bare_pymodbus_cpu_s_per_1000_polls": reference,
            "ratio": round(bridge["cpu_s_per_1000_polls"] / reference, 3),
            "ratio_without_mqtt": round(quiet["cpu_s_per_1000_polls"] / reference, 3),
            "mqtt_messages_per_poll": bridge["mqtt_messages_per_poll"],
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
