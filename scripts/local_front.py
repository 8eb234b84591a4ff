#!/usr/bin/env python3
"""The local stand-in for CloudFront + API Gateway: the page, its config.json, and the real Lambda.

  python scripts/local_front.py --port 8000 --endpoint-url http://127.0.0.1:8080

* ``GET /`` and the other files of ``web/``: the static page, with the cloud's security headers
  (stacks/security_headers.py, less what needs HTTPS).
* ``GET /config.json``: generated, ``{"apiUrl": ""}`` - the API is on the page's own origin.
* ``POST /predict`` (and any other API request): turned into an API Gateway REST proxy event
  (scripts/proxy_integration.py) and handed, in this process, to the real ``lambda/proxy/handler.py``,
  which reaches the endpoint server through boto3 (``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``). Its
  response dict is turned back into HTTP.

Standard library only (plus boto3, which the handler imports). Loopback by default.
"""
from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import signal
import socket
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "scripts"):  # also when loaded by path, not run as a script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from proxy_integration import LocalContext, build_event, http_from_lambda  # noqa: E402
from stacks.request_limits import MAX_PAYLOAD_BYTES  # noqa: E402
from stacks.security_headers import security_headers  # noqa: E402

DEFAULT_WEB = REPO / "web"
DEFAULT_HANDLER = REPO / "lambda" / "proxy" / "handler.py"

# What the site's CloudFront sends, less what only HTTPS can keep (upgrade-insecure-requests, HSTS).
SECURITY_HEADERS = security_headers(https=False)
CONTENT_SECURITY_POLICY = SECURITY_HEADERS["Content-Security-Policy"]
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                ".ico": "image/x-icon", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
                ".webmanifest": "application/manifest+json"}


def configure_environment(endpoint_url: str, endpoint_name: str = "local",
                          env: dict | None = None) -> None:
    """What the Lambda runtime would provide, with dummy credentials for boto3's signing only."""
    env = os.environ if env is None else env
    env["ENDPOINT_NAME"] = endpoint_name
    env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = endpoint_url
    env["AWS_ACCESS_KEY_ID"] = "local"
    env["AWS_SECRET_ACCESS_KEY"] = "local"
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    env.setdefault("AWS_REGION", env["AWS_DEFAULT_REGION"])
    env["AWS_EC2_METADATA_DISABLED"] = "true"


def load_handler(path: Path = DEFAULT_HANDLER):
    """Import ``lambda/proxy/handler.py`` by path (``lambda`` is a Python keyword)."""
    spec = importlib.util.spec_from_file_location("local_proxy_handler", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def config_json() -> bytes:
    return json.dumps({"apiUrl": ""}).encode()


class FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, web_dir: Path, handler, quiet: bool = False):
        self.web_dir = web_dir.resolve()
        self.lambda_handler = handler
        self.quiet = quiet
        super().__init__(address, FrontRequestHandler)

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away (closed tab, its own timeout): nothing to report
        super().handle_error(request, client_address)


class FrontRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-front"

    def version_string(self) -> str:
        return self.server_version
    server: FrontServer

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt: str, *args) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"front: {self.address_string()} {fmt % args}\n")

    # -- plumbing

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        names = set()
        for name, value in headers:
            if name.lower() in ("content-length", "connection", "transfer-encoding", "date", "server"):
                continue
            names.add(name.lower())
            self.send_header(name, value)
        for name, value in SECURITY_HEADERS.items():
            if name.lower() not in names:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, [("Content-Type", "application/json; charset=utf-8"),
                            ("Cache-Control", "no-store")], json.dumps(obj).encode())

    def _error(self, status: int, message: str) -> None:
        # The API's one error shape, which the cloud's gateway responses also give (stacks/api.py),
        # rather than API Gateway's untemplated {"message": ...}.
        self._json(status, {"error": message})

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._error(411, "length required: send a Content-Length (not a chunked body)")
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            self._error(400, "bad Content-Length: not a number")
            return None
        if length < 0 or length > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            self._error(413, f"request too long: at most {MAX_PAYLOAD_BYTES} bytes (API Gateway's limit)")
            return None
        return self.rfile.read(length) if length else b""

    # -- routes

    def _static(self) -> bool:
        path = unquote(urlsplit(self.path).path)
        if path == "/config.json":
            self._send(200, [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                       config_json())
            return True
        if path.endswith("/"):
            path += "index.html"
        root = self.server.web_dir
        try:
            candidate = (root / path.lstrip("/")).resolve()
        except (OSError, ValueError):
            return False
        if root not in candidate.parents or not candidate.is_file():
            return False
        ctype = STATIC_TYPES.get(candidate.suffix.lower())
        if ctype is None or candidate.name.startswith("."):
            return False
        self._send(200, [("Content-Type", ctype), ("Cache-Control", "no-cache")], candidate.read_bytes())
        return True

    def _api(self) -> None:
        body = self._read_body()
        if body is None:
            return
        request_id = str(uuid.uuid4())
        headers = list(self.headers.items())
        headers += [("X-Forwarded-For", self.client_address[0]), ("X-Forwarded-Proto", "http"),
                    ("X-Forwarded-Port", str(self.server.server_address[1]))]
        event = build_event(self.command, self.path, headers, body, source_ip=self.client_address[0],
                            request_id=request_id)
        try:
            result = self.server.lambda_handler(event, LocalContext(request_id))
            status, out_headers, data = http_from_lambda(result)
        except Exception as exc:  # what API Gateway answers for a failed or malformed Lambda
            sys.stderr.write(f"front: lambda failed: {type(exc).__name__}: {exc}\n")
            self._error(502, "Internal server error")
            return
        self._send(status, out_headers, data)

    def _is_api_path(self) -> bool:
        path = urlsplit(self.path).path
        return path.rstrip("/").endswith("/predict") or path.startswith("/api/")

    def do_GET(self) -> None:
        if self._is_api_path():
            self._api()
        elif not self._static():
            self._error(404, "not found: the page is at /, the API is POST /predict")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._api()

    do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST


def make_server(host: str, port: int, web_dir: Path, handler, quiet: bool = False) -> FrontServer:
    return FrontServer((host, port), web_dir, handler, quiet=quiet)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--endpoint-url", default="http://127.0.0.1:8080",
                   help="the endpoint server (`python -m model.serve`)")
    p.add_argument("--endpoint-name", default="local")
    p.add_argument("--web-dir", type=Path, default=DEFAULT_WEB)
    p.add_argument("--handler", type=Path, default=DEFAULT_HANDLER, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no access log")
    args = p.parse_args(argv)

    if not (args.web_dir / "index.html").is_file():
        print(f"local_front: {args.web_dir}/index.html not found", file=sys.stderr)
        return 2
    configure_environment(args.endpoint_url, args.endpoint_name)
    try:
        server = make_server(args.host, args.port, args.web_dir, None, quiet=args.quiet)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"local_front: port {args.port} on {args.host} is already in use (another local mode "
                  f"or program?). Stop it, or choose another port with --port.", file=sys.stderr)
        else:
            print(f"local_front: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                  file=sys.stderr)
        return 2

    # Bound first, so a busy port is reported at once; the handler (boto3) loads before serving.
    server.lambda_handler = load_handler(args.handler)

    def stop(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"local_front: serving {args.web_dir} and the API on http://{args.host}:{server.server_address[1]}/ "
          f"(endpoint {args.endpoint_url})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
