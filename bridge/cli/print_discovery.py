"""``python -m bridge print-discovery``: the discovery messages, without publishing them."""

from __future__ import annotations

import json
from typing import TextIO

from bridge.app.service import link_for
from bridge.config import Config
from bridge.errors import ModbusError
from bridge.homeassistant.announce import Announcer
from bridge.homeassistant.discovery import DeviceInfo, meter_components
from bridge.meters.series4000.setup import valid_state_keys
from bridge.modbus.client import BusClient
from bridge.modbus.reader import read_once
from bridge.model.topics import Topics
from bridge.mqtt.hub import Hub


async def print_discovery(config: Config, system_type: int | None, out: TextIO) -> int:
    topics = Topics(config.mqtt.base_topic, config.mqtt.discovery_prefix)
    prefix = f"series4000_{config.bridge_id}"
    sent: list[tuple[str, str]] = []
    hub = Hub()
    hub.observers.append(lambda topic, payload, retain: sent.append((topic, payload)))
    announcer = Announcer(hub, topics, mode=config.mqtt.discovery_mode)
    failed = 0
    for bus in config.buses:
        client = BusClient(link_for(bus), timeout=bus.timeout, retries=bus.retries)
        try:
            for meter in bus.meters:
                firmware = None
                if system_type is None:
                    try:
                        reading = await read_once(client, meter.unit)
                    except ModbusError as exc:
                        print(f"# {meter.name}: cannot read the meter ({exc}); use "
                              "--system-type to print without reading", file=out)
                        failed += 1
                        continue
                    st, valid = reading.setup.system_type, reading.valid
                    firmware = reading.identity.firmware
                else:
                    st, valid = system_type, valid_state_keys(system_type)
                node = f"{prefix}_{meter.name}"
                name = meter.display_name or meter.name.replace("_", " ").capitalize()
                announcer.set_device(DeviceInfo(node, name, sw_version=firmware),
                                     [topics.bridge_availability,
                                      topics.availability(meter.name)],
                                     topics.state(meter.name))
                announcer.set_part(node, "meter", meter_components(
                    meter.name, prefix, valid, st, meter.allow_writes, topics))
                announcer.announce(node)
        finally:
            client.close()
    for topic, payload in sent:
        print(topic, file=out)
        print(json.dumps(json.loads(payload), indent=2) if payload else "(empty)", file=out)
    return 1 if failed else 0
