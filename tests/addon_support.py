"""A stand-in for the Supervisor's services API on 127.0.0.1, for the add-on tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "test-supervisor-token"


@dataclass
class FakeSupervisor:
    """Answers ``GET /services/mqtt`` like the Supervisor; ``answers`` are used in turn (the
    last one repeats). Each answer is ``(status, json_body)``."""

    answers: list[tuple[int, Any]]
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    @staticmethod
    def ok(**data: Any) -> tuple[int, Any]:
        return 200, {"result": "ok", "data": data}

    @staticmethod
    def error(status: int, message: str) -> tuple[int, Any]:
        return status, {"result": "error", "message": message}


MOSQUITTO = {"host": "core-mosquitto", "port": 1883, "ssl": False, "protocol": "3.1.1",
             "username": "addons", "password": "s3cret-from-mosquitto", "app": "core_mosquitto"}


@contextmanager
def fake_supervisor(*answers: tuple[int, Any]) -> Iterator[FakeSupervisor]:
    fake = FakeSupervisor(list(answers))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append((self.path, self.headers.get("Authorization")))
            index = min(len(fake.requests), len(fake.answers)) - 1
            status, body = fake.answers[index]
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, body = 403, {"result": "error", "message": "invalid token"}
            elif self.path != "/services/mqtt":
                status, body = 404, {"result": "error", "message": "Service does not exist"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
