"""What a process touched, from ``strace -f -y -e trace=file,network`` output (pure).

Each line becomes the access AppArmor would mediate, named as AppArmor names it:

* ``open``/``openat``: the file the kernel opened (``-y`` prints it resolved after the result),
  needing ``r``, ``w`` or both from the flags, ``m`` for a shared object (it is mapped
  executable next), a trailing ``/`` for a directory (``O_DIRECTORY``, or one opened to be
  synced after a rename, which the directory test finds);
* the ``stat`` family, ``access``, ``readlink``: ``r`` (AppArmor's getattr), on the resolved
  path unless the call does not follow a final symlink;
* ``mkdir``, ``rename`` (both names), ``unlink``, ``rmdir``, ``chmod``...: ``w``;
* ``execve``: ``x``;
* ``socket``/``socketpair``: the family and type (``network inet stream``); the calls on a
  socket after it exists are mediated by the same rule.

A call that failed before reaching a file (ENOENT, EEXIST, ENOTDIR...) was never mediated and
is left out; one refused with EACCES or EPERM is kept. Calls on a descriptor alone (``fstat``,
``statx`` with ``AT_EMPTY_PATH``) were checked when the descriptor was opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: strace's quoted strings, C escapes inside.
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LINE = re.compile(r"^(?:(?P<pid>\d+)\s+)?(?P<call>\w+)\((?P<args>.*)\)\s+=\s+"
                   r"(?P<result>-?\d+|\?)(?P<fdpath><[^>]*>)?(?:\s+(?P<errno>E[A-Z]+))?")
_DIRFD = re.compile(r"^(?:AT_FDCWD|\d+)<([^>]*)>")

_OPEN = ("open", "openat", "openat2", "creat")
_STAT = ("stat", "lstat", "newfstatat", "fstatat64", "statx", "access", "faccessat",
         "faccessat2", "readlink", "readlinkat")
_WRITE = ("mkdir", "mkdirat", "unlink", "unlinkat", "rmdir", "chmod", "fchmodat", "chown",
          "lchown", "fchownat", "truncate", "utimensat", "mknod", "mknodat", "symlink",
          "symlinkat", "link", "linkat")
_RENAME = ("rename", "renameat", "renameat2")
#: Calls with a path that AppArmor does not mediate.
_UNMEDIATED = ("chdir", "getcwd", "statfs", "fstatfs", "inotify_add_watch")
#: Network calls on an existing socket: mediated by the rule that let it be created.
_SOCKET_OPS = ("bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername",
               "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
               "setsockopt", "getsockopt", "shutdown")
_MEDIATED_ERRORS = ("EACCES", "EPERM")
_SHARED_OBJECT = re.compile(r"\.so(?:\.[\d.]+)?$")


@dataclass(frozen=True, slots=True)
class FileAccess:
    call: str
    path: str  # absolute, resolved as the kernel names it; directories end with "/"
    needs: frozenset[str]


@dataclass(frozen=True, slots=True)
class SocketUse:
    call: str
    family: str  # "inet", "inet6", "unix", "netlink"...
    sock_type: str  # "stream", "dgram", "raw"...


Access = FileAccess | SocketUse
#: The resolved name of a path (os.path.realpath here; a table in unit tests).
Resolver = Callable[[str], str]
#: Whether a path is a directory (os.path.isdir here), for an open without O_DIRECTORY.
DirTest = Callable[[str], bool]


def unescape(text: str) -> str:
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def parse_line(line: str, resolve: Resolver = os.path.realpath,
               is_dir: DirTest = os.path.isdir) -> list[Access]:
    """The accesses one strace line shows (none for most network and unmediated calls)."""
    match = _LINE.match(line.strip())
    if match is None:
        if line.startswith(("---", "+++")) or re.match(r"^\d+\s+(---|\+\+\+)", line) \
                or not line.strip():
            return []
        raise ValueError(f"strace line not understood: {line!r}")
    call, args = match["call"], match["args"]
    failed = match["result"].startswith("-")
    if failed and match["errno"] not in _MEDIATED_ERRORS:
        return []
    if call in ("socket", "socketpair"):
        return [_socket(call, args)]
    if call in _SOCKET_OPS or call in _UNMEDIATED:
        return []
    strings = [unescape(s) for s in _STRING.findall(args)]
    base = _base_dir(args)
    if call in _OPEN:
        return [_open(call, args, strings, base, match["fdpath"], resolve, is_dir)]
    if call in _STAT:
        if not strings or (strings[0] == "" and "AT_EMPTY_PATH" in args):
            return []
        nofollow = call in ("lstat", "readlink", "readlinkat") or "AT_SYMLINK_NOFOLLOW" in args
        path = _name(_absolute(strings[0], base), nofollow, resolve)
        is_dir = "S_IFDIR" in args
        return [FileAccess(call, _dir(path, is_dir), frozenset("r"))]
    if call in _RENAME:
        bases = _all_dirfds(args) or [base]
        olds = [_absolute(s, bases[min(i, len(bases) - 1)]) for i, s in enumerate(strings[:2])]
        return [FileAccess(call, _name(p, True, resolve), frozenset("w")) for p in olds]
    if call in _WRITE:
        path = _name(_absolute(strings[0], base), True, resolve)
        return [FileAccess(call, _dir(path, call.startswith(("mkdir", "rmdir"))),
                           frozenset("w"))]
    if call == "execve":
        return [FileAccess(call, resolve(_absolute(strings[0], base)), frozenset("x"))]
    raise ValueError(f"strace call {call} is not classified: {line!r}")


def parse_log(lines: Iterable[str], resolve: Resolver = os.path.realpath,
              is_dir: DirTest = os.path.isdir) -> list[Access]:
    out: list[Access] = []
    for line in lines:
        out += parse_line(line, resolve, is_dir)
    return out


# ---------------------------------------------------------------------------------------------


def _socket(call: str, args: str) -> SocketUse:
    family, kind = (a.strip() for a in args.split(",")[:2])
    sock_type = kind.split("|")[0]
    return SocketUse(call, family.removeprefix("AF_").lower(),
                     sock_type.removeprefix("SOCK_").lower())


def _base_dir(args: str) -> str | None:
    found = _DIRFD.match(args)
    return found.group(1) if found else None


def _all_dirfds(args: str) -> list[str]:
    return re.findall(r"(?:AT_FDCWD|\d+)<([^>]*)>", args)


def _absolute(path: str, base: str | None) -> str:
    if path.startswith("/"):
        return path
    if base is None:
        raise ValueError(f"relative path {path!r} without a directory")
    return os.path.join(base, path)


def _name(path: str, nofollow: bool, resolve: Resolver) -> str:
    """The name AppArmor sees: symlinks resolved, but not a final one when not followed."""
    if not nofollow:
        return resolve(path)
    parent, leaf = os.path.split(path.rstrip("/") or "/")
    return os.path.join(resolve(parent), leaf) if leaf else "/"


def _dir(path: str, is_dir: bool) -> str:
    return path if not is_dir or path.endswith("/") else path + "/"


def _open(call: str, args: str, strings: list[str], base: str | None, fdpath: str | None,
          resolve: Resolver, is_dir: DirTest) -> FileAccess:
    flags = args.split(",")
    flag_text = next((f for f in flags if "O_" in f), "O_RDONLY")
    needs = set()
    if "O_RDWR" in flag_text:
        needs |= {"r", "w"}
    elif "O_WRONLY" in flag_text:
        needs.add("w")
    else:
        needs.add("r")
    if "O_CREAT" in flag_text or "O_TRUNC" in flag_text:
        needs.add("w")
    if "O_APPEND" in flag_text and "w" in needs and "O_CREAT" not in flag_text:
        needs = (needs - {"w"}) | {"a"}
    # What the kernel opened, resolved; when refused, the name asked for.
    path = fdpath[1:-1] if fdpath else resolve(_absolute(strings[0], base))
    directory = "O_DIRECTORY" in flag_text or is_dir(path)
    if _SHARED_OBJECT.search(path):
        needs.add("m")
    return FileAccess(call, _dir(path, directory), frozenset(needs))
