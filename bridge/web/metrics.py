"""Prometheus metrics from the status snapshot (made with prometheus_client at each scrape)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.web.source import StatusSource

PREFIX = "series4000"


def _number(value: Any) -> float | None:
    """A state value as a sample: numbers only (booleans and text are not values)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def families(status: dict[str, Any]) -> list[Metric]:
    """Every metric family for one snapshot (pure; the collector calls it per scrape)."""
    online = GaugeMetricFamily(f"{PREFIX}_meter_online", "1 when the meter answers",
                               labels=["meter"])
    value = GaugeMetricFamily(f"{PREFIX}_meter_value",
                              "Every numeric state key as published on MQTT (the unit is in "
                              "the key)", labels=["meter", "key"])
    read_errors = CounterMetricFamily(f"{PREFIX}_meter_read_errors",
                                      "Failed reads of the meter", labels=["meter"])
    response = GaugeMetricFamily(f"{PREFIX}_meter_response_time_seconds",
                                 "Mean time per read block of the last read", labels=["meter"])
    refresh = GaugeMetricFamily(f"{PREFIX}_meter_refresh_seconds",
                                "Longest time between two successive reads over the last "
                                "minute", labels=["meter"])
    for meter in status["meters"]:
        name = meter["name"]
        online.add_metric([name], 1.0 if meter["online"] else 0.0)
        read_errors.add_metric([name], float(meter["read_errors"]))
        if meter["response_time_ms"] is not None:
            response.add_metric([name], meter["response_time_ms"] / 1000.0)
        if meter["refresh_s"] is not None:
            refresh.add_metric([name], meter["refresh_s"])
        for key, raw in meter["state"].items():
            number = _number(raw)
            if number is not None:
                value.add_metric([name, key], number)
    out: list[Metric] = [online, value, read_errors, response, refresh]

    counters = (("transactions", "Completed Modbus transactions"),
                ("timeouts", "Requests without a valid answer in time"),
                ("crc_errors", "Answers lost to a failed CRC or a broken frame"),
                ("exceptions", "Modbus exception replies"))
    bus_counters = {key: CounterMetricFamily(f"{PREFIX}_bus_{key}", text, labels=["bus"])
                    for key, text in counters}
    busy = GaugeMetricFamily(f"{PREFIX}_bus_line_busy_ratio",
                             "Share of wall time the serial line carried frames", labels=["bus"])
    connected = GaugeMetricFamily(f"{PREFIX}_bus_connected", "1 when the port or gateway is "
                                  "open", labels=["bus"])
    needed = GaugeMetricFamily(f"{PREFIX}_bus_line_needed_ratio",
                               "Share of the serial line the configured reads need, with the "
                               "meters' measured reaction", labels=["bus"])
    achievable = GaugeMetricFamily(f"{PREFIX}_bus_fast_achievable_seconds",
                                   "The fast period the line can keep (the longest, where "
                                   "meters have different ones)", labels=["bus"])
    reaction = GaugeMetricFamily(f"{PREFIX}_bus_meter_reaction_seconds",
                                 "The meters' measured reaction beyond t3.5", labels=["bus"])
    for bus in status["buses"]:
        plan = bus["budget"]
        if plan is not None:
            needed.add_metric([bus["name"]], plan["share_needed"])
            if plan["fast_achievable_s"]:
                achievable.add_metric([bus["name"]], max(plan["fast_achievable_s"]))
            if plan["meter_reaction_ms"] is not None:
                reaction.add_metric([bus["name"]], plan["meter_reaction_ms"] / 1000.0)
        for key, family in bus_counters.items():
            family.add_metric([bus["name"]], float(bus[key]))
        if bus["line_busy"] is not None:
            busy.add_metric([bus["name"]], bus["line_busy"])
        connected.add_metric([bus["name"]], 1.0 if bus["connected"] else 0.0)
    out += [*bus_counters.values(), busy, connected, needed, achievable, reaction]

    pulse = GaugeMetricFamily(f"{PREFIX}_pulse_energy_kwh", "Energy counted by a pulse input",
                              labels=["input"])
    for item in status["inputs"]:
        energy = _number(item["state"].get("energy_kwh"))
        if item["kind"] == "pulse" and energy is not None:
            pulse.add_metric([item["name"]], energy)
    out.append(pulse)

    mqtt = GaugeMetricFamily(f"{PREFIX}_mqtt_connected", "1 when connected to the broker",
                             value=1.0 if status["bridge"]["mqtt"]["connected"] else 0.0)
    uptime = GaugeMetricFamily(f"{PREFIX}_uptime_seconds", "Seconds since the bridge started",
                               value=float(status["bridge"]["uptime_s"]))
    return [*out, mqtt, uptime]


class _SnapshotCollector(Collector):
    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from families(self.source.snapshot())


def registry_for(source: StatusSource) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(source))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
