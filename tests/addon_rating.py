"""The security rating the Supervisor shows for an add-on, from its config.yaml (pure).

The same rules as the Supervisor's ``rating_security``, with its defaults for keys config.yaml
leaves out: start at 5; AppArmor off -1, a profile of the add-on's own (``apparmor.txt``
beside config.yaml) +1; ingress +2, else the Home Assistant login API +1; signed +1 (the
Supervisor signs nothing today, so never); a dangerous capability or kernel modules -1; the
Supervisor API's manager role -1, admin -2; the host's network -1, its PID namespace -2, its
UTS namespace with SYS_ADMIN -1; Docker API or full hardware access: 1 whatever else. The
result is kept within 1..8.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Capabilities that cost a point (the Supervisor's list).
DANGEROUS_CAPABILITIES = frozenset({
    "BPF", "CHECKPOINT_RESTORE", "DAC_READ_SEARCH", "NET_ADMIN", "NET_RAW", "PERFMON",
    "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO"})
BEST, WORST = 8, 1


def rating_security(config: Mapping[str, Any], has_apparmor_profile: bool) -> int:
    rating = 5
    if not config.get("apparmor", True):
        rating -= 1
    elif has_apparmor_profile:
        rating += 1

    if config.get("ingress", False):
        rating += 2
    elif config.get("auth_api", False):
        rating += 1

    privileged = set(config.get("privileged", []))
    if privileged & DANGEROUS_CAPABILITIES or config.get("kernel_modules", False):
        rating -= 1

    role = config.get("hassio_role", "default")
    if role == "manager":
        rating -= 1
    elif role == "admin":
        rating -= 2

    if config.get("host_network", False):
        rating -= 1
    if config.get("host_pid", False):
        rating -= 2
    if config.get("host_uts", False) and "SYS_ADMIN" in privileged:
        rating -= 1

    if config.get("docker_api", False) or config.get("full_access", False):
        rating = WORST
    return max(min(BEST, rating), WORST)
