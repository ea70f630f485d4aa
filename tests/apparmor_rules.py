"""AppArmor profiles read for what they allow: the rule forms the add-on's profile uses (pure).

Enough of the policy language to answer "does this profile allow that access?" for the
add-on's ``apparmor.txt``: nested ``profile NAME flags=(...) { ... }`` blocks; path rules
``[owner] PATH PERMS[ -> TARGET],`` with ``r w a k l m`` and the exec modes (``ix``, ``cx``,
...); the bare ``file,`` rule (all file access); ``network [FAMILY] [TYPE],``. Other rules
(signal, capability, ...) are kept by kind and not interpreted; ``#include`` lines are not
followed (the add-on's needs must be met by its own rules, not by a host's abstraction, which
differs between the distributions that load the profile). ``apparmor_parser`` checks the syntax;
this checks the meaning of what it accepted.

Globs as apparmor.d(5) and the parser define them: ``*`` any characters but ``/``, ``**`` any
characters, ``?`` one character but ``/``, ``[...]`` a class, ``{a,b}`` alternatives, ``\\``
an escape; a ``*`` or ``**`` right after ``/`` matches at least one character, so ``/data/**``
does not match the directory ``/data/`` itself (hence the ``/data/{,**}`` form). Directories
are named with a trailing ``/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Permission letters of a path rule; an exec mode (``ix``, ``cx``, ``Px``...) counts as ``x``.
FILE_PERMS = frozenset("rwaklmx")
_EXEC_MODE = re.compile(r"(?:[pPcCuU]i?|i)x")


@dataclass(frozen=True, slots=True)
class PathRule:
    glob: str
    perms: frozenset[str]
    #: The exec mode (``ix``, ``cx``...) and the profile a ``cx``/``px`` changes to.
    exec_mode: str | None = None
    target: str | None = None
    owner: bool = False

    def matches(self, path: str) -> bool:
        return glob_regex(self.glob).fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class NetworkRule:
    family: str | None = None  # None: every family
    sock_type: str | None = None  # None: every type

    def allows(self, family: str, sock_type: str) -> bool:
        return self.family in (None, family) and self.sock_type in (None, sock_type)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    path_rules: tuple[PathRule, ...] = ()
    network_rules: tuple[NetworkRule, ...] = ()
    #: The bare ``file,`` rule: every file access.
    all_files: bool = False
    #: Rules this module does not interpret, by their first word (``signal``, ...).
    other_rules: tuple[str, ...] = ()
    children: tuple[Profile, ...] = field(default=())

    def child(self, name: str) -> Profile:
        for profile in self.children:
            if profile.name == name:
                return profile
        raise KeyError(f"profile {self.name} has no child profile {name}")

    def perms_for(self, path: str) -> frozenset[str]:
        """The union of what every matching rule grants (AppArmor adds allow rules up)."""
        if self.all_files:
            return FILE_PERMS
        granted: set[str] = set()
        for rule in self.path_rules:
            if rule.matches(path):
                granted |= rule.perms
        return frozenset(granted)

    def allows(self, path: str, needed: frozenset[str]) -> bool:
        granted = self.perms_for(path)
        if "w" in granted:
            granted |= {"a"}  # write covers append
        return needed <= granted

    def exec_rule(self, path: str) -> PathRule | None:
        """The rule deciding what executing ``path`` does: an exact path wins over globs."""
        found = [r for r in self.path_rules if r.exec_mode and r.matches(path)]
        exact = [r for r in found if not _is_glob(r.glob)]
        chosen = exact or found
        return chosen[0] if chosen else None

    def allows_socket(self, family: str, sock_type: str) -> bool:
        return any(rule.allows(family, sock_type) for rule in self.network_rules)


# ---------------------------------------------------------------------------------------------
# globs


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[{")


def glob_regex(pattern: str) -> re.Pattern[str]:
    return _compile(pattern)


_CACHE: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    cached = _CACHE.get(pattern)
    if cached is None:
        cached = _CACHE[pattern] = re.compile(_translate(pattern))
    return cached


def _translate(pattern: str) -> str:
    if "@{" in pattern:
        raise ValueError(f"{pattern}: variables are not supported here")
    out: list[str] = []
    depth = 0  # inside {...}
    i = 0
    while i < len(pattern):
        c = pattern[i]
        after_slash = i > 0 and pattern[i - 1] == "/"
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            double = pattern[i + 1:i + 2] == "*"
            if double:
                out.append("[^/].*" if after_slash else ".*")
                i += 2
            else:
                out.append("[^/][^/]*" if after_slash else "[^/]*")
                i += 1
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^/" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise ValueError(f"{pattern}: unbalanced {{")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# profiles


_PROFILE_HEAD = re.compile(r"^profile\s+(\S+)(?:\s+flags=\([^)]*\))?\s*\{$")


def parse_profiles(text: str) -> list[Profile]:
    """The top-level profiles of a policy file, with their child profiles."""
    lines = [_strip_comment(line) for line in text.splitlines()]
    profiles, rest = _parse_block([ln for ln in lines if ln], top=True)
    assert not rest
    return profiles


def _strip_comment(line: str) -> str:
    line = line.strip()
    if line.startswith("#include") or line.startswith("include "):
        return ""
    return line.split("#", 1)[0].strip()


def _parse_block(lines: list[str], top: bool = False) -> tuple[list[Profile], list[str]]:
    """Profiles (top) or one profile's body up to its ``}``; returns what follows."""
    found: list[Profile] = []
    while lines:
        head = _PROFILE_HEAD.match(lines[0])
        if head is None:
            if top:
                raise ValueError(f"expected a profile, found {lines[0]!r}")
            break
        body_profile, lines = _parse_profile(head.group(1), lines[1:])
        found.append(body_profile)
    return found, lines


def _parse_profile(name: str, lines: list[str]) -> tuple[Profile, list[str]]:
    paths: list[PathRule] = []
    nets: list[NetworkRule] = []
    other: list[str] = []
    children: list[Profile] = []
    all_files = False
    while lines:
        line = lines[0]
        if line == "}":
            return Profile(name, tuple(paths), tuple(nets), all_files, tuple(other),
                           tuple(children)), lines[1:]
        if _PROFILE_HEAD.match(line):
            kids, lines = _parse_block(lines)
            children += kids
            continue
        if not line.endswith(","):
            raise ValueError(f"profile {name}: a rule must end with ',': {line!r}")
        rule = line[:-1].strip()
        words = rule.split()
        if rule == "file":
            all_files = True
        elif words[0] == "network":
            family, sock_type = [*words[1:], None, None][:2]
            nets.append(NetworkRule(family, sock_type))
        elif words[0] in ("owner", "audit") or words[0].startswith("/"):
            paths.append(parse_path_rule(rule))
        else:
            other.append(words[0])
        lines = lines[1:]
    raise ValueError(f"profile {name}: no closing '}}'")


def parse_path_rule(rule: str) -> PathRule:
    """``[audit] [owner] PATH PERMS [-> TARGET]`` (without the trailing comma)."""
    words = rule.split()
    owner = False
    while words and words[0] in ("audit", "owner"):
        owner = owner or words[0] == "owner"
        words = words[1:]
    target = None
    if "->" in words:
        at = words.index("->")
        target = words[at + 1]
        words = words[:at]
    if len(words) != 2:
        raise ValueError(f"{rule!r}: expected PATH PERMS")
    glob, letters = words
    exec_mode = None
    mode = _EXEC_MODE.search(letters)
    if mode:
        exec_mode = mode.group(0)
        letters = letters[:mode.start()] + letters[mode.end():] + "x"
    unknown = set(letters) - FILE_PERMS
    if unknown:
        raise ValueError(f"{rule!r}: unknown permission(s) {''.join(sorted(unknown))}")
    return PathRule(glob, frozenset(letters), exec_mode, target, owner)
