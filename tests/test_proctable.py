"""scripts/proctable.py: stopping a server's process group leaves nothing of it running."""
from __future__ import annotations

import subprocess
import sys
import time

from fixtures_local import group_members
from proctable import stop_group


def test_stop_group_kills_what_the_leader_leaves_behind():
    # The leader exits on SIGTERM at once; the child it started ignores SIGTERM and must be SIGKILLed.
    leader = subprocess.Popen(
        [sys.executable, "-c", "import signal, subprocess, sys, time\n"
         "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
         "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
         "time.sleep(60)"],
        start_new_session=True)
    deadline = time.monotonic() + 10
    while len(group_members(leader.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(leader.pid)) == 2
    assert stop_group(leader, timeout=5) == -15  # the leader's SIGTERM
    deadline = time.monotonic() + 5
    while group_members(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(leader.pid) == []
