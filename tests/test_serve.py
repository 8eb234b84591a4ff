"""The endpoint server (model/serve.py), run as the real subprocess on loopback."""
from __future__ import annotations

from http.client import HTTPConnection
import json
import os
import signal
import socket
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import pytest

from fixtures_model import WORDS, ServeProcess, child_env, http, read_answers
from model.serve import Config

REVIEW = "A wonderful, brilliant film: superb acting and a beautiful, delightful story."


@pytest.fixture(scope="module")
def server(make_model_dir, tmp_path_factory):
    # Wide enough that a long explanation batch is real work.
    model_dir = make_model_dir(max_len=400, hidden_dim=128, embedding_dim=32)
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    proc = ServeProcess(log, model_dir, workers=2, extra=["--timeout", "3"])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def fault_server(model_dir, tmp_path_factory):
    """For the tests that kill workers: the other tests' server keeps its workers. Each such test
    starts from both workers up (``healthy``), whatever ran before it."""
    log = tmp_path_factory.mktemp("faults") / "serve.log"
    proc = ServeProcess(log, model_dir, workers=2, extra=["--timeout", "3"], hooks=True)
    yield proc
    proc.release.touch()
    proc.stop()


def healthy(server: ServeProcess) -> list[int]:
    pids = server.wait_workers(2)
    server.wait_ping(200, timeout=20)
    return pids


def post(url: str, payload, ctype: str = "application/json", **kw):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return http("POST", url, body, ctype, **kw)


def raw_exchange(port: int, data: bytes, responses: int = 1, timeout: float = 10.0) -> list[tuple[int, dict, bytes]]:
    """Send raw bytes, read ``responses`` HTTP responses (Content-Length framed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_answers(s, responses, closed_ok=True)


def read_responses(s: socket.socket, count: int) -> list[tuple[int, dict, bytes]]:
    return read_answers(s, count, closed_ok=True)


# --------------------------------------------------------------------------- the happy paths

def test_ping_and_invocations(server):
    status, headers, body = http("GET", server.url + "/ping")
    assert status == 200 and json.loads(body) == {"status": "healthy"}
    status, headers, body = post(server.url + "/invocations", REVIEW.encode(), "text/plain")
    assert status == 200 and headers["Content-Type"] == "application/json"
    got = json.loads(body)
    assert set(got) == {"label", "score", "words_read"} and got["label"] == ("positive" if got["score"] >= 0.5 else "negative")
    status, _, body = post(server.url + "/invocations", {"text": REVIEW, "explain": True})
    assert status == 200 and json.loads(body)["score"] == got["score"]
    assert [e["word"] for e in json.loads(body)["explanation"]][:3] == ["a", "wonderful", "brilliant"]
    status, _, body = post(server.url + "/invocations", {"instances": [REVIEW, "dull"]})
    assert status == 200 and json.loads(body)["predictions"][0] == got


def test_runtime_route_through_boto3(server):
    """Local mode reaches serve through boto3's sagemaker-runtime client (AWS_ENDPOINT_URL_...)."""
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import ClientError

    client = boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=BotoConfig(retries={"total_max_attempts": 1}))
    raw_bodies = []

    def keep_error_body(http_response=None, **_):
        if http_response.status_code >= 400:  # (reading a good answer here would consume it)
            raw_bodies.append(http_response.content)
    client.meta.events.register("after-call.sagemaker-runtime.InvokeEndpoint", keep_error_body)
    answer = client.invoke_endpoint(EndpointName="imdb-sentiment", ContentType="application/json",
                                    Accept="application/json", Body=json.dumps({"text": REVIEW}))
    assert answer["ContentType"] == "application/json"
    assert set(json.loads(answer["Body"].read())) == {"label", "score", "words_read"}
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="imdb-sentiment", ContentType="application/json",
                               Body=b'{"text": "   "}')
    # botocore names a plain-HTTP error by its status; the message stays in the raw body
    err = info.value.response
    assert err["Error"]["Code"] == "400" and err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "empty" in json.loads(raw_bodies[-1])["error"]


def test_keep_alive_and_pipelining(server):
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(3):
        conn.request("POST", "/invocations", body=REVIEW, headers={"Content-Type": "text/plain"})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Connection") is None
        r.read()
    sock = conn.sock
    conn.request("GET", "/ping")
    assert conn.getresponse().read() and conn.sock is sock  # the same connection all along
    conn.close()
    one = (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
           f"Content-Length: {len(REVIEW)}\r\n\r\n{REVIEW}").encode()
    ping = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
    got = raw_exchange(server.port, one + ping + one, responses=3)
    assert [s for s, _, _ in got] == [200, 200, 200]
    assert "label" in json.loads(got[0][2]) and json.loads(got[1][2]) == {"status": "healthy"}


def test_http_1_0_closes_and_expect_100_continue(server):
    got = raw_exchange(server.port, b"GET /ping HTTP/1.0\r\n\r\n")
    assert got[0][0] == 200 and got[0][1]["connection"] == "close"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                  f"Expect: 100-continue\r\nContent-Length: {len(REVIEW)}\r\n\r\n".encode())
        assert read_responses(s, 1)[0][0] == 100
        s.sendall(REVIEW.encode())
        assert read_responses(s, 1)[0][0] == 200


def test_chunked_body(server):
    body = REVIEW.encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 10]), body[i:i + 10]) for i in range(0, len(body), 10))
    got = raw_exchange(server.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
    status, _, plain = post(server.url + "/invocations", body, "text/plain")
    assert got[0][0] == 200 and json.loads(got[0][2]) == json.loads(plain)


def test_concurrent_callers_get_their_own_answers(server):
    reviews = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(5 + 3 * i)) for i in range(24)]
    alone = [json.loads(post(server.url + "/invocations", {"text": r})[2])["score"] for r in reviews]
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda r: post(server.url + "/invocations", {"text": r}), reviews))
    assert [s for s, _, _ in together] == [200] * len(reviews)
    assert [json.loads(b)["score"] for _, _, b in together] == pytest.approx(alone, abs=2e-6)


# --------------------------------------------------------------------------- bad input

BAD_HTTP = [
    # raw request, expected status
    (b"POST /invocations HTTP/1.1\r\nContent-Type: application/xml\r\nContent-Length: 1\r\n\r\nx", 415),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n", 400),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n\xc3\x28", 400),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n{\"te", 400),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 999999999\r\n\r\nabc", 413),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: -5\r\n\r\n", 400),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\nabcd", 400),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nabc\r\n0\r\n\r\n", 400),
    (b"POST /invocations HTTP/1.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"10000\r\n" + b"a" * 65536 + b"\r\n" + b"10000\r\n" + b"a" * 65536 + b"\r\n" + b"1\r\na\r\n0\r\n\r\n", 413),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"GET /ping HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET /nowhere HTTP/1.1\r\n\r\n", 404),
    (b"GET /endpoints//invocations HTTP/1.1\r\n\r\n", 404),
    (b"GET /invocations HTTP/1.1\r\n\r\n", 405),
    (b"POST /ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
]


@pytest.mark.parametrize("request_bytes,status", BAD_HTTP, ids=[f"{s}-{i}" for i, (_, s) in enumerate(BAD_HTTP)])
def test_bad_requests_get_4xx_json_and_the_server_keeps_answering(server, request_bytes, status):
    got = raw_exchange(server.port, request_bytes)
    assert got and got[0][0] == status
    assert isinstance(json.loads(got[0][2])["error"], str) and json.loads(got[0][2])["error"]
    assert http("GET", server.url + "/ping")[0] == 200


def test_hostile_bodies_never_5xx(server):
    bodies = [
        ("text/plain", "\U0001F600 \u0000 \ud7ff \U0010FFFF".encode("utf-8") * 100),
        ("text/plain", b"<script>alert(1)</script>" * 200),
        ("text/plain", b"x" * 100_000),  # one 100 KB word
        ("text/plain", b"<b>" * 30_000 + b"great"),
        ("application/json", b'{"text": "\\ud800 lone surrogate"}'),
        ("application/json", b"[" * 50_000 + b"]" * 50_000),
        ("application/json", json.dumps({"instances": ["great " * 300] * 64}).encode()),
    ]
    for ctype, body in bodies:
        status, _, answer = post(server.url + "/invocations", body, ctype, timeout=60)
        assert status < 500, (status, answer[:300])
        assert json.loads(answer)
    assert http("GET", server.url + "/ping")[0] == 200


def test_head_ping_has_no_body(server):
    conn = HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("HEAD", "/ping")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b"" and int(r.getheader("Content-Length")) > 0
    conn.close()


def test_one_json_log_line_per_request(server):
    post(server.url + "/invocations?x=1", REVIEW.encode(), "text/plain")
    post(server.url + "/invocations", b"", "text/plain")
    deadline = time.monotonic() + 5
    ok = bad = []
    while time.monotonic() < deadline and not (ok and bad):
        lines = [r for r in server.log_records() if r.get("event") == "request"]
        ok = [r for r in lines if r["path"] == "/invocations" and r["status"] == 200]
        # this test's empty body (earlier tests' 400s may be flushed later by the other worker)
        bad = [r for r in lines if r["path"] == "/invocations" and r["status"] == 400 and r["in"] == 0
               and "empty" in r.get("error", "")]
        time.sleep(0.1)
    assert ok and bad
    for record in (ok[-1], bad[-1]):
        assert {"ts", "level", "method", "path", "status", "ms", "bytes", "pid"} <= set(record)
        assert record["method"] == "POST" and record["ms"] >= 0 and record["bytes"] > 0
    assert "empty" in bad[-1]["error"]


# --------------------------------------------------------------------------- faults

def test_killed_worker_is_replaced(fault_server):
    server = fault_server
    before = healthy(server)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = server.workers()
        if len(now) == 2 and before[0] not in now:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"worker not replaced: {before} -> {server.workers()}")
    for _ in range(6):  # whichever worker answers, it answers
        assert post(server.url + "/invocations", REVIEW.encode(), "text/plain")[0] == 200
    assert any(r.get("event") == "worker_exited" and r["worker_pid"] == before[0] for r in server.log_records())


def test_request_over_the_timeout_loses_its_worker_not_the_server(fault_server):
    """A batch that does not end (held by the hook, on any machine) is cut off after --timeout 3."""
    server = fault_server
    healthy(server)
    server.entered.unlink(missing_ok=True)
    started = time.monotonic()
    with pytest.raises(OSError):  # the worker is killed: the connection closes without an answer
        post(server.url + "/invocations", b"SLOW_STEP " + REVIEW.encode(), "text/plain", timeout=60)
    took = time.monotonic() - started
    assert server.entered.exists() and 3 <= took < 30, took
    server.wait_ping(200, timeout=20)
    assert post(server.url + "/invocations", REVIEW.encode(), "text/plain")[0] == 200
    timeouts = [r for r in server.log_records() if r.get("event") == "worker_timeout"]
    assert timeouts and timeouts[-1]["timeout_s"] == 3.0 and timeouts[-1]["busy_s"] >= 3.0
    healthy(server)  # replaced


def test_a_worker_that_keeps_dying_is_replaced_ever_later(tmp_path, model_dir):
    """The respawn back-off: replaced at once, then after 0.5 s, 1 s, ... (model/serve.py respawn_delay)."""
    proc = ServeProcess(tmp_path / "serve.log", model_dir, workers=1)
    try:
        gaps = []
        for _ in range(3):
            (pid,) = proc.wait_workers(1)
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            deadline = killed + 30
            while time.monotonic() < deadline and proc.workers() in ([], [pid]):
                time.sleep(0.01)
            gaps.append(time.monotonic() - killed)
        exits = [r for r in proc.log_records() if r.get("event") == "worker_exited"]
        assert [r["replace_in_s"] for r in exits] == [0.0, 0.5, 1.0]
        assert gaps[1] >= 0.5 and gaps[2] >= 1.0 and gaps[0] < 5, gaps
        assert http("GET", proc.url + "/ping")[0] == 200
    finally:
        proc.stop()


def test_sigterm_kills_workers_still_busy_after_the_grace_period(tmp_path, model_dir):
    proc = ServeProcess(tmp_path / "serve.log", model_dir, workers=1, extra=["--grace", "1"], hooks=True)
    try:
        busy = socket.create_connection(("127.0.0.1", proc.port), timeout=60)
        body = b"SLOW_STEP " + REVIEW.encode()
        busy.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        proc.wait_for(proc.entered)  # held: it would not end within the grace
        (worker,) = proc.workers()
        started = time.monotonic()
        os.kill(proc.proc.pid, signal.SIGTERM)
        assert proc.proc.wait(30) == 0
        took = time.monotonic() - started
        assert 1 <= took < 20, took  # grace 1 s + the master's 2 s margin, on a busy machine
        assert busy.recv(100) == b""  # closed without an answer: the worker was killed
        assert not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2]
    finally:
        proc.stop()


def test_idle_and_read_timeouts_are_settings(tmp_path, model_dir):
    proc = ServeProcess(tmp_path / "serve.log", model_dir, workers=1,
                        extra=["--idle-timeout", "1", "--read-timeout", "1"])
    try:
        idle = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
        idle.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_responses(idle, 1)[0][0] == 200
        half = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
        half.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 100\r\n\r\nonly part")
        started = time.monotonic()
        status, headers, body = read_responses(half, 1)[0]
        assert status == 408 and headers["connection"] == "close" and "1 s" in json.loads(body)["error"]
        assert idle.recv(10) == b""  # the idle keep-alive connection was closed
        assert time.monotonic() - started < 15  # 1 s each, swept once a second (the default is 30 s)
    finally:
        proc.stop()


def test_ping_503_with_the_reason_when_the_model_cannot_load(tmp_path):
    started = time.monotonic()
    proc = ServeProcess(tmp_path / "serve.log", tmp_path / "no-model", wait_status=503)
    try:
        assert time.monotonic() - started < 60
        status, _, body = http("GET", proc.url + "/ping")
        assert status == 503 and "config.json is missing" in json.loads(body)["error"]
        status, _, body = post(proc.url + "/invocations", REVIEW.encode(), "text/plain")
        assert status == 503 and "not loaded" in json.loads(body)["error"]
        assert proc.proc.poll() is None  # still running, still answering
        failed = [r for r in proc.log_records() if r.get("event") == "model_load_failed"]
        assert failed and "config.json is missing" in failed[0]["reason"]
        assert "cannot load the model" in proc.log_text()  # and a plain line for people
    finally:
        proc.stop()


def test_corrupt_model_is_reported_not_raised(make_model_dir):
    from model.serve import load_model

    model_dir = make_model_dir()
    (model_dir / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    model, reason = load_model(Config.from_args(["--model-dir", str(model_dir)], {}))
    assert model is None and "model.safetensors" in reason


def test_sigterm_drains_in_flight_requests(tmp_path, model_dir):
    proc = ServeProcess(tmp_path / "serve.log", model_dir, workers=1)
    try:
        idle = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        idle.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_responses(idle, 1)[0][0] == 200  # a keep-alive connection, now idle
        busy = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        body = REVIEW.encode()
        busy.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10]))
        time.sleep(0.3)  # the request has started arriving
        os.kill(proc.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the listener goes away
            try:
                socket.create_connection(("127.0.0.1", proc.port), timeout=1).close()
                time.sleep(0.1)
            except OSError:
                break
        else:
            pytest.fail("still accepting connections after SIGTERM")
        assert idle.recv(10) == b""  # idle keep-alive connections are closed
        busy.sendall(body[10:])
        status, headers, answer = read_responses(busy, 1)[0]
        assert status == 200 and "label" in json.loads(answer) and headers["connection"] == "close"
        assert proc.proc.wait(15) == 0
    finally:
        proc.stop()


def test_port_in_use_fails_fast(tmp_path, model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        import subprocess
        import sys
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "model.serve", "--host", "127.0.0.1", "--port",
                               str(port), "--model-dir", str(model_dir)], env=child_env(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "cannot listen" in done.stderr
        assert time.monotonic() - started < 30


# --------------------------------------------------------------------------- configuration

def test_configuration_from_sagemaker_environment():
    env = {"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
           "SAGEMAKER_MODEL_SERVER_TIMEOUT": "12.5", "SAGEMAKER_BASE_DIR": "/base"}
    cfg = Config.from_args([], env)
    assert (cfg.port, cfg.workers, cfg.timeout, cfg.model_dir, cfg.host) == (9090, 3, 12.5, "/base/model", "0.0.0.0")
    assert Config.from_args([], {**env, "SM_MODEL_DIR": "/sm"}).model_dir == "/sm"
    flags = Config.from_args(["--port", "1", "--workers", "2", "--timeout", "3", "--model-dir", "/m",
                              "--host", "127.0.0.1"], {**env, "SM_MODEL_DIR": "/sm"})
    assert (flags.port, flags.workers, flags.timeout, flags.model_dir, flags.host) == (1, 2, 3.0, "/m", "127.0.0.1")
    default = Config.from_args([], {})
    assert (default.port, default.model_dir, default.timeout) == (8080, "/opt/ml/model", 60.0)
    assert default.workers >= 1 and default.threads >= 1
    assert Config.from_args(["--workers", "2"], {"OMP_NUM_THREADS": "3"}).threads == 3


@pytest.mark.parametrize("env", [{"SAGEMAKER_MODEL_SERVER_WORKERS": "many"},
                                 {"SAGEMAKER_MODEL_SERVER_WORKERS": "0"},
                                 {"SAGEMAKER_BIND_TO_PORT": "70000"},
                                 {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "-1"}])
def test_bad_configuration_is_refused_with_a_message(env, capsys):
    with pytest.raises(SystemExit) as info:
        Config.from_args([], env)
    err = capsys.readouterr().err
    assert info.value.code == 2 and (list(env)[0] in err or "port 70000" in err)


def test_a_worker_is_recycled_after_max_requests_without_losing_a_request(tmp_path, model_dir):
    """--max-requests 4: a worker answers its fourth request with "Connection: close", drains and is
    replaced (a planned exit: logged as worker_recycled, no back-off); no caller sees an error."""
    proc = ServeProcess(tmp_path / "serve.log", model_dir, workers=1,
                        extra=["--max-requests", "4", "--max-requests-jitter", "0"])
    try:
        (first,) = proc.wait_workers(1)  # it has answered one request: the fixture's /ping
        conn = HTTPConnection("127.0.0.1", proc.port, timeout=30)  # reconnects after a close
        closes = []
        for _ in range(12):
            conn.request("POST", "/invocations", body=REVIEW.encode(), headers={"Content-Type": "text/plain"})
            answer = conn.getresponse()
            assert answer.status == 200 and "label" in json.loads(answer.read())
            closes.append(answer.getheader("Connection") == "close")
        conn.close()
        assert [i for i, closed in enumerate(closes) if closed] == [2, 6, 10]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(
                [r for r in proc.log_records() if r.get("event") == "worker_recycled"]) < 3:
            time.sleep(0.05)
        recycled = [r for r in proc.log_records() if r.get("event") == "worker_recycled"]
        answered = [r["pid"] for r in proc.log_records() if r.get("event") == "request"]
        assert len(recycled) == 3 and recycled[0]["worker_pid"] == first
        assert [answered.count(r["worker_pid"]) for r in recycled] == [4, 4, 4]
        assert all(r["replace_in_s"] == 0.0 for r in recycled)
        assert not [r for r in proc.log_records() if r.get("event") == "worker_exited"]
    finally:
        proc.stop()
