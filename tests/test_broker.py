"""The private broker the demo and the tests start: its folder goes when it stops, however
Mosquitto ended, and it comes back on the same port."""

from __future__ import annotations

import os
import signal
import socket

from bridge.sim.broker import Broker


def accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_stop_removes_the_folder_and_start_comes_back_on_the_same_port() -> None:
    broker = Broker().start()
    try:
        first = broker.workdir
        assert first is not None and (first / "mosquitto.conf").is_file()
        broker.stop()
        assert not first.exists() and not accepts(broker.port)
        broker.start()
        assert broker.workdir is not None and broker.workdir.is_dir()
        assert accepts(broker.port)
    finally:
        broker.stop()
    assert broker.workdir is None


def test_a_killed_broker_leaves_no_folder() -> None:
    broker = Broker().start()
    try:
        assert broker.process is not None and broker.workdir is not None
        workdir = broker.workdir
        os.kill(broker.process.pid, signal.SIGKILL)
        broker.process.wait(timeout=10)
    finally:
        broker.stop()
    assert not workdir.exists()
