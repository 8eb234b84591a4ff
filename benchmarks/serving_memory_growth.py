#!/usr/bin/env python3
"""What grows in a serving worker's memory under load, and which knob bounds it (issue 12).

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/serving_memory_growth.py \\
        [--model-dir artifacts/model-card] [--requests 20000]

A worker's work without HTTP, in one process per variant (so each starts clean): ``model_fn``, then
``--requests`` requests through ``input_fn -> predict_many -> output_fn`` in batches of 1-8 seeded
IMDB test reviews (every length, as real traffic has; 5% explained), one torch thread as a worker
runs. RSS is read after a 1,000-request warm-up and then every tenth of the run. Variants, each
changing one thing from the first:

* ``as served``: the environment a worker has;
* ``oneDNN cache 8``: ``ONEDNN_PRIMITIVE_CACHE_CAPACITY=8`` (default 1024): oneDNN keeps a compiled
  kernel, with its work buffers, per input shape, and every (batch, length) pair is a shape;
* ``no stem cache``: the Porter-stem cache (bounded at 200,000 words) cleared after every request;
* ``tcmalloc``: the allocator the image preloads for training, here for serving too, if installed.

Prints, per variant, RSS after warm-up and at the end, the growth in MiB and %, the growth in
the last half of the run per 1,000 requests (a leak keeps growing; a cache levels off), and the CPU
time per request (a smaller kernel cache must not buy memory with time).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402 - puts the repository on sys.path
from _common import REPO, footer, header  # noqa: E402

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
VARIANTS = {
    "as served": {},
    "oneDNN cache 8": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "8"},
    "oneDNN cache 64": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "64"},
    "no stem cache": {"_CLEAR_STEM_CACHE": "1"},
    "tcmalloc": {"LD_PRELOAD": TCMALLOC},
}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def child(model_dir: str, requests: int, data: str) -> None:
    """One variant's run; prints one JSON line of RSS readings."""
    import random

    import torch

    from model.data import load
    from model.inference import RequestError, input_fn, model_fn, output_fn, predict_many
    from model.preprocess import _cached_stem

    torch.set_num_threads(1)
    clear = os.environ.get("_CLEAR_STEM_CACHE") == "1"
    rng = random.Random(0)
    reviews = [r.text for r in load(data, splits=("test",)).test]
    del load
    model = model_fn(model_dir)
    readings = []

    def serve(n: int) -> None:
        for _ in range(n):
            batch = [rng.choice(reviews) for _ in range(rng.randint(1, 8))]
            explain = rng.random() < 0.05
            body = json.dumps({"instances": batch[:1] if explain else batch, "explain": explain})
            try:
                request = input_fn(body, "application/json")
            except RequestError:  # a batch of long reviews over the body limit: as a caller would be told
                continue
            output_fn(predict_many([request], model)[0])
            if clear:
                _cached_stem.cache_clear()

    serve(1000)
    readings.append(rss_mib())
    start = time.process_time()
    for _ in range(10):
        serve(requests // 10)
        readings.append(rss_mib())
    print(json.dumps({"rss": readings, "cpu_ms_per_request": (time.process_time() - start) * 1e3 / requests}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", default=str(REPO / "artifacts" / "model-card"))
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--data", help="IMDB archive (default: what `make data` finds)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    _common.set_nltk_data()
    data = _common.imdb_archive(args.data, "serving_memory_growth")
    if data is None:
        return 2
    data = str(data)
    if args.child:
        child(args.model_dir, args.requests, data)
        return 0
    header("serving memory growth per variant: one worker's work, in-process, one thread")
    print(f"model {args.model_dir}; {args.requests} requests after 1,000 of warm-up, batches of 1-8 IMDB test reviews")
    print(f"\n{'variant':16} {'RSS warm MiB':>12} {'RSS end MiB':>12} {'growth':>16} {'last half per 1k':>17} {'CPU ms/request':>15}")
    for name, extra in VARIANTS.items():
        if "LD_PRELOAD" in extra and not Path(extra["LD_PRELOAD"]).is_file():
            print(f"{name:16} skipped: {extra['LD_PRELOAD']} not installed")
            continue
        env = {**os.environ, **extra}
        out = subprocess.run([sys.executable, __file__, "--child", "--model-dir", args.model_dir,
                              "--requests", str(args.requests), "--data", data],
                             env=env, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        rss = result["rss"]
        grown = rss[-1] - rss[0]
        late = (rss[-1] - rss[5]) / (args.requests / 2 / 1000)
        print(f"{name:16} {rss[0]:12.1f} {rss[-1]:12.1f} {grown:+8.1f} ({grown / rss[0]:+5.1%}) {late:+14.2f} MiB"
              f" {result['cpu_ms_per_request']:15.2f}", flush=True)
        print(f"{'':16} readings: {', '.join(f'{r:.0f}' for r in rss)}")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
