"""lambda/proxy/handler.py: validation, forwarding and error mapping (botocore Stubber + a loopback fake)."""
from __future__ import annotations

import base64
import io
import json
import time

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber


def event(body=None, *, content_type: str | None = "application/json", method: str = "POST",
          path: str = "/predict", b64: bool = False, headers: dict | None = None) -> dict:
    hdrs = dict(headers or {})
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if b64 and body is not None:
        raw = body if isinstance(body, bytes) else body.encode()
        body = base64.b64encode(raw).decode()
    return {
        "resource": "/predict", "path": path, "httpMethod": method,
        "headers": hdrs, "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {"requestId": "req-1", "stage": "prod", "identity": {"sourceIp": "127.0.0.1"}},
        "body": body, "isBase64Encoded": b64,
    }


def answer(result: dict) -> tuple[int, dict]:
    assert set(result) >= {"statusCode", "headers", "body"}
    assert result["headers"]["Content-Type"].startswith("application/json")
    body = json.loads(result["body"]) if result["body"] else None
    if result["statusCode"] >= 400:
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    return result["statusCode"], body


def ok_response(payload: dict) -> dict:
    raw = json.dumps(payload).encode()
    return {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json",
            "InvokedProductionVariant": "AllTraffic"}


@pytest.fixture
def proxy(load_proxy_handler):
    mod = load_proxy_handler()
    with Stubber(mod._CLIENT) as stub:
        mod.stub = stub
        yield mod
        stub.assert_no_pending_responses()


# --------------------------------------------------------------------------- success

def test_success_forwards_text_and_explain(proxy, capsys):
    expected_body = json.dumps({"text": "Great film", "explain": True}, ensure_ascii=False).encode()
    proxy.stub.add_response(
        "invoke_endpoint", ok_response({"label": "positive", "score": 0.93,
                                        "explanation": [{"word": "great", "weight": 0.2}]}),
        {"EndpointName": "test-endpoint", "ContentType": "application/json",
         "Accept": "application/json", "Body": expected_body})
    status, body = answer(proxy.handler(event({"text": "Great film", "explain": True}), None))
    assert status == 200
    assert body == {"label": "positive", "score": 0.93, "explanation": [{"word": "great", "weight": 0.2}]}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1
    assert lines[0]["status"] == 200 and lines[0]["request_id"] == "req-1"
    assert "Great film" not in json.dumps(lines[0])  # the review is never logged


def test_explain_defaults_to_false_and_charset_is_accepted(proxy):
    proxy.stub.add_response(
        "invoke_endpoint", ok_response({"label": "negative", "score": 0.1}),
        {"EndpointName": ANY, "ContentType": "application/json", "Accept": ANY,
         "Body": json.dumps({"text": "Dull", "explain": False}).encode()})
    status, body = answer(proxy.handler(event({"text": "Dull"}, content_type="application/json; charset=UTF-8"),
                                        None))
    assert (status, body) == (200, {"label": "negative", "score": 0.1})


def test_base64_body_is_decoded(proxy):
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}),
                            {"EndpointName": ANY, "ContentType": ANY, "Accept": ANY,
                             "Body": json.dumps({"text": "Très bien ✓", "explain": False},
                                                ensure_ascii=False).encode()})
    raw = json.dumps({"text": "Très bien ✓"}, ensure_ascii=False).encode()
    status, _ = answer(proxy.handler(event(raw, b64=True), None))
    assert status == 200


def test_headers_are_case_insensitive_and_multivalue_only_works(proxy):
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
    ev = event({"text": "good"}, content_type=None)
    ev["headers"] = None
    ev["multiValueHeaders"] = {"content-type": ["application/json"]}
    assert answer(proxy.handler(ev, None))[0] == 200


# --------------------------------------------------------------------------- caller mistakes

@pytest.mark.parametrize("ev, status, needle", [
    (event(None), 400, "empty"),
    (event(""), 400, "empty"),
    (event("   \n"), 400, "empty"),
    (event("{not json"), 400, "not valid JSON"),
    (event("[" * 60_000 + "]" * 60_000), 400, "not valid JSON"),  # deeply nested: RecursionError
    (event(["text"]), 400, "JSON object"),
    (event({"review": "x"}), 400, "missing field 'text'"),
    (event({"text": 5}), 400, "must be a string"),
    (event({"text": None}), 400, "must be a string"),
    (event({"text": "   "}), 400, "empty"),
    (event({"text": "ok", "explain": "yes"}), 400, "'explain'"),
    (event('{"text": "\\ud800 lone surrogate"}'), 400, "Unicode"),
    ({**event("x"), "body": "not base64!!", "isBase64Encoded": True}, 400, "base64"),
    (event(b"\xff\xfe{}", b64=True), 400, "UTF-8"),
    (event({"text": "x" * 131_072}), 413, "too large"),
    (event("x" * 5_000_000), 413, "too large"),
    (event("x" * 5_000_000, b64=True), 413, "too large"),
    (event({"text": "x"}, content_type="text/plain"), 415, "Content-Type"),
    (event({"text": "x"}, content_type=None), 415, "Content-Type"),
    (event({"text": "x"}, content_type="application/json; charset=latin-1"), 415, "charset"),
    (event({"text": "x"}, method="GET"), 405, "POST"),
    (event({"text": "x"}, path="/other"), 404, "/predict"),
])
def test_caller_mistakes_never_reach_the_endpoint(proxy, ev, status, needle):
    got, body = answer(proxy.handler(ev, None))
    assert got == status
    assert needle in body["error"]


def test_body_at_the_limit_is_accepted(proxy):
    prefix, suffix = '{"text": "', '"}'
    text = "a" * (131_072 - len(prefix) - len(suffix))
    raw = prefix + text + suffix
    assert len(raw.encode()) == 131_072
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.5}))
    assert answer(proxy.handler(event(raw), None))[0] == 200


def test_options_and_cors(load_proxy_handler):
    mod = load_proxy_handler()
    res = mod.handler(event(None, method="OPTIONS"), None)
    assert res["statusCode"] == 204 and "Access-Control-Allow-Origin" not in res["headers"]

    mod = load_proxy_handler(ALLOWED_ORIGIN="https://site.example")
    res = mod.handler(event(None, method="OPTIONS"), None)
    assert res["statusCode"] == 204
    assert res["headers"]["Access-Control-Allow-Origin"] == "https://site.example"
    assert "POST" in res["headers"]["Access-Control-Allow-Methods"]
    res = mod.handler(event({"text": 1}), None)
    assert res["statusCode"] == 400 and res["headers"]["Access-Control-Allow-Origin"] == "https://site.example"

    mod = load_proxy_handler(ALLOWED_ORIGIN="*")  # never a wildcard
    res = mod.handler(event({"text": 1}), None)
    assert "Access-Control-Allow-Origin" not in res["headers"]


def test_missing_endpoint_name_is_503(load_proxy_handler):
    mod = load_proxy_handler(ENDPOINT_NAME="")
    status, body = answer(mod.handler(event({"text": "good"}), None))
    assert status == 503 and "ENDPOINT_NAME" in body["error"]


def test_garbage_event_is_json_not_500(proxy):
    for ev in ({}, None, {"httpMethod": "POST", "headers": {"Content-Type": 3}, "body": 7}):
        status, _ = answer(proxy.handler(ev, None))
        assert 400 <= status < 600 and status != 500


# --------------------------------------------------------------------------- endpoint failures (Stubber)

@pytest.mark.parametrize("code, http, extra, status, needle", [
    ("ModelError", 424, {"OriginalStatusCode": 400, "OriginalMessage": '{"error": "text is empty"}'},
     400, "text is empty"),
    ("ModelError", 424, {"OriginalStatusCode": 413, "OriginalMessage": '{"error": "body too large"}'},
     413, "body too large"),
    ("ModelError", 424, {"OriginalStatusCode": 415, "OriginalMessage": "plain words"}, 415, "plain words"),
    ("ModelError", 424, {"OriginalStatusCode": 500, "OriginalMessage": "Traceback ..."}, 502, "model failed"),
    ("ModelError", 424, {"OriginalStatusCode": 503, "OriginalMessage": '{"error": "model not loaded"}'},
     503, "not ready"),
    ("ThrottlingException", 400, {}, 503, "busy"),
    ("ServiceUnavailable", 503, {}, 503, "busy"),
    ("ModelNotReadyException", 429, {}, 503, "not ready"),
    ("ValidationError", 400, {}, 503, "does not exist"),
    ("AccessDeniedException", 400, {}, 502, "IAM"),
    ("InternalFailure", 500, {}, 502, "failed"),
])
def test_endpoint_errors_are_mapped(proxy, code, http, extra, status, needle):
    message = ("Endpoint test-endpoint of account 123456789012 not found."
               if code == "ValidationError" else "upstream said no")
    proxy.stub.add_client_error("invoke_endpoint", service_error_code=code, service_message=message,
                                http_status_code=http, modeled_fields=extra or None)
    got, body = answer(proxy.handler(event({"text": "good"}), None))
    assert got == status
    assert needle in body["error"]
    assert "Traceback" not in body["error"]


def test_endpoint_answer_that_is_not_a_prediction_is_502(proxy):
    raw = b"<html>"
    proxy.stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(raw), len(raw))})
    assert answer(proxy.handler(event({"text": "good"}), None))[0] == 502


# --------------------------------------------------------------------------- over the wire (loopback)

def test_plain_server_errors_are_passed_through(load_proxy_handler, fake_endpoint):
    mod = load_proxy_handler(fake_endpoint.url)
    assert answer(mod.handler(event({"text": "a great film"}), None)) == (200, {"label": "positive",
                                                                              "score": 0.6667})
    assert fake_endpoint.bodies[-1][0] == "application/json"
    fake_endpoint.mode, fake_endpoint.status, fake_endpoint.message = "status", 400, "no words left"
    assert answer(mod.handler(event({"text": "the"}), None)) == (400, {"error": "no words left"})
    fake_endpoint.status, fake_endpoint.message = 503, "model not loaded"
    status, body = answer(mod.handler(event({"text": "good"}), None))
    assert status == 503 and "model not loaded" in body["error"]
    fake_endpoint.status = 500
    assert answer(mod.handler(event({"text": "good"}), None))[0] == 502
    fake_endpoint.mode = "garbage"
    assert answer(mod.handler(event({"text": "good"}), None))[0] == 502


def test_timeout_is_504_and_retries_are_bounded(load_proxy_handler, fake_endpoint):
    mod = load_proxy_handler(fake_endpoint.url, INVOKE_READ_TIMEOUT_S="0.3", INVOKE_CONNECT_TIMEOUT_S="0.3")
    fake_endpoint.mode, fake_endpoint.delay = "slow", 1.0
    t0 = time.monotonic()
    status, body = answer(mod.handler(event({"text": "good"}), None))
    elapsed = time.monotonic() - t0
    assert status == 504 and "in time" in body["error"]
    assert fake_endpoint.requests == mod.MAX_ATTEMPTS == 2
    assert elapsed < 4


def test_unreachable_endpoint_is_503(load_proxy_handler):
    from fixtures_local import free_port
    mod = load_proxy_handler(f"http://127.0.0.1:{free_port()}")
    status, body = answer(mod.handler(event({"text": "good"}), None))
    assert status == 503 and "cannot be reached" in body["error"]


def test_default_budget_fits_api_gateway(load_proxy_handler):
    mod = load_proxy_handler()
    worst = mod.MAX_ATTEMPTS * (mod.CONNECT_TIMEOUT_S + mod.READ_TIMEOUT_S) + 1.0  # + one back-off
    assert worst < 29
    assert mod._CLIENT.meta.config.retries["total_max_attempts"] == mod.MAX_ATTEMPTS


# --------------------------------------------------------------------------- property-based: any input

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
_bodies = st.one_of(
    st.none(),
    st.text(max_size=300),                                            # any unicode, every plane
    st.binary(max_size=300).map(lambda b: ("b64", b)),                # arbitrary bytes, invalid UTF-8
    _json_values.map(json.dumps),                                     # JSON of any shape
    st.fixed_dictionaries({"text": st.text(max_size=200)},
                          optional={"explain": _json_values}).map(json.dumps),
    st.sampled_from(["<script>alert(1)</script>", '{"text": "<img src=x onerror=alert(1)>"}',
                     '{"text": "' + "w" * 100_000 + '"}', '{"text": "' + "w" * 140_000 + '"}',
                     "[" * 50_000 + "]" * 50_000, " \t\r\n", '{"text": "\\u0000"}']),
)
_content_types = st.one_of(st.none(), st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain",
     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=ascii",
     "application/octet-stream", ""]), st.text(max_size=30))


class _FakeRuntime:
    """Stands in for the sagemaker-runtime client: checks what the proxy forwards."""

    def __init__(self):
        self.calls = 0

    def invoke_endpoint(self, EndpointName, ContentType, Accept, Body):
        self.calls += 1
        assert ContentType == "application/json" and len(Body) <= 6 * 1024 * 1024
        payload = json.loads(Body)
        assert set(payload) == {"text", "explain"}
        assert isinstance(payload["text"], str) and payload["text"].strip()
        assert isinstance(payload["explain"], bool)
        raw = b'{"label": "positive", "score": 0.75}'
        return {"Body": StreamingBody(io.BytesIO(raw), len(raw))}


@pytest.fixture
def fuzz_proxy(load_proxy_handler):
    mod = load_proxy_handler()
    mod._CLIENT = _FakeRuntime()
    return mod


# The fixture is built once for all examples of the test, on purpose: the module holds no request state.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies, content_type=_content_types, method=st.sampled_from(["POST", "POST", "GET", "PUT", "OPTIONS"]))
def test_any_request_gets_a_json_answer_and_never_a_5xx(fuzz_proxy, body, content_type, method):
    mod = fuzz_proxy
    b64 = isinstance(body, tuple)
    if b64:
        body = base64.b64encode(body[1]).decode()
    ev = event(None, content_type=content_type, method=method)
    ev["body"], ev["isBase64Encoded"] = body, b64
    result = mod.handler(ev, None)
    status = result["statusCode"]
    assert status in (200, 204, 400, 405, 413, 415), (status, result["body"])
    if status >= 400:
        assert isinstance(json.loads(result["body"])["error"], str)
    elif status == 200:
        assert json.loads(result["body"]) == {"label": "positive", "score": 0.75}

