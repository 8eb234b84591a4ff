"""Latency at concurrency 1: model/serve.py before the accept balancing (591b3a4) vs now, interleaved.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/experiments/explore_balance_latency.py

One keep-alive connection, 1,500 requests of a ~230-word review (the first 200 dropped), 2 workers,
one thread each, bench_serving's original-size model; 3 rounds, old and new alternating. Checks that
the balancing (a stepped-back worker polls the board) costs a lone caller nothing.
"""
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks")); sys.path.insert(0, str(REPO))
from bench_serving import build_our_model, free_port
REVIEW = ("This film was a wonderful surprise. The acting is superb, the story moving, and the music "
          "beautiful; some scenes drag and the ending is a bit weak, but overall I loved it. " * 6).encode()
tmp = Path(tempfile.mkdtemp())
model = build_our_model(tmp / "m")
# a copy of the package with the old serve.py
old = tmp / "old"; shutil.copytree(REPO / "model", old / "model", ignore=shutil.ignore_patterns("__pycache__"))
(old / "model" / "serve.py").write_bytes(subprocess.run(["git", "show", "591b3a4:model/serve.py"], cwd=REPO,
                                                        check=True, capture_output=True).stdout)
def run(root, n=1500):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "model.serve", "--model-dir", str(model), "--host", "127.0.0.1",
                          "--port", str(port), "--workers", "2"], cwd=str(root), env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/ping")
                if c.getresponse().status == 200: break
            except OSError: time.sleep(0.05)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        lat = []
        for i in range(n):
            t = time.perf_counter()
            c.request("POST", "/invocations", body=REVIEW, headers={"Content-Type": "text/plain"})
            r = c.getresponse(); r.read()
            lat.append((time.perf_counter() - t) * 1000)
        lat = lat[200:]
        lat.sort()
        return statistics.median(lat), lat[int(len(lat) * 0.99)]
    finally:
        p.terminate(); p.wait()
for rnd in range(3):
    for name, root in (("old", old), ("new", REPO)):
        p50, p99 = run(root)
        print(f"round {rnd} {name}: p50 {p50:.2f} ms p99 {p99:.2f} ms", flush=True)
