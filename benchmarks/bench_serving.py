"""Endpoint serving: our ``serve`` against the peer stack (SageMaker PyTorch inference toolkit on
TorchServe), same model size, same worker count, same machine, one after the other.

    ../shared/bench/peer_serving/setup.sh /tmp/peer          # once: the peer's virtualenv + model dir
    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_serving.py [--peer /tmp/peer]

Fairness:
* the same network size: the peer's LSTM (Embedding 5000x32 -> LSTM 100 -> Linear -> sigmoid,
  random weights, seed 0); ours is written in our artifact format with ``--preset original``
  hyperparameters (the same shape), seeded random weights and a 5,000-token vocabulary made of the
  stems of the load generator's words (so reviews map to known ids as they do for the peer);
* each side runs its own handlers: the peer's ``inference.py`` (regex split, ids, pad to 500, the
  LSTM over all 500 steps, answer a bare number), ours ``model.inference`` (the original
  preprocessing: HTML check, stopwords, Porter stems; the LSTM over the review's own tokens only;
  a JSON answer);
* 2 workers each, ``OMP_NUM_THREADS=1`` for both (the peer's best configuration on 2 cores, see its
  README), everything on 127.0.0.1, servers started one after the other, never at once;
* the same load generator (``loadgen.py``, aiohttp, keep-alive) and bodies (seeded ~200-word
  reviews, ``text/plain``) for both; ours answers JSON, so ``--no-check-float`` for ours (its answers
  are checked here separately);
* cold start with ``coldstart.py``'s own functions; its first-answer probe expects a bare number,
  so for ours the probe is given a check that accepts our JSON ``score`` instead (nothing else
  changes). Time runs from just before exec to ``/ping`` 200, and to the first good answer.

Memory: RSS and PSS of every process of each server after its first answer and after the load
(PSS splits pages shared between forked workers fairly), plus each process's peak RSS (VmHWM).
A second run of ours with a model of the deployed size (``--preset full``: 25k vocabulary,
embedding 128, bidirectional LSTM 128, negation mode; random weights) measures what users get: the
explanation cost on the same review, throughput at concurrency 8, and the memory that matters for the
2 GB serverless endpoint, after plain requests and explanations (also of an ~800-word review, cut at
the model's 400 tokens: the largest explanation one request can ask for).

Explanation cost (ours only): one ~230-word review, ``{"text": ..., "explain": true}`` against
``{"text": ...}``, alternated on one keep-alive connection, p50 of each.
"""
from __future__ import annotations

import argparse
import http.client
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header, median, percentile, ratio  # noqa: E402

sys.path.insert(0, str(_common.PEER_DIR))
coldstart = importlib.import_module("coldstart")
reviews = importlib.import_module("reviews")


# ----------------------------------------------------------------------------- model directories

def build_our_model(path: Path, preset_name: str = "original", vocab_size: int = 5000, seed: int = 0) -> Path:
    import torch

    from model import artifact
    from model.hyperparameters import preset
    from model.network import LSTMClassifier
    from model.preprocess import Preprocessor
    from model.vocab import PAD_TOKEN, UNK_TOKEN, Vocabulary

    hp = preset(preset_name)
    pre = Preprocessor.create(hp.preprocessing)
    tokens: list[str] = []
    seen = {PAD_TOKEN, UNK_TOKEN}
    for w in reviews.WORDS:
        t = pre.token(w.lower()) if w.isalnum() else None
        if t and t not in seen:
            seen.add(t)
            tokens.append(t)
    i = 0
    while len(tokens) < vocab_size - 2:
        t = f"word{i:05d}"
        i += 1
        if t not in seen:
            seen.add(t)
            tokens.append(t)
    vocab = Vocabulary([PAD_TOKEN, UNK_TOKEN] + tokens)
    torch.manual_seed(seed)
    net = LSTMClassifier.from_hyperparameters(hp, len(vocab))
    artifact.save(path, net, vocab, pre, hp, extra={"note": "benchmark model: random weights"})
    return path


# ----------------------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: str, port: int, json_answers: bool):
        self.name, self.cmd, self.env, self.cwd, self.port = name, cmd, env, cwd, port
        self.json_answers = json_answers
        self.base = f"http://127.0.0.1:{port}"


def ours(model_dir: Path, port: int, workers: int) -> Server:
    cmd = [sys.executable, "-m", "model.serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]
    return Server("ours", cmd, {"OMP_NUM_THREADS": "1"}, str(_common.REPO), port, True)


def peer(prefix: Path, port: int, workers: int) -> Server:
    run = prefix / "run"
    run.mkdir(parents=True, exist_ok=True)
    env = {"SAGEMAKER_BASE_DIR": str(prefix / "base"), "PEER_TS_CONFIG": str(run / "sagemaker-ts.properties"),
           "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), "OMP_NUM_THREADS": "1",
           "SAGEMAKER_BIND_TO_PORT": str(port)}
    cmd = [str(prefix / "venv" / "bin" / "python"), str(_common.PEER_DIR / "serve_peer.py")]
    return Server("peer", cmd, env, str(run), port, False)


def _answer_ok(out: bytes) -> bool:
    text = out.decode(errors="replace").strip()
    try:
        float(text)
        return True
    except ValueError:
        pass
    try:
        score = json.loads(text).get("score")
    except (ValueError, AttributeError):
        return False
    return isinstance(score, (int, float)) and not isinstance(score, bool)


def _wait_invoke(base, t0, proc, timeout, body):
    """coldstart.wait_invoke, accepting our JSON answer as well as the peer's bare number."""
    last = None
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return None, last
        t1 = time.monotonic()
        code, out = coldstart.http("POST", base + "/invocations", body, "text/plain", timeout=60.0)
        if code == 200 and _answer_ok(out):
            return time.monotonic() - t0, round(1000 * (time.monotonic() - t1), 1)
        last = (code, out[:200])
        time.sleep(0.05)
    return None, last


coldstart.wait_invoke = _wait_invoke


def cold_start(server: Server, log_dir: Path, keep: bool):
    # coldstart.start() adds env on top of os.environ; drop what would skew the other server
    saved = {k: os.environ.pop(k) for k in ("OMP_WAIT_POLICY",) if k in os.environ}
    try:
        res, proc = coldstart.measure_once(server.cmd, server.base, timeout=180.0, cwd=server.cwd,
                                           env=server.env, log_path=str(log_dir / f"{server.name}.log"),
                                           keep=keep)
    finally:
        os.environ.update(saved)
    if not res.get("invoke_s"):
        if proc is not None:
            coldstart.stop(proc)
        raise SystemExit(f"{server.name} did not answer: {res}; log in {log_dir}")
    return res, proc


def hwm(pgid: int) -> list[tuple[int, float, float, str]]:
    """(pid, rss MB, peak RSS MB, command) for every process of the group."""
    out = []
    for pid in coldstart.group_pids(pgid):
        rss = coldstart._kb(f"/proc/{pid}/status", "VmRSS:") / 1024
        peak = coldstart._kb(f"/proc/{pid}/status", "VmHWM:") / 1024
        pss = coldstart._kb(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = "?"
        out.append((pid, round(rss, 1), round(pss, 1), round(peak, 1), cmd.strip()[:90]))
    return out


def print_memory(label: str, procs) -> dict:
    total_rss = sum(p[1] for p in procs)
    total_pss = sum(p[2] for p in procs)
    total_peak = sum(p[3] for p in procs)
    print(f"  memory {label}: RSS {total_rss:.0f} MB, PSS {total_pss:.0f} MB, sum of per-process peaks "
          f"{total_peak:.0f} MB over {len(procs)} processes")
    for pid, rss, pss, peak, cmd in procs:
        print(f"    pid {pid:<7d} RSS {rss:7.1f}  PSS {pss:7.1f}  peak {peak:7.1f} MB  {cmd}")
    return {"rss_mb": total_rss, "pss_mb": total_pss, "peak_sum_mb": total_peak, "procs": procs}


def loadgen(python: str, server: Server, requests: int, concurrency: int, duration: float,
            words: int, warmup: int) -> dict:
    cmd = [python, str(_common.PEER_DIR / "loadgen.py"), server.base + "/invocations", "-n", str(requests),
           "-c", str(concurrency), "--duration", str(duration), "--warmup", str(warmup),
           "--words", str(words), "--json"]
    if server.json_answers:
        cmd.append("--no-check-float")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration + 120)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"loadgen failed: {out.stderr[-2000:]}")
    res = json.loads(lines[-1])
    print(f"  loadgen c={concurrency} words={words}: {res['ok']} ok / {res['errors']} errors in "
          f"{res['elapsed_s']} s -> {res['throughput_rps']} req/s; p50 {res['p50_ms']} ms, p90 "
          f"{res['p90_ms']} ms, p99 {res['p99_ms']} ms, max {res['max_ms']} ms (stopped by "
          f"{res['stopped_by']}) load {_common.loadavg()}", flush=True)
    if res["errors"]:
        print(f"    errors: {res['error_samples']}")
    return res


def check_answers(server: Server, text: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/invocations", body=text.encode(), headers={"Content-Type": "text/plain"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200 and _answer_ok(body), (resp.status, body[:200])
    return json.loads(body) if server.json_answers else {"score": float(body)}


def explanation_cost(server: Server, text: str, rounds: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bodies = {"plain": json.dumps({"text": text}).encode(),
              "explain": json.dumps({"text": text, "explain": True}).encode()}
    times: dict[str, list[float]] = {"plain": [], "explain": []}
    answer = None
    for i in range(rounds + 3):
        for kind in ("plain", "explain"):
            t0 = time.perf_counter()
            conn.request("POST", "/invocations", body=bodies[kind], headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
            dt = time.perf_counter() - t0
            if resp.status != 200:
                conn.close()
                print(f"  explanation: FAILED, HTTP {resp.status} {payload[:200]!r} for the {kind} request")
                return None
            if i >= 3:  # three warm-up rounds
                times[kind].append(dt)
            if kind == "explain":
                answer = json.loads(payload)
    conn.close()
    scored = sum(1 for e in answer["explanation"] if e["weight"] is not None)
    res = {k: {"p50_ms": 1000 * median(v), "p99_ms": 1000 * percentile(v, 99), "n": len(v)} for k, v in times.items()}
    res["words"] = len(answer["explanation"])
    res["scored_words"] = scored
    res["ratio_p50"] = res["explain"]["p50_ms"] / res["plain"]["p50_ms"]
    print(f"  explanation: {res['words']} words ({scored} kept by the preprocessing, each occluded); "
          f"plain p50 {res['plain']['p50_ms']:.2f} ms (p99 {res['plain']['p99_ms']:.2f}), explain p50 "
          f"{res['explain']['p50_ms']:.2f} ms (p99 {res['explain']['p99_ms']:.2f}) -> "
          f"{res['ratio_p50']:.1f}x, n={rounds} each", flush=True)
    return res


# ----------------------------------------------------------------------------- main

def session(server: Server, args, log_dir: Path, extra=None) -> dict:
    print(f"\n## {server.name}: {' '.join(server.cmd)}")
    print(f"   env {server.env}", flush=True)
    res, proc = cold_start(server, log_dir, keep=True)
    out = {"cold": res}
    try:
        print(f"  cold start: /ping 200 after {res['ping_s']:.2f} s, first answer after {res['invoke_s']:.2f} s "
              f"(its latency {res['first_invoke_ms']} ms)")
        out["mem_first"] = print_memory("after the first answer", hwm(proc.pid))
        sample = check_answers(server, reviews.make_reviews(1, seed=5, n_words=230)[0])
        print(f"  answer check: {json.dumps(sample)[:120]}")
        out["c8"] = loadgen(args.loadgen_python, server, args.requests, 8, args.duration, 200, 50)
        out["c1"] = loadgen(args.loadgen_python, server, args.latency_requests, 1, args.duration, 230, 20)
        if extra:
            out.update(extra(server))
        out["mem_after"] = print_memory("after the load", hwm(proc.pid))
    finally:
        out["stopped_clean"] = coldstart.stop(proc)
        print(f"  stopped {'cleanly' if out['stopped_clean'] else 'NOT CLEANLY'}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default="/tmp/peer", help="where setup.sh installed the peer")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--requests", type=int, default=3000, help="measured requests at concurrency 8")
    ap.add_argument("--latency-requests", type=int, default=1000, help="measured requests at concurrency 1")
    ap.add_argument("--duration", type=float, default=30.0, help="max seconds per load run")
    ap.add_argument("--cold-repeats", type=int, default=2, help="extra cold starts of each server")
    ap.add_argument("--explain-rounds", type=int, default=100)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-full", action="store_true", help="skip the deployed-size memory run")
    args = ap.parse_args()
    _common.set_nltk_data()
    prefix = Path(args.peer)
    args.loadgen_python = str(prefix / "venv" / "bin" / "python")
    if not Path(args.loadgen_python).exists():
        raise SystemExit(f"no peer virtualenv at {prefix}: run {_common.PEER_DIR}/setup.sh {prefix} first")
    if not args.skip_peer and subprocess.run(["pgrep", "-f", "org.pytorch.serve.ModelServer"],
                                             capture_output=True).returncode == 0:
        raise SystemExit("a TorchServe is already running on this machine (one at a time): try later")

    header("serving: ours vs the peer (sagemaker-pytorch-inference on TorchServe)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    log_dir = tmp / "logs"
    log_dir.mkdir()
    try:
        model_dir = build_our_model(tmp / "model_original")
        text230 = reviews.make_reviews(1, seed=1234, n_words=230)[0]
        results = {}
        if not args.skip_peer:
            results["peer"] = session(peer(prefix, free_port(), args.workers), args, log_dir)
        results["ours"] = session(ours(model_dir, free_port(), args.workers), args, log_dir,
                                  extra=lambda s: {"explain": explanation_cost(s, text230, args.explain_rounds)})

        colds = {name: [results[name]["cold"]] for name in results}
        if args.cold_repeats:
            print(f"\n## {args.cold_repeats} more cold starts of each, alternating")
            for _ in range(args.cold_repeats):
                for name in results:
                    srv = (peer(prefix, free_port(), args.workers) if name == "peer"
                           else ours(model_dir, free_port(), args.workers))
                    res, _ = cold_start(srv, log_dir, keep=False)
                    colds[name].append(res)
                    print(f"  {name}: /ping {res['ping_s']:.2f} s, first answer {res['invoke_s']:.2f} s, "
                          f"RSS {res['mem']['rss_mb']:.0f} MB, PSS {res['mem']['pss_mb']:.0f} MB", flush=True)
                    time.sleep(1.0)

        full = None
        if not args.skip_full:
            full_dir = build_our_model(tmp / "model_full", "full", 25_000)
            srv = ours(full_dir, free_port(), args.workers)
            print("\n## ours with a deployed-size model (--preset full, 25k vocabulary): memory")
            res, proc = cold_start(srv, log_dir, keep=True)
            try:
                print(f"  cold start: /ping {res['ping_s']:.2f} s, first answer {res['invoke_s']:.2f} s")
                lg = loadgen(args.loadgen_python, srv, 1000, 8, 15.0, 200, 20)
                ex = explanation_cost(srv, text230, max(10, args.explain_rounds // 2))
                # the longest review the model reads (max_len 400 tokens): the most memory one request takes
                ex_long = explanation_cost(srv, reviews.make_reviews(1, seed=99, n_words=800)[0], 5)
                full = {"cold": res, "c8": lg, "pooling": json.loads((full_dir / "config.json").read_text())["hyperparameters"].get("pooling"), "explain": ex, "explain_long": ex_long,
                        "mem": print_memory("after load and explanations", hwm(proc.pid))}
            finally:
                coldstart.stop(proc)

        summary(results, colds, full, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    footer()
    return 0


def summary(results: dict, colds: dict, full, args) -> None:
    def med(name, key):
        return median([c[key] for c in colds[name]])

    o = results["ours"]
    p = results.get("peer")
    print("\n| measure | peer (TorchServe) | ours | ours vs peer | target |")
    print("| --- | --- | --- | --- | --- |")
    if p:
        tp = o["c8"]["throughput_rps"] / p["c8"]["throughput_rps"]
        print(f"| throughput, concurrency 8 | {p['c8']['throughput_rps']:.0f} req/s | "
              f"{o['c8']['throughput_rps']:.0f} req/s | {tp:.2f}x | >=3x: {'met' if tp >= 3 else 'MISSED'} |")
        for key in ("p50_ms", "p99_ms"):
            r = o["c1"][key] / p["c1"][key]
            print(f"| latency {key[:3]}, concurrency 1, 230 words | {p['c1'][key]:.2f} ms | {o['c1'][key]:.2f} ms | "
                  f"{r:.2f} of the peer's | <=0.33: {'met' if r <= 1 / 3 else 'MISSED'} |")
        for key, what in (("ping_s", "start to /ping 200"), ("invoke_s", "start to first answer")):
            pv, ov = med("peer", key), med("ours", key)
            target = f"<=2 s: {'met' if ov <= 2 else 'MISSED'}" if key == "ping_s" else "-"
            print(f"| cold start, {what} (median of {len(colds['ours'])}) | {pv:.2f} s | {ov:.2f} s | "
                  f"{ratio(pv, ov)} faster | {target} |")
        for key, what in (("pss_mb", "PSS, whole server, after load"), ("rss_mb", "RSS sum, whole server, after load"),
                          ("peak_sum_mb", "sum of per-process peak RSS")):
            print(f"| memory, {what} | {p['mem_after'][key]:.0f} MB | {o['mem_after'][key]:.0f} MB | "
                  f"{ratio(p['mem_after'][key], o['mem_after'][key])} less | - |")
    else:
        print(f"| throughput, concurrency 8 | - | {o['c8']['throughput_rps']:.0f} req/s | - | - |")
    e = o["explain"]
    if e is None:
        print("| explanation | - | FAILED (HTTP error, see above) | - | <=10x: MISSED |")
    else:
        print(f"| explanation, {e['words']}-word review, p50 | plain {e['plain']['p50_ms']:.2f} ms | "
              f"{e['explain']['p50_ms']:.2f} ms | {e['ratio_p50']:.1f}x plain | <=10x: "
              f"{'met' if e['ratio_p50'] <= 10 else 'MISSED'} |")
    if full:
        e = full["explain"]
        if e is None:
            print(f"| explanation, deployed-size model (pooling {full['pooling']}) | - | FAILED (HTTP error) | - | "
                  "<=10x: MISSED |")
        else:
            print(f"| explanation, deployed-size model, {e['words']}-word review, p50 | plain {e['plain']['p50_ms']:.2f} ms | "
                  f"{e['explain']['p50_ms']:.2f} ms | {e['ratio_p50']:.1f}x plain | <=10x: "
                  f"{'met' if e['ratio_p50'] <= 10 else 'MISSED'} |")
        print(f"| throughput, deployed-size model, concurrency 8 | - | {full['c8']['throughput_rps']:.0f} req/s | - | - |")
        workers = [pr for pr in full["mem"]["procs"] if pr[0] != min(x[0] for x in full["mem"]["procs"])]
        print(f"| memory, deployed-size model, 2 workers: PSS whole server / max peak RSS of one process | - | "
              f"{full['mem']['pss_mb']:.0f} MB / {max(pr[3] for pr in full['mem']['procs']):.0f} MB | - | "
              f"fits 2 GB: {'yes' if full['mem']['pss_mb'] < 1536 else 'NO'} |")
        if workers:
            print(f"  (deployed-size workers' PSS: {', '.join(f'{pr[2]:.0f}' for pr in workers)} MB)")


if __name__ == "__main__":
    sys.exit(main())
