"""Paths of a test run, renamed to where the add-on image keeps the same files (pure).

The add-on test runs the bridge from this checkout in a virtual environment on Debian; the
image runs it from site-packages of the base image's Python on Alpine. So a path the traced
bridge touched is renamed before it is checked against the profile:

* the checkout's ``bridge/`` -> ``/usr/local/lib/python3.X/site-packages/bridge/`` (the image
  installs the bridge's wheel), the venv's site-packages -> that site-packages, the venv's
  ``bin/python*`` and the interpreter's own ``bin/``, ``lib/python3.Y/`` and ``libpython`` ->
  ``/usr/local/...`` (the base image builds Python into /usr/local), with the test's Python
  version replaced by the image's;
* the test's data directory -> ``/data``, its temporary directory -> ``/tmp``, each simulated
  meter's pseudo-terminal -> the adapter it stands for (``/dev/ttyUSB0``);
* a directory above one of these -> the directory as far above its image location (clamped at
  ``/``): Python looks at the directories above its prefix and executable;
* the driver's directory (``tests/``, first on ``sys.path`` as the image's working directory
  ``/`` is for ``python3 -m bridge.addon``) -> ``/``; the driver's own files -> left out;
* the venv's own files (``pyvenv.cfg``) and glibc's files (``/etc/ld.so.cache``, locales,
  gconv) -> left out: the image has no venv and its C library, musl, reads none of them;
* everything else (``/etc/ssl``, ``/usr/lib/*.so``, ``/sys``...) keeps its name.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

IMAGE_PREFIX = "/usr/local"
#: glibc's files (this test's C library); musl, the image's, reads none of them.
GLIBC_ONLY = re.compile(r"^(?:/etc/ld\.so\.(?:cache|preload)|/etc/locale\.alias"
                        r"|/usr/lib/locale/.*|/usr/share/locale/.*|/usr/lib/[^/]+/gconv/.*)$")


@dataclass(frozen=True, slots=True)
class Layout:
    checkout: str
    venv: str  # sys.prefix
    python_prefix: str  # sys.base_prefix
    python_version: str  # "3.11": the test's
    image_python_version: str  # "3.13": the base image's
    data_dir: str
    tmp_dir: str
    #: pseudo-terminal -> the serial device it stands for in the add-on
    serial: dict[str, str] = field(default_factory=dict)

    @property
    def site_packages(self) -> str:
        return f"{IMAGE_PREFIX}/lib/python{self.image_python_version}/site-packages"

    def _roots(self) -> list[tuple[str, str]]:
        """(test directory, image directory), most specific first."""
        v = self.python_version
        return [
            (self.data_dir, "/data"),
            (self.tmp_dir, "/tmp"),
            (f"{self.checkout}/bridge", f"{self.site_packages}/bridge"),
            (f"{self.venv}/lib/python{v}/site-packages", self.site_packages),
            (f"{self.venv}/bin", f"{IMAGE_PREFIX}/bin"),
            (f"{self.python_prefix}/lib/python{v}",
             f"{IMAGE_PREFIX}/lib/python{self.image_python_version}"),
            (f"{self.python_prefix}/bin", f"{IMAGE_PREFIX}/bin"),
            (f"{self.python_prefix}/lib", f"{IMAGE_PREFIX}/lib"),
        ]

    def to_image(self, path: str) -> str | None:
        """The image's name for ``path``; ``None`` for what the image does not have."""
        is_dir = path.endswith("/") and path != "/"
        bare = path.rstrip("/") or "/"
        mapped = self._map(bare)
        if mapped is None or mapped == "/":
            return mapped
        return mapped + "/" if is_dir else mapped

    def _map(self, path: str) -> str | None:
        if path in self.serial:
            return self.serial[path]
        driver = f"{self.checkout}/tests"
        if path == driver:
            return "/"
        if path.startswith(driver + "/") or GLIBC_ONLY.match(path):
            return None
        for test_root, image_root in self._roots():
            if path == test_root or path.startswith(test_root + "/"):
                return self._version(image_root + path[len(test_root):])
        if path.startswith(self.venv + "/"):
            return None  # pyvenv.cfg and the venv's other bookkeeping
        for test_root, image_root in self._roots():
            if test_root.startswith(path.rstrip("/") + "/") or path == "/":
                up = test_root[len(path.rstrip("/")):].count("/")
                return _up(image_root, up)
        return path

    def _version(self, path: str) -> str:
        """The test's Python version in file names -> the image's."""
        test, image = self.python_version, self.image_python_version
        path = re.sub(rf"(python|libpython){re.escape(test)}(?=\b|\.|$)", rf"\g<1>{image}", path)
        path = path.replace(f"cpython-{test.replace('.', '')}", f"cpython-{image.replace('.', '')}")
        return path


def _up(path: str, levels: int) -> str:
    for _ in range(levels):
        path = posixpath.dirname(path)
    return path
