"""The page's security headers, defined once for CloudFront (stacks/site.py) and for local mode's front
(scripts/local_front.py), which serves the same page over plain HTTP on loopback.

Standard library only: the local front imports it without loading the CDK.
"""
from __future__ import annotations

CSP_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
# Only HTTPS can keep these promises; over the local front's plain HTTP a browser would fail the page.
HTTPS_CSP_DIRECTIVES = ("upgrade-insecure-requests",)
HSTS_MAX_AGE_DAYS = 365
FRAME_OPTIONS = "DENY"
REFERRER_POLICY = "strict-origin-when-cross-origin"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=()"


def content_security_policy(https: bool) -> str:
    return "; ".join(CSP_DIRECTIVES + (HTTPS_CSP_DIRECTIVES if https else ()))


def security_headers(https: bool) -> dict[str, str]:
    """The headers as a browser receives them: from CloudFront (``https``) or from the local front."""
    headers = {
        "Content-Security-Policy": content_security_policy(https),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": FRAME_OPTIONS,
        "Referrer-Policy": REFERRER_POLICY,
        "Permissions-Policy": PERMISSIONS_POLICY,
    }
    if https:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_DAYS * 24 * 3600}; includeSubDomains"
    return headers
