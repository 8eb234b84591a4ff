"""`make setup` installs torch's CPU build on a standard machine, not the several-GB CUDA build.

This machine's pip finds a CPU wheel in a local find-links folder, which hides what a standard
machine (or a GitHub runner) would resolve. These resolutions run pip ``--isolated`` (no config
files, no PIP_* variables: none of this machine's find-links or constraints) with ``--dry-run
--report``, against PyPI and PyTorch's CPU index. Where that index cannot be reached (as here), a
PEP 503 index holding the very CPU wheel the index serves stands in for it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_model import REPO

sys.path.insert(0, str(REPO / "scripts"))
import build_image  # noqa: E402

pytestmark = pytest.mark.slow
MAKEFILE = (REPO / "Makefile").read_text()
TORCH_VERSION = re.search(r"^torch==(\S+)$", (REPO / "model" / "requirements.in").read_text(), re.M).group(1)
CUDA_PACKAGES = re.compile(r"^(nvidia-|triton$|cuda-)")


def resolve(*args: str) -> list[tuple[str, str]]:
    """(name, version) of everything `pip install <args>` would install on a clean machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    out = subprocess.run([sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed",
                          "--quiet", "--report", "-", *args], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    return [(item["metadata"]["name"].lower(), item["metadata"]["version"]) for item in report["install"]]


def cpu_index(tmp_path: Path) -> str:
    """PyTorch's CPU index, or a PEP 503 stand-in serving its wheel from this machine's find-links."""
    index = re.search(r"^TORCH_CPU_INDEX \?= (\S+)$", MAKEFILE, re.M).group(1)
    if build_image.reachable(index.split("/")[2]):
        return index
    folder = build_image.torch_wheel_folder(TORCH_VERSION, "cpu")  # what `make image` mounts, found alike
    assert folder, f"{index} cannot be reached and no local torch-{TORCH_VERSION}+cpu wheel stands in for it"
    wheel = next(folder.glob(f"torch-{TORCH_VERSION}+cpu-*.whl"))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (tmp_path / "simple" / "torch").mkdir(parents=True)
    (tmp_path / "simple" / "torch" / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="{wheel.as_uri()}#sha256={digest}">{wheel.name}</a></body></html>\n')
    return (tmp_path / "simple").as_uri()


def test_a_plain_torch_requirement_is_the_cuda_build_on_a_standard_machine():
    """Why the Makefile says more than `torch==X`: from PyPI alone that is the CUDA build."""
    installed = dict(resolve(f"torch=={TORCH_VERSION}"))
    assert installed["torch"] == TORCH_VERSION
    assert [name for name in installed if CUDA_PACKAGES.match(name)], installed


def test_make_setup_resolves_the_cpu_build_and_no_cuda_library(tmp_path):
    spec = re.search(r"install -q --no-deps --extra-index-url \$\(TORCH_CPU_INDEX\) (torch==\S+)", MAKEFILE).group(1)
    assert spec == "torch==$(TORCH_VERSION)+cpu"
    installed = resolve("--extra-index-url", cpu_index(tmp_path), f"torch=={TORCH_VERSION}+cpu")
    assert dict(installed)["torch"] == f"{TORCH_VERSION}+cpu"
    assert not [name for name, _ in installed if CUDA_PACKAGES.match(name)], installed


def test_synth_deploy_and_destroy_need_no_torch():
    """They run in .venv-cdk, made from pyproject's cdk extra alone, and what they import is light."""
    for target in ("synth", "deploy", "destroy"):
        assert re.search(rf"^{target}: \$\(CDK_STAMP\) node_modules/.bin/cdk$", MAKEFILE, re.M), target
    assert json.loads((REPO / "cdk.json").read_text())["app"] == ".venv-cdk/bin/python app.py"
    probe = ("import json, sys, tempfile; import aws_cdk as cdk; from stacks import build;"
             "app = cdk.App(outdir=tempfile.mkdtemp(), context=json.load(open('cdk.json'))['context']);"
             "build(app); app.synth();"
             "heavy = {'torch', 'numpy', 'bs4', 'nltk', 'matplotlib', 'safetensors', 'tqdm'};"
             "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
