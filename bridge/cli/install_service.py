"""``python -m bridge install-service``: the systemd unit for a Raspberry Pi (or any systemd host).

The command writes one file, the unit, filled in with the Python of the environment it runs
from (a venv or pipx environment: the unit must not depend on PATH, and that Python finds the
installed ``bridge``). Everything else needs root and choices that belong to the administrator
(the service user, the config file and its permissions), so it prints those commands instead
of running them.

The unit runs the bridge as an unprivileged user with ``ProtectHome=yes``: a Python under
/home or /root would be invisible to it, and Raspberry Pi OS keeps home directories private
anyway, so such an environment is refused with the reason.
"""

from __future__ import annotations

import grp
import pwd
import re
import sys
from importlib import resources
from pathlib import Path
from typing import TextIO

from bridge.errors import BridgeError

UNIT_NAME = "series4000-bridge.service"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_CONFIG = Path("/etc/series4000-bridge/config.yaml")
DEFAULT_USER = "series4000"
STATE_DIR = Path("/var/lib/series4000-bridge")
#: Hidden from the service by ProtectHome=yes.
HIDDEN = (Path("/home"), Path("/root"), Path("/run/user"))
#: Characters that systemd would interpret in ExecStart (quoting, specifiers, variables).
_UNSAFE = re.compile(r"[\s\"'\\%$;]")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class InstallError(BridgeError):
    """The unit cannot be written as asked; the message says what to do instead."""


def template() -> str:
    return resources.files("bridge").joinpath("resources", UNIT_NAME).read_text("utf-8")


def render(python: str, config: Path, user: str) -> str:
    """The unit text; raise :class:`InstallError` for values the unit cannot carry."""
    for what, value in (("Python", python), ("config file", str(config))):
        if not Path(value).is_absolute():
            raise InstallError(f"{what} {value}: needs an absolute path")
        if _UNSAFE.search(value):
            raise InstallError(f"{what} {value!r}: spaces, quotes, %, $ and ; cannot go "
                               "into the unit's ExecStart; use a path without them")
    if not _USER.match(user):
        raise InstallError(f"user {user!r}: use a plain system user name such as "
                           f"{DEFAULT_USER}")
    return (template().replace("@PYTHON@", python).replace("@CONFIG@", str(config))
            .replace("@USER@", user))


def hidden_from_service(path: Path) -> bool:
    return any(path == h or h in path.parents for h in HIDDEN)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def next_steps(unit: Path, python: str, config: Path, user: str) -> str:
    """The commands that remain, for the administrator to run as root."""
    groups = [g for g in ("dialout", "gpio") if _group_exists(g)]
    group_list = ",".join(groups)
    lines = [f"Wrote {unit}. Next, as root:", ""]
    if _user_exists(user):
        if groups:
            lines.append(f"  usermod -aG {group_list} {user}")
    else:
        lines.append(f"  useradd --system --user-group --no-create-home --home-dir {STATE_DIR} "
                     f"--shell /usr/sbin/nologin" + (f" --groups {group_list}" if groups else "")
                     + f" {user}")
    lines += [
        f"  install -d -m 0755 {config.parent}",
        f"  install -m 0640 -o root -g {user} config.yaml {config}",
        f"  {python} -m bridge check-config {config}",
        "  systemctl daemon-reload",
        f"  systemctl enable --now {UNIT_NAME.removesuffix('.service')}",
        f"  journalctl -u {UNIT_NAME.removesuffix('.service')} -f",
        "",
        f"In config.yaml, set state_dir: {STATE_DIR} (the one directory the service may write).",
    ]
    if "gpio" not in groups:
        lines.append("There is no gpio group here: pulse and alarm inputs need read/write "
                     "access to /dev/gpiochip* for the service user.")
    return "\n".join(lines)


def install_service(unit_dir: Path, python: str, config: Path, user: str, dry_run: bool,
                    out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Write the unit into ``unit_dir`` (or print it with ``dry_run``) and say what is next."""
    out = out or sys.stdout
    err = err or sys.stderr
    text = render(python, config, user)
    for what, path in (("the Python", Path(python)), ("the config file", config)):
        if hidden_from_service(path):
            message = (f"{what} {path} is under {', '.join(map(str, HIDDEN))}, which the "
                       "service cannot see (ProtectHome=yes, and the service user cannot enter "
                       "other users' home directories): install the bridge into "
                       "/opt/series4000-bridge (see the install guide) and run this command "
                       "with that Python")
            if not dry_run:
                raise InstallError(message)
            print(f"warning: {message}", file=err)
    if dry_run:
        out.write(text)
        return 0
    if not unit_dir.is_dir():
        raise InstallError(f"{unit_dir}: no such directory (is this a systemd system?)")
    unit = unit_dir / UNIT_NAME
    existed = unit.exists()
    try:
        unit.write_text(text, encoding="utf-8")
        unit.chmod(0o644)
    except OSError as exc:
        hint = " (run it with sudo)" if isinstance(exc, PermissionError) else ""
        raise InstallError(f"cannot write {unit}: {exc.strerror}{hint}") from None
    if existed:
        print(f"(replaced the existing {unit})", file=out)
    print(next_steps(unit, python, config, user), file=out)
    return 0
