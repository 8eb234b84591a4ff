"""The container contract, without a Docker engine.

* every path the Dockerfile copies exists (and survives .dockerignore), every command it names exists;
* ``train`` then ``serve`` run as subprocesses exactly as SageMaker runs the image: the commands from
  ``model/bin`` on PATH, ``SAGEMAKER_BASE_DIR`` pointing at a temp /opt/ml, string hyperparameters,
  the channel under ``input/data/train``; a failing job writes ``output/failure``.
"""
from __future__ import annotations

import fnmatch
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures_model import REPO, ServeProcess, child_env, free_port, http

MODEL = REPO / "model"
BIN = MODEL / "bin"
REVIEW = "A wonderful, brilliant film: superb acting and a beautiful, delightful story. A masterpiece."


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of model/Dockerfile, continuation lines joined, comments dropped."""
    text = (MODEL / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerignored(rel: str) -> bool:
    """Docker's .dockerignore rules, enough for ours: last matching pattern wins, '!' re-includes,
    a pattern matching a parent directory covers its contents."""
    patterns = [p.strip() for p in (MODEL / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        hit = any(fnmatch.fnmatchcase(p, pat) or (pat.startswith("**/") and
                  any(fnmatch.fnmatchcase(seg, pat[3:]) for seg in p.split("/"))) for p in prefixes)
        if hit:
            ignored = not negate
    return ignored


def test_every_path_the_dockerfile_copies_exists_in_the_context():
    copies = [args for word, args in instructions() if word in ("COPY", "ADD")]
    assert copies
    for args in copies:
        parts = [a for a in args.split() if not a.startswith("--")]
        assert not any(a.startswith("--from") for a in args.split()), "only the context is copied"
        for source in parts[:-1]:
            matches = [Path(m) for m in glob.glob(str(MODEL / source.rstrip("/")))]
            assert matches, f"COPY {source}: nothing in model/ matches"
            for m in matches:
                files = [m] if m.is_file() else [f for f in m.rglob("*") if f.is_file()]
                kept = [f for f in files if not dockerignored(f.relative_to(MODEL).as_posix())]
                assert kept, f"COPY {source}: .dockerignore drops all of {m}"


def test_the_image_holds_the_whole_package_and_nothing_from_development():
    sent = [f.relative_to(MODEL).as_posix() for f in MODEL.rglob("*")
            if f.is_file() and not dockerignored(f.relative_to(MODEL).as_posix())]
    assert {f"{p.name}" for p in MODEL.glob("*.py")} <= set(sent)
    assert {"bin/train", "bin/serve", "requirements.lock"} <= set(sent)
    assert not [f for f in sent if "__pycache__" in f or f.endswith(".pyc") or f.startswith(".")]
    assert "Dockerfile" not in sent and ".dockerignore" not in sent


def test_every_command_the_dockerfile_names_exists():
    steps = instructions()
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "PATH=/opt/program/model/bin:$PATH" in env and "PYTHONPATH=/opt/program" in env
    assert "PYTHONUNBUFFERED=1" in env and "NLTK_DATA=/usr/share/nltk_data" in env
    assert ("WORKDIR", "/opt/program") in steps
    assert ("CMD", '["serve"]') in steps
    # the package lands where PYTHONPATH finds it under its import name
    assert any(word == "COPY" and args.endswith("/opt/program/model/") for word, args in steps)
    for name in ("train", "serve"):
        script = BIN / name
        assert script.is_file() and os.access(script, os.X_OK), f"model/bin/{name} must be executable"
        assert script.read_text().startswith("#!/bin/sh\n")
        assert f"-m model.{name}" in script.read_text()
        assert importlib.util.find_spec(f"model.{name}") is not None
    run = " ".join(args for word, args in steps if word == "RUN")
    assert "python -m nltk.downloader -d /usr/share/nltk_data stopwords" in run
    for module in re.findall(r"python -m ([\w.]+)", run):
        assert importlib.util.find_spec(module) is not None, f"python -m {module}"
    assert "pip install --no-deps --require-hashes -r /tmp/requirements.lock" in run
    for path in re.findall(r"chmod \S+ ((?:/opt/program/model/bin/\w+\s*)+)", run)[0].split():
        assert (BIN / Path(path).name).is_file()


def test_base_image_and_torch_build_are_build_arguments():
    steps = instructions()
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    # a fixed tag at a fixed digest: a rebuild next year starts from the same base
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", args["BASE_IMAGE"])
    assert steps[[w for w, _ in steps].index("FROM")][1] == "${BASE_IMAGE}"
    assert args["TORCH_VARIANT"] == "cpu"
    assert args["TORCH_VERSION"] == version("torch").split("+")[0]  # the torch the tests ran
    run = " ".join(a for w, a in steps if w == "RUN")
    assert 'download.pytorch.org/whl/${TORCH_VARIANT}' in run
    assert '"torch==${TORCH_VERSION}+${TORCH_VARIANT}"' in run
    labels = " ".join(a for w, a in steps if w == "LABEL")
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in labels
    # what a machine without the internet passes: declared without a value, so a standard Docker
    # build is unchanged and none of it reaches the image's ENV
    build_only = {"PIP_FIND_LINKS", "PIP_RETRIES", "PIP_CERT", "NLTK_DOWNLOAD_URL"}
    assert build_only <= {a for w, a in steps if w == "ARG"}
    env = " ".join(a for w, a in steps if w == "ENV")
    assert not [name for name in build_only if name in env]


def lock_pins() -> dict[str, Version]:
    text = (MODEL / "requirements.lock").read_text()
    return {canonicalize_name(m.group(1)): Version(m.group(2))
            for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.M)}


def test_image_requirements_are_the_projects_runtime_dependencies():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = {Requirement(r).name: Requirement(r) for r in pyproject["project"]["dependencies"]}
    lines = [ln.strip() for ln in (MODEL / "requirements.in").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    image = {Requirement(r).name: Requirement(r) for r in lines}
    assert not {"boto3", "sagemaker", "pytest"} & set(image)  # not needed to run
    assert {"gunicorn", "httptools", "uvloop"} <= set(image)  # serve's supervisor, parser, loop
    torch = image.pop("torch")
    assert str(torch.specifier) == "==" + dict(a.split("=", 1) for w, a in instructions()
                                              if w == "ARG" and "=" in a)["TORCH_VERSION"]
    assert declared["torch"].specifier.contains(version("torch").split("+")[0])
    for name, req in image.items():
        assert name in declared and str(req.specifier) == str(declared[name].specifier), name


def test_the_lock_pins_every_image_dependency_within_the_declared_ranges():
    pins = lock_pins()
    assert "torch" not in pins  # installed by the Dockerfile from the index of its variant
    assert all("--hash=sha256:" in block for block in
               re.split(r"\n(?=[A-Za-z])", (MODEL / "requirements.lock").read_text().split("\n", 2)[2]))
    for line in (MODEL / "requirements.in").read_text().splitlines():
        if line.strip() and not line.startswith("#") and not line.startswith("torch"):
            req = Requirement(line)
            name = canonicalize_name(req.name)
            assert name in pins and req.specifier.contains(pins[name]), f"{name} {pins.get(name)} vs {req}"


def test_the_tests_run_the_versions_the_image_runs():
    """The venv is installed under the lock as constraints (Makefile): same versions as the image."""
    differ = {name: (str(pin), version(name)) for name, pin in lock_pins().items()
              if Version(version(name)) != pin}
    assert not differ, f"venv differs from model/requirements.lock: {differ}; run `make setup`"


def test_the_lock_is_what_uv_compiles_from_requirements_in(tmp_path):
    """`make lock` regenerates the lock; with the lock as its starting point, uv must keep every pin
    (a range edited in requirements.in without `make lock` fails here)."""
    import shutil

    out = tmp_path / "requirements.lock"
    shutil.copyfile(MODEL / "requirements.lock", out)
    sys.path.insert(0, str(REPO / "scripts"))
    import build_image

    torch_version = dict(a.split("=", 1) for w, a in instructions() if w == "ARG" and "=" in a)["TORCH_VERSION"]
    wheels = build_image.torch_wheel_folder(torch_version, "cpu")  # this machine's pip find-links, as make image reads it
    torch_source = ["--find-links", str(wheels)] if wheels else ["--torch-backend", "cpu"]
    uv = Path(sys.executable).with_name("uv")
    proc = subprocess.run([str(uv), "pip", "compile", "--quiet", "--generate-hashes", "--no-emit-package", "torch",
                           "--no-annotate", "--python-version", "3.11.2", "--python-platform",
                           "x86_64-manylinux_2_28", "--custom-compile-command", "make lock", *torch_source,
                           "-o", str(out), str(MODEL / "requirements.in")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = {canonicalize_name(m.group(1)): m.group(2)
             for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", out.read_text(), re.M)}
    assert again == {name: str(v) for name, v in lock_pins().items()}
    makefile = (REPO / "Makefile").read_text()
    for flag in ("--generate-hashes", "--no-emit-package torch", "--python-version 3.11.2",
                 "--python-platform x86_64-manylinux_2_28"):
        assert flag in makefile, f"make lock and this test must compile alike: {flag}"


# --------------------------------------------------------------------------- train, then serve

def job_env(base: Path, **extra: str) -> dict[str, str]:
    """The environment of ``docker run <image> train|serve``: the image's commands first on PATH,
    SAGEMAKER_BASE_DIR instead of /opt/ml; no PYTHONPATH (the commands find their package)."""
    env = child_env(SAGEMAKER_BASE_DIR=str(base), **extra)
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join([str(BIN), str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def sagemaker_job(base: Path, hyperparameters: dict[str, str], channel: Path | None) -> Path:
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    if channel is not None:
        (base / "input" / "data" / "train").mkdir(parents=True)
        channel.rename(base / "input" / "data" / "train" / "aclImdb_tiny.tar.gz")
    return base


def run_train(base: Path, log: Path) -> int:
    with open(log, "wb") as fh:
        return subprocess.run(["train"], cwd=base, env=job_env(base), stdout=fh,
                              stderr=subprocess.STDOUT, timeout=300).returncode


def test_train_then_serve_exactly_as_the_container(tmp_path, nltk_data):
    from fixtures_local import write_tiny_imdb

    base = sagemaker_job(tmp_path / "opt_ml",
                         {"preset": "tiny", "epochs": "2", "seed": "7", "sagemaker_region": '"us-east-1"'},
                         write_tiny_imdb(tmp_path / "data.tar.gz"))
    rc = run_train(base, tmp_path / "train.log")
    assert rc == 0, (tmp_path / "train.log").read_text()[-3000:]
    assert not (base / "output" / "failure").exists()
    assert {"config.json", "vocab.json", "model.safetensors"} <= {p.name for p in (base / "model").iterdir()}

    port = free_port()
    env = job_env(base, SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_MODEL_SERVER_WORKERS="1",
                  SERVE_HOST="127.0.0.1")
    server = ServeProcess(tmp_path / "serve.log", cmd=["serve"], env=env, port=port)
    try:
        status, _, body = http("POST", server.url + "/invocations", REVIEW.encode(), "text/plain")
        assert status == 200 and json.loads(body)["label"] == "positive"
        status, _, body = http("POST", server.url + "/endpoints/local/invocations",
                               json.dumps({"text": "A terrible, boring mess. The worst."}).encode(),
                               "application/json")
        assert status == 200 and json.loads(body)["label"] == "negative"
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("hyperparameters,with_channel,reason", [
    ({"preset": "tiny", "epochs": "zero"}, True, "epochs"),
    ({"preset": "tiny"}, False, "not found"),
], ids=["bad-hyperparameter", "missing-channel"])
def test_a_failed_job_writes_output_failure(tmp_path, nltk_data, hyperparameters, with_channel, reason):
    from fixtures_local import write_tiny_imdb

    channel = write_tiny_imdb(tmp_path / "data.tar.gz") if with_channel else None
    base = sagemaker_job(tmp_path / "opt_ml", hyperparameters, channel)
    assert run_train(base, tmp_path / "train.log") != 0
    failure = base / "output" / "failure"
    assert failure.is_file() and reason in failure.read_text()
