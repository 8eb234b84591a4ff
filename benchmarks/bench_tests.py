"""Wall time of the README's test command (target <= 5 min here).

    .venv/bin/python benchmarks/bench_tests.py                  # make test (what CI runs)
    .venv/bin/python benchmarks/bench_tests.py -- .venv/bin/python -m pytest -q -m "not browser"

Runs the command once (it is long and it loads the machine: run it when nothing else does), prints its
wall time, the load average before and after, and the last lines of its output (pytest's summary:
what passed, failed, was skipped or excluded). ``make test`` also checks its set-up steps (virtualenv,
CDK CLI, Chromium); on a machine where they are done, those are stamps and cost well under a second.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (default: make test)")
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    cmd = cmd or ["make", "test", "PYTEST_ARGS=-p no:cacheprovider"]
    header("test suite wall time")
    print(f"running: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=str(_common.REPO), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    tail = (out.stdout + out.stderr).strip().splitlines()[-25:]
    print("\n".join("  | " + ln for ln in tail))
    print()
    print("| command | exit | wall | target |")
    print("| --- | --- | --- | --- |")
    print(f"| `{' '.join(cmd)}` | {out.returncode} | {wall:.0f} s ({wall / 60:.1f} min) | <=5 min: "
          f"{'met' if wall <= 300 else 'MISSED'} |")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
