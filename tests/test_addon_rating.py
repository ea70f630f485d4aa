"""The Supervisor's security rating for the add-on: 8, and what each key would cost."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.addon_rating import rating_security

ADDON = Path(__file__).resolve().parent.parent / "addon" / "series4000"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = yaml.safe_load((ADDON / "config.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_add_on_is_rated_8(config: dict[str, Any]) -> None:
    assert rating_security(config, (ADDON / "apparmor.txt").is_file()) == 8


def test_the_docs_show_the_computed_rating(config: dict[str, Any]) -> None:
    docs = (ADDON / "DOCS.md").read_text()
    shown = re.search(r"security rating is \*\*(\d)\*\*", docs)
    assert shown, "DOCS.md does not show the security rating"
    assert int(shown.group(1)) == rating_security(config, (ADDON / "apparmor.txt").is_file())


RATINGS = [
    ({}, False, 5),
    ({}, True, 6),
    ({"apparmor": False}, True, 4),
    ({"ingress": True}, False, 7),
    ({"ingress": True}, True, 8),
    ({"auth_api": True}, False, 6),
    ({"ingress": True, "auth_api": True}, True, 8),
    ({"ingress": True, "privileged": ["SYS_ADMIN"]}, True, 7),
    ({"ingress": True, "privileged": ["SYS_NICE"]}, True, 8),
    ({"ingress": True, "kernel_modules": True}, True, 7),
    ({"ingress": True, "hassio_role": "manager"}, True, 7),
    ({"ingress": True, "hassio_role": "admin"}, True, 6),
    ({"ingress": True, "hassio_role": "homeassistant"}, True, 8),
    ({"ingress": True, "host_network": True}, True, 7),
    ({"ingress": True, "host_pid": True}, True, 6),
    ({"ingress": True, "host_uts": True}, True, 8),
    ({"ingress": True, "host_uts": True, "privileged": ["SYS_ADMIN"]}, True, 6),
    ({"ingress": True, "full_access": True}, True, 1),
    ({"ingress": True, "docker_api": True}, True, 1),
    ({"apparmor": False, "host_pid": True, "host_network": True, "hassio_role": "admin",
      "privileged": ["NET_ADMIN"]}, False, 1),  # 5 - 1 - 2 - 1 - 2 - 1, kept at 1
]


@pytest.mark.parametrize(("config_keys", "has_profile", "expected"), RATINGS)
def test_the_rating_follows_the_supervisors_rules(config_keys: dict[str, Any], has_profile: bool,
                                                  expected: int) -> None:
    assert rating_security(config_keys, has_profile) == expected


def test_what_ours_would_be_without_ingress_or_its_profile(config: dict[str, Any]) -> None:
    assert rating_security(config, False) == 7
    assert rating_security({k: v for k, v in config.items() if k != "ingress"}, True) == 6
