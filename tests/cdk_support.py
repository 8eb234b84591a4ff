"""Shared synthesized CDK apps for the template, cdk-nag and cfn-lint tests.

The first synth in a process costs seconds (jsii starts Node, every stack is validated), so each
configuration is synthesized once per test session and shared: ``synth(**context)`` is cached on its
arguments, and the fixtures below hand out the default app. Test modules import what they use::

    from cdk_support import app_default, synth  # noqa: F401  (fixtures)

The apps read a tiny aclImdb archive made here (a few hundred bytes), not the 28 MB real one, and need
``model/Dockerfile`` and ``lambda/proxy/`` to exist (the image and the proxy are assets).
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fixtures_model import write_tar_gz

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GITHUB_REPO = "example-org/imdb-sentiment"
_WORK = Path(tempfile.mkdtemp(prefix="cdk-tests-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)


def feature_flags() -> dict:
    """The context cdk.json gives the CLI (feature flags), so tests synthesize what `cdk synth` does."""
    return json.loads((REPO / "cdk.json").read_text())["context"]


def tiny_archive() -> Path:
    """A few reviews in the aclImdb layout, enough for the data stack to hash and upload."""
    path = _WORK / "tiny_aclImdb.tar.gz"
    if not path.exists():
        write_tar_gz(path, {f"aclImdb/{split}/{label}/{i}_{8 if label == 'pos' else 2}.txt": f"A {word} film, number {i}."
                            for split in ("train", "test") for label, word in (("pos", "wonderful"), ("neg", "awful"))
                            for i in range(2)})
    return path


@dataclass
class Synthesized:
    outdir: Path
    stacks: dict  # key ("data", "training", ...) -> aws_cdk.Stack
    templates: dict = field(default_factory=dict)  # key -> template dict
    error: str | None = None  # app.synth()'s exception text (validation failures land here)

    @property
    def report(self) -> dict | None:
        path = self.outdir / "validation-report.json"
        return json.loads(path.read_text()) if path.exists() else None

    def violations(self, plugin: str | None = None) -> list[str]:
        """Unacknowledged findings of the validation plugins (cdk-nag is ``AwsSolutions``)."""
        found = []
        for report in (self.report or {}).get("pluginReports", []):
            if plugin and report["pluginName"] != plugin:
                continue
            for v in report.get("violations", []):
                for c in v["violatingConstructs"]:
                    found.append(f"{report['pluginName']} {v['ruleName']} {c['constructPath']}: {v['description']}")
        return found

    def template(self, key: str):
        from aws_cdk.assertions import Template
        return Template.from_json(self.templates[key])

    def resources(self, key: str, type_: str) -> dict:
        return {k: v for k, v in self.templates[key]["Resources"].items() if v["Type"] == type_}


@functools.lru_cache(maxsize=None)
def _synth(items: tuple) -> Synthesized:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk
    from stacks import build

    context = {**feature_flags(), "dataArchive": str(tiny_archive()), **dict(items)}
    outdir = Path(tempfile.mkdtemp(prefix="synth-", dir=_WORK))
    app = cdk.App(outdir=str(outdir), context=context)
    stacks = build(app)
    result = Synthesized(outdir=outdir, stacks=stacks)
    try:
        app.synth()
    except Exception as exc:  # noqa: BLE001 - validation failures are asserted by the tests
        result.error = str(exc)
    for key, stack in stacks.items():
        path = outdir / stack.template_file
        if path.exists():
            result.templates[key] = json.loads(path.read_text())
    return result


def synth(**context) -> Synthesized:
    """Synthesize the whole app with these context values over the defaults (cached per context)."""
    return _synth(tuple(sorted((k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in context.items())))


def default_context() -> dict:
    return {"githubRepo": GITHUB_REPO}


@pytest.fixture(scope="session")
def app_default() -> Synthesized:
    """The default deployment (serverless endpoint), plus the CI role stack."""
    return synth(**default_context())


EXISTING_OIDC_PROVIDER = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"


@pytest.fixture(scope="session")
def app_provisioned() -> Synthesized:
    """Every alternative in one synth: provisioned endpoint with autoscaling, spot training, X-Ray, kept
    data, hyperparameters from context, an existing GitHub OIDC provider."""
    return synth(**default_context(), endpointMode="provisioned", spotTraining=True, xrayTracing=True,
                 retainData=True, trainingMaxRuntimeMinutes=30, trainingMaxWaitMinutes=40,
                 hyperparameters={"epochs": 3, "bidirectional": False},
                 githubOidcProviderArn=EXISTING_OIDC_PROVIDER)


def cross_stack_references(app: Synthesized) -> list[tuple[str, str, str]]:
    """``(consumer, producer, output name)`` for every ``Fn::GetStackOutput`` in the app's templates
    (keys as in ``Synthesized.stacks``)."""
    by_name = {stack.stack_name: key for key, stack in app.stacks.items()}
    found: set[tuple[str, str, str]] = set()

    def walk(node, consumer):
        if isinstance(node, dict):
            ref = node.get("Fn::GetStackOutput")
            if isinstance(ref, dict):
                found.add((consumer, by_name[ref["StackName"]], ref["OutputName"]))
            for value in node.values():
                walk(value, consumer)
        elif isinstance(node, list):
            for value in node:
                walk(value, consumer)

    for key, template in app.templates.items():
        walk(template, key)
    return sorted(found)


def build_only(**context) -> dict:
    """The stacks ``build`` creates for this context, without synthesizing (fast)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk
    from stacks import build

    app = cdk.App(outdir=tempfile.mkdtemp(prefix="build-", dir=_WORK),
                  context={**feature_flags(), "dataArchive": str(tiny_archive()), **context})
    return build(app)
