"""What the README and `make help` promise a new user agrees with what the code and the
Makefile do."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli.main import VERBS
from bridge.model.topics import BRIDGE, Topics
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
# Targets that are steps of others, not something to type.
INTERNAL_TARGETS = {"help", "venv", "mosquitto", "mbpoll", "chromium", "addon-tools", "ha-python"}


def make(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    return subprocess.run(["make", "--no-print-directory", f"VENV={venv}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_readme_lists_every_verb() -> None:
    line = re.search(r"All verbs: (.*?)\(", README, re.S)
    assert line, "no 'All verbs:' list in the README"
    assert sorted(re.findall(r"`([a-z-]+)`", line.group(1))) == sorted(VERBS)


T = Topics("<base>", "<discovery_prefix>")


@pytest.mark.parametrize("topic", [
    T.bridge_availability, T.availability("<meter>"), T.state("<meter>"),
    T.set("<meter>", "<setting>"), T.result("<meter>"), T.availability("<input>"),
    T.state("<input>"), T.set(BRIDGE, "resend_discovery"), T.device_config("<id>"),
    T.component_config("<platform>", "<id>", "<object>"),
])
def test_readme_topic_table_has(topic: str) -> None:
    assert f"| `{topic}` |" in README


def phony_targets() -> list[str]:
    line = next(line for line in MAKEFILE.splitlines() if line.startswith(".PHONY:"))
    return line.split(":", 1)[1].split()


def test_make_help_lists_every_target() -> None:
    done = make("-s", "help")
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^make ([a-z-]+)", done.stdout, re.M))
    assert listed == set(phony_targets()) - INTERNAL_TARGETS, done.stdout


def test_make_test_ha_without_python_3_13_stops_at_once_and_says_why() -> None:
    done = make("test-ha", "HA_PY=/nonexistent/python3.13", timeout=30)
    assert done.returncode == 2
    assert "make test-ha needs Python 3.13" in done.stdout, done.stdout + done.stderr
    assert "pip install" not in done.stdout + done.stderr  # nothing started before the check


def test_make_test_and_test_repeat_run_the_same_suite() -> None:
    recipes = {target: make("-n", target).stdout for target in ("test", "test-repeat")}
    suite = next(line.strip() for line in recipes["test"].splitlines() if "pytest" in line)
    assert suite in recipes["test-repeat"]


def test_readme_check_step_says_the_example_needs_mqtt_password() -> None:
    step = README[README.index("4. **Configure**"):README.index("5. **Run**")]
    assert "MQTT_PASSWORD" in step and "check-config" in step
