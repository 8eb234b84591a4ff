"""scripts/proxy_integration.py: HTTP requests -> API Gateway proxy events -> HTTP answers, no sockets.

The server around it, and the chain end to end: tests/test_local_front.py.
"""
from __future__ import annotations

import base64
import json

import pytest

from fixtures_local import REPO, load_module

proxy_integration = load_module("proxy_integration_under_test", REPO / "scripts" / "proxy_integration.py")


def test_event_for_a_json_post():
    ev = proxy_integration.build_event(
        "post", "/predict?a=1&b=two&a=3&empty=",
        [("Host", "127.0.0.1:8000"), ("Content-Type", "application/json"), ("X-Dup", "1"), ("X-Dup", "2"),
         ("User-Agent", "pytest")],
        b'{"text": "caf\xc3\xa9"}', source_ip="10.1.2.3", request_id="rid")
    assert ev["httpMethod"] == "POST"
    assert ev["resource"] == "/predict" and ev["path"] == "/predict" and ev["pathParameters"] is None
    assert ev["headers"]["Content-Type"] == "application/json"
    assert ev["headers"]["X-Dup"] == "2" and ev["multiValueHeaders"]["X-Dup"] == ["1", "2"]
    assert ev["queryStringParameters"] == {"a": "3", "b": "two", "empty": ""}
    assert ev["multiValueQueryStringParameters"] == {"a": ["1", "3"], "b": ["two"], "empty": [""]}
    assert ev["body"] == '{"text": "café"}' and ev["isBase64Encoded"] is False
    rc = ev["requestContext"]
    assert rc["requestId"] == "rid" and rc["stage"] == "local" and rc["httpMethod"] == "POST"
    assert rc["identity"]["sourceIp"] == "10.1.2.3" and rc["identity"]["userAgent"] == "pytest"
    assert rc["resourcePath"] == "/predict" and rc["domainName"] == "127.0.0.1:8000"
    assert isinstance(rc["requestTimeEpoch"], int)
    assert ev["stageVariables"] is None
    json.dumps(ev)  # an event is plain JSON


def test_event_without_body_or_query():
    ev = proxy_integration.build_event("GET", "/other/path%20x", [], b"")
    assert ev["body"] is None and ev["isBase64Encoded"] is False
    assert ev["queryStringParameters"] is None and ev["multiValueQueryStringParameters"] is None
    assert ev["headers"] is None and ev["multiValueHeaders"] is None
    assert ev["resource"] == "/{proxy+}" and ev["pathParameters"] == {"proxy": "other/path x"}
    assert ev["path"] == "/other/path x"


@pytest.mark.parametrize("ctype, body, b64", [
    ("application/json", b"\xff\xfe not utf-8", True),
    ("application/octet-stream", b"plain ascii", True),
    ("image/png", b"\x89PNG", True),
    ("text/plain; charset=utf-8", "ok ✓".encode(), False),
    ("application/vnd.api+json", b"{}", False),
    (None, b"text without a type", False),
])
def test_binary_bodies_are_base64(ctype, body, b64):
    headers = [("Content-Type", ctype)] if ctype else []
    ev = proxy_integration.build_event("POST", "/predict", headers, body)
    assert ev["isBase64Encoded"] is b64
    assert (base64.b64decode(ev["body"]) if b64 else ev["body"].encode()) == body


def test_lambda_response_translation():
    status, headers, body = proxy_integration.http_from_lambda({
        "statusCode": 201, "headers": {"Content-Type": "application/json", "X-A": "single"},
        "multiValueHeaders": {"X-A": ["m1", "m2"], "Set-Cookie": ["a=1", "b=2"]},
        "body": '{"ok": "✓"}', "isBase64Encoded": False})
    assert status == 201
    assert ("X-A", "m1") in headers and ("X-A", "m2") in headers and ("X-A", "single") not in headers
    assert ("Set-Cookie", "a=1") in headers and ("Content-Type", "application/json") in headers
    assert body == '{"ok": "✓"}'.encode()
    status, _, body = proxy_integration.http_from_lambda({
        "statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True})
    assert body == b"\x00\x01"
    assert proxy_integration.http_from_lambda({"statusCode": 204})[2] == b""


@pytest.mark.parametrize("bad", [None, "x", {"statusCode": 99}, {"statusCode": "abc"}, {"statusCode": True},
                                 {"statusCode": 200, "body": 5},
                                 {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
                                 {"statusCode": 200, "headers": {"X": "a\r\nInjected: 1"}},
                                 {"statusCode": 200, "multiValueHeaders": {"X": "not a list"}}])
def test_malformed_lambda_responses_are_rejected(bad):
    with pytest.raises(proxy_integration.LambdaResponseError):
        proxy_integration.http_from_lambda(bad)


def test_the_local_context_has_the_cloud_lambdas_time():
    from stacks.request_limits import LAMBDA_TIMEOUT_S

    context = proxy_integration.LocalContext("rid")
    assert context.aws_request_id == "rid"
    assert LAMBDA_TIMEOUT_S * 1000 - 1000 < context.get_remaining_time_in_millis() <= LAMBDA_TIMEOUT_S * 1000
    assert proxy_integration.LocalContext("rid", timeout_ms=0).get_remaining_time_in_millis() == 0
