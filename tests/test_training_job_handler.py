"""The training-job custom resource handlers under botocore's Stubber (every call scripted) and moto."""
from __future__ import annotations

import copy
import datetime
import importlib.util
import re
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from hypothesis import given
from hypothesis import strategies as st

from model.hyperparameters import FALSE_WORDS, TRUE_WORDS, parse_bool
from model.metrics import LOGGED_METRICS, metric_attribute

HANDLER = Path(__file__).resolve().parent.parent / "lambda" / "training_job" / "handler.py"
ACCOUNT = "123456789012"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/cdk-hnb659fds-container-assets-{ACCOUNT}-us-east-1:abc123"
METRICS = [{"Name": "validation:accuracy", "Regex": r"\bvalidation:accuracy=([0-9.]+)"},
           {"Name": "test:accuracy", "Regex": r"\btest:accuracy=([0-9.]+)"}]
PROPS = {
    "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
    "JobNamePrefix": "imdb-sentiment",
    "TrainingImage": IMAGE,
    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/SageMakerTrainingRole",
    "TrainDataUri": "s3://imdbsentiment-data-123456789012-us-east-1/datasets/imdb-0123456789abcdef/",
    "DataStackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/ImdbSentiment-Data/0f1e2d3c",
    "OutputPath": "s3://imdbsentiment-data-123456789012-us-east-1/models/",
    "InstanceType": "ml.m5.xlarge",
    "InstanceCount": "1",
    "VolumeSizeInGB": "30",
    "MaxRuntimeInSeconds": "2400",
    "Spot": "false",
    "MaxWaitTimeInSeconds": "2700",
    "CheckpointUri": "s3://imdbsentiment-data-123456789012-us-east-1/checkpoints/",
    "EnableNetworkIsolation": "true",
    "HyperParameters": {"epochs": "3"},
    "MetricDefinitions": METRICS,
}
NOT_FOUND = ("ValidationException", "Requested resource not found.")


def load_handler():
    spec = importlib.util.spec_from_file_location("training_job_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SHARED = load_handler()  # for tests that keep no state in it


@pytest.fixture
def handler():
    return load_handler()


@pytest.fixture
def sm(handler, monkeypatch):
    """A real sagemaker client with every call scripted; the test fails on any call it did not expect."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("sagemaker", region_name="us-east-1")
    handler._CLIENT = client
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def event(request, props=None, physical_id=None, old=None):
    e = {"RequestType": request, "ResourceProperties": copy.deepcopy(props or PROPS),
         "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/ImdbSentiment-Training/x",
         "RequestId": "0a1b2c3d-request", "LogicalResourceId": "TrainingJob",
         "ResourceType": "Custom::SageMakerTrainingJob"}
    if physical_id:
        e["PhysicalResourceId"] = physical_id
    if old is not None:
        e["OldResourceProperties"] = old
    return e


def job(name, status, **extra):
    """A DescribeTrainingJob answer with every required field."""
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    answer = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"{PROPS['OutputPath']}{name}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": {"InProgress": "Training", "Completed": "Completed", "Failed": "Failed",
                            "Stopping": "Stopping", "Stopped": "Stopped"}[status],
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 2400},
        "CreationTime": now,
    }
    answer.update(extra)
    return answer


def expect_describe(sm, name, status=None, **extra):
    if status is None:
        sm.add_client_error("describe_training_job", *NOT_FOUND, expected_params={"TrainingJobName": name})
    else:
        sm.add_response("describe_training_job", job(name, status, **extra), {"TrainingJobName": name})


def expect_create(sm, name, **params):
    sm.add_response("create_training_job", {"TrainingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{name}"},
                    {"TrainingJobName": name, **params} if params else None)


# --- identity
def test_job_name_is_a_hash_of_image_data_hyperparameters_and_output(handler):
    base = handler.base_job_name(PROPS)
    assert re.fullmatch(r"imdb-sentiment-[0-9a-f]{16}", base)
    same = {**PROPS, "InstanceType": "ml.c5.2xlarge", "MaxRuntimeInSeconds": "600", "Spot": "true"}
    assert handler.base_job_name(same) == base  # what a job *is* did not change
    for key, value in (("TrainingImage", IMAGE + "x"), ("TrainDataUri", PROPS["TrainDataUri"] + "x/"),
                       ("OutputPath", "s3://other-bucket/models/"), ("HyperParameters", {"epochs": "4"}),
                       ("DataStackId", PROPS["DataStackId"].replace("0f1e2d3c", "4b5a6978"))):
        assert handler.base_job_name({**PROPS, key: value}) != base, key


def test_longest_prefix_still_makes_valid_names(handler):
    props = {**PROPS, "JobNamePrefix": "a" * 40}
    names = list(handler._attempt_names(handler.base_job_name(props)))
    assert len(names) == handler.MAX_ATTEMPTS
    assert all(len(n) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", n) for n in names)
    with pytest.raises(ValueError, match="JobNamePrefix"):
        handler.base_job_name({**PROPS, "JobNamePrefix": "a" * 50})


# --- create
def test_create_starts_the_job_with_the_channel_output_and_limits(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name)
    expect_create(sm, name,
                  AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                          "MetricDefinitions": METRICS},
                  RoleArn=PROPS["RoleArn"],
                  InputDataConfig=[{"ChannelName": "train", "CompressionType": "None", "InputMode": "File",
                                    "DataSource": {"S3DataSource": {
                                        "S3DataType": "S3Prefix", "S3Uri": PROPS["TrainDataUri"],
                                        "S3DataDistributionType": "FullyReplicated"}}}],
                  OutputDataConfig={"S3OutputPath": PROPS["OutputPath"]},
                  ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
                  StoppingCondition={"MaxRuntimeInSeconds": 2400},
                  HyperParameters={"epochs": "3"},
                  EnableNetworkIsolation=True,
                  EnableManagedSpotTraining=False)
    assert handler.on_event(event("Create"), None) == {"PhysicalResourceId": name}


def test_create_with_spot_training_sets_wait_and_checkpoints(handler, sm):
    props = {**PROPS, "Spot": "true"}
    name = handler.base_job_name(props)
    expect_describe(sm, name)
    expect_create(sm, name,
                  AlgorithmSpecification=ANY, RoleArn=ANY, InputDataConfig=ANY, OutputDataConfig=ANY,
                  ResourceConfig=ANY, HyperParameters=ANY, EnableNetworkIsolation=True,
                  StoppingCondition={"MaxRuntimeInSeconds": 2400, "MaxWaitTimeInSeconds": 2700},
                  EnableManagedSpotTraining=True,
                  CheckpointConfig={"S3Uri": f"{PROPS['CheckpointUri']}{name}/", "LocalPath": "/opt/ml/checkpoints"})
    assert handler.on_event(event("Create", props), None) == {"PhysicalResourceId": name}


def test_create_adopts_a_job_that_already_runs_or_finished(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "Completed")
    assert handler.on_event(event("Create"), None) == {"PhysicalResourceId": name}
    expect_describe(sm, name, "InProgress")
    assert handler.on_event(event("Create"), None) == {"PhysicalResourceId": name}


def test_create_after_a_failed_attempt_uses_the_next_name(handler, sm):
    base = handler.base_job_name(PROPS)
    expect_describe(sm, base, "Failed", FailureReason="AlgorithmError: out of memory")
    expect_describe(sm, f"{base}-r1", "Stopped")
    expect_describe(sm, f"{base}-r2")
    expect_create(sm, f"{base}-r2", AlgorithmSpecification=ANY, RoleArn=ANY, InputDataConfig=ANY,
                  OutputDataConfig=ANY, ResourceConfig=ANY, StoppingCondition=ANY, HyperParameters=ANY,
                  EnableNetworkIsolation=ANY, EnableManagedSpotTraining=ANY)
    assert handler.on_event(event("Create"), None) == {"PhysicalResourceId": f"{base}-r2"}


def test_create_gives_up_after_every_name_failed(handler, sm):
    for name in handler._attempt_names(handler.base_job_name(PROPS)):
        expect_describe(sm, name, "Failed", FailureReason="ClientError: bad data")
    with pytest.raises(RuntimeError, match="all failed or were stopped"):
        handler.on_event(event("Create"), None)


ROLE_NOT_YET = ("ValidationException", f"Could not assume role {PROPS['RoleArn']}. Please ensure that the role "
                "exists and allows principal 'sagemaker.amazonaws.com' to assume the role.")


class Clock:
    """time.monotonic and time.sleep for the handler: sleeping advances the clock, nothing waits."""

    def __init__(self):
        self.now, self.slept = 1000.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class LambdaContext:
    def __init__(self, clock, timeout_s):
        self.clock, self.end = clock, clock.now + timeout_s

    def get_remaining_time_in_millis(self):
        return int((self.end - self.clock.now) * 1000)


def test_create_waits_while_the_new_role_propagates(handler, sm, monkeypatch):
    """The training role is created in the same deploy; IAM may not let SageMaker assume it for a while."""
    clock = Clock()
    monkeypatch.setattr(handler, "time", clock)
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name)
    for _ in range(2):
        sm.add_client_error("create_training_job", *ROLE_NOT_YET)
    expect_create(sm, name)
    assert handler.on_event(event("Create"), LambdaContext(clock, 180)) == {"PhysicalResourceId": name}
    assert clock.slept == [5.0, 10.0]


@pytest.mark.parametrize("lambda_timeout, sleeps", [
    (180, [5.0, 10.0, 20.0, 20.0, 20.0, 20.0, 20.0]),  # ROLE_PROPAGATION_SECONDS (120) is the bound
    (60, [5.0, 10.0, 20.0]),  # the Lambda's remaining time less 10 s is the bound
])
def test_create_gives_up_on_the_role_in_bounded_time(handler, sm, monkeypatch, lambda_timeout, sleeps):
    clock = Clock()
    monkeypatch.setattr(handler, "time", clock)
    expect_describe(sm, handler.base_job_name(PROPS))
    for _ in range(len(sleeps) + 1):  # one try, then one after each wait; a further call would fail the stub
        sm.add_client_error("create_training_job", *ROLE_NOT_YET)
    with pytest.raises(Exception, match="Could not assume role"):
        handler.on_event(event("Create"), LambdaContext(clock, lambda_timeout))
    assert clock.slept == sleeps


def test_create_passes_other_errors_on(handler, sm):
    name = handler.base_job_name(PROPS)
    sm.add_client_error("describe_training_job", "AccessDeniedException", "not authorized",
                        expected_params={"TrainingJobName": name})
    with pytest.raises(Exception, match="AccessDenied"):
        handler.on_event(event("Create"), None)


# --- wait
def test_is_complete_waits_while_the_job_runs(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "InProgress")
    assert handler.is_complete(event("Create", physical_id=name), None) == {"IsComplete": False}


def test_is_complete_returns_artifact_and_metrics_when_done(handler, sm):
    name = handler.base_job_name(PROPS)
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    expect_describe(sm, name, "Completed", BillableTimeInSeconds=812, FinalMetricDataList=[
        {"MetricName": "validation:accuracy", "Value": 0.89124, "Timestamp": now}])
    result = handler.is_complete(event("Create", physical_id=name), None)
    assert result["IsComplete"] is True
    data = result["Data"]
    assert data["TrainingJobName"] == name
    assert data["ModelArtifactUri"] == f"{PROPS['OutputPath']}{name}/output/model.tar.gz"
    assert data["ModelArtifactArn"] == (
        f"arn:aws:s3:::imdbsentiment-data-123456789012-us-east-1/models/{name}/output/model.tar.gz")
    assert data["Metric_validation_accuracy"] == "0.8912"
    assert data["Metric_test_accuracy"] == "n/a"  # defined but never logged: still an attribute
    assert data["BillableTimeInSeconds"] == "812"
    assert all(isinstance(v, str) for v in data.values())


def test_failed_job_fails_the_deploy_with_its_reason(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "Failed", FailureReason="AlgorithmError: HyperparameterError: unknown hyperparameter 'epoch'")
    with pytest.raises(RuntimeError, match="failed: AlgorithmError: HyperparameterError: unknown hyperparameter 'epoch'"):
        handler.is_complete(event("Create", physical_id=name), None)


def test_stopped_job_fails_the_deploy(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "Stopped", FailureReason="MaxWaitTimeInSeconds exceeded")
    with pytest.raises(RuntimeError, match="stopped before it completed: MaxWaitTimeInSeconds exceeded"):
        handler.is_complete(event("Update", physical_id=name), None)


def test_vanished_job_fails_the_deploy(handler, sm):
    expect_describe(sm, "imdb-sentiment-0000000000000000")
    with pytest.raises(RuntimeError, match="does not exist"):
        handler.is_complete(event("Create", physical_id="imdb-sentiment-0000000000000000"), None)


# --- update
def test_update_without_a_new_identity_keeps_the_job(handler, sm):
    name = handler.base_job_name(PROPS)
    changed = {**PROPS, "InstanceType": "ml.c5.2xlarge", "MaxRuntimeInSeconds": "1800"}
    assert handler.on_event(event("Update", changed, physical_id=name, old=PROPS), None) == {"PhysicalResourceId": name}
    # A job adopted after a failed first name keeps its -r<n> name too.
    assert handler.on_event(event("Update", changed, physical_id=f"{name}-r1", old=PROPS), None) == {
        "PhysicalResourceId": f"{name}-r1"}
    expect_describe(sm, name, "Completed")
    assert handler.is_complete(event("Update", changed, physical_id=name), None)["IsComplete"] is True


def test_update_with_new_hyperparameters_starts_a_new_job(handler, sm):
    old_name = handler.base_job_name(PROPS)
    new = {**PROPS, "HyperParameters": {"epochs": "4"}}
    new_name = handler.base_job_name(new)
    assert new_name != old_name
    expect_describe(sm, new_name)
    expect_create(sm, new_name, AlgorithmSpecification=ANY, RoleArn=ANY, InputDataConfig=ANY,
                  OutputDataConfig=ANY, ResourceConfig=ANY, StoppingCondition=ANY,
                  HyperParameters={"epochs": "4"}, EnableNetworkIsolation=ANY, EnableManagedSpotTraining=ANY)
    assert handler.on_event(event("Update", new, physical_id=old_name, old=PROPS), None) == {
        "PhysicalResourceId": new_name}


# --- delete
def test_delete_while_running_stops_the_job_and_waits(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "InProgress")
    sm.add_response("stop_training_job", {}, {"TrainingJobName": name})
    assert handler.on_event(event("Delete", physical_id=name), None) == {"PhysicalResourceId": name}
    expect_describe(sm, name, "Stopping")
    assert handler.is_complete(event("Delete", physical_id=name), None) == {"IsComplete": False}
    expect_describe(sm, name, "Stopped")
    assert handler.is_complete(event("Delete", physical_id=name), None) == {"IsComplete": True}


def test_delete_while_the_job_still_runs_stops_it_again_and_waits_for_it(handler, sm):
    """The stop in on_event raced the job (not stoppable yet) and the job still runs when is_complete
    looks: it is stopped from there, and the Delete waits until SageMaker says it has ended, since
    the stack deletes the bucket the job still writes into next."""
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "InProgress")
    sm.add_client_error("stop_training_job", "ValidationException", "The job is not in a stoppable state.",
                        expected_params={"TrainingJobName": name})
    assert handler.on_event(event("Delete", physical_id=name), None) == {"PhysicalResourceId": name}
    expect_describe(sm, name, "InProgress")
    sm.add_response("stop_training_job", {}, {"TrainingJobName": name})
    assert handler.is_complete(event("Delete", physical_id=name), None) == {"IsComplete": False}
    sm.assert_no_pending_responses()  # the stop was called
    expect_describe(sm, name, "Stopping")  # no stop scripted: a second one would fail the test
    assert handler.is_complete(event("Delete", physical_id=name), None) == {"IsComplete": False}
    expect_describe(sm, name, "Stopped")
    assert handler.is_complete(event("Delete", physical_id=name), None) == {"IsComplete": True}


@pytest.mark.parametrize("request_type", ["Replace", "delete", "", None])
def test_an_unknown_request_type_fails_without_touching_a_job(handler, sm, request_type):
    """CloudFormation sends Create, Update or Delete; anything else fails the request (the Provider
    framework reports the message) rather than being taken for one of them. No SageMaker call is
    scripted: any call would fail the test."""
    with pytest.raises(ValueError, match=f"unknown RequestType {request_type!r}"):
        handler.on_event(event(request_type, physical_id=handler.base_job_name(PROPS)), None)
    with pytest.raises(ValueError, match=f"unknown RequestType {request_type!r}"):
        handler.is_complete(event(request_type, physical_id=handler.base_job_name(PROPS)), None)


def test_delete_of_a_finished_job_leaves_it(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "Completed")  # no stop call scripted: a stop would fail the test
    assert handler.on_event(event("Delete", physical_id=name), None) == {"PhysicalResourceId": name}
    expect_describe(sm, name, "Completed")
    assert handler.is_complete(event("Delete", physical_id=name), None) == {"IsComplete": True}


def test_delete_tolerates_a_stop_race_and_a_missing_job(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "InProgress")
    sm.add_client_error("stop_training_job", "ValidationException", "The job is not in a stoppable state.",
                        expected_params={"TrainingJobName": name})
    handler.on_event(event("Delete", physical_id=name), None)
    expect_describe(sm, name)
    assert handler.is_complete(event("Delete", physical_id=name), None) == {"IsComplete": True}


def test_delete_after_a_failed_create_touches_nothing(handler, sm):
    """A failed Create leaves the request id as physical id: no job of ours, no SageMaker call."""
    rid = "0a1b2c3d-request"
    assert handler.on_event(event("Delete", physical_id=rid), None) == {"PhysicalResourceId": rid}
    assert handler.is_complete(event("Delete", physical_id=rid), None) == {"IsComplete": True}


# --- attributes
@given(st.text(min_size=1, max_size=60))
def test_metric_attribute_names_are_plain(name):
    assert re.fullmatch(r"Metric_[A-Za-z0-9_]*", _SHARED.metric_attribute(name))


def test_metric_attribute_examples(handler):
    assert handler.metric_attribute("validation:accuracy") == "Metric_validation_accuracy"
    assert handler.metric_attribute("test:f1") == "Metric_test_f1"


@pytest.mark.parametrize("word", TRUE_WORDS + FALSE_WORDS + tuple(w.upper() for w in TRUE_WORDS + FALSE_WORDS))
def test_flags_read_true_and_false_as_the_package_does(word):
    """Its own copy of model.hyperparameters.parse_bool's words (the stack writes "true"/"false")."""
    assert _SHARED._flag(word) is parse_bool(word)


@given(st.one_of(st.sampled_from(LOGGED_METRICS), st.text(min_size=1, max_size=60)))
def test_metric_attributes_are_the_ones_the_stack_names(name):
    """The asset ships alone: its copy of model/metrics.py's naming, which the stack's outputs use."""
    assert _SHARED.metric_attribute(name) == metric_attribute(name)


# --- the same flow against moto's SageMaker
def test_create_then_complete_under_moto(handler, monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        handler._CLIENT = None  # the handler's own client, under moto
        created = handler.on_event(event("Create"), None)
        name = created["PhysicalResourceId"]
        described = handler._client().describe_training_job(TrainingJobName=name)
        assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE
        done = handler.is_complete(event("Create", physical_id=name), None)
        assert done["IsComplete"] is True
        assert done["Data"]["ModelArtifactUri"].endswith(f"/models/{name}/output/model.tar.gz")
        # Same properties again: the same job, adopted rather than created twice.
        assert handler.on_event(event("Create"), None) == created


# --- destroy, then deploy again (moto's S3 and SageMaker)
DATA_BUCKET = "imdbsentiment-data-123456789012-us-east-1"


class Account:
    """The parts of one account that a deploy and a destroy touch. Two are played here: CloudFormation,
    which gives every stack it creates a new id (``.../stack/<name>/<uuid>``; moto's CloudFormation
    needs packages this environment does not install), and SageMaker's upload of model.tar.gz when a job
    completes (moto records the job but writes no model)."""

    def __init__(self, handler):
        self.handler = handler
        self.s3 = boto3.client("s3")

    def deploy(self) -> str:
        """Data stack, then the training resource; the ModelArtifactUri the endpoint stack would get."""
        self.s3.create_bucket(Bucket=DATA_BUCKET)
        stack_id = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/ImdbSentiment-Data/{uuid.uuid4()}"
        props = {**PROPS, "DataStackId": stack_id}  # what the template's Fn::GetStackOutput resolves to
        before = self._jobs()
        name = self.handler.on_event(event("Create", props), None)["PhysicalResourceId"]
        if name not in before:
            bucket, key = self._artifact(f"{PROPS['OutputPath']}{name}/output/model.tar.gz")
            self.s3.put_object(Bucket=bucket, Key=key, Body=b"model")
        done = self.handler.is_complete(event("Create", props, physical_id=name), None)
        self.props, self.name = props, name
        return done["Data"]["ModelArtifactUri"]

    def destroy(self) -> None:
        """Training resource deleted (the job record stays), then the bucket emptied and the stack deleted."""
        self.handler.on_event(event("Delete", self.props, physical_id=self.name), None)
        assert self.handler.is_complete(event("Delete", self.props, physical_id=self.name), None)["IsComplete"]
        for item in self.s3.list_objects_v2(Bucket=DATA_BUCKET).get("Contents", []):
            self.s3.delete_object(Bucket=DATA_BUCKET, Key=item["Key"])
        self.s3.delete_bucket(Bucket=DATA_BUCKET)

    def artifact_exists(self, uri: str) -> bool:
        bucket, key = self._artifact(uri)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except self.s3.exceptions.ClientError:
            return False

    def _jobs(self) -> set[str]:
        return {j["TrainingJobName"] for j in self.handler._client().list_training_jobs()["TrainingJobSummaries"]}

    @staticmethod
    def _artifact(uri: str) -> tuple[str, str]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key


def test_deploy_after_destroy_gets_a_model_that_exists(handler, monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        handler._CLIENT = None
        account = Account(handler)
        first = account.deploy()
        assert account.artifact_exists(first)
        account.destroy()
        assert not account.artifact_exists(first)  # auto_delete_objects took it with the bucket
        second = account.deploy()
        # The endpoint's model points here: it must exist, so this deploy trained a new job.
        assert account.artifact_exists(second), f"the re-deploy adopted the old job: {second}"
        assert second != first


# --- what mutation testing found unguarded (make mutation, target training-job)
def test_the_job_identity_of_given_properties_never_changes_by_accident(handler):
    """Every deployed stack's job is named by this hash: a change to how it is computed (key order,
    what goes in) renames every job and retrains every deployment on its next deploy."""
    assert handler.identity_hash(PROPS) == "4dfff6f6591b1263"


def test_a_job_gets_five_names_before_the_deploy_gives_up(handler):
    base = handler.base_job_name(PROPS)
    assert list(handler._attempt_names(base)) == [base, *(f"{base}-r{n}" for n in range(1, 5))]


def test_job_names_of_up_to_sixty_characters_are_accepted(handler):
    # <prefix>-<16 hex>: a 43-character prefix makes 60 characters, room left for "-r4" in 63
    assert len(handler.base_job_name({**PROPS, "JobNamePrefix": "a" * 43})) == 60
    with pytest.raises(ValueError, match="JobNamePrefix"):
        handler.base_job_name({**PROPS, "JobNamePrefix": "a" * 44})


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException"])
def test_only_sagemakers_not_found_answer_reads_as_a_missing_job(handler, sm, code):
    """Other errors go to CloudFormation as they came, even when their message says 'not found'."""
    sm.add_client_error("describe_training_job", code, "Requested resource not found.",
                        expected_params={"TrainingJobName": "imdb-sentiment-x"})
    with pytest.raises(Exception, match=code):
        handler._describe("imdb-sentiment-x")


def test_a_stop_refused_for_any_reason_but_an_ended_job_is_an_error(handler, sm):
    sm.add_client_error("stop_training_job", "AccessDeniedException", "not authorized",
                        expected_params={"TrainingJobName": "imdb-sentiment-x"})
    with pytest.raises(Exception, match="AccessDenied"):
        handler._stop("imdb-sentiment-x")


def test_only_sagemakers_own_role_error_is_waited_out(handler):
    from botocore.exceptions import ClientError

    def error(code):
        return ClientError({"Error": {"Code": code, "Message": ROLE_NOT_YET[1]}}, "CreateTrainingJob")

    assert handler._role_not_assumable_yet(error("ValidationException"))
    assert not handler._role_not_assumable_yet(error("AccessDeniedException"))


def test_a_stopping_job_is_waited_for_not_taken_as_stopped(handler, sm):
    name = handler.base_job_name(PROPS)
    expect_describe(sm, name, "Stopping")
    assert handler.is_complete(event("Create", physical_id=name), None) == {"IsComplete": False}


@pytest.mark.parametrize("direction", ["forward", "back"])
def test_any_other_identity_starts_a_new_job_whichever_name_sorts_first(handler, sm, direction):
    """An Update compares job names for equality, not order: both directions of one change train."""
    props_a, props_b = PROPS, {**PROPS, "HyperParameters": {"epochs": "4"}}
    old, new = (props_a, props_b) if direction == "forward" else (props_b, props_a)
    old_name, new_name = handler.base_job_name(old), handler.base_job_name(new)
    expect_describe(sm, new_name)
    expect_create(sm, new_name, AlgorithmSpecification=ANY, RoleArn=ANY, InputDataConfig=ANY,
                  OutputDataConfig=ANY, ResourceConfig=ANY, StoppingCondition=ANY, HyperParameters=ANY,
                  EnableNetworkIsolation=ANY, EnableManagedSpotTraining=ANY)
    assert handler.on_event(event("Update", new, physical_id=old_name, old=old), None) == {
        "PhysicalResourceId": new_name}
