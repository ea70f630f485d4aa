"""The add-on's entry point, as the image runs it, with a pulse input on the fake GPIO backend.

Usage: python tests/addon_child.py [python -m bridge.addon arguments]

The add-on test runs this under strace: everything but the GPIO lines is the add-on's own code
path (options -> /data/config.yaml -> the bridge). The fake line delivers ``PULSES`` pulses as
soon as the bridge requests it. When ``WEB_PORT_ENV`` is set, the status page listens on that
port and serves the test on loopback, where the add-on serves only the Supervisor's ingress
gateway: the test cannot connect from the gateway's address, and the server and the page are
the same either way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from bridge.addon.entry import main, run_bridge
from bridge.config import Config
from bridge.gpio.fake import FakeGpioBackend, FakeLineRequest

PULSES = 10
WEB_PORT_ENV = "SERIES4000_TEST_WEB_PORT"


class PulsingBackend(FakeGpioBackend):
    def request_line(self, chip: str | None, line: str | int, **kwargs: Any) -> FakeLineRequest:
        request = super().request_line(chip, line, **kwargs)
        request.line.pulse_train(PULSES, 0.5)
        return request


def for_the_test(config: Config) -> Config:
    web = getattr(config, "web", None)
    port = os.environ.get(WEB_PORT_ENV)
    if web is None or port is None:
        return config
    web = web.model_copy(update={"port": int(port), "allowed_clients": ["127.0.0.1"]})
    return config.model_copy(update={"web": web})


def runner(config: Config, health_file: Path) -> int:
    return run_bridge(for_the_test(config), health_file, gpio_backend=PulsingBackend())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], runner=runner))
