"""Wall time of ``cdk synth`` of the whole app (target <= 15 s here).

    .venv/bin/python benchmarks/bench_synth.py [--repeat 2]

Times, each ``--repeat`` times into a fresh temporary output folder (so no earlier cloud assembly or
asset staging is reused):
* ``npx cdk synth --all -o <tmp>`` (the CLI: node start, then ``cdk.json``'s app command,
  ``.venv-cdk/bin/python app.py`` (``make cdk-setup``), then the CLI reads the assembly), as
  ``make synth`` runs it;
* ``npx cdk synth --all --no-validation``: the same without aws-cdk-lib's built-in
  CloudFormationValidatePlugin (a WASM rule engine that the current aws-cdk-lib registers on every
  synth; a node CPU profile showed its start-up taking most of the synth), to size that cost;
* ``python app.py`` alone with ``CDK_OUTDIR=<tmp>`` and ``CDK_CONTEXT_JSON`` holding ``cdk.json``'s
  context, as the CLI hands them over (the Python app and jsii: where the time goes).

The data archive the data stack uploads is given as ``-c dataArchive=../shared/data/...`` (``make
synth`` expects ``./data``; ``make data`` puts it there) and the app's own context otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import footer, header, median  # noqa: E402


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=str(_common.REPO), env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data-archive", default=str(_common.DATA))
    args = ap.parse_args()
    header("cdk synth of the whole app")
    ctx = ["-c", f"dataArchive={args.data_archive}"]
    env = dict(os.environ)
    cdk_context = json.loads((_common.REPO / "cdk.json").read_text()).get("context", {})
    results: dict[str, list[float]] = {"cli": [], "app": [], "cli-noval": []}
    stacks_out = ""
    for i in range(args.repeat):
        for kind in ("cli", "app", "cli-noval"):
            tmp = tempfile.mkdtemp(prefix="bench_synth_")
            try:
                if kind.startswith("cli"):
                    cmd = ["npx", "cdk", "synth", "--all", "-o", tmp, *ctx]
                    run_env = env
                    if kind == "cli-noval":  # aws-cdk-lib's built-in CloudFormation validation off
                        cmd.append("--no-validation")
                else:
                    cmd = [str(_common.REPO / ".venv" / "bin" / "python"), "app.py"]
                    # what the CLI hands the app: the output folder and the context
                    context = {**cdk_context, "dataArchive": args.data_archive}
                    run_env = {**env, "CDK_OUTDIR": tmp, "CDK_CONTEXT_JSON": json.dumps(context)}
                dt, out = timed(cmd, run_env)
                if out.returncode != 0:
                    print(out.stdout[-2000:], out.stderr[-3000:])
                    raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode})")
                templates = sorted(p.name for p in Path(tmp).glob("*.template.json"))
                size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
                stacks_out = f"{len(templates)} templates: {', '.join(templates)}"
                results[kind].append(dt)
                print(f"run {i + 1} {kind:9s}: {dt:.2f} s ({stacks_out}; assembly {size / 1e6:.1f} MB) "
                      f"load {_common.loadavg()}", flush=True)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    cli, app = median(results["cli"]), median(results["app"])
    print()
    print("| measure | median | runs | target |")
    print("| --- | --- | --- | --- |")
    print(f"| `npx cdk synth --all` | {cli:.2f} s | {', '.join(f'{t:.2f}' for t in results['cli'])} | "
          f"<=15 s: {'met' if cli <= 15 else 'MISSED'} |")
    print(f"| `python app.py` alone | {app:.2f} s | {', '.join(f'{t:.2f}' for t in results['app'])} | - |")
    print(f"| CLI overhead (node, assembly read) | {cli - app:.2f} s | | - |")
    noval = median(results["cli-noval"])
    print(f"| `npx cdk synth --all --no-validation` (built-in CloudFormation validation off) | {noval:.2f} s | "
          f"{', '.join(f'{t:.2f}' for t in results['cli-noval'])} | would be {'met' if noval <= 15 else 'MISSED'} |")
    footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
