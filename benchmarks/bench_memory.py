"""Peak memory of training: a short real run of ``python -m model.train`` under ``/usr/bin/time -v``.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_memory.py [--presets full original]

For each preset: one epoch (``--set epochs=1``) on all 25,000 training reviews (test split skipped with
``--no-test``; the 50k-review preprocessing of a real run then covers 25k), into a temporary model
directory. One epoch visits every batch shape of a run, so its peak is the run's peak, save the
test-split scoring. Reports the maximum resident set size (``/usr/bin/time -v``: the largest of the
process and its waited-for children, i.e. also the preprocessing pool's workers), wall time, user and
system CPU seconds, minor page faults, and the epoch line ``train`` printed. With ``--tcmalloc LIB``
each preset also runs with that allocator preloaded (the fix suggested in docs/performance.md).

The endpoint server's memory per worker is measured by bench_serving.py (deployed-size model).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header  # noqa: E402


def run(preset: str, data: str, extra: list[str], preload: str = "") -> dict:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["TRAIN_ALLOCATOR"] = "system"  # train would otherwise re-exec itself under tcmalloc
    if preload:
        env["LD_PRELOAD"] = preload
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "model.train", "--data", data, "--model-dir", tmp,
               "--preset", preset, "--set", "epochs=1", "--no-test", "--quiet", *extra]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=str(_common.REPO), env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{text[-3000:]}")

    def field(name: str) -> str:
        m = re.search(rf"^\s*{re.escape(name)}:\s*(.+)$", text, re.M)
        return m.group(1).strip() if m else "?"

    epoch = next((ln for ln in text.splitlines() if ln.startswith("epoch=")), "")
    pre = re.search(r"preprocessed (\d+) reviews in ([\d.]+)s", text)
    return {"preset": preset, "allocator": "tcmalloc" if preload else "glibc",
            "faults": int(field("Minor (reclaiming a frame) page faults")), "max_rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
            "wall_s": wall, "user_s": float(field("User time (seconds)")),
            "sys_s": float(field("System time (seconds)")), "epoch_line": epoch,
            "preprocess": f"{pre.group(1)} reviews in {pre.group(2)} s" if pre else "?",
            "cmd": " ".join(cmd[2:]).replace(sys.executable, "python")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(_common.DATA))
    ap.add_argument("--presets", nargs="+", default=["full", "original"])
    ap.add_argument("--tcmalloc", default="", help="also run each preset with this library LD_PRELOADed, e.g. "
                    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")
    args = ap.parse_args()
    _common.set_nltk_data()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    header("peak memory of training (one epoch of python -m model.train)")
    rows = []
    for preset, preload in [(p, lib) for p in args.presets for lib in ([""] + ([args.tcmalloc] if args.tcmalloc else []))]:
        r = run(preset, args.data, [], preload)
        rows.append(r)
        print(f"{preset}, {r['allocator']}: minor faults {r['faults']:,}, peak RSS {r['max_rss_mb']:.0f} MB, wall {r['wall_s']:.0f} s, user {r['user_s']:.0f} s, "
              f"sys {r['sys_s']:.1f} s; preprocessed {r['preprocess']}; {r['epoch_line']}  "
              f"(load {_common.loadavg()})", flush=True)
        print(f"  command: {r['cmd']}")
    print()
    print("| training run | allocator | peak RSS | wall | user / sys CPU s | minor faults |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| `--preset {r['preset']} --set epochs=1 --no-test` | {r['allocator']} | {r['max_rss_mb']:.0f} MB | "
              f"{r['wall_s']:.0f} s | {r['user_s']:.0f} / {r['sys_s']:.1f} | {r['faults']:,} |")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
