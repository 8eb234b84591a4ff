"""The image's size and cold start, side by side with the same work on the host (targets: image
<= 1.0 GB; <= 2 s from container start to the first answer).

    .venv/bin/python benchmarks/bench_image.py [--repeat 5]

* size: the built image (`make image`), and what takes the space inside it (largest folders);
* cold start, ``--repeat`` times each, median and range: from ``<engine> run … serve`` (read-only
  root, model read-only, a non-root user, as a serverless endpoint may run it) to ``/ping`` 200 and to
  the first ``/invocations`` answer; beside it ``python -m model.serve`` on the host from process start;
* ``train`` on the same small archive (the tiny preset) inside the image (``--network none``, only
  /opt/ml) and on the host, wall time from command start to exit.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, header, loadavg, machine, set_nltk_data  # noqa: E402

sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))
from image_runner import Engine, serve_command, train_command, training_job_dir  # noqa: E402
from fixtures_model import free_port  # noqa: E402

REVIEW = b"A wonderful, moving film with a superb cast."
HYPERPARAMETERS = {"preset": "tiny", "epochs": "2", "seed": "7"}
SPACE = r"""
import os, subprocess, sysconfig
site = sysconfig.get_paths()["purelib"]
def du(path):
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else 0
rows = [(du(os.path.join(site, d)), "site-packages/" + d) for d in os.listdir(site)]
rows += [(du(p), p) for p in ("/usr/lib", "/usr/share", "/usr/bin", "/var", "/opt/program", "/usr/local/bin")]
rows += [(du(os.path.join(site, "torch", d)), "site-packages/torch/" + d) for d in ("lib", "_inductor", "testing", "distributed")]
for kib, name in sorted(rows, reverse=True)[:16]:
    print(f"{kib / 1024:8.1f} MiB  {name}")
"""


def first_answer(url: str, started: float, deadline: float = 120.0) -> tuple[float, float]:
    """Seconds from ``started`` to /ping 200 and to the first /invocations answer."""
    ping = None
    while time.monotonic() - started < deadline:
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as r:
                if r.status == 200:
                    ping = time.monotonic() - started
                    break
        except OSError:
            time.sleep(0.02)
    if ping is None:
        raise TimeoutError("no /ping 200")
    req = urllib.request.Request(url + "/invocations", data=REVIEW, headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=30) as r:
        json.loads(r.read())
    return ping, time.monotonic() - started


def cold_start_image(engine: Engine, ref: str, model_dir: Path) -> tuple[float, float]:
    port, name = free_port(), f"bench-{uuid.uuid4().hex[:8]}"
    cmd = serve_command(engine, ref, model_dir, port, name, user="12345:12345")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return first_answer(f"http://127.0.0.1:{port}", started)
    finally:
        engine.signal(name)
        proc.wait(60)


def cold_start_host(model_dir: Path) -> tuple[float, float]:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "model.serve", "--host", "127.0.0.1", "--port", str(port),
                             "--model-dir", str(model_dir)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return first_answer(f"http://127.0.0.1:{port}", started)
    finally:
        proc.terminate()
        proc.wait(60)


def timed(cmd: list[str], **kw) -> float:
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode:
        raise RuntimeError(f"{cmd[:3]} failed: {out.stderr[-2000:]}")
    return time.monotonic() - started


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    set_nltk_data()
    header("image: size, cold start and train, inside the image and on the host")
    print(json.dumps(machine()))
    print(f"load before: {loadavg()}")
    engine = Engine.find()
    build = subprocess.run([sys.executable, str(REPO / "scripts" / "build_image.py"), "--quiet"],
                           capture_output=True, text=True)
    if build.returncode:
        print(build.stderr[-3000:], file=sys.stderr)
        return 1
    ref = build.stdout.strip().splitlines()[-1]
    print(f"engine: {engine.name}; image: {ref}")
    for line in build.stderr.splitlines():
        if "cannot be pulled" in line or "cannot be reached" in line:
            print(f"  {line}")
    size = engine.image_size(ref)
    print(f"\nimage size: {size / 1e9:.3f} GB ({size / 2**20:.0f} MiB)   target <= 1.0 GB")
    space = subprocess.run(engine.run_command(ref, "-c", SPACE, entrypoint="python"), capture_output=True, text=True)
    print("largest folders inside:\n" + space.stdout.rstrip())

    from fixtures_local import write_tiny_imdb

    work = Path(tempfile.mkdtemp(prefix="bench-image-"))
    try:
        archive = write_tiny_imdb(work / "aclImdb_tiny.tar.gz")
        inside, outside = [], []
        for i in range(max(1, args.repeat // 2)):
            base = training_job_dir(work / f"job{i}", HYPERPARAMETERS, archive)
            inside.append(timed(train_command(engine, ref, base), timeout=600))
            host = work / f"host{i}"
            outside.append(timed([sys.executable, "-m", "model.train", "--data", str(archive),
                                  "--model-dir", str(host), "--quiet", *[f"--set={k}={v}" for k, v in
                                                                         HYPERPARAMETERS.items() if k != "preset"],
                                  "--preset", "tiny"], cwd=REPO, timeout=600))
        print(f"\ntrain, tiny preset on {archive.name} (400 reviews), command start to exit:")
        print(f"  inside the image   {summary(inside)}")
        print(f"  on the host        {summary(outside)}")
        print(f"  ratio image/host   {statistics.median(inside) / statistics.median(outside):.2f}")

        model_dir = work / "job0" / "model"
        os.chmod(model_dir, 0o755)
        image_ping, image_first, host_ping, host_first = [], [], [], []
        for _ in range(args.repeat):  # interleaved, so a busy moment hits both sides
            ping, first = cold_start_image(engine, ref, model_dir)
            image_ping.append(ping)
            image_first.append(first)
            ping, first = cold_start_host(model_dir)
            host_ping.append(ping)
            host_first.append(first)
        print("\ncold start (serve, 2 workers, the tiny model):")
        print(f"  image: run -> /ping 200        {summary(image_ping)}")
        print(f"  image: run -> first answer     {summary(image_first)}   target <= 2 s")
        print(f"  host:  start -> /ping 200      {summary(host_ping)}")
        print(f"  host:  start -> first answer   {summary(host_first)}")
        print(f"  ratio image/host first answer  {statistics.median(image_first) / statistics.median(host_first):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload after: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
