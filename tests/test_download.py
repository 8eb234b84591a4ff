"""The data command: checksum-verified, resumable, cached; clear without network (loopback only)."""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fixtures_local import free_port
from model import download

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def archive_server():
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            rng = self.headers.get("Range")
            seen.append(rng)
            start = int(rng.split("=")[1].rstrip("-")) if rng else 0
            body = PAYLOAD[start:]
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/aclImdb_v1.tar.gz", seen
    server.shutdown()


def test_downloads_and_verifies(archive_server, tmp_path):
    url, seen = archive_server
    path = download.download(url, tmp_path, DIGEST, progress=False)
    assert path.read_bytes() == PAYLOAD and seen == [None]
    # cached: a second call does not download again
    assert download.download(url, tmp_path, DIGEST, progress=False) == path and len(seen) == 1


def test_resumes_a_partial_download(archive_server, tmp_path):
    url, seen = archive_server
    (tmp_path / "aclImdb_v1.tar.gz.part").write_bytes(PAYLOAD[:30000])
    path = download.download(url, tmp_path, DIGEST, progress=False)
    assert seen == ["bytes=30000-"]
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_removes_the_file(archive_server, tmp_path):
    url, _ = archive_server
    with pytest.raises(download.DownloadError, match="checksum mismatch"):
        download.download(url, tmp_path, "0" * 64, progress=False)
    assert not list(tmp_path.iterdir())


def test_no_network_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IMDB_DATA", raising=False)
    url = f"http://127.0.0.1:{free_port()}/aclImdb_v1.tar.gz"  # nothing listens there
    assert download.main(["--dest", str(tmp_path), "--url", url, "--force-download"]) == 1
    err = capsys.readouterr().err
    assert "no network access" in err and "IMDB_DATA" in err and "Traceback" not in err


def test_finds_local_copies_before_downloading(tmp_path, monkeypatch):
    monkeypatch.delenv("IMDB_DATA", raising=False)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / download.SHARED_NAME).write_bytes(PAYLOAD)
    (shared / "SHA256SUMS").write_text(f"{DIGEST}  {download.SHARED_NAME}\n")
    dest = tmp_path / "data"
    assert download.find_archive(dest, shared) == shared / download.SHARED_NAME
    dest.mkdir()
    (dest / download.ARCHIVE_NAME).write_bytes(b"cached")
    assert download.find_archive(dest, shared) == dest / download.ARCHIVE_NAME
    monkeypatch.setenv("IMDB_DATA", str(shared))
    assert download.find_archive(dest, shared) == shared
    monkeypatch.setenv("IMDB_DATA", str(tmp_path / "nope"))
    with pytest.raises(download.DownloadError, match="does not exist"):
        download.find_archive(dest, shared)


def test_damaged_shared_copy_is_refused(tmp_path):
    (tmp_path / download.SHARED_NAME).write_bytes(b"damaged")
    (tmp_path / "SHA256SUMS").write_text(f"{DIGEST}  {download.SHARED_NAME}\n")
    with pytest.raises(download.DownloadError, match="damaged"):
        download.shared_copy(tmp_path)
