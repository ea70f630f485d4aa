"""Atomic, durable file replacement: the one writer of every file the bridge keeps.

The pulse totals, the discovery record, the add-on's configuration and its health file all go
through :func:`write_atomic`: the data goes to a temporary file in the same directory, which is
fsync'd, renamed over the old file, and the directory is fsync'd, so after a crash or a power
cut the file holds the old or the new content, never part of one; on any error the temporary
file is removed. The mechanics are atomicwrites' (the fork Home Assistant maintains).

The temporary file has a fixed name next to the target (``.<name>.tmp``), so one left behind by
a process killed mid-write is simply overwritten by the next write rather than piling up. Each
file has one writer in the bridge, so the fixed name is never shared.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from atomicwrites import AtomicWriter


class _FixedTempWriter(AtomicWriter):  # type: ignore[misc]  # the library is untyped
    file_mode = 0o600

    def get_fileobject(self, suffix: str = "", prefix: str = "", dir: str | None = None,
                       **kwargs: Any) -> IO[Any]:
        def opener(name: str, flags: int) -> int:
            fd = os.open(name, flags | os.O_CLOEXEC, self.file_mode)
            os.fchmod(fd, self.file_mode)  # an existing temp file keeps its old mode otherwise
            return fd

        return open(temp_path(Path(self._path)), self._mode, opener=opener)


def temp_path(path: Path) -> Path:
    """Where :func:`write_atomic` writes before the rename."""
    return path.with_name(f".{path.name}.tmp")


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (creating its directory).

    ``mode`` is the new file's permission (owner-only by default: the files hold totals, the
    broker account or the discovery record). Raises OSError, with nothing left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = _FixedTempWriter(str(path), mode="wb", overwrite=True)
    writer.file_mode = mode
    with writer.open() as f:
        f.write(data)
