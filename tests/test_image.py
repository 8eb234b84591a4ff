"""The image that ships, built from model/Dockerfile and run exactly as SageMaker runs it.

``make image`` (scripts/build_image.py) builds it once per session with whatever builder the machine
has; each test then runs it with Docker or Podman (scripts/image_runner.py) with only what SageMaker
gives a bring-your-own container: /opt/ml files and no network for ``train``; the model read-only, a
read-only root filesystem with a writable /tmp, any user, and SAGEMAKER_BIND_TO_PORT for ``serve``.
Nothing from this checkout or its virtual environment is mounted. These tests never skip: a machine
without a builder or an engine fails them with a message saying what to install.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from fixtures_model import REPO, ServeProcess, free_port, http, read_answer

sys.path.insert(0, str(REPO / "scripts"))
import build_image  # noqa: E402
from image_runner import Engine, EngineMissing, serve_command, train_command, training_job_dir  # noqa: E402
from test_container import lock_pins  # noqa: E402  (the one reader of model/requirements.lock)

pytestmark = pytest.mark.slow
REVIEW = "A wonderful, brilliant film: superb acting and a beautiful, delightful story. A masterpiece."
HYPERPARAMETERS = {"preset": "tiny", "epochs": "2", "seed": "7",
                   # SageMaker adds its own keys to what the job was given; train must ignore them
                   "sagemaker_region": '"us-east-1"'}


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return Engine.find()
    except EngineMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def image(engine, tmp_path_factory) -> str:
    """The image `make image` builds, its reference from the command's last line of output."""
    log = tmp_path_factory.mktemp("image") / "build.log"
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "build_image.py"), "--quiet"],
                              stdout=subprocess.PIPE, stderr=fh, text=True, timeout=1500)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(f"make image failed (exit {proc.returncode}):\n{log.read_text()[-4000:]}")
    return lines[-1]


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory) -> Path:
    from fixtures_local import write_tiny_imdb

    return write_tiny_imdb(tmp_path_factory.mktemp("data") / "aclImdb_tiny.tar.gz")


def run_job(engine: Engine, image: str, base: Path) -> subprocess.CompletedProcess:
    return subprocess.run(train_command(engine, image, base), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def trained(engine, image, tiny_archive, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    base = training_job_dir(tmp_path_factory.mktemp("job") / "opt_ml", HYPERPARAMETERS, tiny_archive)
    job = run_job(engine, image, base)
    # SageMaker hands the model to the endpoint owned by root but world-readable; so do we.
    os.chmod(base / "model", 0o755)
    return base, job


# ------------------------------------------------------------------------------------ the image

def test_make_image_prints_the_reference_it_built(engine, image):
    assert re.fullmatch(r"localhost/imdb-sentiment:[0-9a-f]{12}", image)
    assert engine.inspect(image)["Id"] == engine.inspect("localhost/imdb-sentiment:latest")["Id"]


def test_image_is_linux_amd64_with_the_sagemaker_entry_points(engine, image):
    info = engine.inspect(image)
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    config = info["Config"]
    assert config.get("User") in (None, "", "root", "0")  # train runs as root, as SageMaker runs it
    assert config["Cmd"] == ["serve"] and not config.get("Entrypoint")
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert "8080/tcp" in config["ExposedPorts"]


def test_nothing_of_the_build_machine_reaches_the_image_config(engine, image):
    config = engine.inspect(image)["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    # exactly what the Dockerfile and a python:*-slim base set; no build argument leaks in
    assert set(env) <= {"PATH", "LANG", "GPG_KEY", "PYTHON_VERSION", "PYTHON_SHA256", "PYTHONUNBUFFERED",
                        "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_ROOT_USER_ACTION",
                        "NLTK_DATA", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "MPLCONFIGDIR"}, env
    assert env["PATH"].split(":")[0] == "/opt/program/model/bin" and env["PYTHONPATH"] == "/opt/program"
    values = " ".join([*env.values(), *config["Labels"].values()])
    for machine_specific in ("/mnt", "wheels", "nltk_data/index", "https_proxy", "ca-certificates.crt",
                             str(REPO), str(Path.home())):
        assert machine_specific not in values
    assert set(config["Labels"]) <= {"com.amazonaws.sagemaker.capabilities.accept-bind-to-port",
                                     "io.buildah.version", "org.opencontainers.image.base.name",
                                     "org.opencontainers.image.base.digest"}


INSIDE = r"""
import json, os, pathlib, ssl, sys
site = pathlib.Path(__import__("sysconfig").get_paths()["purelib"])
print(json.dumps({
    "mnt": sorted(os.listdir("/mnt")),
    "nltk": sorted(str(p.relative_to("/usr/share/nltk_data")) for p in pathlib.Path("/usr/share/nltk_data").rglob("*")),
    "ca": pathlib.Path("/etc/ssl/certs/ca-certificates.crt").read_text() if pathlib.Path("/etc/ssl/certs/ca-certificates.crt").exists() else "",
    "program": sorted(str(p.relative_to("/opt/program")) for p in pathlib.Path("/opt/program").rglob("*") if "__pycache__" not in p.parts),
    "torch_pruned": [d for d in ("test", "include", "share") if (site / "torch" / d).exists()],
    "pyc": any(pathlib.Path("/opt/program/model/__pycache__").glob("serve.*.pyc")),
    "fontcache": sorted(os.listdir(os.environ["MPLCONFIGDIR"])),
}))
"""


@pytest.fixture(scope="session")
def inside(engine, image) -> dict:
    out = subprocess.run(engine.run_command(image, "-c", INSIDE, entrypoint="python"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_image_holds_the_package_and_nothing_of_the_build_machine(inside):
    package = {p for p in inside["program"] if p.startswith("model/") and p.endswith(".py")}
    assert package == {f"model/{p.name}" for p in (REPO / "model").glob("*.py")}
    assert {"model/bin/train", "model/bin/serve"} <= set(inside["program"])
    assert inside["mnt"] == []  # the build's mounts left no mount points behind
    assert not [p for p in inside["nltk"] if "index" in p or p.endswith(".zip")]
    assert "corpora/stopwords/english" in inside["nltk"]
    # pip's CA bundle was mounted for the build, never copied: the image keeps its own system bundle,
    # without this machine's own CAs (those of a TLS-intercepting network)
    host_ca = build_image.pip_setting("cert")
    if host_ca and Path(host_ca).is_file():
        assert inside["ca"] and inside["ca"] != Path(host_ca).read_text()
    for own in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        pem = own.read_text().strip()
        assert pem not in inside["ca"], f"{own} was baked into the image"


def test_build_time_work_is_done_at_build_time(inside):
    assert inside["pyc"], "the package is byte-compiled in the image"
    assert any(name.startswith("fontlist") for name in inside["fontcache"]), "matplotlib's font cache is built"
    assert inside["torch_pruned"] == [], "torch's tests, headers and CMake files are left out"


def test_the_image_installs_exactly_the_lock(engine, image):
    out = subprocess.run(engine.run_command(image, "-m", "pip", "list", "--format=json", entrypoint="python"),
                         capture_output=True, text=True, timeout=120)
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(out.stdout)}
    pins = {name: str(v) for name, v in lock_pins().items()}  # canonical names on both sides
    assert {name: installed.get(name) for name in pins} == pins
    torch = build_image.dockerfile_default("TORCH_VERSION")
    assert installed["torch"] == f"{torch}+cpu"


# ---------------------------------------------------------------------------------------- train

def test_train_runs_as_a_sagemaker_training_job(trained):
    base, job = trained
    assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
    assert not (base / "output" / "failure").exists()
    files = {p.name for p in (base / "model").iterdir()}
    assert {"model.safetensors", "vocab.json", "config.json", "metrics.json",
            "training_curves.png", "confusion_matrix.png"} <= files
    # nothing that executes on load: no pickle-based weights anywhere in the artifact
    assert not [f for f in files if f.endswith((".pt", ".pth", ".pkl", ".bin"))]
    assert (base / "model" / "model.safetensors").read_bytes()[8:9] == b"{"  # safetensors header
    from model.metrics import metric_definitions

    for definition in metric_definitions():  # what SageMaker scrapes from the job's stdout
        assert re.search(definition["Regex"], job.stdout), definition["Name"]
    assert "allocator: tcmalloc" in job.stderr  # libtcmalloc-minimal4 is in the image and used


def test_train_needs_no_sm_variables_and_no_network(engine, image, trained):
    command = train_command(engine, image, trained[0])
    assert "--network" in command and command[command.index("--network") + 1] == "none"
    assert not [c for c in command if c.startswith("SM_")]
    assert not [c for c in command if str(REPO) in c]  # no bind-mounted source or host venv


@pytest.mark.parametrize("case", ["bad-hyperparameter", "empty-channel", "corrupt-archive"])
def test_a_failing_job_leaves_its_reason_and_no_model(engine, image, tiny_archive, tmp_path, case):
    hyperparameters, archive = dict(HYPERPARAMETERS), tiny_archive
    if case == "bad-hyperparameter":
        hyperparameters["epochs"] = "zero"
    elif case == "empty-channel":
        archive = None
    else:
        archive = tmp_path / "aclImdb_v1.tar.gz"
        archive.write_bytes(b"\x1f\x8b\x08\x00 this is not a gzip stream")
    base = training_job_dir(tmp_path / "opt_ml", hyperparameters, archive)
    job = run_job(engine, image, base)
    assert job.returncode != 0
    reason = (base / "output" / "failure").read_text()
    expected = {"bad-hyperparameter": "epochs", "empty-channel": "neither an aclImdb",
                "corrupt-archive": "not a readable tar.gz"}[case]
    assert expected.lower() in reason.lower(), reason
    assert "Traceback" not in reason
    assert not (base / "model" / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------- serve

class Container(ServeProcess):
    """``<engine> run … serve`` as a ServeProcess: /ping polled until 200, stopped by SIGTERM."""

    def __init__(self, engine: Engine, command: list[str], name: str, port: int, log: Path, **kw):
        self.engine, self.name = engine, name
        super().__init__(log, cmd=command, env=dict(os.environ), port=port, **kw)

    def wait_ping(self, status: int = 200, timeout: float = 120.0) -> None:
        self.seen: list = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"container exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                self.seen.append(http("GET", self.url + "/ping", timeout=5)[0])
                if self.seen[-1] == status:
                    return
            except OSError:
                self.seen.append(None)
            time.sleep(0.05)
        raise TimeoutError(f"/ping never answered {status}: {self.seen[-5:]}\n{self.log_text()[-3000:]}")

    def terminate(self) -> None:
        self.engine.signal(self.name, "TERM")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.engine.remove(self.name)
        self.engine.remove(self.name)
        return self.proc.wait(30)


def serve(engine, image, model_dir: Path, tmp_path: Path, user: str | None = None,
          command: tuple[str, ...] = ("serve",), wait_status: int = 200) -> Container:
    port, name = free_port(), f"imdb-serve-{uuid.uuid4().hex[:8]}"
    return Container(engine, serve_command(engine, image, model_dir, port, name, user=user, command=command),
                     name, port, tmp_path / "serve.log", wait_status=wait_status)


def post(body: bytes, ctype: str) -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize("user", [None, "12345:12345"], ids=["root", "arbitrary-non-root-user"])
@pytest.mark.parametrize("command", [("serve",), ()], ids=["serve", "default-cmd"])
def test_serve_on_a_read_only_root_filesystem(engine, image, trained, tmp_path, user, command):
    base, job = trained
    assert job.returncode == 0
    server = serve(engine, image, base / "model", tmp_path, user=user, command=command)
    try:
        # before the model is loaded /ping answers 503 or nothing, never 200 too early or a 5xx crash
        assert set(server.seen[:-1]) <= {None, 503} and server.seen[-1] == 200
        status, _, body = http("POST", server.url + "/invocations", REVIEW.encode(), "text/plain")
        assert status == 200 and json.loads(body)["label"] == "positive"
        status, _, body = http("POST", server.url + "/invocations",
                               json.dumps({"text": "A terrible, boring mess. The worst."}).encode(),
                               "application/json")
        assert status == 200 and json.loads(body)["label"] == "negative"
        status, _, body = http("POST", server.url + "/invocations", b"\xff\xfe", "text/plain")
        assert 400 <= status < 500 and json.loads(body)["error"]
        # SAGEMAKER_BIND_TO_PORT was honoured: 8080 is not where it listens
        assert server.port != 8080
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]
    assert "Traceback" not in server.log_text()


def test_serve_without_a_model_says_so_on_ping(engine, image, tmp_path):
    empty = tmp_path / "model"
    empty.mkdir(mode=0o755)
    server = serve(engine, image, empty, tmp_path, user="12345:12345", wait_status=503)
    try:
        status, _, body = http("GET", server.url + "/ping")
        assert status == 503 and body
    finally:
        assert server.stop() == 0


def test_sigterm_answers_what_is_in_flight_and_exits_0_well_inside_30s(engine, image, trained, tmp_path):
    server = serve(engine, image, trained[0] / "model", tmp_path, user="12345:12345")
    try:
        body = REVIEW.encode()
        request = post(body, "text/plain")
        half = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        half.sendall(request[:-len(body) // 2])  # the head and half the body: in flight
        time.sleep(0.3)
        started = time.monotonic()
        server.terminate()
        time.sleep(0.3)
        half.sendall(request[-len(body) // 2:])
        status, headers, answer = read_answer(half)
        assert status == 200 and json.loads(answer)["label"] == "positive"
        assert server.proc.wait(30) == 0
        assert time.monotonic() - started < 10
    finally:
        server.stop()
