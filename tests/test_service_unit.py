"""The systemd unit that ``python -m bridge install-service`` writes."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import install_service as systemd_unit
from bridge.cli.install_service import UNIT_NAME, InstallError, install_service, render
from bridge.cli.main import main


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (a key may repeat, as DeviceAllow does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    code = main(["install-service", "--unit-dir", str(tmp_path),
                 "--config", "/etc/series4000-bridge/config.yaml"])
    assert code == 0
    return tmp_path / UNIT_NAME, capsys.readouterr().out


def test_install_writes_the_unit_and_prints_the_next_steps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unit, out = installed(tmp_path, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == [UNIT_NAME]  # nothing else
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    assert "useradd --system" in out or "usermod -aG" in out
    assert "--shell /usr/sbin/nologin" in out or "usermod" in out
    assert "install -m 0640 -o root -g series4000 config.yaml" in out
    assert "systemctl enable --now series4000-bridge" in out
    assert f"{sys.executable} -m bridge check-config /etc/series4000-bridge/config.yaml" in out


def test_unit_runs_unprivileged_hardened_with_device_access(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unit, _ = installed(tmp_path, capsys)
    sections = parse_unit(unit.read_text())
    assert set(sections) == {"Unit", "Service", "Install"}
    service = {k: v[-1] for k, v in sections["Service"].items()}
    assert service["ExecStart"] == (f"{sys.executable} -m bridge run "
                                    "--config /etc/series4000-bridge/config.yaml")
    assert service["User"] == service["Group"] == "series4000"
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == service["ConfigurationDirectory"] == "series4000-bridge"
    assert service["WorkingDirectory"] == "%S/series4000-bridge"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "DevicePolicy": "closed",
                       "CapabilityBoundingSet": ""}.items():
        assert service[key] == value, key
    # Serial adapters and GPIO chips stay reachable: no PrivateDevices, and allowed devices.
    assert "PrivateDevices" not in service
    allowed = sections["Service"]["DeviceAllow"]
    for device in ("char-ttyUSB rw", "char-ttyAMA rw", "char-ttyACM rw", "char-gpiochip rw"):
        assert device in allowed
    assert "SupplementaryGroups" not in service  # group membership is the user's (useradd)
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    assert not re.search(r"@[A-Z]+@", unit.read_text())  # every placeholder filled in


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (the unit is still parsed above)")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    unit, _ = installed(tmp_path, capsys)
    # verify only warns (exit 0) about unknown keys or bad values: any output is a failure.
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_dry_run_prints_the_unit_and_writes_nothing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-service", "--dry-run", "--unit-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Series 4000-K") and f"ExecStart={sys.executable}" in out
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_python_the_service_cannot_see(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["install-service", "--unit-dir", str(tmp_path),
                 "--python", "/home/pi/venv/bin/python"])
    assert code == 2 and list(tmp_path.iterdir()) == []
    assert "/opt/series4000-bridge" in capsys.readouterr().err
    err = io.StringIO()
    assert install_service(tmp_path, "/home/pi/venv/bin/python",
                           Path("/etc/series4000-bridge/config.yaml"), "series4000",
                           dry_run=True, out=io.StringIO(), err=err) == 0
    assert err.getvalue().startswith("warning:")


@pytest.mark.parametrize(("python", "config", "user", "message"), [
    ("python3", "/etc/c.yaml", "series4000", "absolute path"),
    ("/opt/my venv/bin/python", "/etc/c.yaml", "series4000", "cannot go into"),
    ("/opt/v/bin/python", "/etc/100%.yaml", "series4000", "cannot go into"),
    ("/opt/v/bin/python", "/etc/c.yaml", "Bad User", "plain system user name"),
])
def test_render_refuses_what_the_unit_cannot_carry(python: str, config: str, user: str,
                                                   message: str) -> None:
    with pytest.raises(InstallError, match=message):
        render(python, Path(config), user)


def test_missing_unit_directory_is_an_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-service", "--unit-dir", str(tmp_path / "none")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_next_steps_for_an_existing_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd_unit, "_user_exists", lambda name: True)
    monkeypatch.setattr(systemd_unit, "_group_exists", lambda name: True)
    text = systemd_unit.next_steps(Path("/etc/systemd/system/x"), "/opt/v/bin/python",
                                   Path("/etc/series4000-bridge/config.yaml"), "series4000")
    assert "usermod -aG dialout,gpio series4000" in text and "useradd" not in text
    assert "no gpio group" not in text
