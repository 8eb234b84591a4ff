"""Experiment: model/explain.py's one-direction occlusion recurrence split over two threads.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/experiments/explore_explain_threads.py

The occluded rows are independent, so rows [0, k) and [k, n) can advance on two threads (k = n(1-1/sqrt 2)
balances their row-steps). Same result to the bit as ``occlusion_probabilities``; timed against it,
interleaved, on bench_serving's original-size model and ~230-word review. Measured here: no gain
(the recurrence is ~10 small torch calls per step; see docs/performance.md).
"""
import sys, time, math, tempfile
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, str(Path(__file__).resolve().parents[1])); sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import torch
torch.set_num_threads(1)
from model import inference
from model.explain import occlusion_probabilities
from bench_serving import build_our_model, reviews

m = inference.model_fn(str(build_our_model(Path(tempfile.mkdtemp(prefix="explore_explain_")) / "model")))
text = reviews.make_reviews(1, seed=1234, n_words=230)[0]
ids = m.encode(text)
model = m.model
lstm = model.forward_layers[0]
pool = ThreadPoolExecutor(1)

@torch.inference_mode()
def split(ids):
    x = model.embedding(torch.tensor(ids))
    n, H = x.shape[0], lstm.hidden_size
    scale = torch.ones(4 * H, 1); scale[2 * H:3 * H] = 2.0
    w_ih = lstm.weight_ih_l0 * scale; w_hh_t = (lstm.weight_hh_l0 * scale).t()
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0) * scale[:, 0]
    out, _ = lstm(x[None]); h_seq = out[0]
    proj = torch.addmm(bias, x, w_ih.t())
    h0 = torch.cat([torch.zeros(1, H), h_seq[:-1]])
    gates = torch.addmm(proj, h0, w_hh_t).sigmoid_()
    i, f, g, _ = gates.chunk(4, dim=1)
    ig = torch.addcmul(-i, i, g, value=2.0)
    c0 = torch.zeros(n, H)
    for t in range(n - 1):
        torch.addcmul(ig[t], f[t], c0[t], out=c0[t + 1])

    def rows(lo, hi):
        h = h0[lo:hi].clone(); c = c0[lo:hi].clone()
        buf = torch.empty(hi - lo, 4 * H); tmp = torch.empty(hi - lo, H)
        for t in range(lo + 1, n):
            a = min(t, hi) - lo
            gts = torch.addmm(proj[t], h[:a], w_hh_t, out=buf[:a]).sigmoid_()
            i, f, g, o = gts.chunk(4, dim=1)
            cv = c[:a]
            cv.mul_(f).addcmul_(i, g, value=2.0).sub_(i)
            th = torch.add(cv, cv, out=tmp[:a]).sigmoid_().mul_(2.0).sub_(1.0)
            torch.mul(o, th, out=h[:a])
        return h

    k = max(1, int(n * (1 - 1 / math.sqrt(2))))
    fut = pool.submit(rows, k, n)
    a = rows(0, k)
    b = fut.result()
    finals = torch.cat([a, b])
    probs = torch.sigmoid(model.dense(torch.cat([h_seq[-1][None], finals])).squeeze(-1)).tolist()
    return probs[0], probs[1:]

def bench(fn, n=30):
    for _ in range(3): fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return round(1e3 * sorted(ts)[len(ts) // 2], 1)

ref = occlusion_probabilities(model, ids); new = split(ids)
print("tokens", len(ids), "max diff", max(abs(x - y) for x, y in zip(ref[1], new[1])), abs(ref[0] - new[0]))
for _ in range(2):
    print("current (1 thread) p50 ms", bench(lambda: occlusion_probabilities(model, ids)), " split over 2 threads p50 ms", bench(lambda: split(ids)))
a, b = [], []
for _ in range(40):
    t0 = time.perf_counter(); occlusion_probabilities(model, ids); a.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); split(ids); b.append(time.perf_counter() - t0)
a.sort(); b.sort()
print("interleaved x40: current p50 %.1f ms (min %.1f), split p50 %.1f ms (min %.1f)" % (1e3*a[20], 1e3*a[0], 1e3*b[20], 1e3*b[0]))
