#!/usr/bin/env python3
"""Build model/Dockerfile with whichever builder this machine has: Docker, Podman or buildah.

    python3 scripts/build_image.py            # `make image`; the last line printed is the image
    python3 scripts/build_image.py --builder buildah --quiet

The Dockerfile stays the one a standard Docker host (and the CDK's DockerImageAsset) builds with no
flags. What this script adds is only for machines that cannot reach what the build downloads:

* the registry base image cannot be pulled: a stand-in of the same Debian release and Python minor
  version is made from Debian packages (mmdebstrap) and the build runs on that (``BASE_IMAGE``);
* the PyTorch wheel index cannot be reached: the machine's own pip find-links folder (pip's
  configuration or ``PIP_FIND_LINKS``) is mounted read-only and handed to pip;
* NLTK's download server cannot be reached: a one-package NLTK index over a local stopwords.zip
  (``NLTK_DATA`` or ../shared/nltk_data) is mounted read-only;
* pip is configured with its own CA bundle (a TLS-intercepting network): that bundle is mounted over
  the system one for the build, never copied into the image.

Each of these is a build argument or a mount; none of them reaches the image's ENV, labels or files
(tests/test_image.py checks). Docker cannot mount into a build, so with Docker only the base
stand-in applies. Only standard-library Python: it runs before any virtual environment exists.
"""
from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTEXT = REPO / "model"
DOCKERFILE = CONTEXT / "Dockerfile"
REPOSITORY = "localhost/imdb-sentiment"
PLATFORM = "linux/amd64"
# Debian release of each python:*-slim-<codename> tag we may meet, and the Python it ships.
DEBIAN_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
TORCH_INDEX_HOST = "download.pytorch.org"
NLTK_HOST = "raw.githubusercontent.com"
# Where the build sees the helpers: /mnt exists in every Debian-based image, so binding over it
# leaves no new (empty) mount-point directory behind in the image.
MOUNT = "/mnt"
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
WORK = Path(os.environ.get("IMAGE_BUILD_WORK", Path(tempfile.gettempdir()) / "imdb-sentiment-image"))


class BuildError(RuntimeError):
    """A reason the image cannot be built here, worded for the person running the command."""


def say(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, **kw)


def quiet_ok(cmd: list[str], timeout: float = 60) -> bool:
    try:
        return run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to host:port opens. Behind an explicit proxy we cannot tell: assume so."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy")):
        return True
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------ builder

@dataclass(frozen=True)
class Builder:
    name: str  # docker | podman | buildah

    @property
    def mounts_supported(self) -> bool:
        return self.name != "docker"

    def has_image(self, ref: str) -> bool:
        if self.name == "buildah":
            return quiet_ok(["buildah", "inspect", "--type", "image", ref])
        return quiet_ok([self.name, "image", "inspect", ref])

    def pull(self, ref: str, timeout: float) -> bool:
        cmd = ["buildah", "pull", "--quiet"] if self.name == "buildah" else [self.name, "pull", "--quiet"]
        return quiet_ok([*cmd, "--platform", PLATFORM, ref], timeout=timeout)

    def build_command(self, tag: str, build_args: dict[str, str], volumes: list[str],
                      isolation: str | None) -> list[str]:
        if self.name == "docker":
            cmd = ["docker", "build"]
        elif self.name == "podman":
            cmd = ["podman", "build", "--layers"]
        else:
            cmd = ["buildah", "build", "--layers"]
        if isolation and self.name != "docker":
            cmd += ["--isolation", isolation]
        cmd += ["--platform", PLATFORM, "-f", str(DOCKERFILE), "-t", tag]
        for key, value in build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        for volume in volumes:
            cmd += ["-v", volume]
        return [*cmd, str(CONTEXT)]

    def tag(self, source: str, target: str) -> None:
        run([self.name, "tag", source, target], check=True, stdout=subprocess.DEVNULL)


def pick_builder(wanted: str | None) -> Builder:
    if wanted:
        if not shutil.which(wanted):
            raise BuildError(f"{wanted} is not installed")
        return Builder(wanted)
    # Docker only counts with a daemon answering; its client alone builds nothing.
    if shutil.which("docker") and quiet_ok(["docker", "info"], timeout=20):
        return Builder("docker")
    for name in ("podman", "buildah"):
        if shutil.which(name):
            return Builder(name)
    raise BuildError("no image builder: install Docker (with its daemon running), Podman or buildah "
                     "(Debian/Ubuntu: sudo apt-get install podman buildah; scripts/install_system_deps.sh "
                     "installs them with what the image tests need)")


def default_isolation(builder: Builder) -> str | None:
    """buildah's default OCI isolation needs a runtime that can create namespaces the way this
    machine allows; chroot isolation works wherever the build runs as root (as here and in CI)."""
    if builder.name == "docker":
        return None
    return os.environ.get("BUILDAH_ISOLATION") or ("chroot" if os.geteuid() == 0 else None)


# ------------------------------------------------------------------------------------- base image

def dockerfile_default(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    if not match:
        raise BuildError(f"model/Dockerfile declares no default for ARG {name}")
    return match.group(1)


def stand_in_for(base: str) -> tuple[str, str, str]:
    """(Debian codename, Python minor, stand-in image name) for a python:<version>-slim-<codename> base."""
    tag = base.split("@", 1)[0].rpartition(":")[2]
    match = re.fullmatch(r"(\d+\.\d+)(?:\.\d+)?-slim-(\w+)", tag)
    if not match or match.group(2) not in DEBIAN_PYTHON:
        raise BuildError(f"cannot pull {base} and cannot make a stand-in for it: expected a "
                         f"python:<version>-slim-<{'|'.join(DEBIAN_PYTHON)}> tag")
    minor, codename = match.groups()
    if DEBIAN_PYTHON[codename] != minor:
        raise BuildError(f"cannot pull {base}, and Debian {codename} ships Python "
                         f"{DEBIAN_PYTHON[codename]}, not {minor}: no stand-in of the same Python")
    return codename, minor, f"localhost/imdb-sentiment-base:python{minor}-{codename}"


def make_stand_in(builder: Builder, codename: str, ref: str) -> None:
    """A base like python:<minor>-slim-<codename>: Debian's python3 and pip, PATH and LANG set, and
    no PEP 668 marker (the official image has none), so the Dockerfile runs on it unchanged."""
    if not shutil.which("mmdebstrap"):
        raise BuildError("the base image cannot be pulled and mmdebstrap is missing to make one "
                         "(sudo apt-get install mmdebstrap)")
    WORK.mkdir(parents=True, exist_ok=True)
    rootfs = WORK / f"rootfs-{codename}.tar"
    say(f"making {ref} from Debian {codename} packages with mmdebstrap (30-70 s)")
    run(["mmdebstrap", "--quiet", "--variant=minbase", "--architectures=amd64",
         "--include=python3,python3-pip,python-is-python3,ca-certificates",
         "--aptopt=Apt::Install-Recommends \"false\"",
         # what debian:*-slim leaves out too
         "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
         "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-include=/usr/share/doc/*/copyright",
         "--customize-hook=rm -f \"$1\"/usr/lib/python3*/EXTERNALLY-MANAGED",
         "--customize-hook=rm -rf \"$1\"/var/cache/apt/* \"$1\"/var/lib/apt/lists/*",
         codename, str(rootfs)], check=True)
    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
    try:
        if builder.name == "docker":
            changes = [x for e in env for x in ("--change", f"ENV {e}")] + ["--change", 'CMD ["python3"]']
            run(["docker", "import", "--platform", PLATFORM, *changes, str(rootfs), ref],
                check=True, stdout=subprocess.DEVNULL)
            return
        ctr = run(["buildah", "from", "scratch"], check=True, capture_output=True).stdout.strip()
        run(["buildah", "add", ctr, str(rootfs), "/"], check=True, stdout=subprocess.DEVNULL)
        config = ["buildah", "config", "--cmd", "python3", "--os", "linux", "--arch", "amd64"]
        for e in env:
            config += ["--env", e]
        run([*config, ctr], check=True)
        run(["buildah", "commit", "--quiet", "--rm", ctr, ref], check=True, stdout=subprocess.DEVNULL)
    finally:
        rootfs.unlink(missing_ok=True)


def resolve_base(builder: Builder, base: str, pull_timeout: float) -> tuple[str, str | None]:
    """(the base to build on, a note saying why it is not the Dockerfile's own, or None)."""
    if builder.has_image(base) or builder.pull(base, pull_timeout):
        return base, None
    codename, minor, ref = stand_in_for(base)
    if not builder.has_image(ref):
        make_stand_in(builder, codename, ref)
    return ref, (f"{base} cannot be pulled here: built on {ref}, the same Debian release ({codename}) "
                 f"and Python minor version ({minor}) made from Debian packages")


# ------------------------------------------------------------------------------ offline helpers

def pip_setting(key: str) -> str | None:
    """A pip setting as this machine's pip sees it: environment first, then its config files."""
    env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
    if env:
        return env
    try:
        out = run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        name, _, value = line.partition("=")
        if name.strip().endswith("." + key):
            return value.strip().strip("'\"")
    return None


def torch_wheel_folder(version: str, variant: str) -> Path | None:
    for entry in (pip_setting("find-links") or "").split():
        folder = Path(entry.removeprefix("file://"))
        if folder.is_dir() and any(folder.glob(f"torch-{version}+{variant}-*.whl")):
            return folder
    return None


def stopwords_zip() -> Path | None:
    places = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    places += [REPO.parent / "shared" / "nltk_data", Path.home() / "nltk_data", Path("/usr/share/nltk_data")]
    return next((p / "corpora" / "stopwords.zip" for p in places if (p / "corpora" / "stopwords.zip").is_file()), None)


def nltk_index(folder: Path, archive: Path) -> str:
    """A one-package NLTK downloader index over a local stopwords.zip; returns its URL in the build."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(archive, folder / "stopwords.zip")
    data = archive.read_bytes()
    unzipped = sum(i.file_size for i in zipfile.ZipFile(archive).infolist())
    url = f"file://{MOUNT}/nltk_data"
    (folder / "index.xml").write_text(
        '<?xml version="1.0"?>\n<nltk_data><packages>\n'
        f'<package id="stopwords" name="Stopwords Corpus" subdir="corpora" unzip="1" '
        f'url="{url}/stopwords.zip" size="{len(data)}" unzipped_size="{unzipped}" '
        f'checksum="{hashlib.md5(data).hexdigest()}" sha256_checksum="{hashlib.sha256(data).hexdigest()}"/>\n'
        '</packages><collections></collections></nltk_data>\n')
    return f"{url}/index.xml"


@dataclass
class OfflinePlan:
    build_args: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scratch: Path | None = None  # the folder mounted at /mnt, removed after the build


def offline_plan(builder: Builder, torch_version: str, torch_variant: str) -> OfflinePlan:
    plan = OfflinePlan()
    need_torch = not reachable(TORCH_INDEX_HOST)
    need_nltk = not reachable(NLTK_HOST)
    ca = pip_setting("cert")
    ca = ca if ca and Path(ca).is_file() else None
    if not (need_torch or need_nltk or ca):
        return plan
    if not builder.mounts_supported:
        plan.notes.append(f"{builder.name} cannot mount into a build: the build downloads as on any host "
                          "(use podman or buildah on a machine without the internet)")
        return plan
    WORK.mkdir(parents=True, exist_ok=True)
    # one per build: two builds at once (a test run beside a benchmark) must not share it
    scratch = Path(tempfile.mkdtemp(prefix="mnt-", dir=WORK))
    plan.scratch = scratch
    plan.volumes.append(f"{scratch}:{MOUNT}:ro")
    if need_torch:
        wheels = torch_wheel_folder(torch_version, torch_variant)
        if wheels is None:
            raise BuildError(f"{TORCH_INDEX_HOST} cannot be reached and pip's find-links holds no "
                             f"torch-{torch_version}+{torch_variant} wheel: set PIP_FIND_LINKS to a folder "
                             "that has it")
        (scratch / "wheels").mkdir()
        plan.volumes.append(f"{wheels}:{MOUNT}/wheels:ro")
        plan.build_args |= {"PIP_FIND_LINKS": f"{MOUNT}/wheels", "PIP_RETRIES": "0"}
        plan.notes.append(f"{TORCH_INDEX_HOST} cannot be reached: torch from {wheels} (mounted read-only)")
    if need_nltk:
        archive = stopwords_zip()
        if archive is None:
            raise BuildError(f"{NLTK_HOST} cannot be reached and no NLTK stopwords.zip was found: "
                             "set NLTK_DATA to an NLTK data folder that holds corpora/stopwords.zip")
        plan.build_args["NLTK_DOWNLOAD_URL"] = nltk_index(scratch / "nltk_data", archive)
        plan.notes.append(f"{NLTK_HOST} cannot be reached: NLTK stopwords from {archive}")
    if ca:
        plan.volumes.append(f"{ca}:{SYSTEM_CA}:ro")
        plan.build_args["PIP_CERT"] = SYSTEM_CA
        plan.notes.append(f"pip's CA bundle {ca} mounted for the build only")
    return plan


# ----------------------------------------------------------------------------------------- build

def context_digest(build_args: dict[str, str]) -> str:
    """A tag that changes exactly when what goes into the image changes."""
    h = hashlib.sha256()
    files = [DOCKERFILE, CONTEXT / "requirements.lock", *sorted(CONTEXT.glob("*.py")),
             *sorted((CONTEXT / "bin").glob("*"))]
    for f in files:
        h.update(f.relative_to(CONTEXT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(json.dumps({k: v for k, v in build_args.items() if k in ("BASE_IMAGE", "TORCH_VERSION",
                                                                      "TORCH_VARIANT")},
                        sort_keys=True).encode())
    return h.hexdigest()[:12]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="build_image", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--builder", choices=("docker", "podman", "buildah"),
                   default=os.environ.get("IMAGE_BUILDER") or None,
                   help="default: $IMAGE_BUILDER, else Docker if its daemon answers, else Podman, else buildah")
    p.add_argument("--torch-variant", default=None, help="cpu (default) or a CUDA wheel index, e.g. cu126")
    p.add_argument("--pull-timeout", type=float, default=60.0, help="seconds to try pulling the base image")
    p.add_argument("--quiet", action="store_true", help="builder output to a log file, shown only on failure")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        builder = pick_builder(args.builder)
        say(f"builder: {builder.name}")
        version = dockerfile_default("TORCH_VERSION")
        variant = args.torch_variant or dockerfile_default("TORCH_VARIANT")
        base, note = resolve_base(builder, dockerfile_default("BASE_IMAGE"), args.pull_timeout)
        if note:
            say(note)
        plan = offline_plan(builder, version, variant)
        for line in plan.notes:
            say(line)
        build_args = {"BASE_IMAGE": base, "TORCH_VARIANT": variant, **plan.build_args}
        tag = f"{REPOSITORY}:{context_digest({**build_args, 'TORCH_VERSION': version})}"
        cmd = builder.build_command(tag, build_args, plan.volumes, default_isolation(builder))
        say(f"building {tag}")
        if args.quiet:
            WORK.mkdir(parents=True, exist_ok=True)
            log = WORK / f"build-{os.getpid()}.log"
            with open(log, "w") as fh:
                rc = run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
            if rc:
                print(log.read_text()[-6000:], file=sys.stderr)
            log.unlink(missing_ok=True)
        else:
            rc = run(cmd, stdout=sys.stderr).returncode
        if plan.scratch is not None:
            shutil.rmtree(plan.scratch, ignore_errors=True)
        if rc:
            raise BuildError(f"{builder.name} build failed (exit {rc})")
        builder.tag(tag, f"{REPOSITORY}:latest")
    except BuildError as exc:
        print(f"image: error: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"image: error: {' '.join(map(str, exc.cmd))} failed (exit {exc.returncode})", file=sys.stderr)
        return 2
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
