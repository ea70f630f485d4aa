"""The add-on's files: what the Supervisor and the add-on linter accept, and the image's steps.

config.yaml and build.yaml are checked against the add-on linter's JSON schemas
(tests/data/addon-linter, see SOURCE.md there) and against the rules its lint.py applies
beyond them. Without a Docker engine, the Dockerfile's steps are run as far as they go: the
add-on repository is assembled with ``make addon-repo``, and the Dockerfile's ``pip install``
runs in a fresh virtual environment.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import struct
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, ValidationError, validators

import bridge
from bridge.addon import options as addon_options
from tests.addon_support import OPTION_SETS

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "addon" / "series4000"
SCHEMAS = Path(__file__).resolve().parent / "data" / "addon-linter"
DEPRECATED_ARCH = ("armhf", "armv7", "i386")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = load_yaml(ADDON / "config.yaml")
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    data = load_yaml(ADDON / "build.yaml")
    assert isinstance(data, dict)
    return data


# ---------------------------------------------------------------------------------------------
# the linter: JSON schema, "uses a default value", and the rules of its lint.py


def _with_default_check(base: Any) -> Any:
    """A Draft 7 validator that also reports a property set to its schema default."""
    check_properties = base.VALIDATORS["properties"]

    def properties(validator: Any, props: Mapping[str, Any], instance: Any,
                   schema: Mapping[str, Any]) -> Iterator[ValidationError]:
        if validator.is_type(instance, "object"):
            for name, sub in props.items():
                if "default" in sub and name in instance and instance[name] == sub["default"]:
                    yield ValidationError(f"'{name}' should be removed, it uses a default value")
        yield from check_properties(validator, props, instance, schema)

    return validators.extend(base, {"properties": properties})


def lint(config: Mapping[str, Any], build: Mapping[str, Any] | None) -> tuple[list[str],
                                                                               list[str]]:
    """(errors, warnings) as the add-on linter reports them."""
    validator_class = _with_default_check(Draft7Validator)
    errors = [e.message for e in validator_class(
        json.loads((SCHEMAS / "config.schema.json").read_text())).iter_errors(config)]
    warnings = [f"arch {a} is deprecated" for a in config.get("arch", [])
                if a in DEPRECATED_ARCH]
    if config.get("advanced"):
        warnings.append("advanced")
    if config.get("ingress"):
        if config.get("webui"):
            errors.append("webui with ingress")
        if not config.get("host_network") and config.get("ingress_port", 8099) == 0:
            errors.append("ingress_port 0 without host_network")
    if config.get("full_access") and any(k in config for k in ("devices", "gpio", "uart", "usb")):
        errors.append("full_access with devices/gpio/uart/usb")
    if "auto_uart" in config:
        errors.append("auto_uart is deprecated")
    if any(":" in line for line in config.get("devices", [])):
        errors.append("devices uses the deprecated format")
    if not isinstance(config.get("tmpfs", False), bool):
        errors.append("tmpfs must be a boolean")
    if config.get("backup", "hot") == "cold":
        errors += [f"{k} with cold backups" for k in ("backup_pre", "backup_post")
                   if k in config]
    if config.get("watchdog"):
        errors.append("watchdog is obsolete: use a Docker HEALTHCHECK")
    if "codenotary" in config:
        errors.append("codenotary is deprecated")
    folders = {str(m).split(":")[0] for m in config.get("map", []) if isinstance(m, str)}
    if "config" in folders and folders & {"homeassistant_config", "addon_config"}:
        errors.append("map: config conflicts with homeassistant_config/addon_config")
    if build is not None:
        errors += [e.message for e in validator_class(
            json.loads((SCHEMAS / "build.schema.json").read_text())).iter_errors(build)]
        build_from = build.get("build_from")
        if isinstance(build_from, dict):
            warnings += [f"build arch {a} is deprecated" for a in build_from
                         if a in DEPRECATED_ARCH]
        errors += [f"{k} in build.yaml" for k in ("codenotary", "squash") if k in build]
    return errors, warnings


def test_config_and_build_pass_the_linter(config: dict[str, Any],
                                          build: dict[str, Any]) -> None:
    errors, warnings = lint(config, build)
    assert errors == []
    # armv7 is kept on purpose (older 32-bit installations); the linter warns about it.
    assert warnings == ["arch armv7 is deprecated", "build arch armv7 is deprecated"]


@pytest.mark.parametrize(("change", "expected"), [
    ({"boot": "auto"}, "'boot' should be removed, it uses a default value"),
    ({"init": True}, "'init' should be removed, it uses a default value"),
    ({"auto_uart": True}, "auto_uart is deprecated"),
    ({"devices": ["/dev/ttyUSB0:/dev/ttyUSB0:rwm"]}, "devices uses the deprecated format"),
    ({"full_access": True}, "full_access with devices/gpio/uart/usb"),
    ({"ingress": True, "webui": "http://[HOST]:[PORT:80]"}, "webui with ingress"),
    ({"watchdog": "tcp://[HOST]:[PORT:80]"}, "watchdog is obsolete"),
    ({"tmpfs": "size=10m"}, "tmpfs must be a boolean"),
    ({"ingress_port": 8099}, "'ingress_port' should be removed, it uses a default value"),
    ({"panel_icon": "mdi:puzzle"}, "'panel_icon' should be removed, it uses a default value"),
    ({"ingress": "yes"}, "'yes' is not of type 'boolean'"),
    ({"panel_title": 4000}, "4000 is not of type 'string'"),
    ({"arch": ["sparc"]}, "'sparc' is not one of"),
    ({"privileged": ["SYS_ADMIN"], "full_access": False}, "'full_access' should be removed"),
])
def test_the_lint_rules_catch_what_the_linter_rejects(config: dict[str, Any], change: Any,
                                                      expected: str) -> None:
    errors, _ = lint({**config, **change}, None)
    assert any(expected in e for e in errors), errors


def test_config_asks_for_what_the_bridge_needs_and_no_more(config: dict[str, Any]) -> None:
    assert config["slug"] == "series4000"
    assert config["arch"] == ["aarch64", "amd64", "armv7"]
    assert config["init"] is False  # the base image's s6-overlay /init must be PID 1
    assert config["services"] == ["mqtt:need"]
    assert config["uart"] is True and config["gpio"] is True
    for key in ("full_access", "privileged", "host_network", "docker_api", "hassio_api",
                "watchdog", "devices", "apparmor"):
        assert key not in config  # apparmor left at its default: on, with apparmor.txt


def test_ingress_serves_the_page_at_the_port_the_bridge_listens_on(
        config: dict[str, Any]) -> None:
    assert config["ingress"] is True
    assert config["panel_icon"].startswith("mdi:") and config["panel_title"]
    # The Supervisor proxies to its default ingress_port, which the linter wants left out;
    # the add-on's web section listens on that port and admits only the ingress gateway.
    assert "ingress_port" not in config
    schema = json.loads((SCHEMAS / "config.schema.json").read_text())
    assert addon_options.web_config()["port"] == schema["properties"]["ingress_port"]["default"]
    assert addon_options.web_config()["allowed_clients"] == [addon_options.INGRESS_GATEWAY]
    for key in ("webui", "ports", "ingress_entry", "panel_admin"):
        assert key not in config


# ---------------------------------------------------------------------------------------------
# options and schema


_ELEMENT = re.compile(
    r"^(?:bool|email|url|port|device(?:\(subsystem=[a-z]+\))?"
    r"|(?:str|password)(?:\(\d*,\d*\))?|int(?:\(-?\d*,-?\d*\))?"
    r"|float(?:\(-?[\d.]*,-?[\d.]*\))?|match\(.+\)|list\(.+\))\??$")


def supervisor_accepts(schema: Any, value: Any, where: str = "options") -> list[str]:
    """Problems the Supervisor's option check would report for ``value`` (types we use)."""
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [p for i, v in enumerate(value)
                for p in supervisor_accepts(schema[0], v, f"{where}[{i}]")]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where}: not a mapping"]
        problems = [f"{where}.{k}: not in the schema" for k in value if k not in schema]
        for key, sub in schema.items():
            if key in value:
                problems += supervisor_accepts(sub, value[key], f"{where}.{key}")
            elif not (isinstance(sub, str) and sub.endswith("?")):
                problems.append(f"{where}.{key}: missing")
        return problems
    kind = schema.rstrip("?")
    if kind.startswith("list("):
        ok = str(value) in kind[5:-1].split("|")
    elif kind.startswith("match("):
        ok = re.fullmatch(kind[6:-1], str(value)) is not None
    elif kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool) and _in(kind, value)
    elif kind.startswith("float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and _in(kind, value)
    elif kind == "port":
        ok = isinstance(value, int) and 1 <= value <= 65535
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:  # str, password, device
        ok = isinstance(value, str)
    return [] if ok else [f"{where}: {value!r} is not {schema}"]


def _in(kind: str, value: float) -> bool:
    match = re.search(r"\((-?[\d.]*),(-?[\d.]*)\)", kind)
    if not match:
        return True
    lo, hi = (float(x) if x else None for x in match.groups())
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _elements(schema: Any) -> Iterator[str]:
    if isinstance(schema, list):
        assert len(schema) == 1 and not isinstance(schema[0], list)
        yield from _elements(schema[0])
    elif isinstance(schema, dict):
        for sub in schema.values():
            yield from _elements(sub)
    else:
        yield schema


def test_schema_uses_only_supervisor_types_two_levels_deep(config: dict[str, Any]) -> None:
    for element in _elements(config["schema"]):
        assert _ELEMENT.match(element), element
    for key, sub in config["schema"].items():
        # Supervisors before 2025.09 allow a list of mappings of plain values, no deeper.
        inner = sub[0] if isinstance(sub, list) else sub
        if isinstance(inner, dict):
            assert all(isinstance(v, str) for v in inner.values()), key


def test_every_option_has_a_schema_entry_and_back(config: dict[str, Any]) -> None:
    assert set(config["options"]) == set(config["schema"])
    assert supervisor_accepts(config["schema"], config["options"]) == []


def test_schema_keys_are_the_keys_the_mapping_knows(config: dict[str, Any]) -> None:
    schema = config["schema"]
    assert tuple(schema) == addon_options.TOP_KEYS
    assert set(schema["buses"][0]) == set(addon_options.BUS_KEYS)
    assert set(schema["meters"][0]) == set(addon_options.METER_KEYS)
    assert set(schema["pulse_inputs"][0]) == set(addon_options.PULSE_KEYS)
    assert set(schema["alarm_inputs"][0]) == set(addon_options.ALARM_KEYS)
    assert set(schema["mqtt"]) == set(addon_options.MQTT_KEYS)


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_the_tests_option_sets_are_ones_the_supervisor_accepts(config: dict[str, Any],
                                                               name: str) -> None:
    assert supervisor_accepts(config["schema"], OPTION_SETS[name]) == []


def test_translations_cover_every_option(config: dict[str, Any]) -> None:
    translations = load_yaml(ADDON / "translations" / "en.yaml")["configuration"]

    def check(schema: Mapping[str, Any], entries: Mapping[str, Any], where: str) -> None:
        assert set(entries) == set(schema), where
        for key, sub in schema.items():
            entry = entries[key]
            assert entry.get("name") and entry.get("description"), f"{where}{key}"
            inner = sub[0] if isinstance(sub, list) else sub
            if isinstance(inner, dict):
                check(inner, entry.get("fields", {}), f"{where}{key}.")
            else:
                assert "fields" not in entry

    check(config["schema"], translations, "")


# ---------------------------------------------------------------------------------------------
# versions, images, build files


def test_versions_agree(config: dict[str, Any]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert config["version"] == version == bridge.__version__
    assert _requirements(ADDON / "requirements.txt")["series4000-bridge"] == (
        f"series4000-bridge=={version}")
    changelog = (ADDON / "CHANGELOG.md").read_text()
    assert re.search(r"^## (\S+)", changelog, re.M).group(1) == version  # type: ignore[union-attr]


def test_build_uses_official_python_base_images(config: dict[str, Any],
                                                build: dict[str, Any]) -> None:
    assert set(build["build_from"]) == set(config["arch"])
    for arch, image in build["build_from"].items():
        assert re.fullmatch(rf"ghcr\.io/home-assistant/{arch}-base-python:3\.13-alpine3\.\d+"
                            r"-\d{4}\.\d{2}\.\d+", image), image
    dockerfile = (ADDON / "Dockerfile").read_text()
    default = re.search(r"^ARG BUILD_FROM=(\S+)$", dockerfile, re.M)
    assert default and re.fullmatch(r"ghcr\.io/home-assistant/base-python:3\.13-alpine3\.\d+"
                                    r"-\d{4}\.\d{2}\.\d+", default.group(1))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_icon_and_logo_are_what_the_script_draws() -> None:
    assert _png_size(ADDON / "icon.png") == (128, 128)
    assert _png_size(ADDON / "logo.png") == (250, 100)
    spec = importlib.util.spec_from_file_location("draw_images", ROOT / "addon" / "draw_images.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.icon() == (ADDON / "icon.png").read_bytes()
    assert module.logo() == (ADDON / "logo.png").read_bytes()


def _requirements(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line}: not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = line
    return pins


def _dockerfile_pip_install() -> list[str]:
    """The Dockerfile's ``pip install`` arguments, with line continuations joined."""
    text = (ADDON / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"pip install ([^;]+);", text)
    assert match, "no pip install step in the Dockerfile"
    return shlex.split(match.group(1))


def test_dockerfile_installs_the_pinned_set_and_checks_health() -> None:
    text = (ADDON / "Dockerfile").read_text()
    assert "COPY requirements.txt /tmp/series4000/requirements.txt" in text
    assert "COPY wheels/ /tmp/series4000/wheels/" in text
    assert _dockerfile_pip_install() == [
        "--no-cache-dir", "--find-links", "/tmp/series4000/wheels",
        "--requirement", "/tmp/series4000/requirements.txt"]
    assert 'CMD ["python3", "-m", "bridge.addon"]' in text
    assert re.search(r'^HEALTHCHECK .*\\\n\s+CMD \["python3", "-m", "bridge.addon.health"\]',
                     text, re.M)


@pytest.mark.slow
def test_image_steps_in_a_fresh_venv(tmp_path: Path) -> None:
    """make addon-repo, then the Dockerfile's pip install into a new venv, then run it."""
    out = tmp_path / "addon-repository"
    built = subprocess.run(["make", "--no-print-directory", "addon-repo", f"ADDON_OUT={out}",
                            f"PYTHON={sys.executable}"], cwd=ROOT, check=True,
                           capture_output=True, text=True, timeout=300)
    # No deprecation banner from the build backend (the license as an SPDX string).
    assert "deprecated" not in built.stdout + built.stderr, built.stderr
    context = out / "series4000"
    assert (out / "repository.yaml").is_file()
    wheels = sorted((context / "wheels").glob("*.whl"))
    assert [w.name for w in wheels] == [f"series4000_bridge-{bridge.__version__}-py3-none-any.whl"]
    with zipfile.ZipFile(wheels[0]) as wheel:
        metadata = wheel.read(f"series4000_bridge-{bridge.__version__}.dist-info/METADATA")
    assert "License-Expression: MIT" in metadata.decode().splitlines()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    args = [a for a in _dockerfile_pip_install() if a != "--no-cache-dir"]
    args = [str(context / "wheels") if a == "/tmp/series4000/wheels" else
            str(context / "requirements.txt") if a == "/tmp/series4000/requirements.txt" else a
            for a in args]
    subprocess.run([python, "-m", "pip", "install", "--quiet", *args], check=True,
                   capture_output=True, timeout=600)

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, *cmd], check=False, capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)

    helped = run("-m", "bridge", "--help")
    assert helped.returncode == 0 and "install-service" in helped.stdout
    assert bridge.__version__ in run("-m", "bridge", "--version").stdout
    assert run("-m", "bridge.addon", "--help").returncode == 0
    assert run("-m", "bridge.addon.health", str(tmp_path / "none.json")).returncode == 1
    unit = run("-m", "bridge", "install-service", "--dry-run")
    assert unit.returncode == 0 and f"ExecStart={python} -m bridge run" in unit.stdout

    frozen = run("-m", "pip", "freeze", "--all", "--exclude", "pip", "--exclude", "setuptools",
                 "--exclude", "wheel")
    installed = {re.sub(r"[-_.]+", "-", line.split("==")[0].split(" @ ")[0]).lower()
                 for line in frozen.stdout.splitlines() if line.strip()}
    assert installed == set(_requirements(context / "requirements.txt"))
