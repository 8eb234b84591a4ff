"""Timeouts and sizes along the cloud's request path (CloudFront -> API Gateway -> Lambda proxy), defined
once for the stacks and for local mode's front, which stands in for the first two.

Standard library only: the local front imports it without loading the CDK. The endpoint's own body
limit is model/contract.py's MAX_BODY_BYTES.
"""
from __future__ import annotations

# API Gateway gives up on a Lambda integration after this (its default and, for a REST API without a
# quota increase, its maximum), answering 504 with its own message.
INTEGRATION_TIMEOUT_S = 29
# The proxy's: above its InvokeEndpoint budget (~27 s, lambda/proxy/handler.py), so that it answers its
# own 504 before Lambda stops it, and under the integration's.
LAMBDA_TIMEOUT_S = 28
# CloudFront's wait for the API origin: longer than the integration's, so API Gateway answers first.
ORIGIN_READ_TIMEOUT_S = 30
# API Gateway refuses larger payloads before any Lambda runs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
