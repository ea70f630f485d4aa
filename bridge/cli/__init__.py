"""The command line: ``python -m bridge <verb>``."""

from bridge.cli.main import main

__all__ = ["main"]
