"""Paths after the first deploy, proven by comparing two synths: a context change must reach every stack
that reads a changed value, and a switch SageMaker cannot make in place must be a replacement.

The CLI skips a stack whose template did not change (``cdk deploy`` compares templates), and a
``Fn::GetStackOutput`` reference renders the same whatever it resolves to: a stack that reads a value
from another stack would keep the old value unless its own template changes too.
"""
from __future__ import annotations

import importlib.util

import pytest

from cdk_support import GITHUB_REPO, REPO, _WORK, cross_stack_references, synth
from fixtures_model import write_tar_gz

BASE = {"githubRepo": GITHUB_REPO}


def _handler():
    spec = importlib.util.spec_from_file_location("training_job_handler_lifecycle",
                                                  REPO / "lambda" / "training_job" / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDLER = _handler()


def other_archive() -> str:
    """A second tiny aclImdb archive with other bytes: another data set."""
    path = _WORK / "other_aclImdb.tar.gz"
    if not path.exists():
        write_tar_gz(path, {f"aclImdb/{split}/{label}/0_{8 if label == 'pos' else 2}.txt": f"Another {label} review."
                            for split in ("train", "test") for label in ("pos", "neg")})
    return str(path)


def _referenced_resource(value):
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    raise AssertionError(f"a cross-stack output that is not a Ref or GetAtt: {value}")


def value_can_change(before, after, producer: str, output: str) -> bool:
    """Whether the producer's output can resolve to something else after the change."""
    old = before.templates[producer]["Outputs"][output]["Value"]
    new = after.templates[producer].get("Outputs", {}).get(output, {}).get("Value")
    if old != new:
        return True
    logical = _referenced_resource(old)
    if logical.startswith("AWS::"):
        return False  # the stack's own id or region: fixed for the life of the stack
    was = before.templates[producer]["Resources"][logical]
    now = after.templates[producer]["Resources"].get(logical)
    if now is None or now["Type"] != was["Type"]:
        return True
    if was["Type"] == "Custom::SageMakerTrainingJob":
        # Its attributes (artifact URI and ARN) are the job's; the job is new exactly when its name is.
        return HANDLER.base_job_name(was["Properties"]) != HANDLER.base_job_name(now["Properties"])
    return was["Properties"] != now["Properties"]  # any property change may replace the resource


# (change, the stacks that must deploy because of it)
CHANGES = [
    ({"endpointName": "imdb-sentiment-v2"}, {"training", "endpoint", "api"}),
    ({"hyperparameters": {"epochs": 3}}, {"training", "endpoint"}),
    ({"dataArchive": "other"}, {"data", "training", "endpoint"}),
    ({"endpointMode": "provisioned"}, {"endpoint", "api"}),
    ({"trainingInstanceType": "ml.c5.2xlarge"}, {"training"}),
]


def _context(change: dict) -> dict:
    return {**BASE, **{k: other_archive() if v == "other" else v for k, v in change.items()}}


@pytest.mark.parametrize("change, must_deploy", CHANGES, ids=[next(iter(c)) for c, _ in CHANGES])
def test_a_context_change_reaches_every_stack_that_reads_a_changed_value(change, must_deploy):
    before, after = synth(**BASE), synth(**_context(change))
    assert after.error is None, after.error
    changed = {key for key in before.templates if before.templates[key] != after.templates.get(key)}
    assert must_deploy <= changed, f"templates unchanged by {change}: {sorted(must_deploy - changed)}"
    stale = [(consumer, producer, output) for consumer, producer, output in cross_stack_references(before)
             if value_can_change(before, after, producer, output) and consumer not in changed]
    assert stale == [], f"{change}: these stacks read a changed value but their templates did not change"


def test_the_api_reads_nothing_from_the_endpoint_stack():
    """The endpoint's name and ARN are known at synth time, so the API carries them itself."""
    app = synth(**BASE)
    assert not [r for r in cross_stack_references(app) if r[0] == "api"]
    assert app.stacks["endpoint"] in app.stacks["api"].dependencies  # still deployed after it


def _endpoint_name(app):
    (endpoint,) = app.resources("endpoint", "AWS::SageMaker::Endpoint").values()
    return endpoint["Properties"]["EndpointName"]


@pytest.mark.parametrize("before, after", [
    ({"endpointMode": "provisioned"}, {}),  # instance-based -> serverless: SageMaker refuses it in place
    ({"endpointMode": "provisioned"}, {"endpointMode": "provisioned", "instanceType": "ml.c5.large"}),  # autoscaled
    ({}, {"endpointMode": "provisioned"}),  # possible in place, but the way back is not
], ids=["provisioned-to-serverless", "new-instance-type", "serverless-to-provisioned"])
def test_a_switch_sagemaker_cannot_update_in_place_replaces_the_endpoint(before, after):
    """EndpointName requires replacement: CloudFormation creates the new endpoint, the API stack (whose
    template names it) moves to it, and the old one is deleted at the end of the endpoint stack's update."""
    old, new = synth(**BASE, **before), synth(**BASE, **after)
    assert new.error is None, new.error
    assert _endpoint_name(old) != _endpoint_name(new)
    assert old.templates["api"] != new.templates["api"]


def test_changes_sagemaker_makes_in_place_keep_the_endpoint():
    provisioned = {**BASE, "endpointMode": "provisioned"}
    base = _endpoint_name(synth(**provisioned))
    assert base == "imdb-sentiment-m5-large"
    assert _endpoint_name(synth(**provisioned, instanceCount=2, maxInstanceCount=4)) == base
    assert _endpoint_name(synth(**provisioned, hyperparameters={"epochs": 3})) == base  # a new model
    assert _endpoint_name(synth(**BASE, serverlessMemoryMb=4096)) == "imdb-sentiment"
