"""The pieces of the add-on's AppArmor check: globs, rules, strace lines, the image layout."""

from __future__ import annotations

import pytest

from tests.addon_layout import Layout
from tests.apparmor_rules import PathRule, parse_path_rule, parse_profiles
from tests.strace_log import FileAccess, SocketUse, parse_line

# ---------------------------------------------------------------------------------------------
# globs

GLOBS = [
    ("/data/**", "/data/config.yaml", True),
    ("/data/**", "/data/state/pulses.json", True),
    ("/data/**", "/data/state/", True),
    ("/data/**", "/data/", False),  # ** right after / needs at least one character
    ("/data/{,**}", "/data/", True),
    ("/data/{,**}", "/data/x/y", True),
    ("/data/*", "/data/config.yaml", True),
    ("/data/*", "/data/state/x", False),  # * stops at /
    ("/data/*", "/data/", False),
    ("/usr/local/bin/python3{,.13}", "/usr/local/bin/python3", True),
    ("/usr/local/bin/python3{,.13}", "/usr/local/bin/python3.13", True),
    ("/usr/local/bin/python3{,.13}", "/usr/local/bin/python3.12", False),
    ("/{usr/,}lib/**.so*", "/lib/ld-musl-x86_64.so.1", True),
    ("/{usr/,}lib/**.so*", "/usr/lib/x86_64-linux-gnu/libssl.so.3", True),
    ("/{usr/,}lib/**.so*", "/usr/lib/os.py", False),
    ("/{usr/,}lib/**.so*", "/usr/local/lib/libpython3.13.so", False),
    ("/dev/tty{USB,ACM,AMA,S,XRUSB}[0-9]*", "/dev/ttyUSB0", True),
    ("/dev/tty{USB,ACM,AMA,S,XRUSB}[0-9]*", "/dev/ttyAMA10", True),
    ("/dev/tty{USB,ACM,AMA,S,XRUSB}[0-9]*", "/dev/tty0", False),
    ("/dev/tty{USB,ACM,AMA,S,XRUSB}[0-9]*", "/dev/ttyUSB", False),
    ("/dev/tty{USB,ACM,AMA,S,XRUSB}[0-9]*", "/dev/pts/0", False),
    ("/dev/gpiochip[0-9]*", "/dev/gpiochip4", True),
    ("/dev/gpiochip[^0-9]", "/dev/gpiochipX", True),
    ("/dev/gpiochip[^0-9]", "/dev/gpiochip4", False),
    ("/run/{s6,s6-rc*,service}/**", "/run/s6-rc:s6-rc-init:x/servicedirs/a", True),
    ("/etc/{hosts,resolv.conf}", "/etc/resolv.conf", True),
    ("/etc/{hosts,resolv.conf}", "/etc/resolvXconf", False),  # . is literal
    ("/a?c", "/abc", True),
    ("/a?c", "/a/c", False),
    ("/weird\\{name", "/weird{name", True),
    ("/sys/{,bus/,bus/gpio/}", "/sys/bus/", True),
    ("/sys/{,bus/,bus/gpio/}", "/sys/dev/", False),
]


@pytest.mark.parametrize(("glob", "path", "expected"), GLOBS)
def test_globs_match_as_apparmor_matches(glob: str, path: str, expected: bool) -> None:
    assert PathRule(glob, frozenset("r")).matches(path) is expected


def test_variables_are_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="variables"):
        PathRule("@{PROC}/@{pid}/maps", frozenset("r")).matches("/proc/1/maps")


# ---------------------------------------------------------------------------------------------
# rules and profiles

RULES = [
    ("/data/** rw", PathRule("/data/**", frozenset("rw"))),
    ("owner /tmp/** rwk", PathRule("/tmp/**", frozenset("rwk"), owner=True)),
    ("/usr/local/lib/python3.13/**.so mr", PathRule("/usr/local/lib/python3.13/**.so",
                                                    frozenset("mr"))),
    ("/init ix", PathRule("/init", frozenset("x"), exec_mode="ix")),
    ("/etc/services.d/** rwix", PathRule("/etc/services.d/**", frozenset("rwx"), "ix")),
    ("/usr/local/bin/python3.13 cx -> bridge",
     PathRule("/usr/local/bin/python3.13", frozenset("x"), "cx", "bridge")),
    ("/usr/bin/foo Px", PathRule("/usr/bin/foo", frozenset("x"), "Px")),
]


@pytest.mark.parametrize(("text", "expected"), RULES)
def test_path_rules_parse(text: str, expected: PathRule) -> None:
    assert parse_path_rule(text) == expected


@pytest.mark.parametrize("text", ["/data/** rq", "/data/**", "/a /b r"])
def test_bad_path_rules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_path_rule(text)


POLICY = """\
#include <tunables/global>
profile outer flags=(attach_disconnected) {
  #include <abstractions/base>
  file,
  signal (send) set=(term),
  /usr/bin/** ix,
  /usr/bin/python3.13 cx -> inner,
  profile inner {
    /data/ r,
    /data/** rw,   # options and state
    /tmp/** a,
    network inet stream,
    network unix,
  }
}
"""


def test_profiles_parse_with_their_children() -> None:
    [outer] = parse_profiles(POLICY)
    inner = outer.child("inner")
    assert outer.all_files and outer.other_rules == ("signal",)
    assert not inner.all_files and len(inner.path_rules) == 3
    with pytest.raises(KeyError):
        outer.child("missing")


ALLOWS = [
    ("/data/", "r", True),
    ("/data/", "w", False),
    ("/data/state/x.json", "rw", True),
    ("/data/state/x.json", "rwk", False),
    ("/tmp/log", "a", True),
    ("/tmp/log", "w", False),
    ("/data/x", "a", True),  # w covers a
    ("/etc/passwd", "r", False),
]


@pytest.mark.parametrize(("path", "needs", "expected"), ALLOWS)
def test_a_profile_allows_the_union_of_its_matching_rules(path: str, needs: str,
                                                          expected: bool) -> None:
    inner = parse_profiles(POLICY)[0].child("inner")
    assert inner.allows(path, frozenset(needs)) is expected


def test_the_outer_file_rule_allows_every_file() -> None:
    assert parse_profiles(POLICY)[0].allows("/etc/shadow", frozenset("rw"))


@pytest.mark.parametrize(("family", "sock_type", "expected"), [
    ("inet", "stream", True), ("inet", "dgram", False), ("unix", "stream", True),
    ("unix", "dgram", True), ("inet6", "stream", False), ("netlink", "raw", False)])
def test_network_rules(family: str, sock_type: str, expected: bool) -> None:
    inner = parse_profiles(POLICY)[0].child("inner")
    assert inner.allows_socket(family, sock_type) is expected


def test_an_exact_exec_rule_wins_over_a_glob() -> None:
    outer = parse_profiles(POLICY)[0]
    python = outer.exec_rule("/usr/bin/python3.13")
    assert python is not None and (python.exec_mode, python.target) == ("cx", "inner")
    other = outer.exec_rule("/usr/bin/env")
    assert other is not None and other.exec_mode == "ix"
    assert outer.exec_rule("/opt/x") is None


# ---------------------------------------------------------------------------------------------
# strace lines

LINKS = {"/etc/localtime": "/usr/share/zoneinfo/Etc/UTC", "/venv/bin/python3": "/py/bin/python3.11"}


DIRECTORIES = {"/d", "/d/state"}


def resolve(path: str) -> str:
    return LINKS.get(path, path)


def is_dir(path: str) -> bool:
    return path in DIRECTORIES


LINES = [
    ('openat(AT_FDCWD</x>, "/etc/localtime", O_RDONLY|O_CLOEXEC) = 3</usr/share/zoneinfo/Etc/UTC>',
     [FileAccess("openat", "/usr/share/zoneinfo/Etc/UTC", frozenset("r"))]),
    ('openat(AT_FDCWD</x>, "/d/c.tmp", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0600) = 3</d/c.tmp>',
     [FileAccess("openat", "/d/c.tmp", frozenset("w"))]),
    ('openat(AT_FDCWD</x>, "/dev/pts/0", O_RDWR|O_NOCTTY|O_NONBLOCK|O_CLOEXEC) = 8</dev/pts/0>',
     [FileAccess("openat", "/dev/pts/0", frozenset("rw"))]),
    ('openat(AT_FDCWD</x>, "/l", O_WRONLY|O_APPEND) = 3</l>',
     [FileAccess("openat", "/l", frozenset("a"))]),
    ('openat(AT_FDCWD</x>, "/d/state", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = 14</d/state>',
     [FileAccess("openat", "/d/state/", frozenset("r"))]),
    ('openat(AT_FDCWD</x>, "/d", O_RDONLY) = 5</d>',  # to fsync it after a rename
     [FileAccess("openat", "/d/", frozenset("r"))]),
    ('openat(AT_FDCWD</x>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = '
     '3</usr/lib/x86_64-linux-gnu/libc.so.6>',
     [FileAccess("openat", "/usr/lib/x86_64-linux-gnu/libc.so.6", frozenset("mr"))]),
    ('openat(3</py/lib>, "_ssl.cpython-311-x86_64-linux-gnu.so", O_RDONLY|O_CLOEXEC) = '
     '4</py/lib/_ssl.cpython-311-x86_64-linux-gnu.so>',
     [FileAccess("openat", "/py/lib/_ssl.cpython-311-x86_64-linux-gnu.so", frozenset("mr"))]),
    ('openat(AT_FDCWD</x>, "/nope", O_RDONLY) = -1 ENOENT (No such file or directory)', []),
    ('openat(AT_FDCWD</x>, "/etc/shadow", O_RDONLY) = -1 EACCES (Permission denied)',
     [FileAccess("openat", "/etc/shadow", frozenset("r"))]),
    ('newfstatat(AT_FDCWD</x>, "/py/lib", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0',
     [FileAccess("newfstatat", "/py/lib/", frozenset("r"))]),
    ('newfstatat(AT_FDCWD</x>, "/venv/bin/python3", {st_mode=S_IFLNK|0777, ...}, '
     'AT_SYMLINK_NOFOLLOW) = 0', [FileAccess("newfstatat", "/venv/bin/python3", frozenset("r"))]),
    ('newfstatat(AT_FDCWD</x>, "/venv/bin/python3", {st_mode=S_IFREG|0755, ...}, 0) = 0',
     [FileAccess("newfstatat", "/py/bin/python3.11", frozenset("r"))]),
    ('newfstatat(3</etc/ld.so.cache>, "", {st_mode=S_IFREG|0644, ...}, AT_EMPTY_PATH) = 0', []),
    ('newfstatat(AT_FDCWD</work>, "rel", {st_mode=S_IFREG|0644, ...}, 0) = 0',
     [FileAccess("newfstatat", "/work/rel", frozenset("r"))]),
    ('readlink("/venv/bin/python3", "/py/bin"..., 4096) = 40',
     [FileAccess("readlink", "/venv/bin/python3", frozenset("r"))]),
    ('mkdir("/d/state", 0777) = -1 EEXIST (File exists)', []),
    ('mkdir("/d/state", 0777) = 0', [FileAccess("mkdir", "/d/state/", frozenset("w"))]),
    ('rename("/d/c.tmp", "/d/c") = 0',
     [FileAccess("rename", "/d/c.tmp", frozenset("w")), FileAccess("rename", "/d/c",
                                                                   frozenset("w"))]),
    ('unlink("/d/c") = 0', [FileAccess("unlink", "/d/c", frozenset("w"))]),
    ('execve("/venv/bin/python3", ["python3"], 0x7ffd /* 35 vars */) = 0',
     [FileAccess("execve", "/py/bin/python3.11", frozenset("x"))]),
    ('socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 6<socket:[40119]>',
     [SocketUse("socket", "inet", "stream")]),
    ('socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, [4<socket:[1]>, 5<socket:[2]>]) = 0',
     [SocketUse("socketpair", "unix", "stream")]),
    ('socket(AF_INET6, SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 3<socket:[9]>',
     [SocketUse("socket", "inet6", "dgram")]),
    ('connect(7<socket:[1]>, {sa_family=AF_INET, sin_port=htons(1883)}, 16) = 0', []),
    ('sendto(7<socket:[1]>, "\\x10", 1, 0, NULL, 0) = 1', []),
    ('chdir("/") = 0', []),
    ("--- SIGTERM {si_signo=SIGTERM, si_code=SI_USER} ---", []),
    ("+++ exited with 0 +++", []),
    ('12345 openat(AT_FDCWD</x>, "/a", O_RDONLY) = 3</a>',
     [FileAccess("openat", "/a", frozenset("r"))]),
]


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_strace_lines_become_what_apparmor_mediates(line: str, expected: list[object]) -> None:
    assert parse_line(line, resolve, is_dir) == expected


@pytest.mark.parametrize("line", [
    'connect(7<socket:[1]>, {sa_family=AF_INET}, 16 <unfinished ...>',
    'mount("none", "/mnt", "tmpfs", 0, NULL) = 0',
])
def test_strace_lines_not_understood_fail_loudly(line: str) -> None:
    with pytest.raises(ValueError):
        parse_line(line, resolve, is_dir)


# ---------------------------------------------------------------------------------------------
# the image's layout

LAYOUT = Layout(checkout="/src", venv="/src/.venv", python_prefix="/opt/py",
                python_version="3.11", image_python_version="3.13", data_dir="/t/data",
                tmp_dir="/t/tmp", serial={"/dev/pts/3": "/dev/ttyUSB0"})
SITE = "/usr/local/lib/python3.13/site-packages"

PATHS = [
    ("/src/bridge/addon/entry.py", f"{SITE}/bridge/addon/entry.py"),
    ("/src/bridge/__pycache__/x.cpython-311.pyc", f"{SITE}/bridge/__pycache__/x.cpython-313.pyc"),
    ("/src/bridge/", f"{SITE}/bridge/"),
    ("/src/", f"{SITE}/"),
    ("/src/.venv/lib/python3.11/site-packages/aiomqtt/client.py", f"{SITE}/aiomqtt/client.py"),
    ("/src/.venv/bin/python3", "/usr/local/bin/python3"),
    ("/src/.venv/pyvenv.cfg", None),
    ("/opt/py/bin/python3.11", "/usr/local/bin/python3.13"),
    ("/opt/py/lib/python3.11/os.py", "/usr/local/lib/python3.13/os.py"),
    ("/opt/py/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
     "/usr/local/lib/python3.13/lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so"),
    ("/opt/py/lib/libpython3.11.so.1.0", "/usr/local/lib/libpython3.13.so.1.0"),
    ("/opt/py/", "/usr/local/"),
    ("/opt/", "/usr/"),
    ("/", "/"),
    ("/t/data/config.yaml", "/data/config.yaml"),
    ("/t/data/", "/data/"),
    ("/t/tmp/series4000-health.json", "/tmp/series4000-health.json"),
    ("/dev/pts/3", "/dev/ttyUSB0"),
    ("/src/tests/", "/"),
    ("/src/tests/addon_child.py", None),
    ("/etc/ld.so.cache", None),
    ("/usr/lib/locale/C.utf8/LC_CTYPE", None),
    ("/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", None),
    ("/etc/ssl/openssl.cnf", "/etc/ssl/openssl.cnf"),
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3"),
    ("/dev/pts/4", "/dev/pts/4"),
]


@pytest.mark.parametrize(("path", "expected"), PATHS)
def test_paths_are_renamed_to_the_images_layout(path: str, expected: str | None) -> None:
    assert LAYOUT.to_image(path) == expected
