"""The server's log: one JSON object per line on stdout, which CloudWatch (and `make local`) keep as is."""
from __future__ import annotations

import json
import os
import time
from typing import Any


def line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()


def write(data: bytes) -> None:
    """All of ``data`` to stdout with os.write (no buffer to lose in a worker that is killed)."""
    while data:
        try:
            n = os.write(1, data)
        except InterruptedError:
            continue
        except OSError:  # stdout gone: nothing else to do with the line
            return
        data = data[n:]


def log(level: str, event: str, **fields: Any) -> None:
    write(line({"ts": round(time.time(), 3), "level": level, "event": event, "pid": os.getpid(),
                **fields}))
