"""A real browser on a real Home Assistant's frontend (for `make test-ha`).

Home Assistant starts with onboarding done except for its owner, whom :func:`login` creates
through the onboarding API; the access token goes into the browser's local storage before the
page's scripts run, so the frontend opens logged in. Chromium is Debian's, driven by Playwright.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def prepare(config_dir: Path, port: int) -> str:
    """The frontend's part of the configuration; returns the base URL."""
    with (config_dir / "configuration.yaml").open("a") as f:
        f.write(f"http:\n  server_host: 127.0.0.1\n  server_port: {port}\nfrontend:\n")
    (config_dir / ".storage" / "onboarding").write_text(json.dumps({
        "version": 4, "minor_version": 1, "key": "onboarding",
        "data": {"done": ["core_config", "analytics", "integration"]}}))
    return f"http://127.0.0.1:{port}"


def _post(url: str, body: bytes, content_type: str, token: str | None = None) -> Any:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:  # loopback only
        text = answer.read().decode()
    return json.loads(text) if text.startswith(("{", "[")) else text


def _login(base: str) -> dict[str, Any]:
    client_id = base + "/"
    created = _post(base + "/api/onboarding/users", json.dumps({
        "client_id": client_id, "name": "Owner", "username": "owner",
        "password": "owner-password", "language": "en"}).encode(), "application/json")
    form = urllib.parse.urlencode({"grant_type": "authorization_code",
                                   "code": created["auth_code"], "client_id": client_id})
    tokens: dict[str, Any] = _post(base + "/auth/token", form.encode(),
                                   "application/x-www-form-urlencoded")
    return tokens


async def login(base: str) -> dict[str, Any]:
    return await asyncio.to_thread(_login, base)


async def render(base: str, tokens: dict[str, Any], template: str) -> str:
    """A template rendered by Home Assistant (``{{ device_id('sensor.x') }}``)."""
    return str(await asyncio.to_thread(
        _post, base + "/api/template", json.dumps({"template": template}).encode(),
        "application/json", tokens["access_token"]))


#: Where an entity's name is on a device page's cards (Controls, Sensors, Configuration,
#: Diagnostic), inside their shadow roots (Playwright's CSS pierces open ones): the name of an
#: entity row, the label of a select row, the name of a disabled entity once the card lists them.
NAME_ELEMENTS = ", ".join(f"ha-device-entities-card {inner}" for inner in (
    "hui-generic-entity-row .info", "hui-select-entity-row ha-select .mdc-floating-label",
    "ha-list-item.disabled-entry .name"))


@dataclass(frozen=True, slots=True)
class ShownName:
    """An entity name as the browser laid it out: cut off when its text is wider than its box."""

    text: str
    scroll_width: int
    client_width: int

    @property
    def whole(self) -> bool:
        return self.scroll_width <= self.client_width


async def device_page(base: str, tokens: dict[str, Any], path: str,
                      shots: list[tuple[Path, str]], expect: list[str], width: int = 1400,
                      height: int = 1100, more_info: tuple[Path, str] | None = None
                      ) -> list[ShownName]:
    """Open ``path`` logged in, wait until every text of ``expect`` shows, save one PNG per
    ``(file, text)`` of ``shots`` with that text scrolled into view, and with ``more_info``
    ``(file, name)`` one of the entity's more-info dialog with its attributes open; then list
    the disabled entities too and return every entity name on the page's cards as laid out."""
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: sudo apt-get install -y chromium")

    stored = {"access_token": tokens["access_token"], "token_type": "Bearer",
              "expires_in": tokens["expires_in"], "hassUrl": base, "clientId": base + "/",
              "expires": int(time.time() * 1000) + tokens["expires_in"] * 1000,
              "refresh_token": tokens.get("refresh_token", "")}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            # Before any script of the page runs, so the frontend finds itself logged in.
            await page.add_init_script(
                f"localStorage.setItem('hassTokens', {json.dumps(json.dumps(stored))});")
            await page.goto(base + path, wait_until="networkidle")
            for text in expect:
                await page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
            await page.wait_for_timeout(2000)  # the cards finish drawing after their text
            for out, text in shots:
                await page.get_by_text(text, exact=True).first.scroll_into_view_if_needed()
                await page.wait_for_timeout(500)
                await page.screenshot(path=str(out))
            if more_info is not None:
                out, name = more_info
                await page.locator("ha-device-entities-card hui-generic-entity-row .info",
                                   has_text=name).first.click()
                dialog = page.locator("ha-more-info-dialog")
                await dialog.get_by_text("Attributes").first.click()
                await page.wait_for_timeout(1000)  # the panel opens with an animation
                await page.screenshot(path=str(out))
                await page.keyboard.press("Escape")
                await dialog.locator("ha-dialog").wait_for(state="detached", timeout=10_000)
            more = page.locator("ha-device-entities-card .show-more")
            hidden = await more.count()  # cards with disabled entities
            for i in range(hidden):
                await more.nth(i).click()
            if hidden:
                await page.locator("ha-list-item.disabled-entry").first.wait_for(
                    timeout=10_000)
            names = page.locator(NAME_ELEMENTS)
            shown = [ShownName(*await names.nth(i).evaluate(
                         "e => [e.textContent.trim(), e.scrollWidth, e.clientWidth]"))
                     for i in range(await names.count())]
        finally:
            await browser.close()
    return shown
