"""One-off: cold start of two model/ trees, interleaved (exec to /ping 200, exec to the first answer).

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/experiments/explore_cold_start_trees.py TREE_A TREE_B

Each TREE is a folder holding a model/ (e.g. `git archive <rev> model | tar -x -C TREE`); the model
is artifacts/model-card (the deployed size), 2 workers, 4 rounds, order reversed every other round.
"""
import sys, time, statistics, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1])); sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_serve_design as b
class A: pass
args = A()
trees = sys.argv[1:]
res = {t: [] for t in trees}
with tempfile.TemporaryDirectory() as tmp:
    model_dir = Path(__file__).resolve().parents[2] / "artifacts" / "model-card"
    for rnd in range(4):
        for t in (trees if rnd % 2 == 0 else trees[::-1]):
            args.before_dir = Path(t)
            t0 = time.monotonic()
            proc, port, cold = b.start("before", model_dir, Path(tmp) / "log", args)
            first = time.monotonic() - t0
            b.stop(proc)
            res[t].append((cold, first))
            time.sleep(1)
for t in trees:
    print(t, "ping", [round(c, 2) for c, _ in res[t]], "first answer", [round(f, 2) for _, f in res[t]],
          "medians", round(statistics.median(c for c, _ in res[t]), 2), round(statistics.median(f for _, f in res[t]), 2))
