"""A private Mosquitto broker on a free loopback port, for ``demo`` and the test suite.

Nothing here is used by ``run``: the service connects to the broker the configuration names.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for directory in SEARCH_PATH:
        candidate = Path(directory) / "mosquitto"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class Broker:
    """A running Mosquitto; ``stop()`` kills it, ``start()`` brings it back on the same port."""

    host: str = "127.0.0.1"
    port: int = 0
    extra_config: str = ""
    # The configuration and log live here while the broker runs; stop() removes the folder,
    # whether Mosquitto stopped on request or was killed, and start() makes a new one.
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError(
                "the Mosquitto broker is not installed: run `make test` (it installs the Debian "
                "package 'mosquitto') or `sudo apt-get install mosquitto`")
        if not self.port:
            self.port = free_port(self.host)
        self.workdir = Path(tempfile.mkdtemp(prefix="mosq-"))
        conf = self.workdir / "mosquitto.conf"
        listener = self.extra_config or (
            f"listener {self.port} {self.host}\nallow_anonymous true\n")
        # Started as root, Mosquitto switches to the user "mosquitto", which cannot read the
        # certificates and password files a private temporary directory holds.
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(f"persistence false\n{user}{listener}log_dest stderr\n"
                        "log_type error\nlog_type warning\n")
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log,
                                        start_new_session=True)
        log.close()
        if not wait_port(self.host, self.port):
            why = (self.workdir / "mosquitto.log").read_text()[-500:]
            self.stop()
            raise RuntimeError(f"mosquitto did not start on {self.host}:{self.port}: {why}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
