"""The add-on's entry point, as the image runs it, with a pulse input on the fake GPIO backend.

Usage: python tests/addon_child.py [python -m bridge.addon arguments]

The add-on test runs this under strace: everything but the GPIO lines is the add-on's own code
path (options -> /data/config.yaml -> the bridge). The fake line delivers ``PULSES`` pulses as
soon as the bridge requests it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bridge.addon.entry import main, run_bridge
from bridge.config import Config
from bridge.gpio.fake import FakeGpioBackend, FakeLineRequest

PULSES = 20


class PulsingBackend(FakeGpioBackend):
    def request_line(self, chip: str | None, line: str | int, **kwargs: Any) -> FakeLineRequest:
        request = super().request_line(chip, line, **kwargs)
        request.line.pulse_train(PULSES, 0.05)
        return request


def runner(config: Config, health_file: Path) -> int:
    return run_bridge(config, health_file, gpio_backend=PulsingBackend())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], runner=runner))
