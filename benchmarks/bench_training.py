"""Training step time of the original configuration: the original implementation against ours.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_training.py [--batches 20]

Both run the original hyperparameters (``--preset original``: 5k vocabulary, embedding 32, one LSTM
of 100, 500 tokens at most, batch 512, Adam lr 1e-3) on the same 22,500 training reviews (the train
split less the 10% validation hold-out that ``train`` uses, seed 42), preprocessed and encoded once
here with the original tokens:

* baseline: the original implementation, written out below as it was: every review padded to 500
  (``[length, id_1 .. id_500]``), a sequence-first ``nn.LSTM`` over all 500 steps, the dense layer on
  every step, the output read at ``length - 1``, ``BCELoss`` on the sigmoid, batches of 512 from a
  ``DataLoader``; run in a default process (glibc's malloc and libgomp's wait policy untouched).
* ours: ``model.network.LSTMClassifier`` with the same hyperparameters, fed our length-bucketed
  batches padded only to their own longest review (``model.training_loop.bucketed_batches`` /
  ``pad_batch``), ``BCEWithLogitsLoss``: the inner loop of ``model.training_loop.fit``, in a process set
  up as ``python -m model.train`` sets itself up (``tune_malloc()``, ``OMP_WAIT_POLICY=PASSIVE``).

Each configuration runs in a fresh child process (malloc and OpenMP settings are per process and
must be set before torch loads), one after the other. One unmeasured warm-up batch, then
``--batches`` measured batches; the epoch figure is the mean seconds per batch times the 44 batches
of an epoch (extrapolated unless a full epoch was measured: say so). Training steps only: the
per-epoch validation pass is not included (it is in the history of a real run, docs/model-card.md).
Each child reports wall, user and system CPU seconds (``resource.getrusage``) and its peak RSS.

Factor runs (fewer batches, ``--factor-batches``) isolate the process settings, for both
implementations: the allocator (glibc malloc as it comes, glibc with our ``tune_malloc()``, or
tcmalloc through ``LD_PRELOAD`` when ``libtcmalloc-minimal4`` is installed) and OMP_WAIT_POLICY
(PASSIVE / unset / ACTIVE). Minor page faults per batch are reported too: unlike times, they do not
depend on how busy the machine is. With tcmalloc, ours also runs a full epoch.

Before timing, the two implementations are checked to compute the same function: with the same
weights, the same 64 reviews give the same probabilities and the same loss gradient (to float
rounding), the original padded to 500, ours to the batch's longest review.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header, ratio  # noqa: E402

EPOCH_REVIEWS = 22_500
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"  # Debian: libtcmalloc-minimal4


# ----------------------------------------------------------------------------- the original model

def original_classes():
    import torch
    from torch import nn

    class OriginalLSTMClassifier(nn.Module):
        """The original system's model, as it was: sequence-first LSTM over all 500 padded steps."""

        def __init__(self, embedding_dim, hidden_dim, vocab_size):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
            self.lstm = nn.LSTM(embedding_dim, hidden_dim)
            self.dense = nn.Linear(in_features=hidden_dim, out_features=1)
            self.sig = nn.Sigmoid()

        def forward(self, x):
            x = x.t()
            lengths = x[0, :]
            reviews = x[1:, :]
            embeds = self.embedding(reviews)
            lstm_out, _ = self.lstm(embeds)
            out = self.dense(lstm_out)
            out = out[lengths - 1, range(len(lengths))]
            return self.sig(out.squeeze())

    return torch, OriginalLSTMClassifier


def original_rows(ids_lists, max_len=500):
    """The original ``convert_and_pad``: [length, id_1 .. id_500], 0-padded, truncated to 500."""
    rows = []
    for ids in ids_lists:
        ids = ids[:max_len]
        rows.append([len(ids)] + ids + [0] * (max_len - len(ids)))
    return rows


# ----------------------------------------------------------------------------- child process

def tune_malloc() -> None:
    """glibc's mallopt tuning that `train` used to apply (kept here as a measured alternative).

    It raises the mmap and trim thresholds; glibc caps the mmap threshold at 32 MiB, below the
    LSTM's work buffers, so it barely helps (docs/performance.md). `train` now re-execs itself under
    tcmalloc instead.
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD, glibc's maximum on 64-bit
        libc.mallopt(-1, 1024 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def child(args) -> int:
    if args.malloc == "tuned":
        tune_malloc()
    import resource

    import torch
    from torch import nn

    from model.hyperparameters import preset
    from model.training_loop import bucketed_batches, configure_threads, seed_everything
    from model.network import LSTMClassifier, pad_batch
    import random

    data = json.loads(Path(args.data_file).read_text())
    ids, labels = data["ids"], data["labels"]
    hp = preset("original")
    threads = configure_threads(hp.workers)
    seed_everything(hp.seed)
    total = args.batches + 1  # one warm-up batch

    if args.child == "original":
        _, Original = original_classes()
        model = Original(hp.embedding_dim, hp.hidden_dim, hp.vocab_size)
        order = list(range(len(ids)))
        random.Random(hp.seed).shuffle(order)
        x = torch.tensor(original_rows([ids[i] for i in order], hp.max_len), dtype=torch.long)
        y = torch.tensor([float(labels[i]) for i in order])
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=hp.batch_size)
        optimizer = torch.optim.Adam(model.parameters())  # lr 1e-3, as the original
        loss_fn = nn.BCELoss()

        def batches():
            for batch_x, batch_y in loader:
                yield batch_x, batch_y

        def step(batch):
            batch_x, batch_y = batch
            optimizer.zero_grad()
            out = model(batch_x)
            loss = loss_fn(out, batch_y)
            loss.backward()
            optimizer.step()
            return loss.data.item(), 500
    else:
        model = LSTMClassifier.from_hyperparameters(hp, hp.vocab_size)
        optimizer = torch.optim.Adam(model.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
        loss_fn = nn.BCEWithLogitsLoss()
        lengths = [max(1, len(s)) for s in ids]
        plan = bucketed_batches(lengths, hp.batch_size, random.Random(hp.seed), hp.bucket_pool)

        def batches():
            for idx in plan:
                yield idx

        def step(idx):  # model.training_loop.fit's inner loop (grad_clip is 0 in this preset)
            b_ids, lens = pad_batch([ids[i] for i in idx])
            y = torch.tensor([labels[i] for i in idx], dtype=torch.float32)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(b_ids, lens), y)
            loss.backward()
            optimizer.step()
            return float(loss.detach()), int(b_ids.shape[1])

    model.train()
    times, steps = [], []
    r0 = None
    t_start = 0.0
    for n, batch in enumerate(batches()):
        if n >= total:
            break
        if n == 1:
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t_start = time.perf_counter()
        t0 = time.perf_counter()
        loss, padded = step(batch)
        dt = time.perf_counter() - t0
        if n >= 1:
            times.append(dt)
            steps.append(padded)
    wall = time.perf_counter() - t_start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "impl": args.child, "malloc": args.malloc, "omp": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "threads": threads, "batches": len(times), "wall_s": wall, "per_batch_s": times,
        "padded_steps": steps, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
        "minor_faults": r1.ru_minflt - r0.ru_minflt, "max_rss_mb": r1.ru_maxrss / 1024,
        "last_loss": loss,
    }), flush=True)
    return 0


# ----------------------------------------------------------------------------- parent

def prepare(data_path: str) -> tuple[dict, dict]:
    from model.data import load, split_validation
    from model.hyperparameters import preset
    from model.preprocess import Preprocessor
    from model.training_loop import bucketed_batches
    from model.vocab import Vocabulary
    import random

    hp = preset("original")
    t0 = time.perf_counter()
    dataset = load(data_path, splits=("train",))
    train, _ = split_validation(dataset.train, hp.validation_fraction, hp.seed)
    tokens = Preprocessor.create("original").tokens_many([r.text for r in train])
    vocab = Vocabulary.build(tokens, hp.vocab_size)
    ids = [vocab.encode(t, hp.max_len) for t in tokens]
    labels = [r.label for r in train]
    lengths = [max(1, len(s)) for s in ids]
    plan = bucketed_batches(lengths, hp.batch_size, random.Random(hp.seed), hp.bucket_pool)
    padded = [max(lengths[i] for i in b) for b in plan]
    real = sum(lengths)
    info = {
        "reviews": len(ids), "prepare_s": round(time.perf_counter() - t0, 1),
        "batches_per_epoch": len(plan),
        "mean_tokens": real / len(ids),
        "ours_padded_steps_epoch": sum(p * len(b) for p, b in zip(padded, plan)),
        "original_padded_steps_epoch": 500 * len(ids),
        "real_steps_epoch": real,
        "ours_mean_batch_len": sum(padded) / len(padded),
    }
    return {"ids": ids, "labels": labels}, info


def equivalence(data: dict) -> dict:
    """Same weights, same 64 reviews: same probabilities and gradients from both implementations."""
    torch, Original = original_classes()
    from model.hyperparameters import preset
    from model.network import LSTMClassifier, pad_batch
    from torch import nn

    hp = preset("original")
    torch.manual_seed(0)
    ours = LSTMClassifier.from_hyperparameters(hp, hp.vocab_size)
    orig = Original(hp.embedding_dim, hp.hidden_dim, hp.vocab_size)
    state = {k.replace("forward_layers.0.", "lstm."): v for k, v in ours.state_dict().items()}
    orig.load_state_dict(state)
    idx = list(range(0, 64 * 97, 97))
    seqs = [data["ids"][i] for i in idx]
    y = torch.tensor([float(data["labels"][i]) for i in idx])
    x_orig = torch.tensor(original_rows(seqs), dtype=torch.long)
    p_orig = orig(x_orig)
    nn.BCELoss()(p_orig, y).backward()
    ids, lens = pad_batch(seqs)
    logits = ours(ids, lens)
    nn.BCEWithLogitsLoss()(logits, y).backward()
    p_ours = torch.sigmoid(logits)
    grads = {
        "embedding": (orig.embedding.weight.grad, ours.embedding.weight.grad),
        "lstm.weight_hh": (orig.lstm.weight_hh_l0.grad, ours.forward_layers[0].weight_hh_l0.grad),
        "dense": (orig.dense.weight.grad, ours.dense.weight.grad),
    }
    out = {"max_abs_prob_diff": float((p_orig - p_ours).detach().abs().max()), "padded_to": [500, int(ids.shape[1])]}
    for name, (a, b) in grads.items():
        out[f"max_rel_grad_diff_{name}"] = float((a - b).abs().max() / b.abs().max())
    assert out["max_abs_prob_diff"] < 1e-5, out
    assert all(v < 1e-3 for k, v in out.items() if k.startswith("max_rel")), out
    return out


def run_child(data_file: str, impl: str, malloc: str, omp: str, batches: int, tcmalloc: str = "") -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("LD_PRELOAD", None)
    if omp != "unset":
        env["OMP_WAIT_POLICY"] = omp
    if malloc == "tcmalloc":
        env["LD_PRELOAD"] = tcmalloc
    cmd = [sys.executable, __file__, "--child", impl, "--malloc", malloc, "--batches", str(batches),
           "--data-file", data_file]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {impl}/{malloc}/{omp} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t0
    res["mean_s"] = sum(res["per_batch_s"]) / len(res["per_batch_s"])
    res["load_after"] = _common.loadavg()
    print(f"  {impl:8s} malloc={malloc:8s} OMP_WAIT_POLICY={omp:7s} batches={res['batches']:3d} "
          f"mean {res['mean_s']:.3f} s/batch (min {min(res['per_batch_s']):.3f}, "
          f"max {max(res['per_batch_s']):.3f}), user {res['user_s']:.1f} s, sys {res['sys_s']:.2f} s, "
          f"minor faults {res['minor_faults']}, peak RSS {res['max_rss_mb']:.0f} MB, "
          f"load {res['load_after']}", flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(_common.DATA))
    ap.add_argument("--batches", type=int, default=20, help="measured batches, main comparison")
    ap.add_argument("--ours-batches", type=int, default=0,
                    help="measured batches for ours in the main comparison (0: a full epoch)")
    ap.add_argument("--factor-batches", type=int, default=6, help="measured batches per factor run")
    ap.add_argument("--factor-rounds", type=int, default=3, help="repeat the factor runs, interleaved")
    ap.add_argument("--no-factors", action="store_true")
    ap.add_argument("--data-cache", help="reuse (or write) the prepared data here (JSON)")
    ap.add_argument("--child", choices=["original", "ours"], help=argparse.SUPPRESS)
    ap.add_argument("--malloc", choices=["default", "tuned", "tcmalloc"], default="default", help=argparse.SUPPRESS)
    ap.add_argument("--tcmalloc", default=TCMALLOC, help="tcmalloc library for the tcmalloc runs ('' to skip them)")
    ap.add_argument("--data-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    _common.set_nltk_data()
    if args.child:
        return child(args)

    header("training steps, original configuration: original implementation vs ours")
    if args.data_cache and Path(args.data_cache).is_file():
        cached = json.loads(Path(args.data_cache).read_text())
        data, info = cached["data"], cached["info"]
        print(f"prepared data read from {args.data_cache}")
    else:
        data, info = prepare(args.data)
        if args.data_cache:
            Path(args.data_cache).write_text(json.dumps({"data": data, "info": info}))
    per_epoch = info["batches_per_epoch"]
    print(f"data: {info['reviews']} training reviews, {per_epoch} batches of 512 per epoch, mean "
          f"{info['mean_tokens']:.0f} tokens/review (prepared in {info['prepare_s']} s, not timed)")
    print(f"LSTM steps per epoch: original {info['original_padded_steps_epoch']:,} (all padded to 500), "
          f"ours {info['ours_padded_steps_epoch']:,} (bucketed, mean batch length "
          f"{info['ours_mean_batch_len']:.0f}), real tokens {info['real_steps_epoch']:,}")
    eq = equivalence(data)
    print(f"same function: {json.dumps(eq)}", flush=True)

    ours_batches = args.ours_batches or per_epoch
    tc = args.tcmalloc if args.tcmalloc and Path(args.tcmalloc).is_file() else ""
    if args.tcmalloc and not tc:
        print(f"(no {args.tcmalloc}: tcmalloc runs skipped; apt-get install libtcmalloc-minimal4)")
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        data_file = os.path.join(tmp, "data.json")
        Path(data_file).write_text(json.dumps(data))

        def run(impl, malloc, omp, batches):
            return run_child(data_file, impl, malloc, omp, batches, tc)

        print("\nmain comparison (each configuration in its own process):")
        base = run("original", "default", "unset", args.batches)
        ours = run("ours", "tuned", "PASSIVE", ours_batches)
        base_tuned = run("original", "tuned", "PASSIVE", args.batches)
        ours_tc = run("ours", "tcmalloc", "PASSIVE", ours_batches) if tc else None
        factors = {}
        if not args.no_factors:
            fb = args.factor_batches
            print(f"\nfactor runs ({fb} batches each; ours: the same first {fb} batches of the epoch; "
                  f"{args.factor_rounds} rounds, configurations interleaved, the round with the median "
                  "s/batch reported):")
            combos = [("original", "default", "PASSIVE"), ("original", "tuned", "PASSIVE"),
                      ("original", "tcmalloc", "PASSIVE"), ("original", "tuned", "unset"),
                      ("ours", "tuned", "PASSIVE"), ("ours", "default", "PASSIVE"), ("ours", "tcmalloc", "PASSIVE"),
                      ("ours", "tuned", "unset"), ("ours", "tuned", "ACTIVE")]
            combos = [c for c in combos if c[1] != "tcmalloc" or tc]
            runs: dict = {c: [] for c in combos}
            for rnd in range(args.factor_rounds):
                print(f" round {rnd + 1}:")
                for impl, malloc, omp in combos:
                    runs[(impl, malloc, omp)].append(run(impl, malloc, omp, fb))
            for key, results in runs.items():
                ordered = sorted(results, key=lambda r: r["mean_s"])
                factors[key] = ordered[len(ordered) // 2]
                factors[key]["rounds_s"] = [round(r["mean_s"], 3) for r in results]

    def epoch(res):
        return res["mean_s"] * per_epoch

    def how(res):
        if res["batches"] >= per_epoch - 1:
            return f"measured: {res['batches']} of the epoch's {per_epoch} batches, the first is the warm-up"
        return f"{res['batches']} batches x {per_epoch}/{res['batches']}"

    print()
    print("| configuration | s/batch | epoch s (how) | user s/batch | sys s/batch | minor faults/batch | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = [("original as it ran (glibc malloc default, OMP_WAIT_POLICY unset)", base),
            ("original + our process settings (tune_malloc, PASSIVE)", base_tuned),
            ("ours as `train` runs it (tune_malloc, PASSIVE)", ours)]
    if ours_tc:
        rows.append(("ours + tcmalloc (LD_PRELOAD), PASSIVE", ours_tc))
    rows += [(f"factor: {i}, malloc {m}, OMP {o}", r) for (i, m, o), r in factors.items()]
    for name, r in rows:
        b = r["batches"]
        print(f"| {name} | {r['mean_s']:.3f} | {epoch(r):.1f} ({how(r)}) | {r['user_s'] / b:.2f} | "
              f"{r['sys_s'] / b:.2f} | {r['minor_faults'] // b:,} | {r['max_rss_mb']:.0f} |")
    print()
    print(f"epoch time ratio, original as it ran / ours: {ratio(epoch(base), epoch(ours))} "
          f"({epoch(base):.1f} s vs {epoch(ours):.1f} s per epoch of training steps)")
    print(f"epoch time ratio, original with our process settings / ours (bucketing alone): "
          f"{ratio(epoch(base_tuned), epoch(ours))}")
    print(f"original, our process settings vs as it ran: {ratio(epoch(base), epoch(base_tuned))} faster")
    if ours_tc:
        print(f"ours with tcmalloc vs ours as shipped: {ratio(epoch(ours), epoch(ours_tc))} faster "
              f"(sys {ours_tc['sys_s'] / ours_tc['batches']:.2f} vs {ours['sys_s'] / ours['batches']:.2f} s/batch)")
    f = factors

    def line(label, keys):
        parts = []
        for name, key in keys:
            r = f.get(key) if not isinstance(key, dict) else key
            if r:
                rounds = f", rounds {r['rounds_s']}" if "rounds_s" in r else ""
                parts.append(f"{name} {r['mean_s']:.3f} s/batch (sys {r['sys_s'] / r['batches']:.2f}, "
                             f"faults {r['minor_faults'] // r['batches']:,}{rounds})")
        print(f"{label}: " + "; ".join(parts))

    if f:
        line("malloc, original (PASSIVE)", [("glibc default", ("original", "default", "PASSIVE")),
                                            ("tune_malloc", ("original", "tuned", "PASSIVE")),
                                            ("tcmalloc", ("original", "tcmalloc", "PASSIVE"))])
        line("malloc, ours (PASSIVE)", [("glibc default", ("ours", "default", "PASSIVE")),
                                        ("tune_malloc", ("ours", "tuned", "PASSIVE")),
                                        ("tcmalloc", ("ours", "tcmalloc", "PASSIVE"))])
        line("OMP_WAIT_POLICY, original (tune_malloc)", [("unset", ("original", "tuned", "unset")),
                                                         ("PASSIVE", ("original", "tuned", "PASSIVE"))])
        line("OMP_WAIT_POLICY, ours (tune_malloc)", [("unset", ("ours", "tuned", "unset")),
                                                     ("ACTIVE", ("ours", "tuned", "ACTIVE")),
                                                     ("PASSIVE", ("ours", "tuned", "PASSIVE"))])
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
