"""API Gateway's Lambda proxy integration as pure functions, for local mode's front (scripts/local_front.py).

An HTTP request becomes a REST API proxy event (payload format 1.0, as API Gateway builds it), the
Lambda's response dict becomes an HTTP answer (status, headers, body) or a ``LambdaResponseError`` where
API Gateway would answer 502, and ``LocalContext`` is as much of the Lambda context as the proxy reads.
No sockets: tests/test_proxy_integration.py runs them directly.
"""
from __future__ import annotations

import base64
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from stacks.request_limits import LAMBDA_TIMEOUT_S  # noqa: E402

_TEXT_TYPES = ("application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "application/ld+json")


def is_text_media_type(content_type: str | None) -> bool:
    """Whether API Gateway would hand the body over as text (no binary media types configured)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return (media.startswith("text/") or media in _TEXT_TYPES or media.endswith("+json")
            or media.endswith("+xml"))


def build_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                source_ip: str = "127.0.0.1", stage: str = "local",
                request_id: str | None = None) -> dict:
    """An API Gateway REST API proxy-integration event (payload format version 1.0)."""
    parts = urlsplit(target)
    path = unquote(parts.path) or "/"

    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value  # API Gateway: the last value wins in ``headers``
        multi.setdefault(name, []).append(value)
    lower = {k.lower(): v for k, v in single.items()}

    query = parse_qsl(parts.query, keep_blank_values=True)
    qs_single: dict[str, str] = {}
    qs_multi: dict[str, list[str]] = {}
    for key, value in query:
        qs_single[key] = value
        qs_multi.setdefault(key, []).append(value)

    if body:
        try:
            text = body.decode("utf-8")
            binary = not is_text_media_type(lower.get("content-type"))
        except UnicodeDecodeError:
            text, binary = None, True
        event_body = base64.b64encode(body).decode("ascii") if binary else text
    else:
        event_body, binary = None, False

    if path == "/predict":
        resource, path_parameters = "/predict", None
    else:
        resource, path_parameters = "/{proxy+}", {"proxy": path.lstrip("/")}
    now = datetime.now(timezone.utc)
    request_id = request_id or str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": qs_single or None,
        "multiValueQueryStringParameters": qs_multi or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "domainName": lower.get("host", "localhost"),
            "identity": {"sourceIp": source_ip, "userAgent": lower.get("user-agent"),
                         "accessKey": None, "accountId": None, "caller": None, "user": None,
                         "userArn": None, "cognitoIdentityId": None},
        },
        "body": event_body,
        "isBase64Encoded": binary,
    }


class LambdaResponseError(ValueError):
    """The handler's return value is not a valid proxy response (API Gateway answers 502)."""


def http_from_lambda(result) -> tuple[int, list[tuple[str, str]], bytes]:
    """A proxy-integration response dict -> (status, headers, body), as API Gateway does it."""
    if not isinstance(result, dict):
        raise LambdaResponseError(f"the handler returned {type(result).__name__}, not a dict")
    status = result.get("statusCode", 200)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise LambdaResponseError(f"invalid statusCode {status!r}")
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise LambdaResponseError(f"multiValueHeaders[{name!r}] is not a list")
        for value in values:
            headers.append((str(name), str(value)))
        seen.add(str(name).lower())
    for name, value in (result.get("headers") or {}).items():
        if str(name).lower() not in seen:  # multiValueHeaders take precedence, like API Gateway
            headers.append((str(name), str(value)))
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise LambdaResponseError("body must be a string")
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise LambdaResponseError(f"isBase64Encoded body is not base64: {exc}") from None
    else:
        data = body.encode("utf-8")
    for name, value in headers:
        if any(c in name + value for c in "\r\n"):
            raise LambdaResponseError("header with a line break")
    return status, headers, data


class LocalContext:
    """Just enough of the Lambda context object."""

    function_name = "local-proxy"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    log_group_name = "/aws/lambda/local-proxy"
    log_stream_name = "local"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:local-proxy"

    def __init__(self, request_id: str, timeout_ms: int = LAMBDA_TIMEOUT_S * 1000):
        self.aws_request_id = request_id
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
