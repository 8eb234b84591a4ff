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


def test_oversized_bodies_are_refused_before_they_are_decoded(proxy, monkeypatch):
    """5 MB (API Gateway passes up to 10 MB) is refused from its length: neither base64-decoded
    nor UTF-8-encoded only to be refused afterwards."""
    import types
    decoded, encoded = [], []
    monkeypatch.setattr(proxy, "base64", types.SimpleNamespace(
        b64decode=lambda data, validate=False: decoded.append(len(data)) or base64.b64decode(data, validate=validate)))

    class Tracked(str):
        def encode(self, *args, **kwargs):
            encoded.append(len(self))
            return str.encode(self, *args, **kwargs)

    huge = base64.b64encode(b"x" * 5_000_000).decode()
    assert answer(proxy.handler({**event("x"), "body": huge, "isBase64Encoded": True}, None))[0] == 413
    assert answer(proxy.handler({**event("x"), "body": Tracked("x" * 5_000_000)}, None))[0] == 413
    assert decoded == [] and encoded == []
    # just over the base64 length a 131072-byte body can have: refused from the length too
    over = base64.b64encode(b"x" * 131_072).decode() + "AAAA" + "A" * 4
    assert answer(proxy.handler({**event("x"), "body": over, "isBase64Encoded": True}, None))[0] == 413
    assert decoded == []
    # a body within the limits is decoded, once (the spy is the decoder the handler calls)
    raw = json.dumps({"text": "good"})
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
    assert answer(proxy.handler({**event("x"), "body": Tracked(raw)}, None))[0] == 200
    assert encoded == [len(raw)]


@pytest.mark.parametrize("b64", [False, True])
def test_one_byte_over_the_limit_is_refused(proxy, b64):
    prefix, suffix = '{"text": "', '"}'
    raw = prefix + "a" * (131_073 - len(prefix) - len(suffix)) + suffix
    status, body = answer(proxy.handler(event(raw, b64=b64), None))
    assert status == 413 and "131072" in body["error"]


@pytest.mark.parametrize("env, expected", [
    ({}, (2.0, 11.0, 2)),
    ({"INVOKE_CONNECT_TIMEOUT_S": "0.001", "INVOKE_READ_TIMEOUT_S": "0.001", "INVOKE_MAX_ATTEMPTS": "0"},
     (0.05, 0.05, 1)),
    # clamped to 5 s and 2 attempts, then the read cut to 8 s: 2 x (5 + 8) + 1 = 27 s
    ({"INVOKE_CONNECT_TIMEOUT_S": "60", "INVOKE_READ_TIMEOUT_S": "60", "INVOKE_MAX_ATTEMPTS": "9"}, (5.0, 8.0, 2)),
    ({"INVOKE_CONNECT_TIMEOUT_S": "soon", "INVOKE_READ_TIMEOUT_S": "", "INVOKE_MAX_ATTEMPTS": "x"}, (2.0, 11.0, 2)),
])
def test_invoke_budget_settings_are_clamped_to_fit_api_gateway(load_proxy_handler, env, expected):
    """Out-of-range or unreadable settings are clamped or ignored, and the read timeout is cut so the
    whole budget fits (test_no_mix_of_invoke_settings_outlasts_the_lambda)."""
    mod = load_proxy_handler(**env)
    assert (mod.CONNECT_TIMEOUT_S, mod.READ_TIMEOUT_S, mod.MAX_ATTEMPTS) == expected
    assert mod._CLIENT.meta.config.connect_timeout == expected[0]
    assert mod._CLIENT.meta.config.read_timeout == expected[1]


def test_the_content_type_header_is_found_among_others(proxy):
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
    ev = event({"text": "good"}, content_type=None, headers={"Accept": "text/plain", "content-TYPE": "application/json"})
    ev["multiValueHeaders"] = None
    assert answer(proxy.handler(ev, None))[0] == 200
    # a header API Gateway passes as null falls back to its multi-value form
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
    ev = event({"text": "good"}, content_type=None)
    ev["headers"] = {"Content-Type": None}
    ev["multiValueHeaders"] = {"Content-Type": ["application/json"]}
    assert answer(proxy.handler(ev, None))[0] == 200


def test_other_media_type_parameters_are_not_a_charset(proxy):
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
    assert answer(proxy.handler(event({"text": "good"}, content_type="application/json; version=1"), None))[0] == 200
    ev = event({"text": "good"}, content_type=None)
    ev["headers"] = None
    ev["multiValueHeaders"] = {"Content-Type": ["text/plain", "application/json"]}  # the last one counts
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
    assert answer(proxy.handler(ev, None))[0] == 200


def test_only_a_405_says_what_is_allowed(proxy):
    assert proxy.handler(event({"text": "x"}, method="GET"), None)["headers"]["Allow"] == "POST, OPTIONS"
    for ev in (event({"text": 1}), event({"text": "x"}, path="/other"), event("x" * 200_000)):
        assert "Allow" not in proxy.handler(ev, None)["headers"]


def test_a_validation_error_that_is_not_a_missing_endpoint_is_502(proxy):
    proxy.stub.add_client_error("invoke_endpoint", service_error_code="ValidationError",
                                service_message="1 validation error detected", http_status_code=400)
    status, body = answer(proxy.handler(event({"text": "good"}), None))
    assert status == 502 and "does not exist" not in body["error"]


def test_a_body_with_a_lone_surrogate_is_400(proxy):
    """Lambda's JSON event decoder lets a lone surrogate escape through into the body string."""
    status, body = answer(proxy.handler({**event("x"), "body": '{"text": "\ud800"}'}, None))
    assert status == 400 and "UTF-8" in body["error"]


def test_a_body_that_is_not_text_is_400(proxy):
    for body in (7, ["x"], {"text": "x"}):
        status, answer_body = answer(proxy.handler({**event("x"), "body": body}, None))
        assert status == 400 and "could not be read" in answer_body["error"]


@pytest.mark.parametrize("raw", [b'{"label": "positive", "score": true}', b'{"label": "positive", "score": "0.5"}',
                                 b'{"label": "maybe", "score": 0.5}', b'{"score": 0.5}', b'[1]'])
def test_an_answer_that_is_not_a_prediction_is_502(proxy, raw):
    proxy.stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(raw), len(raw))})
    status, body = answer(proxy.handler(event({"text": "good"}), None))
    assert status == 502 and "does not understand" in body["error"]


def test_base64_body_at_the_limit_is_accepted(proxy):
    prefix, suffix = '{"text": "', '"}'
    raw = (prefix + "a" * (131_072 - len(prefix) - len(suffix)) + suffix).encode()
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.5}))
    assert answer(proxy.handler(event(raw, b64=True), None))[0] == 200


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


def test_missing_endpoint_name_is_503(load_proxy_handler, capsys):
    mod = load_proxy_handler(ENDPOINT_NAME="")
    status, body = answer(mod.handler(event({"text": "good"}), None))
    assert status == 503 and "ENDPOINT_NAME" in body["error"]
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["level"] == "WARNING" and json.loads(line)["status"] == 503  # 5xx: not INFO


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
    # the container's statuses that are not the caller's mistake although they are 4xx
    ("ModelError", 424, {"OriginalStatusCode": 404, "OriginalMessage": '{"error": "no route"}'}, 502,
     "no invocations route"),
    ("ModelError", 424, {"OriginalStatusCode": 405, "OriginalMessage": '{"error": "use POST"}'}, 502,
     "no invocations route"),
    ("ModelError", 424, {"OriginalStatusCode": 408, "OriginalMessage": '{"error": "too slow"}'}, 504,
     "in time"),
    ("ModelError", 424, {"OriginalStatusCode": 429, "OriginalMessage": '{"error": "busy"}'}, 503,
     "not ready"),
    ("ModelError", 424, {"OriginalStatusCode": 504, "OriginalMessage": "gateway timeout"}, 504, "in time"),
    ("ModelError", 424, {"OriginalStatusCode": 502, "OriginalMessage": '{"error": "upstream bad"}'}, 502,
     "upstream bad"),
    ("ModelError", 424, {}, 502, "status unknown"),
    ("RequestTimeout", 504, {}, 504, "in time"),
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


@pytest.mark.parametrize("status, expected, needle", [(404, 502, "no invocations route"),
                                                       (405, 502, "no invocations route"),
                                                       (408, 504, "in time"), (429, 503, "not ready"),
                                                       (504, 504, "in time"), (413, 413, "bad review")])
def test_plain_server_statuses_are_mapped(load_proxy_handler, fake_endpoint, status, expected, needle):
    mod = load_proxy_handler(fake_endpoint.url)
    fake_endpoint.mode, fake_endpoint.status = "status", status
    got, body = answer(mod.handler(event({"text": "good"}), None))
    assert (got, needle in body["error"]) == (expected, True), body


def test_a_client_that_cannot_be_created_is_502_and_is_tried_again(load_proxy_handler, monkeypatch, tmp_path):
    from fixtures_local import HANDLER_PATH, load_module
    load_proxy_handler()  # the environment of the other tests
    for key in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    mod = load_module("proxy_handler_without_region", HANDLER_PATH)  # import must not fail
    assert mod._CLIENT is None and mod._CLIENT_ERROR is not None
    status, body = answer(mod.handler(event({"text": "good"}), None))
    assert status == 502 and "cannot create its SageMaker client" in body["error"]
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # fixed: the next request builds it
    with Stubber(mod._client()) as stub:
        stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
        assert answer(mod.handler(event({"text": "good"}), None))[0] == 200
    assert mod._CLIENT_ERROR is None


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



@pytest.mark.parametrize("connect,read,attempts", [
    ("5", "12", "2"),      # every setting at its clamp: 2 x (5 + 12) + 1 = 35 s before the budget
    ("99", "99", "9"),     # out of range: clamped first, then held to the budget
    ("0.05", "12", "2"),
    ("5", "12", "1"),
    ("2", "11", "2"),      # the defaults fit as they are
])
def test_no_mix_of_invoke_settings_outlasts_the_lambda(load_proxy_handler, connect, read, attempts):
    """The InvokeEndpoint worst case (every attempt times out, one back-off) ends inside the 27 s budget,
    so the caller gets the proxy's 504 rather than API Gateway's bare 502 for a killed Lambda."""
    proxy = load_proxy_handler(INVOKE_CONNECT_TIMEOUT_S=connect, INVOKE_READ_TIMEOUT_S=read,
                               INVOKE_MAX_ATTEMPTS=attempts)
    worst = (proxy.MAX_ATTEMPTS * (proxy.CONNECT_TIMEOUT_S + proxy.READ_TIMEOUT_S)
             + (proxy.MAX_ATTEMPTS - 1) * proxy.RETRY_BACKOFF_S)
    assert worst <= proxy.INVOKE_BUDGET_S + 1e-9, (proxy.CONNECT_TIMEOUT_S, proxy.READ_TIMEOUT_S, proxy.MAX_ATTEMPTS)
    assert proxy.READ_TIMEOUT_S > 0
    assert proxy._CONFIG.read_timeout == proxy.READ_TIMEOUT_S  # what botocore is given
    if (connect, read, attempts) == ("2", "11", "2"):
        assert (proxy.CONNECT_TIMEOUT_S, proxy.READ_TIMEOUT_S, proxy.MAX_ATTEMPTS) == (2.0, 11.0, 2)


# --------------------------------------------------------------------------- what the whole-module mutation run found

def test_only_post_to_the_predict_route_reaches_the_endpoint(proxy):
    status, _ = answer(proxy.handler(event({"text": "x"}, method="PUT"), None))  # sorts after POST
    assert status == 405
    for path in ("/zzz", "/predicts", "/abc"):  # after and before "predict"
        status, _ = answer(proxy.handler(event({"text": "x"}, path=path), None))
        assert status == 404, path


def test_a_list_of_origins_is_no_allowed_origin(load_proxy_handler):
    for origins in ("https://a.example,https://b.example", "https://a.example https://b.example"):
        mod = load_proxy_handler(ALLOWED_ORIGIN=origins)
        assert "Access-Control-Allow-Origin" not in mod.handler(event({"text": 1}), None)["headers"], origins


@pytest.mark.parametrize("http, status", [(504, 504), (503, 502), (507, 502)])
def test_an_unknown_endpoint_error_is_a_timeout_only_on_http_504(proxy, http, status):
    proxy.stub.add_client_error("invoke_endpoint", service_error_code="InternalFailure",
                                service_message="something", http_status_code=http)
    got, _ = answer(proxy.handler(event({"text": "good"}), None))
    assert got == status


def test_the_content_type_is_found_whichever_way_the_other_headers_sort(proxy):
    for first in ({"X-Amzn-Trace-Id": "Root=1"}, {"Accept": "text/plain"}):  # after and before it
        proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
        ev = event({"text": "good"}, content_type=None, headers={**first, "Content-Type": "application/json"})
        assert answer(proxy.handler(ev, None))[0] == 200, first
        proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
        ev["headers"] = None  # the multi-value form alone
        assert answer(proxy.handler(ev, None))[0] == 200, first


def test_a_media_type_parameter_sorting_before_charset_is_not_one(proxy):
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
    assert answer(proxy.handler(event({"text": "good"}, content_type="application/json; boundary=x"), None))[0] == 200


def test_a_bug_of_ours_is_a_502_with_the_exception_logged(proxy, monkeypatch, capsys):
    def broken(event):
        raise RuntimeError("a bug")
    monkeypatch.setattr(proxy, "_check_content_type", broken)
    status, body = answer(proxy.handler(event({"text": "good"}), None))
    assert status == 502 and "try again later" in body["error"]
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["level"] == "ERROR" and line["exception"] == "RuntimeError: a bug" and line["status"] == 502


# --------------------------------------------------------------------------- what the --survivors rerun left alive

def test_the_base64_length_bound_is_exact(proxy):
    """4 x ceil(131072 / 3) + 4 = 174,768 characters are decoded (these are not base64: 400), one more
    is refused from its length (413): the bound moved either way changes which answer a body gets."""
    bound = 4 * -(-131_072 // 3) + 4
    status, body = answer(proxy.handler({**event("x"), "body": "!" * bound, "isBase64Encoded": True}, None))
    assert (status, "not valid base64" in body["error"]) == (400, True)
    status, body = answer(proxy.handler({**event("x"), "body": "!" * (bound + 1), "isBase64Encoded": True}, None))
    assert (status, "too large" in body["error"]) == (413, True)


def test_a_base64_body_with_a_character_outside_the_alphabet_is_400(proxy):
    good = base64.b64encode(json.dumps({"text": "good"}).encode()).decode()
    status, body = answer(proxy.handler({**event("x"), "body": good[:4] + "*" + good[4:],
                                         "isBase64Encoded": True}, None))
    assert status == 400 and "not valid base64" in body["error"]


def test_answers_are_never_marked_base64(proxy):
    proxy.stub.add_response("invoke_endpoint", ok_response({"label": "positive", "score": 0.7}))
    for ev in (event({"text": "good"}), event({"text": "good"}, method="GET"), event({"text": "x"}, method="OPTIONS")):
        assert proxy.handler(ev, None)["isBase64Encoded"] is False


def test_a_media_type_sorting_before_application_json_is_415(proxy):
    for media in ("application/hal+json", "application/csv", "text/plain; charset=utf-8"):
        status, body = answer(proxy.handler(event({"text": "good"}, content_type=media), None))
        assert status == 415, media
        assert repr(media.split(";")[0]) in body["error"], body  # it names the media type, not a parameter


def test_explain_null_is_sent_as_false(proxy):
    proxy.stub.add_response(
        "invoke_endpoint", ok_response({"label": "positive", "score": 0.7}),
        {"EndpointName": ANY, "ContentType": ANY, "Accept": ANY,
         "Body": json.dumps({"text": "good", "explain": False}).encode()})
    assert answer(proxy.handler(event({"text": "good", "explain": None}), None))[0] == 200


def test_a_model_4xx_with_only_a_message_field_is_passed_through(proxy):
    proxy.stub.add_client_error("invoke_endpoint", service_error_code="ModelError", service_message="x",
                                http_status_code=424, modeled_fields={
                                    "OriginalStatusCode": 422, "OriginalMessage": '{"message": "too short"}'})
    status, body = answer(proxy.handler(event({"text": "good"}), None))
    assert (status, body["error"]) == (422, "too short")


def test_a_sagemaker_error_with_its_raw_body_kept_is_mapped_by_its_code(proxy):
    """The after-call hook keeps RawBody on every error answer, SageMaker's own ones too."""
    from botocore.exceptions import ClientError
    exc = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down",
                                 "RawBody": b'{"message": "slow down"}'},
                       "ResponseMetadata": {"HTTPStatusCode": 400}}, "InvokeEndpoint")
    assert proxy._map_client_error(exc).status == 503


def test_another_botocore_error_is_a_502_from_the_endpoint(proxy, monkeypatch, capsys):
    from botocore.exceptions import ConnectionClosedError

    def closed(**_kwargs):
        raise ConnectionClosedError(endpoint_url="https://runtime.sagemaker")
    monkeypatch.setattr(proxy._CLIENT, "invoke_endpoint", closed)
    status, body = answer(proxy.handler(event({"text": "good"}), None))
    assert status == 502 and "model endpoint failed to answer" in body["error"]
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["error"] == "ConnectionClosedError"


@pytest.mark.parametrize("raw", [b"<html>", b"[" * 100_000])
def test_an_answer_that_is_not_json_is_one_the_api_does_not_understand(proxy, raw):
    proxy.stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(raw), len(raw))})
    status, body = answer(proxy.handler(event({"text": "good"}), None))
    assert status == 502 and "does not understand" in body["error"]


def test_the_root_and_a_resource_without_a_path_are_404(proxy):
    assert answer(proxy.handler(event({"text": "good"}, path="/"), None))[0] == 404
    ev = {**event({"text": "good"}), "resource": "/other"}
    del ev["path"]
    assert answer(proxy.handler(ev, None))[0] == 404
