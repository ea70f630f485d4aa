"""The add-on's AppArmor profile: accepted by apparmor_parser, and enough for the bridge.

No machine here enforces AppArmor, and a profile that denies one file the bridge needs stops
the add-on on every installation that does. So the bridge runs as the add-on runs it
(``python -m bridge.addon``: the Supervisor's services API -> options -> /data/config.yaml ->
the bridge) against simulated meters over Modbus TCP and a pseudo-terminal, a private
Mosquitto that the Supervisor (a local stand-in) names by host name, and a pulse
input on the fake GPIO backend, under ``strace -f -e trace=file,network``, with the status
page, its API and its metrics fetched once the bridge has them; every path it
touched, renamed to the image's layout (tests/addon_layout.py), and every socket family it
opened must be allowed by the profile's ``bridge`` rules (tests/apparmor_rules.py).

Not exercised here: the real GPIO character devices and sysfs (the fake backend has none;
those rules follow libgpiod's and the bridge's own lookups), musl's files (the test runs on
glibc; glibc's own files are left out by the layout), TLS certificates.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bridge.addon.entry import SERVES_WEB, URL_ENV
from bridge.sim.broker import Broker, free_port
from tests.addon_child import PULSES, WEB_PORT_ENV
from tests.addon_layout import Layout
from tests.addon_support import MOSQUITTO, TOKEN, FakeSupervisor, fake_supervisor
from tests.apparmor_rules import Profile, parse_profiles
from tests.mqtt_helpers import recorder
from tests.strace_log import FileAccess, SocketUse, parse_log

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "addon" / "series4000"
PROFILE = ADDON / "apparmor.txt"
SLUG = "series4000"
CHILD = "bridge"


def _tool(name: str, package: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/sbin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail(f"{name} is missing: `make test` installs it (apt-get install {package})")


def parse_with_apparmor_parser(path: Path) -> subprocess.CompletedProcess[str]:
    """Compile the policy without loading it (-Q) or touching the cache (-K)."""
    return subprocess.run([_tool("apparmor_parser", "apparmor"), "-Q", "-K", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def profile() -> Profile:
    profiles = parse_profiles(PROFILE.read_text())
    assert [p.name for p in profiles] == [SLUG]
    return profiles[0]


def image_python_version() -> str:
    match = re.search(r"^ARG BUILD_FROM=\S+base-python:(\d+\.\d+)-", (ADDON / "Dockerfile")
                      .read_text(), re.M)
    assert match
    return match.group(1)


# ---------------------------------------------------------------------------------------------
# the file as the Supervisor and apparmor_parser read it


def test_apparmor_parser_accepts_the_profile() -> None:
    result = parse_with_apparmor_parser(PROFILE)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("change", "error"), [
    (("network unix stream,", "network unix streams,"), "Invalid"),
    (("/data/ r,", "/data/ rq,"), "expecting TOK_MODE"),
    (("/usr/local/bin/python3.13 cx -> bridge,", "/usr/local/bin/python3* cx -> bridge,"),
     "conflicting x modifiers"),
])
def test_apparmor_parser_rejects_a_broken_copy(tmp_path: Path, change: tuple[str, str],
                                               error: str) -> None:
    old, new = change
    text = PROFILE.read_text()
    assert old in text
    broken = tmp_path / "apparmor.txt"
    broken.write_text(text.replace(old, new, 1))
    result = parse_with_apparmor_parser(broken)
    assert result.returncode != 0 and error in result.stderr, result.stderr


def test_one_profile_line_for_the_supervisor() -> None:
    # The Supervisor reads the name from the one line that starts with "profile" and renames
    # it to the add-on's slug; a nested profile must be indented.
    heads = [line for line in PROFILE.read_text().splitlines() if line.startswith("profile ")]
    assert len(heads) == 1 and heads[0].split()[1] == SLUG


@pytest.mark.parametrize("slug", ["local_series4000", "a0d7b954_series4000"])
def test_the_profile_renamed_as_the_supervisor_installs_it_still_parses(
        tmp_path: Path, slug: str) -> None:
    # The Supervisor replaces the name on the "profile" line with the installed add-on's slug
    # (repository hash or "local", then the slug); the child's signal rule names that peer.
    lines = [line.replace(SLUG, slug, 1) if line.startswith("profile ") else line
             for line in PROFILE.read_text().splitlines(keepends=True)]
    installed = tmp_path / slug
    installed.write_text("".join(lines))
    assert parse_profiles(installed.read_text())[0].name == slug
    result = parse_with_apparmor_parser(installed)
    assert result.returncode == 0, result.stderr
    assert re.search(r"signal \(receive\) peer=\*_" + SLUG + ",", PROFILE.read_text())


def test_the_bridge_gets_its_own_profile_for_the_images_python(profile: Profile) -> None:
    version = image_python_version()
    python = f"/usr/local/bin/python{version}"
    rule = profile.exec_rule(python)
    assert rule is not None and (rule.exec_mode, rule.target) == ("cx", CHILD)
    bridge = profile.child(CHILD)
    assert not bridge.all_files  # only the rules below, no `file,`
    assert bridge.allows(f"/usr/local/lib/python{version}/site-packages/bridge/__init__.py",
                         frozenset("r"))
    for denied in ("/etc/shadow", "/config/secrets.yaml", "/share/x", "/dev/sda",
                   "/proc/1/environ", "/usr/local/lib/python3.13/os.py.new"):
        assert not bridge.allows(denied, frozenset("r" if "new" not in denied else "w"))
    assert not bridge.allows_socket("packet", "raw") and not bridge.allows_socket("netlink",
                                                                                   "raw")


def test_python_writes_no_bytecode_where_the_profile_keeps_it_read_only(
        profile: Profile) -> None:
    version = image_python_version()
    cache = f"/usr/local/lib/python{version}/site-packages/bridge/__pycache__/x.pyc"
    assert not profile.child(CHILD).allows(cache, frozenset("w"))
    assert re.search(r"^\s+PYTHONDONTWRITEBYTECODE=1$", (ADDON / "Dockerfile").read_text(), re.M)


# ---------------------------------------------------------------------------------------------
# the bridge under strace


PULSE_INPUT = "pulses"


def add_on_options(tcp_port: int, pty: str) -> dict[str, Any]:
    return {
        "buses": [{"name": "lan", "transport": "tcp", "host": "127.0.0.1", "port": tcp_port},
                  {"name": "panel", "transport": "rtu", "device": pty, "baudrate": 19200}],
        "meters": [{"name": "tcp_meter", "bus": "lan", "unit": 1, "poll_interval": 0.5},
                   {"name": "pty_meter", "bus": "panel", "unit": 2, "poll_interval": 0.5}],
        "pulse_inputs": [{"name": PULSE_INPUT, "line": "GPIO17", "wh_per_pulse": 10}],
        "alarm_inputs": [],
        "mqtt": {},  # the Supervisor's broker
        "log_level": "info",
    }


def fetch_pages(port: int, timeout_s: float = 30.0) -> dict[str, bytes]:
    """The status page, the API and the metrics, once the server answers."""
    deadline = time.monotonic() + timeout_s
    pages: dict[str, bytes] = {}
    for path in ("/", "/api/status", "/metrics"):
        while path not in pages:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    pages[path] = r.read()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the server is still starting
    return pages


def traced_children(strace_pid: int) -> list[int]:
    children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def venv_python3() -> str:
    """The venv's ``python3``, the name the image's CMD runs."""
    python3 = Path(sys.executable).with_name("python3")
    return str(python3 if python3.exists() else sys.executable)


@pytest.mark.slow
async def test_the_bridge_touches_only_what_the_profile_allows(
        tmp_path: Path, broker: Broker, sim_factory: Any, profile: Profile) -> None:
    strace = _tool("strace", "strace")
    data, tmp = tmp_path / "data", tmp_path / "tmp"
    data.mkdir()
    tmp.mkdir()
    tcp_sim, pty_sim = sim_factory([1]), sim_factory([2])
    _, tcp_port = await tcp_sim.serve_tcp()
    pty = await pty_sim.serve_pty()
    (data / "options.json").write_text(json.dumps(add_on_options(tcp_port, pty)))
    # By name, as the Supervisor names the Mosquitto add-on: name resolution is traced too.
    mosquitto = FakeSupervisor.ok(**{**MOSQUITTO, "host": "localhost", "port": broker.port})
    trace = tmp_path / "strace.log"

    web_port = free_port()
    with fake_supervisor(mosquitto) as supervisor:
        async with recorder(broker.port) as rec:
            proc = await asyncio.create_subprocess_exec(
                # -ff: one file per thread, so no call is split across lines by another thread's
                strace, "-f", "-ff", "-qq", "-y", "-e", "trace=file,network", "-o", str(trace),
                venv_python3(), str(ROOT / "tests" / "addon_child.py"),
                "--options", str(data / "options.json"), "--data-dir", str(data),
                "--health-file", str(tmp / "series4000-health.json"),
                cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, WEB_PORT_ENV: str(web_port), URL_ENV: supervisor.url,
                     "SUPERVISOR_TOKEN": TOKEN})
            try:
                def running(r: Any) -> bool:
                    states = [r.last_json(f"series4000/{n}/state")
                              for n in ("tcp_meter", "pty_meter", PULSE_INPUT)]
                    health = tmp / "series4000-health.json"
                    return all(states) and states[2]["pulses"] == PULSES and health.exists()
                await rec.wait_for(running, 60, "both meters, the pulse input and the heartbeat")
                if SERVES_WEB:
                    pages = await asyncio.to_thread(fetch_pages, web_port)
                    assert pages["/"].lower().startswith(b"<!doctype html")
                    meters = {m["name"] for m in json.loads(pages["/api/status"])["meters"]}
                    assert meters == {"tcp_meter", "pty_meter"}
                    assert b"series4000_meter_online" in pages["/metrics"]
            finally:
                # Stop the bridge, not strace (which would detach and leave it running); strace
                # exits with the bridge's exit code.
                for pid in traced_children(proc.pid):
                    os.kill(pid, signal.SIGTERM)
                _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        # The services API named the broker, and the bridge asked for Home Assistant's release.
        assert supervisor.requests and supervisor.core_requests
    assert proc.returncode == 0, stderr.decode()
    assert (data / "config.yaml").is_file()

    layout = Layout(
        checkout=str(ROOT), venv=sys.prefix, python_prefix=sys.base_prefix,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        image_python_version=image_python_version(), data_dir=str(data), tmp_dir=str(tmp),
        serial={str(Path(pty).resolve()): "/dev/ttyUSB0"})
    lines = [line for part in sorted(tmp_path.glob(f"{trace.name}.*"))
             for line in part.read_text().splitlines()]
    accesses = parse_log(lines)
    bridge = profile.child(CHILD)
    denied: set[str] = set()
    checked: dict[str, int] = {"files": 0, "sockets": 0}
    for access in accesses:
        if isinstance(access, SocketUse):
            checked["sockets"] += 1
            if not bridge.allows_socket(access.family, access.sock_type):
                denied.add(f"{access.call}: network {access.family} {access.sock_type}")
            continue
        assert isinstance(access, FileAccess)
        image_path = layout.to_image(access.path)
        if image_path is None:
            continue
        checked["files"] += 1
        if access.call == "execve":
            rule = profile.exec_rule(image_path)
            if rule is None or rule.target != CHILD:
                denied.add(f"execve {image_path} (from {access.path}): not into {CHILD}")
        elif not bridge.allows(image_path, access.needs):
            needs = "".join(sorted(access.needs))
            denied.add(f"{access.call} {image_path} {needs} (here {access.path})")
    assert not denied, "the profile would deny:\n" + "\n".join(sorted(denied))
    # What was checked: the interpreter, both buses (the pty as /dev/ttyUSB0), /data, /tmp
    # and the sockets of TCP, the broker and the event loop.
    image_paths = {layout.to_image(a.path) for a in accesses if isinstance(a, FileAccess)}
    python = f"/usr/local/bin/python{layout.image_python_version}"
    for expected in ("/dev/ttyUSB0", "/data/config.yaml", "/data/options.json",
                     "/tmp/series4000-health.json", python):
        assert expected in image_paths, expected
    families = {(a.family, a.sock_type) for a in accesses if isinstance(a, SocketUse)}
    assert {("inet", "stream"), ("unix", "stream")} <= families
    assert checked["files"] > 500 and checked["sockets"] >= 3
