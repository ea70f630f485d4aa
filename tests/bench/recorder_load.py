"""Recorder load: state messages and Home Assistant recorder rows per meter per hour.

    python -m tests.bench.recorder_load [--code DIR] [--minutes 10] [--out FILE]

Three simulated meters (3-phase wye, split phase, single phase; the load moves as the simulator
moves it) polled every 5 s with the default settings, a local Mosquitto, a real Home Assistant
(``.ha-venv``, with its recorder) and the bridge run from ``--code`` (a checkout of the project:
this tree by default, or an older one to compare). After a warm-up, the rows the recorder adds
to its ``states`` table and the state messages the bridge publishes are counted for each meter
over the window and scaled to one hour.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bridge.sim.broker import Broker
from bridge.sim.server import Simulator
from tests.bench.harness import ROOT
from tests.mqtt_helpers import recorder
from tests.test_homeassistant import CONFIGURATION, HA_PYTHON, mqtt_entry

METERS = (("wye", 40), ("split", 12), ("single", 10))
WARM_UP_S = 120.0


def recorder_rows(db: Path) -> dict[str, int]:
    """Rows of the recorder's ``states`` table per meter (by entity id prefix)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT m.entity_id, count(*) FROM states s JOIN states_meta m "
                           "ON s.metadata_id = m.metadata_id GROUP BY m.entity_id").fetchall()
    out = {name: 0 for name, _ in METERS}
    for entity_id, count in rows:
        obj = entity_id.split(".", 1)[1]
        for name, _ in METERS:
            if obj.startswith(f"{name}_"):
                out[name] += count
    return out


async def measure(code: Path, minutes: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="recorder-load-"))
    broker = Broker().start()
    sim = Simulator.build([1, 2, 3], [st for _, st in METERS])
    _, port = await sim.serve_tcp()
    ha_dir = work / "ha"
    (ha_dir / ".storage").mkdir(parents=True)
    (ha_dir / "configuration.yaml").write_text(CONFIGURATION + "recorder:\n")
    (ha_dir / ".storage" / "core.config_entries").write_text(json.dumps(mqtt_entry(broker.port)))
    config = {"mqtt": {"host": "127.0.0.1", "port": broker.port},
              "buses": [{"name": "panel", "transport": "tcp", "host": "127.0.0.1", "port": port,
                         "meters": [{"name": name, "unit": unit}
                                    for unit, (name, _) in enumerate(METERS, 1)]}],
              "state_dir": str(work / "state"), "log_level": "warning"}
    (work / "bridge.yaml").write_text(yaml.safe_dump(config))
    ha = subprocess.Popen([str(HA_PYTHON), "-m", "homeassistant", "-c", str(ha_dir)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                          start_new_session=True)
    bridge = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config",
                               str(work / "bridge.yaml")], cwd=str(code),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    db = ha_dir / "home-assistant_v2.db"
    try:
        async with recorder(broker.port, ("series4000/+/state",)) as rec:
            deadline = time.monotonic() + 300
            while not db.exists() or not all(recorder_rows(db).values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("Home Assistant recorded no rows of our meters")
                await asyncio.sleep(5)
            await asyncio.sleep(WARM_UP_S)
            rows0, t0 = recorder_rows(db), time.monotonic()
            counts0 = {name: len(rec.on(f"series4000/{name}/state")) for name, _ in METERS}
            await asyncio.sleep(minutes * 60)
            rows1, t1 = recorder_rows(db), time.monotonic()
            counts1 = {name: len(rec.on(f"series4000/{name}/state")) for name, _ in METERS}
    finally:
        os.killpg(bridge.pid, signal.SIGTERM)
        os.killpg(ha.pid, signal.SIGTERM)
        bridge.wait(30)
        ha.wait(60)
        await sim.stop()
        broker.stop()
    hours = (t1 - t0) / 3600.0
    return {"code": str(code), "window_s": round(t1 - t0),
            "per_meter_per_hour": {
                f"{name} (type {st})": {
                    "state_messages": round((counts1[name] - counts0[name]) / hours),
                    "recorder_rows": round((rows1[name] - rows0[name]) / hours)}
                for name, st in METERS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args.code.resolve(), args.minutes))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
