"""Stops a local Ray cluster's helpers when the driver that started them dies.

`ray.init()` starts the cluster's processes under the driver. When the driver
is killed (kill -9, an out-of-memory kill), the raylet and GCS follow it, but
the dashboard and runtime-env agents are left to init and live on. The reaper
is a small process started beside the driver: while the driver lives it notes
the driver's descendants (with their start times, so a reused pid is never
hit); once the driver is gone it kills those still running, and exits.
Ray has no setting for this in 2.x; process-group kills would also hit the
other members of the user's shell job (a `| tee log`).

    python -m metrics.jobs.reaper DRIVER_PID
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from traces import owner

POLL = 0.5


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def watch(driver: int) -> int:
    """Note the driver's descendants until it dies, then kill those left; how many were killed."""
    me, alive = os.getpid(), owner.of(driver)
    seen: dict[int, str] = {}
    while owner.alive(alive):
        for pid in descendants(driver):
            if pid != me and pid not in seen:
                seen[pid] = owner.of(pid)
        time.sleep(POLL)
    killed = 0
    for pid, who in seen.items():
        if owner.of(pid) == who:  # the same process, not a later one given its pid
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def start(driver: int | None = None) -> subprocess.Popen | None:
    """A reaper for this process (or `driver`); None where /proc is not there to watch."""
    if not os.path.isdir("/proc"):
        return None
    return subprocess.Popen([sys.executable, "-m", "metrics.jobs.reaper", str(driver or os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # outside the shell's job: Ctrl-C does not stop it


if __name__ == "__main__":
    watch(int(sys.argv[1]))
