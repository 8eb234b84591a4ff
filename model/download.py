"""`python -m model.download` (`make data`): get the IMDB archive, verified, resumable, cached.

Looks, in order, for: ``--from PATH`` / ``$IMDB_DATA``; a verified ``data/aclImdb_v1.tar.gz``; the
project's shared copy (``../shared/data/aclImdb_v1_labeled.tar.gz``, verified against its SHA256SUMS);
and only then downloads the original archive from Stanford (84 MB), resuming a partial download.
Prints the path of the archive to use.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO / "data"
SHARED = REPO.parent / "shared" / "data"
SHARED_NAME = "aclImdb_v1_labeled.tar.gz"


class DownloadError(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shared_copy(shared: Path = SHARED) -> Path | None:
    """The repacked labelled archive beside the checkout, if present and matching its SHA256SUMS."""
    archive, sums = shared / SHARED_NAME, shared / "SHA256SUMS"
    if not archive.is_file():
        return None
    if sums.is_file():
        expected = {line.split()[-1]: line.split()[0] for line in sums.read_text().splitlines() if line.strip()}
        if expected.get(SHARED_NAME) and expected[SHARED_NAME] != sha256_of(archive):
            raise DownloadError(f"{archive} does not match {sums}: the shared copy is damaged")
    return archive


def find_archive(dest: Path = DEFAULT_DEST, shared: Path = SHARED) -> Path | None:
    """An archive already on this machine, or None (no download)."""
    env = os.environ.get("IMDB_DATA")
    if env:
        if not Path(env).exists():
            raise DownloadError(f"IMDB_DATA={env} does not exist")
        return Path(env)
    cached = dest / ARCHIVE_NAME
    if cached.is_file():
        return cached
    return shared_copy(shared)


def download(url: str = URL, dest: Path = DEFAULT_DEST, sha256: str = SHA256, progress: bool = True) -> Path:
    """Download ``url`` into ``dest``, resuming ``<name>.part``; verify the checksum; return the path."""
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / ARCHIVE_NAME
    if final.is_file() and sha256_of(final) == sha256:
        return final
    part = dest / (ARCHIVE_NAME + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            resuming = have and resp.status == 206
            total = int(resp.headers.get("Content-Length", 0)) + (have if resuming else 0)
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=total or None, initial=have if resuming else 0, unit="B",
                           unit_scale=True, desc=ARCHIVE_NAME)
            with part.open("ab" if resuming else "wb") as out:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    if bar:
                        bar.update(len(block))
            if bar:
                bar.close()
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole
            pass
        else:
            raise DownloadError(f"download of {url} failed: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(
            f"cannot download {url} ({getattr(exc, 'reason', exc)}). This machine seems to have no "
            f"network access. Fetch {ARCHIVE_NAME} (84 MB) on a machine that has, copy it to {final}, "
            "and run this again; or point IMDB_DATA (or --from) at an archive or an extracted aclImdb/ "
            "folder. A partial download is kept and resumed next time.") from exc
    digest = sha256_of(part)
    if digest != sha256:
        part.unlink()
        raise DownloadError(f"checksum mismatch for {url}: got {digest}, expected {sha256}; the partial "
                            "file was removed, run the command again")
    os.replace(part, final)
    return final


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="imdb-data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="cache folder (default: ./data)")
    p.add_argument("--from", dest="source", type=Path, help="use this archive or aclImdb/ folder")
    p.add_argument("--url", default=URL, help="where to download the original archive from")
    p.add_argument("--force-download", action="store_true", help="skip local copies, download")
    args = p.parse_args(argv)
    try:
        if args.source:
            if not args.source.exists():
                raise DownloadError(f"--from {args.source}: no such file or folder")
            path = args.source
        else:
            path = None if args.force_download else find_archive(args.dest)
            if path is None:
                print(f"downloading the IMDB archive from {args.url} into {args.dest} ...", file=sys.stderr)
                path = download(args.url, args.dest)
    except DownloadError as exc:
        print(f"imdb-data: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
