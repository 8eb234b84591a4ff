"""scripts/local_mode.py: data lookup, ports, and start/stop hygiene with the real servers."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from fixtures_local import (POSITIVE_REVIEW, PYTHON, REPO, LocalMode, alive, child_env, descendants,
                            load_module, post_json)

local_mode = load_module("local_mode_under_test", REPO / "scripts" / "local_mode.py")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(REPO / "scripts" / "local_mode.py"), *args], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


# --------------------------------------------------------------------------- pieces

def test_data_lookup_order(tmp_path, monkeypatch):
    shared, cached, given = tmp_path / "shared.tar.gz", tmp_path / "cached.tar.gz", tmp_path / "given.tar.gz"
    monkeypatch.setattr(local_mode, "SHARED_DATA", shared)
    monkeypatch.setattr(local_mode, "CACHED_DATA", cached)
    monkeypatch.delenv("IMDB_DATA", raising=False)
    for f in (shared, cached, given):
        f.write_bytes(b"x")
    assert local_mode.find_data(str(given)) == given
    monkeypatch.setenv("IMDB_DATA", str(cached))
    assert local_mode.find_data(None) == cached          # the environment variable
    assert local_mode.find_data(str(given)) == given     # the flag wins over it
    monkeypatch.delenv("IMDB_DATA")
    assert local_mode.find_data(None) == shared          # the shared copy beside the checkout
    shared.unlink()
    assert local_mode.find_data(None) == cached          # then data/aclImdb_v1.tar.gz
    with pytest.raises(local_mode.LocalModeError, match="no such file"):
        local_mode.find_data(str(tmp_path / "missing.tar.gz"))
    monkeypatch.setenv("IMDB_DATA", str(tmp_path / "missing"))
    with pytest.raises(local_mode.LocalModeError, match="IMDB_DATA=.*no such file"):
        local_mode.find_data(None)


def test_data_download_failure_is_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(local_mode, "SHARED_DATA", tmp_path / "none1")
    monkeypatch.setattr(local_mode, "CACHED_DATA", tmp_path / "none2")
    monkeypatch.delenv("IMDB_DATA", raising=False)
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, stdout="")

    monkeypatch.setattr(local_mode.subprocess, "run", fake_run)
    with pytest.raises(local_mode.LocalModeError, match="could not obtain the IMDB data.*--data PATH"):
        local_mode.find_data(None)
    assert calls == [[local_mode.PYTHON, "-m", "model.download"]]


def test_model_completeness(tmp_path):
    assert not local_mode.model_complete(tmp_path)
    for name in ("config.json", "vocab.json"):
        (tmp_path / name).write_text("{}")
    assert not local_mode.model_complete(tmp_path)  # no weights: an interrupted run
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert local_mode.model_complete(tmp_path)


def test_a_run_keeps_the_logs_of_the_runs_before(tmp_path):
    log = tmp_path / "serve.log"
    for run in range(1, 6):
        local_mode.rotate_logs(log, keep=3)
        log.write_text(f"run {run}\n")
    assert log.read_text() == "run 5\n"
    assert [(tmp_path / f"serve.log.{n}").read_text() for n in (1, 2, 3)] == ["run 4\n", "run 3\n", "run 2\n"]
    assert not (tmp_path / "serve.log.4").exists()


def _model(tmp_path, preset_name: str, **changes) -> Path:
    sys.path.insert(0, str(REPO))
    from model.hyperparameters import preset
    for name in ("vocab.json", "model.safetensors"):
        (tmp_path / name).write_text("{}")
    hyperparameters = {**preset(preset_name).to_dict(), "workers": 1, **changes}
    (tmp_path / "config.json").write_text(json.dumps({"hyperparameters": hyperparameters}))
    return tmp_path


@pytest.mark.parametrize("flags, preset_name, changes, reason", [
    ([], "quick", {}, None),
    (["--retrain"], "quick", {}, "--retrain"),
    (["--full"], "quick", {}, "--full, and the model there is the quick preset"),
    (["--full"], "full", {}, None),
    (["--full"], "full", {"epochs": 3}, "--full, and the model there is not the full preset"),
])
def test_full_trains_unless_the_model_there_is_the_full_one(tmp_path, flags, preset_name, changes, reason):
    model_dir = _model(tmp_path, preset_name, **changes)
    assert local_mode.training_reason(local_mode.parse_args(flags), model_dir) == reason
    assert local_mode.training_reason(local_mode.parse_args(flags), tmp_path / "empty").startswith("No model in")


def test_a_reused_model_is_named_with_its_accuracy(tmp_path):
    model_dir = _model(tmp_path, "quick")
    (model_dir / "metrics.json").write_text(json.dumps({"validation": {"accuracy": 0.8562},
                                                        "test": {"accuracy": 0.87544}}))
    assert local_mode.describe_model(model_dir).startswith("quick preset, 87.5% on the IMDB test split, trained 2")
    (model_dir / "metrics.json").write_text(json.dumps({"validation": {"accuracy": 0.8562}}))
    assert "85.6% on its validation split (test split not scored)" in local_mode.describe_model(model_dir)


def test_port_choice(busy_port, capsys):
    assert local_mode.choose_port(None, busy_port, "page", "--port") != busy_port
    assert "is in use; using free port" in capsys.readouterr().err
    with pytest.raises(local_mode.LocalModeError, match=f"port {busy_port} .*already in use.*--port N"):
        local_mode.choose_port(busy_port, 8000, "page", "--port")
    assert local_mode.choose_port(0, 8000, "page", "--port") > 0
    with pytest.raises(local_mode.LocalModeError, match="not a port number"):
        local_mode.choose_port(70000, 8000, "page", "--port")


# --------------------------------------------------------------------------- the command

def test_port_in_use_is_a_clear_message_not_a_traceback(busy_port, tmp_path):
    proc = run_cli("--port", str(busy_port), "--model-dir", str(tmp_path / "model"))
    assert proc.returncode == 2
    assert f"port {busy_port} (page and API) is already in use" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_data_is_a_clear_message(tmp_path):
    proc = run_cli("--port", "0", "--endpoint-port", "0", "--model-dir", str(tmp_path / "model"),
                   "--data", str(tmp_path / "nope.tar.gz"))
    assert proc.returncode == 2
    assert "--data=" in proc.stderr and "no such file or folder" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)],
                         ids=["ctrl-c", "killed"])
def test_start_serve_and_stop_leaves_nothing_behind(tiny_model_dir, tmp_path, sig):
    # Started like `... &` from a shell (SIGINT ignored on entry): Ctrl-C / kill -INT must still stop it.
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "serve.log").write_text("the run before\n")
    lm = LocalMode(["--model-dir", str(tiny_model_dir), "--port", "0", "--endpoint-port", "0",
                    "--log-dir", str(tmp_path / "logs"), "--workers", "1"], background_job=True)
    started = []
    try:
        assert lm.page_url and lm.endpoint_url, lm.output
        assert f"Using the model in {tiny_model_dir}: tiny preset, " in lm.output
        assert (tmp_path / "logs" / "serve.log.1").read_text() == "the run before\n"
        assert "the run before" not in (tmp_path / "logs" / "serve.log").read_text()
        started = descendants(lm.proc.pid)
        assert len(started) >= 2, started  # the endpoint server (and its workers) and the front
        assert "curl -s " in lm.output and "scripts/predict.py" in lm.output
        with urllib.request.urlopen(lm.page_url + "/", timeout=10) as r:
            assert r.status == 200 and b"app.js" in r.read()
        status, body = post_json(lm.page_url + "/predict", {"text": POSITIVE_REVIEW})
        assert status == 200 and body["label"] == "positive"
    finally:
        code = lm.stop(sig)
    if sig == signal.SIGINT:
        assert code == 0, lm.output
        assert "Stopped every process local mode started." in lm.output
    # After SIGKILL local mode cannot clean up: its children get SIGTERM from the kernel
    # (PR_SET_PDEATHSIG) and stop their own workers.
    deadline = time.monotonic() + 15
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(started) == [], f"left running: {alive(started)}\n{lm.output}"
