"""The CPU case: CPU per 1000 meter polls of the bridge, of the bridge with MQTT unreachable, and
of a bare pymodbus loop, measured in the same run on the same emulated line.

    python -m tests.bench.cpu [--window 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from bridge.sim.broker import Broker
from tests.bench.run import Result, bare_cpu, repeat, utilisation

BAUD, METERS = 115200, 10


async def cpu_case(broker: Broker, window_s: float, repeats: int) -> Result:
    bridge = await repeat(repeats, lambda: utilisation(broker, BAUD, METERS, window_s))
    bare = await repeat(repeats, lambda: bare_cpu(BAUD, METERS, window_s))
    quiet = await repeat(repeats, lambda: utilisation(None, BAUD, METERS, window_s))
    reference = bare["cpu_s_per_1000_polls"]
    return {
        "bridge_cpu_s_per_1000_polls": bridge["cpu_s_per_1000_polls"],
        "bridge_without_mqtt_cpu_s_per_1000_polls": quiet["cpu_s_per_1000_polls"],
        "bare_pymodbus_cpu_s_per_1000_polls": reference,
        "ratio": round(bridge["cpu_s_per_1000_polls"] / reference, 3),
        "ratio_without_mqtt": round(quiet["cpu_s_per_1000_polls"] / reference, 3),
        "mqtt_messages_per_poll": bridge["mqtt_messages_per_poll"],
        "baud": BAUD, "meters": METERS,
        # The machine is shared: the load during the run says how far to trust the figures.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


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
