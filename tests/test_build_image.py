"""scripts/build_image.py's decisions, without building: builder choice, the base stand-in, and the
build-time helpers for a machine without the internet (tests/test_image.py builds for real)."""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from fixtures_model import REPO

sys.path.insert(0, str(REPO / "scripts"))
import build_image  # noqa: E402
from build_image import Builder, BuildError  # noqa: E402


@pytest.mark.parametrize("base,expected", [
    ("python:3.11.14-slim-bookworm@sha256:" + "a" * 64, ("bookworm", "3.11")),
    ("python:3.11-slim-bookworm", ("bookworm", "3.11")),
    ("docker.io/library/python:3.13.1-slim-trixie", ("trixie", "3.13")),
])
def test_a_stand_in_has_the_bases_debian_release_and_python_minor(base, expected):
    codename, minor, ref = build_image.stand_in_for(base)
    assert (codename, minor) == expected
    assert ref == f"localhost/imdb-sentiment-base:python{minor}-{codename}"


@pytest.mark.parametrize("base,says", [
    ("python:3.12-slim-bookworm", "ships Python 3.11, not 3.12"),
    ("python:3.11-slim", "expected a python:<version>-slim-<"),
    ("ubuntu:24.04", "expected a python:<version>-slim-<"),
])
def test_no_stand_in_for_a_base_debian_cannot_match(base, says):
    with pytest.raises(BuildError, match=says.replace("<", ".").replace("(", ".")):
        build_image.stand_in_for(base)


def test_the_dockerfile_base_has_a_stand_in():
    build_image.stand_in_for(build_image.dockerfile_default("BASE_IMAGE"))


def test_docker_gets_no_mounts_and_podman_gets_them(monkeypatch, tmp_path):
    monkeypatch.setattr(build_image, "reachable", lambda host, **kw: False)
    monkeypatch.setattr(build_image, "WORK", tmp_path / "work")
    monkeypatch.setattr(build_image, "pip_setting", lambda key: None)
    docker = build_image.offline_plan(Builder("docker"), "2.13.0", "cpu")
    assert docker.volumes == [] and docker.build_args == {} and "cannot mount" in docker.notes[0]
    docker_cmd = Builder("docker").build_command("t", {"BASE_IMAGE": "b"}, [], None)
    assert "-v" not in docker_cmd and "--isolation" not in docker_cmd and docker_cmd[:2] == ["docker", "build"]


def test_offline_helpers_are_build_arguments_and_read_only_mounts(monkeypatch, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"wheel")
    nltk = tmp_path / "nltk" / "corpora"
    nltk.mkdir(parents=True)
    with zipfile.ZipFile(nltk / "stopwords.zip", "w") as z:
        z.writestr("stopwords/english", "a\nthe\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = {"find-links": str(wheels), "cert": str(ca)}
    monkeypatch.setattr(build_image, "pip_setting", settings.get)
    monkeypatch.setattr(build_image, "reachable", lambda host, **kw: False)
    monkeypatch.setattr(build_image, "WORK", tmp_path / "work")
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "nltk"))
    plan = build_image.offline_plan(Builder("podman"), "2.13.0", "cpu")
    assert plan.build_args == {"PIP_FIND_LINKS": "/mnt/wheels", "PIP_RETRIES": "0",
                               "NLTK_DOWNLOAD_URL": "file:///mnt/nltk_data/index.xml",
                               "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}
    assert all(v.endswith(":ro") for v in plan.volumes)
    assert f"{wheels}:/mnt/wheels:ro" in plan.volumes and f"{ca}:/etc/ssl/certs/ca-certificates.crt:ro" in plan.volumes
    index = (plan.scratch / "nltk_data" / "index.xml").read_text()
    assert 'url="file:///mnt/nltk_data/stopwords.zip"' in index and 'id="stopwords"' in index
    assert (plan.scratch / "wheels").is_dir()  # the nested mount's point lies in the scratch folder
    # only machine-independent values reach the build (and so the image's history)
    assert not [v for v in plan.build_args.values() if str(tmp_path) in v]
    cmd = Builder("podman").build_command("t", plan.build_args, plan.volumes, "chroot")
    assert cmd[:3] == ["podman", "build", "--layers"] and "--isolation" in cmd and cmd[-1] == str(REPO / "model")
    assert ["--platform", "linux/amd64"] == cmd[cmd.index("--platform"):cmd.index("--platform") + 2]


def test_without_a_local_torch_wheel_the_build_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setattr(build_image, "pip_setting", lambda key: None)
    monkeypatch.setattr(build_image, "reachable", lambda host, **kw: host == build_image.NLTK_HOST)
    monkeypatch.setattr(build_image, "WORK", tmp_path / "work")
    with pytest.raises(BuildError, match="PIP_FIND_LINKS"):
        build_image.offline_plan(Builder("buildah"), "2.13.0", "cpu")


def test_a_machine_with_the_internet_builds_exactly_as_a_standard_host(monkeypatch, tmp_path):
    monkeypatch.setattr(build_image, "pip_setting", lambda key: None)
    monkeypatch.setattr(build_image, "reachable", lambda host, **kw: True)
    plan = build_image.offline_plan(Builder("podman"), "2.13.0", "cpu")
    assert (plan.build_args, plan.volumes) == ({}, [])


def test_no_builder_fails_with_what_to_install(monkeypatch):
    monkeypatch.setattr(build_image.shutil, "which", lambda name: None)
    with pytest.raises(BuildError, match="install Docker .*Podman or buildah"):
        build_image.pick_builder(None)


def test_the_tag_follows_what_goes_into_the_image(monkeypatch):
    a = build_image.context_digest({"BASE_IMAGE": "x", "TORCH_VARIANT": "cpu", "PIP_RETRIES": "0"})
    assert a == build_image.context_digest({"BASE_IMAGE": "x", "TORCH_VARIANT": "cpu"})  # helpers do not count
    assert a != build_image.context_digest({"BASE_IMAGE": "x", "TORCH_VARIANT": "cu126"})
