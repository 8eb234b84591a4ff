"""API Gateway (REST, proxy integration) -> SageMaker endpoint proxy: ``POST {apiUrl}/predict``.

Standard library and boto3 only, so the asset stays small and cold starts stay short.

Request:  ``Content-Type: application/json``, body ``{"text": "<review>", "explain": true|false}``
          (``explain`` optional, default false), at most 131072 bytes.
Answer:   the endpoint's JSON passed through (``{"label": ..., "score": ..., "explanation"?: [...]}``).
Errors:   ``{"error": "<message a person can act on>"}`` with
          400 / 413 / 415 for the caller's mistakes (also the endpoint's own 4xx, passed through),
          502 when the model fails, 503 when the endpoint is throttled, missing or not ready,
          504 when it does not answer in time. Never a bare 500.

Configuration (environment):
  ``ENDPOINT_NAME``      the SageMaker endpoint to invoke (required).
  ``ALLOWED_ORIGIN``     optional; when set, ``Access-Control-Allow-Origin: <that origin>`` is added to
                         every answer (never ``*``: a ``*`` value is ignored). Unset in the cloud design,
                         where ``/api/*`` is served through the site's own CloudFront distribution.
  ``INVOKE_CONNECT_TIMEOUT_S``, ``INVOKE_READ_TIMEOUT_S``, ``INVOKE_MAX_ATTEMPTS``: the InvokeEndpoint
                         budget (defaults 2 s, 11 s, 2 attempts: worst case ~2 x (2 + 11) s + one
                         retry back-off (<= 1 s) ~= 27 s, under API Gateway's 29 s integration limit;
                         any other mix has its read timeout cut to stay within those 27 s).
  ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``: boto3's own override, used by local mode to reach
                         ``model.serve`` on loopback.

Every request writes exactly one JSON log line to stdout (CloudWatch Logs in Lambda); the review text
itself is never logged.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

MAX_BODY_BYTES = 131072
# API Gateway caps payloads at 10 MB; never base64-decode anything near that only to refuse it.
_MAX_B64_CHARS = (MAX_BODY_BYTES + 2) // 3 * 4 + 4
_MESSAGE_LIMIT = 500  # characters of an upstream message we pass on


def _env_float(name: str, default: float, low: float, high: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return min(max(value, low), high)


# Every InvokeEndpoint attempt timing out, plus the back-off between them, must end inside the Lambda's
# 28 s (stacks/request_limits.py; this file ships alone, tests/test_copies.py holds the two together)
# with a second left to answer 504: each setting is clamped on its own, and the read timeout is then cut
# so that no mix of them overruns (5 s connect and 12 s read over 2 attempts would take 35 s).
INVOKE_BUDGET_S = 27.0
RETRY_BACKOFF_S = 1.0  # botocore's standard mode sleeps at most this before its second attempt
CONNECT_TIMEOUT_S = _env_float("INVOKE_CONNECT_TIMEOUT_S", 2.0, 0.05, 5.0)
MAX_ATTEMPTS = int(_env_float("INVOKE_MAX_ATTEMPTS", 2, 1, 2))
READ_TIMEOUT_S = min(_env_float("INVOKE_READ_TIMEOUT_S", 11.0, 0.05, 12.0),
                     (INVOKE_BUDGET_S - (MAX_ATTEMPTS - 1) * RETRY_BACKOFF_S) / MAX_ATTEMPTS - CONNECT_TIMEOUT_S)

_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    tcp_keepalive=True,
    user_agent_extra="imdb-sentiment-proxy",
)


def _keep_raw_error_body(http_response=None, parsed=None, **_kwargs):
    """Keep the raw body of an error answer next to botocore's parsed error.

    A real SageMaker endpoint reports the container's own 4xx/5xx as a typed ``ModelError``. A plain
    HTTP server standing in for the runtime (local mode) answers with the container's status and its
    ``{"error": ...}`` body, which botocore's parser would otherwise drop.
    """
    try:
        if http_response is not None and http_response.status_code >= 400 and isinstance(parsed, dict):
            parsed.setdefault("Error", {})["RawBody"] = http_response.content[:4096]
    except Exception:  # never let diagnostics break the call
        pass


def _new_client():
    client = boto3.client("sagemaker-runtime", config=_CONFIG)
    client.meta.events.register("after-call.sagemaker-runtime.InvokeEndpoint", _keep_raw_error_body)
    return client


# Created once per execution environment (at import, during Lambda's init phase) and reused.
try:
    _CLIENT = _new_client()
    _CLIENT_ERROR: Exception | None = None
except Exception as exc:  # e.g. no region: answer every request with a clear 502 instead of crashing init
    _CLIENT = None
    _CLIENT_ERROR = exc


def _client():
    global _CLIENT, _CLIENT_ERROR
    if _CLIENT is None:
        try:
            _CLIENT = _new_client()
            _CLIENT_ERROR = None
        except Exception as exc:
            _CLIENT_ERROR = exc
            raise
    return _CLIENT


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code  # short machine-readable reason, for the log line


def _allowed_origin() -> str | None:
    origin = os.environ.get("ALLOWED_ORIGIN", "").strip()
    if not origin or origin == "*" or "," in origin or " " in origin:
        return None  # never a wildcard; one exact origin or nothing
    return origin.rstrip("/")


def _response(status: int, body: str | None, extra: dict | None = None) -> dict:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    origin = _allowed_origin()
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Vary"] = "Origin"
    if extra:
        headers.update(extra)
    return {"statusCode": status, "headers": headers, "body": body if body is not None else "",
            "isBase64Encoded": False}


def _error(status: int, message: str, extra: dict | None = None) -> dict:
    return _response(status, json.dumps({"error": message}, ensure_ascii=False), extra)


def _header(event: dict, name: str) -> str | None:
    """Case-insensitive header lookup over ``headers`` and ``multiValueHeaders``."""
    lname = name.lower()
    for key, value in (event.get("headers") or {}).items():
        if isinstance(key, str) and key.lower() == lname and value is not None:
            return str(value)
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if isinstance(key, str) and key.lower() == lname and values:
            return str(values[-1])
    return None


def _check_content_type(event: dict) -> None:
    raw = _header(event, "content-type")
    if not raw:
        raise ApiError(415, "missing Content-Type: send the review as JSON with "
                            "'Content-Type: application/json' and a body like {\"text\": \"...\"}",
                       "no_content_type")
    parts = [p.strip() for p in raw.split(";")]
    media = parts[0].lower()
    if media != "application/json":
        raise ApiError(415, f"unsupported Content-Type {parts[0][:100]!r}: send 'application/json' with "
                            "a body like {\"text\": \"...\"}", "content_type")
    for param in parts[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ApiError(415, f"unsupported charset {value.strip()[:40]!r}: the body must be UTF-8",
                           "charset")


def _body_bytes(event: dict) -> bytes:
    body = event.get("body")
    if body is None or body == "":
        raise ApiError(400, "empty body: send {\"text\": \"<a movie review>\"}", "empty")
    if not isinstance(body, str):
        raise ApiError(400, "the request body could not be read", "body_type")
    if event.get("isBase64Encoded"):
        if len(body) > _MAX_B64_CHARS:
            raise ApiError(413, f"body too large: at most {MAX_BODY_BYTES} bytes", "too_large")
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "the body is marked base64 but is not valid base64", "base64") from None
    else:
        if len(body) > MAX_BODY_BYTES:  # cheap early refusal: a str is never shorter than its UTF-8
            raise ApiError(413, f"body too large: at most {MAX_BODY_BYTES} bytes", "too_large")
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "the body is not valid UTF-8", "utf8") from None
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, f"body too large: {len(data)} bytes, at most {MAX_BODY_BYTES}", "too_large")
    if not data.strip():
        raise ApiError(400, "empty body: send {\"text\": \"<a movie review>\"}", "empty")
    return data


def _parse_request(data: bytes) -> tuple[str, bool]:
    try:
        text_body = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not valid UTF-8", "utf8") from None
    try:
        payload = json.loads(text_body)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON: send {\"text\": \"<a movie review>\"}",
                       "json") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object like {\"text\": \"<a movie review>\"}", "shape")
    if "text" not in payload:
        raise ApiError(400, "missing field 'text': send {\"text\": \"<a movie review>\"}", "no_text")
    text = payload["text"]
    if not isinstance(text, str):
        raise ApiError(400, "field 'text' must be a string", "text_type")
    if not text.strip():
        raise ApiError(400, "field 'text' is empty: write a review first", "text_empty")
    explain = payload.get("explain", False)
    if explain is None:
        explain = False
    if not isinstance(explain, bool):
        raise ApiError(400, "field 'explain' must be true or false", "explain_type")
    return text, explain


def _upstream_message(raw, fallback: str, text_ok: bool = True) -> str:
    """The ``error`` message from an endpoint's JSON answer, or (``text_ok``) its text, shortened.

    For the endpoint's 5xx answers only a JSON ``error`` field is passed on: raw text could be a
    stack trace.
    """
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if not isinstance(raw, str) or not raw.strip():
        return fallback
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        for key in ("error", "message", "Message"):
            if isinstance(parsed.get(key), str) and parsed[key].strip():
                return parsed[key].strip()[:_MESSAGE_LIMIT]
    return raw.strip()[:_MESSAGE_LIMIT] if text_ok else fallback


def _from_model_status(status: int, raw) -> ApiError:
    """The container's own answer (status + body): its 4xx are the caller's, its 5xx are ours."""
    if 400 <= status < 500 and status not in (404, 405, 408, 429):
        return ApiError(status, _upstream_message(raw, f"the model refused the review ({status})"),
                        f"model_{status}")
    detail = _upstream_message(raw, f"status {status or 'unknown'}", text_ok=False)
    if status in (429, 503):
        return ApiError(503, f"the model is not ready to answer, try again shortly ({detail})",
                        f"model_{status}")
    if status in (408, 504):
        return ApiError(504, "the model did not answer in time", f"model_{status}")
    if status in (404, 405):
        return ApiError(502, f"the model server has no invocations route ({status})", f"model_{status}")
    return ApiError(502, f"the model failed to answer: {detail}", f"model_{status or 'error'}")


def _map_client_error(exc: ClientError) -> ApiError:
    err = exc.response.get("Error", {}) or {}
    code = str(err.get("Code", "") or "")
    message = str(err.get("Message", "") or "")
    meta = exc.response.get("ResponseMetadata", {}) or {}
    http_status = meta.get("HTTPStatusCode") or 0

    if code == "ModelError":  # SageMaker: the container answered with a non-2xx status
        try:
            original = int(exc.response.get("OriginalStatusCode"))
        except (TypeError, ValueError):
            original = 0
        return _from_model_status(original, exc.response.get("OriginalMessage"))
    if code.isdigit() and "RawBody" in err:
        # A plain HTTP server standing in for the runtime (local mode): its status and JSON body.
        return _from_model_status(int(code), err.get("RawBody"))
    if code in ("ThrottlingException", "Throttling", "TooManyRequestsException",
                "ModelNotReadyException", "ServiceUnavailable", "ServiceUnavailableException"):
        return ApiError(503, "the model endpoint is busy or not ready: try again in a few seconds",
                        code)
    if code in ("ValidationError", "ValidationException") and "not found" in message.lower():
        return ApiError(503, "the model endpoint does not exist or is not ready yet (is the stack "
                             "deployed and the endpoint InService?)", "endpoint_missing")
    if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
                "InvalidSignatureException", "ExpiredTokenException"):
        return ApiError(502, "the API is not allowed to call the model endpoint (check its IAM role)",
                        code)
    if http_status == 504 or code in ("RequestTimeout", "RequestTimeoutException"):
        return ApiError(504, "the model did not answer in time", code or "timeout")
    return ApiError(502, "the model endpoint failed to answer", code or f"http_{http_status}")


def _invoke(endpoint: str, text: str, explain: bool) -> tuple[str, dict]:
    try:
        body = json.dumps({"text": text, "explain": explain}, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "field 'text' is not valid Unicode (it holds a lone surrogate escape)",
                       "surrogate") from None
    try:
        client = _client()
    except Exception:
        raise ApiError(502, "the API is misconfigured: it cannot create its SageMaker client",
                       "client_init") from None
    try:
        answer = client.invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                        Accept="application/json", Body=body)
        raw = answer["Body"].read()
    except ClientError as exc:
        raise _map_client_error(exc) from None
    except (ReadTimeoutError, ConnectTimeoutError):
        raise ApiError(504, "the model did not answer in time: try again, or with a shorter review",
                       "timeout") from None
    except EndpointConnectionError:
        raise ApiError(503, "the model endpoint cannot be reached (is it running?)",
                       "unreachable") from None
    except BotoCoreError as exc:
        # Connections reset mid-answer are transient; credentials or config problems are not ours to
        # explain to the caller, the log line has the class name.
        raise ApiError(502, "the model endpoint failed to answer", type(exc).__name__) from None

    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        parsed = None
    if (not isinstance(parsed, dict) or parsed.get("label") not in ("positive", "negative")
            or isinstance(parsed.get("score"), bool)
            or not isinstance(parsed.get("score"), (int, float))):
        raise ApiError(502, "the model returned an answer the API does not understand", "bad_answer")
    return raw.decode("utf-8"), parsed


def handler(event, context):
    started = time.perf_counter()
    event = event if isinstance(event, dict) else {}
    request_id = (getattr(context, "aws_request_id", None)
                  or (event.get("requestContext") or {}).get("requestId") or str(uuid.uuid4()))
    method = str(event.get("httpMethod") or "").upper()
    path = str(event.get("path") or event.get("resource") or "")
    log = {"level": "INFO", "msg": "predict", "request_id": request_id, "method": method,
           "path": path[:200]}
    endpoint_ms = None
    try:
        if method == "OPTIONS":
            extra = {"Allow": "POST, OPTIONS"}
            if _allowed_origin():
                extra.update({"Access-Control-Allow-Methods": "POST, OPTIONS",
                              "Access-Control-Allow-Headers": "Content-Type",
                              "Access-Control-Max-Age": "600"})
            result = _response(204, "", extra)
        elif path and path.rstrip("/").rsplit("/", 1)[-1] != "predict":
            raise ApiError(404, "not found: the API has one route, POST /predict", "route")
        elif method != "POST":
            raise ApiError(405, "method not allowed: use POST /predict with {\"text\": \"...\"}",
                           "method")
        else:
            _check_content_type(event)
            data = _body_bytes(event)
            log["bytes_in"] = len(data)
            text, explain = _parse_request(data)
            log["explain"] = explain
            log["chars"] = len(text)
            endpoint = os.environ.get("ENDPOINT_NAME", "").strip()
            if not endpoint:
                raise ApiError(503, "the API has no model endpoint configured (ENDPOINT_NAME)",
                               "no_endpoint_name")
            t0 = time.perf_counter()
            try:
                body, parsed = _invoke(endpoint, text, explain)
            finally:
                endpoint_ms = round((time.perf_counter() - t0) * 1000, 1)
            log["label"] = parsed.get("label")
            result = _response(200, body)
    except ApiError as exc:
        log["error"] = exc.code
        extra = {"Allow": "POST, OPTIONS"} if exc.status == 405 else None
        result = _error(exc.status, exc.message, extra)
    except Exception as exc:  # a bug of ours: still a JSON answer, never a bare 500 / stack trace
        log["level"] = "ERROR"
        log["error"] = "internal"
        log["exception"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        result = _error(502, "the API failed to handle this request; try again later")
    log["status"] = result["statusCode"]
    if endpoint_ms is not None:
        log["endpoint_ms"] = endpoint_ms
    log["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    if log["status"] >= 500 and log["level"] == "INFO":
        log["level"] = "WARNING"
    try:
        sys.stdout.write(json.dumps(log, ensure_ascii=True) + "\n")
        sys.stdout.flush()
    except Exception:
        pass
    return result
