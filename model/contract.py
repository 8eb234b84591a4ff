"""The endpoint contract's fixed facts (docs/architecture.md), defined once for every Python side.

model/inference.py enforces them and model/serve.py answers with them; the API stack's request model,
local mode and the benchmarks import them. lambda/proxy/handler.py and web/app.js ship alone and
cannot: tests/test_copies.py holds their copies to these. Standard library only.
"""
from __future__ import annotations

# One request body at most; beyond it the endpoint, the proxy and the API's request model all refuse
# (413, or API Gateway's 400 for the model), so a caller meets one limit whichever answers.
MAX_BODY_BYTES = 131072
MAX_INSTANCES = 64  # reviews in one {"instances": [...]} request

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain"

# Status line phrases of the answers the endpoint gives.
STATUS_PHRASES = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large",
                  415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
                  500: "Internal Server Error", 503: "Service Unavailable"}
