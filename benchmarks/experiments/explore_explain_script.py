"""Experiment: model/explain.py's occlusion recurrence as one TorchScript function (no Python per step).

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/experiments/explore_explain_script.py

``occlusion_probabilities`` runs ~10 small torch calls per step of a Python loop (170 steps for a
~230-word review). Here the same recurrence (same arithmetic, same order) is one ``torch.jit.script``
function; the set-up before the loop is ``model/explain.py``'s. Checked against
``occlusion_probabilities`` (same probabilities to float rounding), then both timed, interleaved, one
thread, on bench_serving's original-size model and review. Evidence for the suggestion in
docs/performance.md; model/ is not changed.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import _common  # noqa: E402
from _common import footer, header  # noqa: E402

import torch  # noqa: E402


@torch.jit.script
def _recurrence(proj: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh_t: torch.Tensor) -> torch.Tensor:
    n = proj.shape[0]
    for t in range(1, n):
        gates = torch.addmm(proj[t], h[:t], w_hh_t).sigmoid_()
        i, f, g, o = gates.chunk(4, 1)
        cv = c[:t]
        cv.mul_(f).addcmul_(i, g, value=2.0).sub_(i)
        th = (cv + cv).sigmoid_().mul_(2.0).sub_(1.0)
        h[:t] = o * th
    return h


@torch.inference_mode()
def scripted_occlusion(model, ids):
    lstm = model.forward_layers[0]
    x = model.embedding(torch.tensor(ids, dtype=torch.long))
    n, hidden = x.shape[0], lstm.hidden_size
    scale = torch.ones(4 * hidden, 1)
    scale[2 * hidden:3 * hidden] = 2.0
    w_ih = lstm.weight_ih_l0 * scale
    w_hh_t = (lstm.weight_hh_l0 * scale).t().contiguous()
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0) * scale[:, 0]
    out, _ = lstm(x[None])
    h_seq = out[0]
    proj = torch.addmm(bias, x, w_ih.t())
    h = torch.cat([torch.zeros(1, hidden), h_seq[:-1]])
    gates = torch.addmm(proj, h, w_hh_t).sigmoid_()
    i, f, g, _ = gates.chunk(4, dim=1)
    ig = torch.addcmul(-i, i, g, value=2.0)
    c = torch.zeros(n, hidden)
    for t in range(n - 1):
        torch.addcmul(ig[t], f[t], c[t], out=c[t + 1])
    finals = _recurrence(proj, h.clone(), c, w_hh_t)
    probs = torch.sigmoid(model.dense(torch.cat([h_seq[-1][None], finals])).squeeze(-1)).tolist()
    return probs[0], probs[1:]


def main() -> int:
    _common.set_nltk_data()
    header("explanation: the occlusion recurrence in TorchScript vs model/explain.py")
    torch.set_num_threads(1)
    from bench_serving import build_our_model, reviews
    from model import inference
    from model.explain import occlusion_probabilities

    m = inference.model_fn(str(build_our_model(Path(tempfile.mkdtemp(prefix="explore_script_")) / "model")))
    text = reviews.make_reviews(1, seed=1234, n_words=230)[0]
    ids = m.encode(text)
    req = inference.input_fn(text.encode(), "text/plain")
    ref = occlusion_probabilities(m.model, ids)
    new = scripted_occlusion(m.model, ids)
    diff = max(abs(a - b) for a, b in zip(ref[1], new[1]))
    print(f"{len(ids)} tokens; largest difference from occlusion_probabilities: {diff:.2e}")
    assert diff < 1e-5 and abs(ref[0] - new[0]) < 1e-6
    for _ in range(5):
        scripted_occlusion(m.model, ids)  # TorchScript profiles its first runs
    a, b, p = [], [], []
    for _ in range(40):
        t0 = time.perf_counter()
        occlusion_probabilities(m.model, ids)
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scripted_occlusion(m.model, ids)
        b.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        inference.predict_fn(req, m)
        p.append(time.perf_counter() - t0)
    med = lambda v: 1e3 * sorted(v)[len(v) // 2]  # noqa: E731
    print(f"p50 of 40, interleaved, one thread: model/explain.py {med(a):.1f} ms, TorchScript recurrence "
          f"{med(b):.1f} ms ({med(a) / med(b):.2f}x); plain prediction {med(p):.2f} ms")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
