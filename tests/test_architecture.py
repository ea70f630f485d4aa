"""The package layout stays what docs/architecture.md says: small modules, few at the top.

The import rules themselves are import-linter contracts in pyproject.toml (``make lint``).
"""

from __future__ import annotations

from pathlib import Path

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"
#: A module owns one thing; past this it is doing two.
MAX_MODULE_LINES = 400
#: The package's own top level: entry point, version, the exception tree and the atomic file
#: writer every layer may use (the configuration is the package ``bridge/config/``).
TOP_LEVEL = {"__init__.py", "__main__.py", "errors.py", "files.py"}


def test_no_module_over_the_limit() -> None:
    long = {str(p.relative_to(BRIDGE)): n for p in BRIDGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_only_a_handful_of_modules_at_the_top() -> None:
    top = {p.name for p in BRIDGE.glob("*.py")}
    assert top <= TOP_LEVEL, top - TOP_LEVEL
