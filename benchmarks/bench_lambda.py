"""The Lambda proxy (``lambda/proxy/handler.py``): package size, import footprint, overhead.

    NLTK_DATA=../shared/nltk_data .venv/bin/python benchmarks/bench_lambda.py [-n 300]

* Package: ``lambda/proxy/`` zipped as the CDK asset is (``Code.from_asset`` with ``__pycache__`` and
  ``*.pyc`` excluded; deflate), compressed and uncompressed bytes. Target <= 100 KB.
* Imports: in a fresh interpreter, the modules that ``import handler`` adds beyond the standard
  library and boto3's own distribution (boto3, botocore, s3transfer, jmespath, dateutil, urllib3,
  six); nothing heavy (torch, numpy, nltk, bs4, our ``model`` package) may be among them. Also the
  import time of the handler module (boto3 included, client created: what a cold start pays), median
  of 5 fresh interpreters.
* Overhead over a direct endpoint call, locally: ``handler(event)`` for an API Gateway proxy event
  against ``client.invoke_endpoint(...)`` with the same body on a client with the handler's own
  botocore config, both reaching the same local ``serve`` (1 worker, the benchmark model of
  bench_serving) through ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``; alternated, ``-n`` each, p50 of each
  and the p50 of the paired differences. Also the handler alone with a stub client (no network):
  the handler's own work. The handler's one log line per request goes to /dev/null. Target: <= 2 ms
  p50.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header, median, percentile  # noqa: E402

PROXY = _common.REPO / "lambda" / "proxy"
BOTO_DIST = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
HEAVY = {"torch", "numpy", "nltk", "bs4", "model", "pandas", "sagemaker", "requests", "aiohttp"}
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "benchmark", "AWS_SECRET_ACCESS_KEY": "benchmark",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "ENDPOINT_NAME": "benchmark-endpoint"}


def package_size() -> dict:
    buf = io.BytesIO()
    raw = 0
    files = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(PROXY.rglob("*")):
            rel = p.relative_to(PROXY)
            if not p.is_file() or "__pycache__" in rel.parts or p.suffix == ".pyc":
                continue
            zf.write(p, str(rel))
            raw += p.stat().st_size
            files.append(str(rel))
    return {"zip_bytes": len(buf.getvalue()), "raw_bytes": raw, "files": files}


IMPORT_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import boto3
t_boto = time.perf_counter() - t0
before = set(sys.modules)
sys.path.insert(0, sys.argv[1])
t1 = time.perf_counter()
import handler
t_handler = time.perf_counter() - t1
new = sorted(set(sys.modules) - before)
print(json.dumps({"boto3_s": t_boto, "handler_s": t_handler, "total_s": time.perf_counter() - t0,
                  "new": new, "all": sorted(sys.modules), "client_ok": handler._CLIENT is not None}))
"""


def import_footprint(repeats: int = 5) -> dict:
    env = {**os.environ, **FAKE_AWS}
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE, str(PROXY)], env=env, capture_output=True,
                             text=True, check=True)
        runs.append(json.loads(out.stdout))
    stdlib = set(sys.stdlib_module_names)
    top = lambda names: sorted({m.split(".")[0] for m in names})  # noqa: E731
    new_top = top(runs[0]["new"])
    beyond = [m for m in new_top if m not in stdlib and m not in BOTO_DIST and m != "handler"
              and not m.startswith("_")]
    everything = [m for m in top(runs[0]["all"]) if m not in stdlib and not m.startswith("_")]
    heavy = sorted(set(everything) & HEAVY)
    return {"new_top_level": new_top, "beyond_stdlib_boto3": beyond, "third_party_loaded": everything,
            "heavy": heavy, "client_ok": runs[0]["client_ok"],
            "boto3_import_ms": 1000 * median([r["boto3_s"] for r in runs]),
            "handler_import_ms": 1000 * median([r["handler_s"] for r in runs]),
            "total_ms": 1000 * median([r["total_s"] for r in runs])}


def start_serve(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "model.serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=str(_common.REPO), env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("serve did not become healthy")


def overhead(n: int, tmp: Path) -> dict:
    from bench_serving import build_our_model, free_port, reviews

    model_dir = build_our_model(tmp / "model")
    port = free_port()
    proc = start_serve(model_dir, port, tmp / "serve.log")
    try:
        os.environ.update(FAKE_AWS)
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = f"http://127.0.0.1:{port}"
        sys.path.insert(0, str(PROXY))
        import boto3
        import handler

        text = reviews.make_reviews(1, seed=1234, n_words=200)[0]
        event = {"httpMethod": "POST", "path": "/predict", "resource": "/predict",
                 "headers": {"Content-Type": "application/json"},
                 "requestContext": {"requestId": "bench"},
                 "body": json.dumps({"text": text}), "isBase64Encoded": False}
        body = json.dumps({"text": text, "explain": False}, ensure_ascii=False).encode()
        direct_client = boto3.client("sagemaker-runtime", config=handler._CONFIG)

        def direct():
            r = direct_client.invoke_endpoint(EndpointName=FAKE_AWS["ENDPOINT_NAME"], ContentType="application/json",
                                              Accept="application/json", Body=body)
            return r["Body"].read()

        def via_handler():
            r = handler.handler(event, None)
            assert r["statusCode"] == 200, r
            return r["body"]

        real_stdout = sys.stdout
        devnull = open(os.devnull, "w")
        t_direct, t_handler, diffs = [], [], []
        try:
            sys.stdout = devnull
            assert json.loads(via_handler()) == json.loads(direct())  # same answer both ways
            for _ in range(20):  # warm both connections
                via_handler()
                direct()
            for i in range(n):
                order = (via_handler, direct) if i % 2 == 0 else (direct, via_handler)
                got = {}
                for fn in order:
                    t0 = time.perf_counter()
                    fn()
                    got[fn] = time.perf_counter() - t0
                t_handler.append(got[via_handler])
                t_direct.append(got[direct])
                diffs.append(got[via_handler] - got[direct])

            # the handler's own work: a stub client answering at once
            class _Body:
                def __init__(self, data):
                    self.data = data

                def read(self):
                    return self.data

            answer = direct()

            class _Stub:
                def invoke_endpoint(self, **kwargs):
                    return {"Body": _Body(answer)}

            saved = handler._CLIENT
            handler._CLIENT = _Stub()
            t_stub = []
            for _ in range(n):
                t0 = time.perf_counter()
                via_handler()
                t_stub.append(time.perf_counter() - t0)
            handler._CLIENT = saved
        finally:
            sys.stdout = real_stdout
            devnull.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    ms = lambda v: 1000 * v  # noqa: E731
    return {"n": n, "direct_p50_ms": ms(median(t_direct)), "handler_p50_ms": ms(median(t_handler)),
            "direct_p99_ms": ms(percentile(t_direct, 99)), "handler_p99_ms": ms(percentile(t_handler, 99)),
            "overhead_p50_ms": ms(median(t_handler) - median(t_direct)),
            "paired_diff_p50_ms": ms(median(diffs)), "stub_p50_ms": ms(median(t_stub)),
            "stub_p99_ms": ms(percentile(t_stub, 99))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=300, help="calls of each kind")
    args = ap.parse_args()
    _common.set_nltk_data()
    header("Lambda proxy: package size, imports, overhead over a direct endpoint call")

    size = package_size()
    print(f"package: {size['files']} -> zip {size['zip_bytes']:,} bytes ({size['zip_bytes'] / 1024:.1f} KB), "
          f"uncompressed {size['raw_bytes']:,} bytes")
    imp = import_footprint()
    print(f"imports: top-level modules `import handler` adds after boto3: {imp['new_top_level']}")
    print(f"imports beyond the standard library and boto3's distribution: {imp['beyond_stdlib_boto3'] or 'none'}")
    print(f"third-party packages loaded in all: {imp['third_party_loaded']}; heavy among them: "
          f"{imp['heavy'] or 'none'}")
    print(f"import time (fresh interpreter, median of 5): boto3 {imp['boto3_import_ms']:.0f} ms, then handler "
          f"(client created) {imp['handler_import_ms']:.0f} ms, total {imp['total_ms']:.0f} ms", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_lambda_") as tmp:
        ov = overhead(args.n, Path(tmp))
    print(f"overhead, {ov['n']} calls each, alternated: direct invoke_endpoint p50 {ov['direct_p50_ms']:.2f} ms "
          f"(p99 {ov['direct_p99_ms']:.2f}), handler p50 {ov['handler_p50_ms']:.2f} ms (p99 "
          f"{ov['handler_p99_ms']:.2f}); difference of p50s {ov['overhead_p50_ms']:.2f} ms, p50 of paired "
          f"differences {ov['paired_diff_p50_ms']:.2f} ms; handler alone (stub client) p50 "
          f"{ov['stub_p50_ms']:.3f} ms (p99 {ov['stub_p99_ms']:.3f})")

    print()
    print("| measure | direct / reference | via the proxy | ratio / difference | target |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| deployment package (zip) | - | {size['zip_bytes'] / 1024:.1f} KB | - | <=100 KB: "
          f"{'met' if size['zip_bytes'] <= 100 * 1024 else 'MISSED'} |")
    print(f"| imports beyond stdlib + boto3 | - | {', '.join(imp['beyond_stdlib_boto3']) or 'none'} | - | "
          f"nothing heavy: {'met' if not imp['heavy'] else 'MISSED'} |")
    print(f"| p50, local endpoint call | {ov['direct_p50_ms']:.2f} ms | {ov['handler_p50_ms']:.2f} ms | "
          f"+{ov['overhead_p50_ms']:.2f} ms ({ov['handler_p50_ms'] / ov['direct_p50_ms']:.2f}x) | <=2 ms: "
          f"{'met' if ov['overhead_p50_ms'] <= 2 else 'MISSED'} |")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
