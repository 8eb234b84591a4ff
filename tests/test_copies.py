"""Files that ship alone keep copies of facts defined once elsewhere; each copy equals its source.

The Lambda proxy's asset is its one file (no model/, no stacks/), and web/app.js runs in a browser. Every
Python side imports instead: model/contract.py (the endpoint's limits), stacks/request_limits.py (the
request path's timeouts). The training-job handler's metric attribute names: test_training_job_handler.py.
"""
from __future__ import annotations

import json
import re
import sys

from fixtures_local import REPO

sys.path.insert(0, str(REPO))  # stacks/ is not an installed package
from model.contract import MAX_BODY_BYTES  # noqa: E402
from stacks.request_limits import INTEGRATION_TIMEOUT_S, LAMBDA_TIMEOUT_S  # noqa: E402

APP_JS = (REPO / "web" / "app.js").read_text()


def js_const(name: str) -> int:
    return int(re.search(rf"\bconst {name} = (\d+);", APP_JS)[1])


def test_the_proxy_refuses_what_the_endpoint_refuses(load_proxy_handler):
    proxy = load_proxy_handler()
    assert proxy.MAX_BODY_BYTES == MAX_BODY_BYTES
    assert f"at most {MAX_BODY_BYTES} bytes" in proxy.__doc__


def test_the_proxy_answers_before_its_lambda_is_stopped(load_proxy_handler):
    """Its worst InvokeEndpoint case (every attempt times out, plus one retry back-off) fits the Lambda's
    timeout, which fits API Gateway's: the caller gets the proxy's own 504, not a killed Lambda."""
    proxy = load_proxy_handler()
    worst = proxy.MAX_ATTEMPTS * (proxy.CONNECT_TIMEOUT_S + proxy.READ_TIMEOUT_S) + 1.0
    assert worst < LAMBDA_TIMEOUT_S < INTEGRATION_TIMEOUT_S
    assert proxy.INVOKE_BUDGET_S == LAMBDA_TIMEOUT_S - 1
    assert f"under API Gateway's {INTEGRATION_TIMEOUT_S} s integration limit" in proxy.__doc__


def test_the_page_sends_no_review_the_api_refuses():
    """The page counts the review JSON-escaped; the proxy forwards it inside {"text": ..., "explain": ...}."""
    assert f"The API takes a body of at most {MAX_BODY_BYTES} bytes." in APP_JS
    envelope = len(json.dumps({"text": "", "explain": False}, ensure_ascii=False).encode())
    assert js_const("MAX_REVIEW_BYTES") + envelope <= MAX_BODY_BYTES


def test_the_page_waits_for_api_gateways_answer():
    assert js_const("TIMEOUT_MS") > INTEGRATION_TIMEOUT_S * 1000
    assert f"// API Gateway gives up at {INTEGRATION_TIMEOUT_S} s" in APP_JS
