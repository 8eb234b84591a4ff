"""The Linux process table, read from /proc: what a process group or a parent still has running.

Local mode, the tests and the benchmarks all need to know which processes a server left behind;
this is the one reader they share.
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessStat:
    pid: int
    state: str
    ppid: int
    pgrp: int
    cpu_ticks: int  # user + system

    @property
    def alive(self) -> bool:
        return self.state != "Z"


def processes() -> Iterator[ProcessStat]:
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        yield ProcessStat(pid=int(entry.name), state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]),
                          cpu_ticks=int(fields[11]) + int(fields[12]))


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    return [p.pid for p in processes() if p.alive and p.pgrp == pgid]


def children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``."""
    return [p.pid for p in processes() if p.alive and p.ppid == pid]


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes of a group (a server and its workers)."""
    return sum(p.cpu_ticks for p in processes() if p.pgrp == pgid) / os.sysconf("SC_CLK_TCK")


def stop_group(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM a group's leader (started with ``start_new_session``) and wait up to ``timeout`` for it to
    drain, then SIGKILL whatever is left of its group; its exit code, or None if it never exited."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    return proc.returncode
