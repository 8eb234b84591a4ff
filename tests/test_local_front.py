"""scripts/local_front.py: the server (static files, the Lambda in-process) and the chain end to end.

Its event translation, without sockets: tests/test_proxy_integration.py.
"""
from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.request

import pytest

from fixtures_local import (NEGATIVE_REVIEW, POSITIVE_REVIEW, PYTHON, REPO, Front, child_env,
                            load_module, post_json)

front_mod = load_module("local_front_under_test", REPO / "scripts" / "local_front.py")


# --------------------------------------------------------------------------- the server, in-process

@pytest.fixture
def inprocess_front(start_front):
    """A front whose 'Lambda' records the events it gets and answers a canned response."""
    seen = []
    answer = {"value": {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                        "body": '{"label": "positive", "score": 0.9}'}}

    def handler(event, context):
        seen.append((event, context))
        if isinstance(answer["value"], Exception):
            raise answer["value"]
        return answer["value"]

    return start_front(handler), seen, answer


def request(url, data=None, method="GET", headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_http_request_becomes_the_event(inprocess_front):
    url, seen, _ = inprocess_front
    status, headers, body = request(url + "/predict?debug=1", data=b"\xff\x00binary", method="POST",
                                    headers={"Content-Type": "application/octet-stream", "X-Trace": "t1"})
    assert status == 200 and json.loads(body) == {"label": "positive", "score": 0.9}
    assert headers["Content-Security-Policy"] == front_mod.CONTENT_SECURITY_POLICY
    event, context = seen[-1]
    assert event["httpMethod"] == "POST" and event["path"] == "/predict"
    assert event["queryStringParameters"] == {"debug": "1"}
    assert event["headers"]["X-Trace"] == "t1"
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00binary"
    assert context.aws_request_id == event["requestContext"]["requestId"]
    from stacks.request_limits import LAMBDA_TIMEOUT_S
    assert 0 < context.get_remaining_time_in_millis() <= LAMBDA_TIMEOUT_S * 1000  # the cloud Lambda's

    request(url + "/predict", data=b"", method="OPTIONS")
    assert seen[-1][0]["httpMethod"] == "OPTIONS" and seen[-1][0]["body"] is None


def test_failing_or_malformed_lambda_gives_502(inprocess_front):
    url, _, answer = inprocess_front
    answer["value"] = RuntimeError("boom")
    status, _, body = request(url + "/predict", data=b"{}", method="POST",
                              headers={"Content-Type": "application/json"})
    assert status == 502 and json.loads(body) == {"error": "Internal server error"}  # API Gateway's, templated
    answer["value"] = {"statusCode": "nope"}
    assert request(url + "/predict", data=b"{}", method="POST")[0] == 502


def test_static_files_and_config(inprocess_front):
    url, seen, _ = inprocess_front
    status, headers, body = request(url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == front_mod.CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b'<script src="app.js"' in body
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, _ = request(f"{url}/{name}")
        assert status == 200 and headers["Content-Type"].startswith(ctype)
    status, headers, body = request(url + "/config.json")
    assert status == 200 and json.loads(body) == {"apiUrl": ""}
    status, headers, body = request(url + "/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    for path in ("/nope.html", "/../pyproject.toml", "/%2e%2e/pyproject.toml", "/..%2fpyproject.toml"):
        status, headers, body = request(url + path)
        assert status == 404 and list(json.loads(body)) == ["error"], path
    assert not seen  # none of these reached the Lambda


def test_one_error_shape_whoever_answers(front_with_real_handler):
    """The front's own errors, the Lambda's and (stacks/api.py) API Gateway's are all {"error": ...}."""
    url = front_with_real_handler
    for method, path in (("GET", "/nope"), ("POST", "/nope"), ("GET", "/predict"), ("DELETE", "/predict")):
        status, headers, body = request(url + path, data=b"" if method != "GET" else None, method=method)
        answer = json.loads(body)
        assert 400 <= status < 500 and list(answer) == ["error"] and answer["error"].strip(), (method, path, answer)
        assert headers["Content-Type"].startswith("application/json")


def test_the_about_page_states_what_the_docs_state():
    """web/about.html (the page's model card and API summary) against docs/model-card.md, the README
    and the API's limit, so that the two cannot drift apart unnoticed."""
    import re
    about = (REPO / "web" / "about.html").read_text()
    card = (REPO / "docs" / "model-card.md").read_text()
    test_accuracy = float(re.search(r"\*\*test accuracy \(25,000 reviews\)\*\* \| \*\*(0\.\d+)\*\*", card)[1])
    assert f"<strong>{test_accuracy * 100:.1f}%</strong> of the 25,000 IMDB test reviews" in about
    quick = re.search(r"scores (\d+\.\d(?:-\d+\.\d)?%) on the IMDB test split", (REPO / "README.md").read_text())[1]
    assert f"local mode trains by default: {quick}" in about
    handler = load_module("proxy_handler_for_about", REPO / "lambda" / "proxy" / "handler.py")
    assert f"a body of at most {handler.MAX_BODY_BYTES} bytes" in about
    assert "words_read" in about and '{"error": ' in about


def test_the_page_gets_the_clouds_security_headers_less_what_needs_https(inprocess_front):
    """stacks/security_headers.py is the one list; tests/test_stacks_site.py holds CloudFront's policy to it."""
    from stacks.security_headers import security_headers

    url, _, _ = inprocess_front
    for path in ("/", "/app.js", "/config.json", "/nope", "/predict"):
        _, headers, _ = request(url + path)
        sent = {name: headers[name] for name in security_headers(https=True) if name in headers}
        assert sent == security_headers(https=False), path


def test_oversized_and_chunked_requests_are_refused_before_the_lambda(inprocess_front):
    import http.client
    url, seen, _ = inprocess_front
    host, port = url.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Length", str(11 * 1024 * 1024))
    conn.endheaders()
    answer = conn.getresponse()
    assert answer.status == 413 and "at most 10485760 bytes" in json.loads(answer.read())["error"]
    conn.close()
    import socket
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\nd\r\n{\"text\": \"x\"}\r\n0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 411")
    assert not seen


# --------------------------------------------------------------------------- the process, with the real handler

def test_front_process_with_real_handler_and_fake_endpoint(fake_endpoint, tmp_path):
    front = Front(fake_endpoint.url, tmp_path / "front.log")
    try:
        status, body = post_json(front.url + "/predict", {"text": "a superb film", "explain": True})
        assert status == 200 and body["label"] == "positive"
        assert [e["word"] for e in body["explanation"]] == ["a", "superb", "film"]
        ctype, forwarded = fake_endpoint.bodies[-1]
        assert ctype == "application/json"
        assert json.loads(forwarded) == {"text": "a superb film", "explain": True}
        assert post_json(front.url + "/predict", None, raw=b"not json")[0] == 400
        status, body = post_json(front.url + "/predict", None, raw=b"{}", headers={"Content-Type": "text/plain"})
        assert status == 415 and "application/json" in body["error"]
        fake_endpoint.mode, fake_endpoint.status, fake_endpoint.message = "status", 413, "too many words"
        assert post_json(front.url + "/predict", {"text": "x"}) == (413, {"error": "too many words"})
        fake_endpoint.status, fake_endpoint.message = 503, "model not loaded"
        status, body = post_json(front.url + "/predict", {"text": "x"})
        assert status == 503 and "not ready" in body["error"]
        log = (tmp_path / "front.log").read_text()
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert [line["status"] for line in lines][-4:] == [400, 415, 413, 503]
        assert "superb" not in log  # reviews are not logged
    finally:
        front.stop()


def test_front_port_in_use_is_a_clear_message():
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([PYTHON, str(REPO / "scripts" / "local_front.py"), "--port", str(port),
                               "--endpoint-url", "http://127.0.0.1:9"], capture_output=True, text=True,
                              timeout=30, env=child_env())
    assert proc.returncode == 2
    assert f"port {port}" in proc.stderr and "already in use" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- the real chain (model.serve)

def test_chain_with_real_serve(local_mode):
    url = local_mode.page_url
    status, body = post_json(url + "/predict", {"text": POSITIVE_REVIEW, "explain": True})
    assert status == 200, body
    assert body["label"] == "positive" and body["score"] >= 0.5
    words = [e["word"] for e in body["explanation"]]
    assert "wonderful" in words and "masterpiece" in words
    weights = {e["word"]: e["weight"] for e in body["explanation"]}
    assert weights["wonderful"] is not None and weights["wonderful"] > 0

    status, body = post_json(url + "/predict", {"text": NEGATIVE_REVIEW})
    assert status == 200 and body["label"] == "negative" and "explanation" not in body

    assert post_json(url + "/predict", {"text": "   "})[0] == 400
    status, body = post_json(url + "/predict", {"text": "x" * 140_000})
    assert status == 413 and "error" in body


def test_runtime_route_through_boto3(local_mode):
    """The endpoint server's SageMaker-runtime route answers boto3's InvokeEndpoint like SageMaker."""
    import boto3
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=local_mode.endpoint_url,
                          aws_access_key_id="local", aws_secret_access_key="local")
    answer = client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                                    Accept="application/json",
                                    Body=json.dumps({"text": NEGATIVE_REVIEW, "explain": True}))
    data = json.loads(answer["Body"].read())
    assert data["label"] == "negative" and 0 <= data["score"] < 0.5
    assert [e["word"] for e in data["explanation"]][:3] == ["a", "terrible", "boring"]


# --------------------------------------------------------------------------- property-based: any request

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture
def front_with_real_handler(inprocess_api):
    return inprocess_api[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                      st.sampled_from([b'{"text": "\xed\xa0\x80"}', b'{"text": "ok"}', b"\x00" * 10])),
       ctype=st.sampled_from(["application/json", "text/plain", "application/octet-stream", "image/png",
                              "application/json; charset=utf-8", "", "x/y; a=\"b\""]),
       path=st.sampled_from(["/predict", "/predict/", "/api/predict", "/predict?x=%ff", "/api/other"]))
def test_any_http_request_gets_a_json_answer(front_with_real_handler, body, ctype, path):
    headers = {"Content-Type": ctype} if ctype else {}
    status, _, data = request(front_with_real_handler + path, data=body, method="POST", headers=headers)
    assert status in (200, 400, 404, 413, 415), (status, data)
    answer = json.loads(data)
    assert ("error" in answer) if status >= 400 else ("label" in answer)
    assert request(front_with_real_handler + "/config.json")[0] == 200  # still answering
