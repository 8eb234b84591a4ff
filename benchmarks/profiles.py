"""Profiles behind the decisions and suggestions in docs/performance.md.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/profiles.py alloc     # strace: big mmaps per batch
    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/profiles.py serve     # py-spy: a worker at concurrency 1
    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/profiles.py explain   # cProfile: one explanation
    .venv/bin/python benchmarks/profiles.py synth                                    # node --cpu-prof: cdk synth
    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/profiles.py words     # words of 50k reviews, by step
    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/profiles.py coldstart # serve's start, by step

* ``alloc``: ``strace -f -e mmap,munmap`` over one training child of bench_training.py (original
  implementation, ``tune_malloc()``, 2 measured batches + warm-up): the anonymous mappings of 1 MiB or
  more, by size. glibc serves any request over its mmap threshold (at most 32 MiB, whatever
  ``mallopt`` asks) with a fresh mmap, and the kernel hands out zeroed pages on first touch.
* ``serve``: ``py-spy record`` (raw, 500 Hz, 15 s) of the worker that answers a keep-alive client at
  concurrency 1 (bench_serving's original-size model, 2 workers, ``OMP_NUM_THREADS=1``), summed by own
  time and by inclusive time.
* ``explain``: cProfile of ``model.explain.explain`` on bench_serving's ~230-word review (1 thread),
  next to a plain prediction.
* ``words``: the steps of ``model.preprocess.review_words`` on all 50k reviews, one process: how many
  reviews need the HTML parser and what it costs, and the ``[^a-z0-9]`` substitution + split against
  ``re.findall("[a-z0-9]+")`` (asserted to give the same words).
* ``coldstart``: a bare interpreter start, ``import torch``, and ``serve``'s own ``model_loaded`` log
  line (torch import, weights, warm-up pass) and time to ``/ping`` 200, 5 times each, medians; and how
  long ``serve`` takes to stop on SIGTERM right after that (``/ping`` polled while the model loaded).
* ``synth``: ``app.py`` with its jsii node process started with ``--cpu-prof`` (through ``JSII_NODE``),
  summed by inclusive time: where the synth's node time goes.

Needs strace (alloc) and py-spy (serve: ``.venv/bin/pip install py-spy``).
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import glob
import io
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header  # noqa: E402

HERE = Path(__file__).resolve().parent


def alloc() -> None:
    import bench_training

    data, info = bench_training.prepare(str(_common.DATA))
    with tempfile.TemporaryDirectory(prefix="profile_alloc_") as tmp:
        data_file = os.path.join(tmp, "data.json")
        Path(data_file).write_text(json.dumps(data))
        trace = os.path.join(tmp, "strace.txt")
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        cmd = ["strace", "-f", "-e", "trace=mmap,munmap", "-o", trace, sys.executable, str(HERE / "bench_training.py"),
               "--child", "original", "--malloc", "tuned", "--batches", "2", "--data-file", data_file]
        print("command:", " ".join(cmd).replace(sys.executable, "python"))
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        maps, unmaps = collections.Counter(), collections.Counter()
        for line in Path(trace).read_text().splitlines():
            m = re.search(r"mmap\(NULL, (\d+), PROT_READ\|PROT_WRITE, MAP_PRIVATE\|MAP_ANONYMOUS", line)
            if m and int(m.group(1)) >= 1 << 20:
                maps[int(m.group(1)) >> 20] += 1
            m = re.search(r"munmap\(0x[0-9a-f]+, (\d+)\)", line)
            if m and int(m.group(1)) >= 1 << 20:
                unmaps[int(m.group(1)) >> 20] += 1
    print("3 batches (1 warm-up + 2), original implementation, batch 512 x 500 steps, glibc with tune_malloc():")
    print("| size (MiB) | mmap calls | munmap calls |")
    print("| --- | --- | --- |")
    for size in sorted(set(maps) | set(unmaps)):
        if size >= 8 or maps[size] + unmaps[size] >= 20:
            print(f"| {size} | {maps[size]} | {unmaps[size]} |")
    big = sum(size * n for size, n in maps.items() if size >= 32)
    print(f"mapped afresh in mappings of >= 32 MiB: {big:,} MiB over 3 batches (~{big / 3 / 1024:.1f} GiB a batch), "
          "each page zeroed by the kernel on first touch")


def serve() -> None:
    from bench_serving import build_our_model, free_port, ours, reviews

    with tempfile.TemporaryDirectory(prefix="profile_serve_") as tmp:
        model_dir = build_our_model(Path(tmp) / "model")
        port = free_port()
        srv = ours(model_dir, port, 2)
        proc = subprocess.Popen(srv.cmd, cwd=srv.cwd, env={**os.environ, **srv.env}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            import urllib.request
            for _ in range(200):
                try:
                    with urllib.request.urlopen(f"{srv.base}/ping", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.1)
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            body = reviews.make_reviews(1, seed=1234, n_words=230)[0].encode()
            conn.request("POST", "/invocations", body=body, headers={"Content-Type": "text/plain"})
            conn.getresponse().read()
            # the worker that holds this connection: the one whose CPU time grows
            kids = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                   text=True).stdout.split()]

            def cpu(pid):
                return sum(int(x) for x in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])

            before = {k: cpu(k) for k in kids}
            for _ in range(300):
                conn.request("POST", "/invocations", body=body, headers={"Content-Type": "text/plain"})
                conn.getresponse().read()
            worker = max(kids, key=lambda k: cpu(k) - before[k])
            out = os.path.join(tmp, "pyspy.txt")
            spy = subprocess.Popen([str(_common.REPO / ".venv" / "bin" / "py-spy"), "record", "-p", str(worker), "-d", "15",
                                    "-r", "500", "-f", "raw", "-o", out, "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            n, t0 = 0, time.perf_counter()
            while spy.poll() is None:
                conn.request("POST", "/invocations", body=body, headers={"Content-Type": "text/plain"})
                conn.getresponse().read()
                n += 1
            dt = time.perf_counter() - t0
            print(f"worker {worker}, {n} requests in {dt:.1f} s at concurrency 1 ({1e3 * dt / n:.2f} ms each, "
                  "client included) while sampled")
            summarize_collapsed(out)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def summarize_collapsed(path: str, top: int = 14) -> None:
    total = 0
    own, incl = collections.Counter(), collections.Counter()
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        n = int(n)
        total += n
        frames = stack.split(";")
        own[frames[-1][:100]] += n
        seen = set()
        for f in frames:
            key = f.split(" (")[0]
            if key not in seen:
                seen.add(key)
                incl[key] += n
    print(f"{total} samples (CPU only: idle waiting in epoll is not sampled)")
    print("own time:")
    for k, v in own.most_common(top):
        print(f"  {100 * v / total:5.1f}%  {k}")
    print("inclusive time:")
    for k, v in incl.most_common(top + 12):
        if 100 * v / total < 99:
            print(f"  {100 * v / total:5.1f}%  {k}")


def explain_profile() -> None:
    import torch

    torch.set_num_threads(1)
    from bench_serving import build_our_model, reviews
    from model import inference
    from model.explain import explain

    with tempfile.TemporaryDirectory(prefix="profile_explain_") as tmp:
        m = inference.model_fn(str(build_our_model(Path(tmp) / "model")))
    text = reviews.make_reviews(1, seed=1234, n_words=230)[0]
    req = inference.input_fn(text.encode(), "text/plain")

    def best(fn, n):
        fn()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return 1e3 * sorted(ts)[len(ts) // 2]

    plain = best(lambda: inference.predict_fn(req, m), 200)
    full = best(lambda: explain(m, text), 20)
    print(f"in-process, 1 thread, original-size model: plain prediction p50 {plain:.2f} ms, explanation p50 "
          f"{full:.1f} ms ({full / plain:.1f}x)")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(10):
        explain(m, text)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(10)
    print("cProfile of 10 explanations, by own time:")
    print("\n".join(ln for ln in out.getvalue().splitlines() if ln.strip()))


def synth() -> None:
    prof_dir = tempfile.mkdtemp(prefix="profile_synth_")
    wrapper = Path(prof_dir) / "node.sh"
    wrapper.write_text(f'#!/bin/sh\nexec node --cpu-prof --cpu-prof-dir={prof_dir} "$@"\n')
    wrapper.chmod(0o755)
    context = json.loads((_common.REPO / "cdk.json").read_text()).get("context", {})
    context["dataArchive"] = str(_common.DATA)
    out_dir = tempfile.mkdtemp(prefix="profile_synth_out_")
    env = {**os.environ, "JSII_NODE": str(wrapper), "CDK_OUTDIR": out_dir, "CDK_CONTEXT_JSON": json.dumps(context)}
    t0 = time.perf_counter()
    subprocess.run([str(_common.REPO / ".venv" / "bin" / "python"), "app.py"], cwd=str(_common.REPO), env=env,
                   check=True, capture_output=True)
    print(f"python app.py with node profiling: {time.perf_counter() - t0:.1f} s")
    time.sleep(1)
    for path in sorted(glob.glob(os.path.join(prof_dir, "*.cpuprofile"))):
        prof = json.loads(Path(path).read_text())
        nodes = {n["id"]: n for n in prof["nodes"]}
        parent = {c: n["id"] for n in prof["nodes"] for c in n.get("children", [])}
        spent = collections.Counter()
        for sid, dt in zip(prof["samples"], prof["timeDeltas"]):
            spent[sid] += dt
        incl = collections.Counter()
        total = 0
        for sid, dt in spent.items():
            if nodes[sid]["callFrame"]["functionName"] == "(idle)":
                continue
            total += dt
            seen, x = set(), sid
            while x is not None:
                cf = nodes[x]["callFrame"]
                key = f"{cf['functionName'] or '(anonymous)'}  {cf['url'].split('node_modules/')[-1][-70:]}"
                if key not in seen:
                    seen.add(key)
                    incl[key] += dt
                x = parent.get(x)
        if total < 2e6:  # the launcher process: idle, waiting on the kernel process
            continue
        print(f"node process (the jsii kernel): {total / 1e6:.1f} s on CPU; inclusive time of the main frames:")
        wanted = ("synth ", "validateTemplates", "CloudFormationValidatePlugin", "WasmCompositeEngine",
                  "invokeSinglePlugin", "Module._load", "processRequest", "create ", "invoke ")
        for key, v in incl.most_common(400):
            if any(w in key for w in wanted):
                print(f"  {v / 1e6:6.2f} s  {key}")


def words() -> None:
    from model.data import load
    from model.preprocess import _BR, html_to_text

    texts = [r.text for r in (lambda d: d.train + d.test)(load(str(_common.DATA)))]

    def plain(r):  # html_to_text's own test for "the parser cannot matter"
        return "&" not in r and not r.isspace() and (
            "<" not in r or (r.count("<") == r.count(_BR) and ">" not in r.replace(_BR, "")))

    parsed = [t for t in texts if not plain(t)]
    fast = [t for t in texts if plain(t)]

    def timed(fn, items):
        t0 = time.perf_counter()
        out = [fn(x) for x in items]
        return time.perf_counter() - t0, out

    t_parser, _ = timed(html_to_text, parsed)
    t_fast, _ = timed(html_to_text, fast)
    lowered = [html_to_text(t).lower() for t in texts]
    sub = re.compile(r"[^a-z0-9]")
    runs = re.compile(r"[a-z0-9]+")
    t_sub, a = timed(lambda t: sub.sub(" ", t).split(), lowered)
    t_findall, b = timed(runs.findall, lowered)
    assert a == b, "findall gives other words"
    print(f"{len(texts)} reviews; {len(parsed)} need the HTML parser ({sum('&' in t for t in parsed)} of them for an '&'): "
          f"{t_parser:.2f} s ({1e3 * t_parser / len(parsed):.2f} ms each); the other {len(fast)}: {t_fast:.2f} s")
    print(f"[^a-z0-9] -> ' ' then split (model/preprocess.py): {t_sub:.2f} s; re.findall('[a-z0-9]+'): "
          f"{t_findall:.2f} s, the same words ({t_sub / t_findall:.2f}x)")


def coldstart() -> None:
    import statistics
    import urllib.request

    from bench_serving import build_our_model, free_port

    def run(code):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - t0

    def import_time():
        out = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import torch; "
                              "print(time.perf_counter() - t)"], check=True, capture_output=True, text=True)
        return float(out.stdout.strip().splitlines()[-1])

    bare = [run("pass") for _ in range(5)]
    torch_ = [import_time() for _ in range(5)]
    loaded, ping, stop = [], [], []
    with tempfile.TemporaryDirectory(prefix="profile_cold_") as tmp:
        model_dir = build_our_model(Path(tmp) / "model")
        for i in range(5):
            port = free_port()
            log = Path(tmp) / f"serve{i}.log"
            t0 = time.perf_counter()
            with open(log, "wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", "model.serve", "--model-dir", str(model_dir), "--host",
                                         "127.0.0.1", "--port", str(port), "--workers", "2"], cwd=str(_common.REPO),
                                        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=out, stderr=subprocess.STDOUT)
            try:
                while True:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                            if r.status == 200:
                                break
                    except OSError:
                        time.sleep(0.02)
                ping.append(time.perf_counter() - t0)
            finally:
                t1 = time.perf_counter()
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                stop.append(time.perf_counter() - t1)
            for line in log.read_text().splitlines():
                if '"event":"model_loaded"' in line:
                    loaded.append(json.loads(line)["ms"] / 1000)
    med = statistics.median
    print(f"median of 5: python -c pass {med(bare):.2f} s; import torch (timed inside the interpreter) {med(torch_):.2f} s; "
          f"serve's model_loaded (torch import + weights + warm-up pass, from its log) {med(loaded):.2f} s; "
          f"start to /ping 200 {med(ping):.2f} s (runs {', '.join(f'{p:.2f}' for p in ping)})")
    print(f"SIGTERM right after /ping 200, having polled /ping (1 s client timeout) while the model loaded: "
          f"stopped after {', '.join(f'{x:.1f}' for x in stop)} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["alloc", "serve", "explain", "synth", "words", "coldstart"])
    args = ap.parse_args()
    _common.set_nltk_data()
    header(f"profile: {args.what}")
    {"alloc": alloc, "serve": serve, "explain": explain_profile, "synth": synth, "words": words,
     "coldstart": coldstart}[args.what]()
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
