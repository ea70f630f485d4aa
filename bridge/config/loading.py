"""Reading the configuration file: YAML, ``${NAME}`` secrets from the environment, and errors
that start with the key path, e.g. ``buses[0].meters[1].unit: must be 1..247``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bridge.config.schema import Config
from bridge.errors import ConfigError

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")



def _expand_env(node: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{path or 'value'}: environment variable {name} is not set")
            return env[name]
        return _ENV_RE.sub(repl, node)
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), env)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", env) for i, v in enumerate(node)]
    return node


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "tagged-union")) or \
                part in ("int", "str", "float", "bool", "literal", "constrained-int"):
            continue
        else:
            out += f".{part}" if out else part
    return out


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    msg = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg[0].lower() + msg[1:] if msg else msg


#: A model-level check names the key it is about at the start of its message ("device: ...").
_KEYED_MSG = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*)(?::|\s*$)\s*(.*)$")


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = _loc(tuple(error["loc"]))
        msg = _message(error)
        keyed = _KEYED_MSG.match(msg)
        if keyed and error.get("type") == "value_error":
            key, rest = keyed.groups()
            path = f"{where}.{key}" if where and not key.startswith("[") else where + key
            lines.append(f"{path}: {rest}")
        else:
            lines.append(f"{where or 'config'}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed YAML document (a mapping) into a :class:`Config`."""
    if data is None:
        raise ConfigError("config: the file is empty")
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping of keys (mqtt:, buses:, ...)")
    data = _expand_env(data, "", os.environ if env is None else env)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte "
                          f"0x{exc.object[exc.start]:02x}); save the file as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    return parse_config(data, env)
