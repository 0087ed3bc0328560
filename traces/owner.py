"""Which process owns a piece of work, and whether that process is still alive.

Work that outlives a transaction (an ingest batch being committed, a scoring
job, a claimed partition) records its owner as `host:pid:start`, where
`start` is when the process started (Linux: its start time in clock ticks
since boot, plus the boot's id), so a pid reused by a later process is not
mistaken for the owner. On this host an owner is dead when no process with
that pid and start exists; on another host only a heartbeat can tell, so the
caller compares the work's last sign of life with a lease.

Written with /proc rather than psutil: Libra does not otherwise need psutil,
and the two facts read here are all it would give.
"""

from __future__ import annotations

import functools
import os
import socket
from datetime import datetime, timedelta


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return "-"


def _start(pid: int) -> str | None:
    """The process's start time as the kernel reports it; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return "-"
    # the command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'
    return stat.rsplit(")", 1)[1].split()[19]


@functools.cache
def _host() -> str:
    return socket.gethostname()


def of(pid: int) -> str:
    """A process of this machine as an owner string."""
    return f"{_host()}:{pid}:{_boot_id()}.{_start(pid) or '-'}"


def current() -> str:
    """This process as an owner string (computed per call: a forked child is another owner)."""
    return of(os.getpid())


def alive(owner: str | None) -> bool | None:
    """True or False for an owner on this host; None when it cannot be known from here."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != _host() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if not start:  # written before owners carried a start time: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    boot, _, ticks = start.partition(".")
    if boot != _boot_id():
        return False  # the machine restarted since
    now = _start(pid)
    return now is not None and (ticks in ("-", now) or now == "-")


def gone(owner: str | None, last_seen: datetime | None, lease: timedelta, now: datetime) -> bool:
    """Whether work last touched at `last_seen` by `owner` is abandoned.

    Dead on this host is known at once; elsewhere (or without an owner) the
    work is abandoned once it has shown no sign of life for `lease`.
    """
    state = alive(owner)
    if state is not None:
        return not state
    return last_seen is None or now - last_seen >= lease
