"""The status page in a real browser (Debian's Chromium driven by Playwright): what a user sees.

One bridge (simulated meters, a real broker) and one browser for the whole module; each test
opens its own page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect
from pymodbus.client import AsyncModbusTcpClient

from bridge.app.service import Service
from bridge.sim.broker import Broker, free_port
from bridge.sim.faults import apply_fault, parse_fault
from bridge.sim.server import Simulator
from tests.conftest import ROOT
from tests.service_helpers import bridge_config, tcp_bus
from tests.web_helpers import get_json, serving, web_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: The screenshot the README shows is copied from here (docs/status-page.png).
SCREENSHOT = ROOT / "test-artifacts" / "status-page.png"
#: How Home Assistant's ingress serves an add-on's page: under a path of its own.
INGRESS_PREFIX = "/api/hassio_ingress/Zk3v9x1T0ken/"
#: (name, unit, system type): a 3-phase wye that holds still, a split phase whose load wanders
#: and whose B voltage tap is open (a wiring finding).
METERS = (("main_panel", 1, 40), ("workshop", 2, 12))


@dataclass
class Rig:
    url: str
    sim: Simulator
    service: Service
    browser: Browser
    modbus_port: int


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # the service's default: the log view has lines to show
    broker = Broker().start()
    sim = Simulator.build([u for _, u, _ in METERS], [t for _, _, t in METERS])
    sim.meters[1].frozen = True
    apply_fault(sim.meters[2], parse_fault("voltage_missing:b"))  # an open B voltage tap
    _, port = await sim.serve_tcp()
    sim.start_clock()
    meters = [{"name": n, "unit": u, "poll_interval": 0.5} for n, u, _ in METERS]
    modbus_port = free_port()
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)],
                        tmp_path_factory.mktemp("state"), web=web_settings(),
                        modbus_server={"host": "127.0.0.1", "port": modbus_port})
    service = Service(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        url = await serving(service)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                       args=CHROMIUM_ARGS)
            try:
                yield Rig(url, sim, service, browser, modbus_port)
            finally:
                await browser.close()
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await sim.stop()
        broker.stop()
        root.setLevel(level)


async def open_page(rig: Rig, url: str | None = None, **context: Any) -> Page:
    page = await rig.browser.new_page(**context)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url or rig.url)
    return page


def meter_card(name: str) -> str:
    return f'[data-meter="{name}"]'


async def page_power(page: Page, name: str) -> float:
    value = await page.get_attribute(f"{meter_card(name)} .m-power", "data-w")
    assert value, f"{name}: no power on the page"
    return float(value)


async def test_meters_online_with_the_simulators_power(rig: Rig) -> None:
    page = await open_page(rig, viewport={"width": 1280, "height": 900})
    for name, _, _ in METERS:
        await page.wait_for_selector(f"{meter_card(name)} .m-status:text-is('online')")
    # The meter that holds still: exactly the simulator's power (as the register carries it).
    held = rig.sim.meters[1].values["power_w"]
    assert math.isclose(await page_power(page, "main_panel"), held, rel_tol=1e-4)
    # The wandering one: live, so the number moves without a reload, and follows the simulator.
    first = await page_power(page, "workshop")
    await page.wait_for_function(
        "([sel, w]) => { const e = document.querySelector(sel);"
        " return e && e.dataset.w !== '' && Number(e.dataset.w) !== w; }",
        arg=[f"{meter_card('workshop')} .m-power", first])
    live = await page_power(page, "workshop")
    assert math.isclose(live, rig.sim.meters[2].values["power_w"], rel_tol=0.03)
    # Only the phases the wiring uses: the split phase shows A and B, not C.
    phases = await page.eval_on_selector_all(f"{meter_card('workshop')} tr[data-phase]",
                                             "rows => rows.map(r => r.dataset.phase)")
    assert phases == ["a", "b"]
    assert await page.inner_text("#mqtt") == "MQTT connected"
    # The chart of total power draws once there are two points.
    await page.wait_for_selector(f'{meter_card("main_panel")} canvas[data-drawn="1"]',
                                 timeout=20_000)
    assert await page.locator(f'{meter_card("main_panel")} [data-ct]').count() == 3
    # The wiring check's finding, with its fix, on the meter it concerns only.
    finding = page.locator(f'{meter_card("workshop")} [data-finding="voltage_missing"]')
    await finding.wait_for(timeout=15_000)
    assert "Fix: " in await finding.inner_text()
    assert await page.locator(f'{meter_card("main_panel")} [data-finding]').count() == 0
    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    assert not page.errors  # type: ignore[attr-defined]
    await page.close()


async def test_a_meter_that_stops_answering_turns_offline_without_a_reload(rig: Rig) -> None:
    page = await open_page(rig)
    card = meter_card("workshop")
    await page.wait_for_selector(f"{card} .m-status:text-is('online')")
    rig.sim.meters[2].alive = False
    try:
        await page.wait_for_selector(f"{card} .m-status:text-is('offline')", timeout=15_000)
        assert "offline since" in await page.inner_text(card)
        await page.wait_for_selector("[data-bus] .bad-num")  # timeouts counted on the bus
    finally:
        rig.sim.meters[2].alive = True
    await page.wait_for_selector(f"{card} .m-status:text-is('online')", timeout=20_000)
    await page.close()


async def test_the_log_view_filters(rig: Rig) -> None:
    page = await open_page(rig)
    await page.wait_for_selector(".log-row")
    await page.fill("#log-filter", "main_panel")
    rows = await page.eval_on_selector_all(".log-row", "rows => rows.map(r => r.textContent)")
    assert rows and all("main_panel" in row for row in rows)
    await page.fill("#log-filter", "no such line anywhere")
    assert await page.locator(".log-row").count() == 0
    assert await page.inner_text("#log") == "No log lines match."
    await page.fill("#log-filter", "")
    await page.select_option("#log-level", "ERROR")
    levels = await page.eval_on_selector_all(".log-row .l", "e => e.map(x => x.textContent)")
    assert set(levels) <= {"ERROR", "CRITICAL"}
    await page.close()


async def test_works_under_a_path_prefix_and_on_a_phone(rig: Rig) -> None:
    """Served under a prefix as Home Assistant's ingress does, on a phone-sized screen."""
    outside: list[str] = []
    async with ingress_proxy(rig.url, outside) as proxy_url:
        page = await open_page(rig, proxy_url + INGRESS_PREFIX,
                               viewport={"width": 390, "height": 844}, is_mobile=True)
        for name, _, _ in METERS:
            await page.wait_for_selector(f"{meter_card(name)} .m-status:text-is('online')")
        await page.wait_for_selector("#live:text-is('live')")
        width = await page.evaluate("document.scrollingElement.scrollWidth")
        assert not page.errors  # type: ignore[attr-defined]
        await page.close()
    assert width <= 390, "the page scrolls sideways on a phone"
    assert not outside, f"requests outside the prefix: {outside}"
    status = await get_json(rig.url + "api/status")
    assert {m["name"] for m in status["meters"]} == {n for n, _, _ in METERS}


class _Proxy:
    """A minimal ingress: forwards ``INGRESS_PREFIX<path>`` to the bridge's ``/<path>``,
    streaming (the event stream stays open), and records requests outside the prefix."""

    def __init__(self, upstream: str, outside: list[str]) -> None:
        self.upstream = upstream
        self.outside = outside

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not request.path.startswith(INGRESS_PREFIX):
            self.outside.append(request.path)
            raise web.HTTPNotFound()
        target = self.upstream + request.path_qs[len(INGRESS_PREFIX):]
        async with aiohttp.ClientSession() as session, session.get(target) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            return response


@contextlib.asynccontextmanager
async def ingress_proxy(upstream: str, outside: list[str]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", _Proxy(upstream, outside).handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_modbus_servers_clients_show_with_their_requests(rig: Rig) -> None:
    """A Modbus TCP client of the bridge appears on the page, live, with what it asked."""
    page = await open_page(rig)
    await page.wait_for_selector("#modbus-section:not([hidden])")
    await page.wait_for_selector("#no-modbus-clients:not([hidden])")
    modbus = AsyncModbusTcpClient("127.0.0.1", port=rig.modbus_port, timeout=5, retries=0)
    assert await modbus.connect()
    try:
        for _ in range(3):
            answer = await modbus.read_holding_registers(256, count=90, device_id=1)
            assert not answer.isError(), answer
        row = '#modbus-clients tr[data-client]'
        await expect(page.locator(f"{row} td:nth-child(3)")).to_have_text("3", timeout=10_000)
        peer = await page.get_attribute(row, "data-client")
        status = await get_json(rig.url + "api/status")
        client = next(c for c in status["modbus_server"]["clients"] if c["peer"] == peer)
        assert client["requests"] == 3 and client["refused"] == {}
    finally:
        modbus.close()
    await page.wait_for_selector("#no-modbus-clients:not([hidden])", timeout=10_000)
    assert not page.errors  # type: ignore[attr-defined]
