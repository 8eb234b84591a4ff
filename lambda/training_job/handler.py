"""CloudFormation custom resource ``Custom::SageMakerTrainingJob`` for the CDK Provider framework.

``on_event`` starts (or stops) the work and returns at once; ``is_complete`` is then called every query
interval until it answers ``IsComplete: true`` or raises. Standard library and boto3 only.

Resource properties (CloudFormation hands every scalar over as a string):

  JobNamePrefix           job names are ``<prefix>-<identity hash>`` (``-r<n>`` appended after a failure)
  TrainingImage           the ECR image URI (``train`` is the image's training entry point)
  RoleArn                 the SageMaker execution role
  TrainDataUri            ``s3://.../datasets/imdb-<hash>/``: the ``train`` channel (the IMDB tar.gz)
  DataStackId             the data stack's CloudFormation id: a new one each time that stack (and with
                          it the bucket holding every model artifact) is created
  OutputPath              ``s3://.../models/``: SageMaker writes ``<job>/output/model.tar.gz`` under it
  InstanceType, InstanceCount, VolumeSizeInGB, MaxRuntimeInSeconds
  Spot, MaxWaitTimeInSeconds, CheckpointUri   managed spot training ("true"/"false")
  EnableNetworkIsolation  "true"/"false"
  HyperParameters         {name: string}
  MetricDefinitions       [{"Name": "validation:accuracy", "Regex": "..."}]

Identity: a job is defined by its image, data, hyperparameters, output location and the data stack it
writes into (a destroy deletes the bucket and its artifacts, and training-job records cannot be deleted,
so a deploy after a destroy must not adopt the finished job of the old bucket). The job name is a hash
of those, so an update that changes anything else (instance type, timeouts) keeps the same job and
physical id, and an update that changes one of them starts a new job (a new physical id, so CloudFormation
deletes the old resource afterwards: a finished job is left as it is, a running one is stopped).

Attributes (``Data``): ``TrainingJobName``, ``TrainingJobArn``, ``ModelArtifactUri``, ``ModelArtifactArn``
(the artifact's S3 object ARN, for an exact IAM grant), ``BillableTimeInSeconds`` and ``Metric_<name>`` for every metric definition (``validation:accuracy`` ->
``Metric_validation_accuracy``), ``"n/a"`` when the job never logged it.
"""
from __future__ import annotations

import hashlib
import json
import re
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

RUNNING = ("InProgress",)
ENDED = ("Completed", "Failed", "Stopped")
# Names after a failed or stopped attempt with the same identity: <base>, <base>-r1, ... <base>-r4.
MAX_ATTEMPTS = 5
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# IAM is eventually consistent: right after the stack creates the execution role, SageMaker can answer
# CreateTrainingJob with "Could not assume role". Retried for this long (and never past the Lambda's own
# timeout), then the error goes to CloudFormation as it came.
ROLE_PROPAGATION_SECONDS = 120
_RETRY_FIRST_DELAY, _RETRY_MAX_DELAY, _LAMBDA_MARGIN_SECONDS = 5.0, 20.0, 10.0
_CLIENT = None


def _client():
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = boto3.client("sagemaker", config=Config(
            connect_timeout=5, read_timeout=20, retries={"max_attempts": 6, "mode": "standard"}))
    return _CLIENT


def _log(**fields) -> None:
    print(json.dumps(fields, default=str, sort_keys=True), flush=True)


def _flag(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


# --- identity and names
def identity_hash(props: dict) -> str:
    """What a job is: image, data, hyperparameters, output location and the data stack's generation (not
    instance type or timeouts)."""
    identity = {
        "image": props["TrainingImage"],
        "data": props["TrainDataUri"],
        "output": props["OutputPath"],
        "data_stack": props.get("DataStackId", ""),
        "hyperparameters": {str(k): str(v) for k, v in (props.get("HyperParameters") or {}).items()},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def base_job_name(props: dict) -> str:
    name = f"{props['JobNamePrefix']}-{identity_hash(props)}"
    if not _NAME.match(name) or len(name) > 60:
        raise ValueError(f"JobNamePrefix {props['JobNamePrefix']!r} makes an invalid training job name {name!r}")
    return name


def _attempt_names(base: str):
    yield base
    for n in range(1, MAX_ATTEMPTS):
        yield f"{base}-r{n}"


def _same_identity(physical_id: str, base: str) -> bool:
    return physical_id == base or re.fullmatch(re.escape(base) + r"-r\d+", physical_id or "") is not None


def _is_ours(physical_id: str, props: dict) -> bool:
    """Physical ids of failed creates are request ids, not job names: nothing to stop for those."""
    prefix = f"{props.get('JobNamePrefix', '')}-"
    return bool(physical_id) and physical_id.startswith(prefix) and bool(_NAME.match(physical_id))


# --- SageMaker calls
def _describe(name: str) -> dict | None:
    try:
        return _client().describe_training_job(TrainingJobName=name)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = str(error.get("Message", "")).lower()
        # SageMaker answers a missing job with ValidationException "Requested resource not found."
        if error.get("Code") == "ResourceNotFound" or (
                error.get("Code") == "ValidationException" and ("not found" in message or "could not find" in message)):
            return None
        raise


def _stop(name: str) -> None:
    try:
        _client().stop_training_job(TrainingJobName=name)
        _log(event="stop", job=name)
    except ClientError as exc:
        # Already stopping or ended between describe and stop: nothing left to do.
        if exc.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        _log(event="stop-skipped", job=name, reason=str(exc))


def create_request(name: str, props: dict) -> dict:
    spot = _flag(props.get("Spot", "false"))
    stopping = {"MaxRuntimeInSeconds": int(props["MaxRuntimeInSeconds"])}
    algorithm = {"TrainingImage": props["TrainingImage"], "TrainingInputMode": "File"}
    if props.get("MetricDefinitions"):
        algorithm["MetricDefinitions"] = [{"Name": m["Name"], "Regex": m["Regex"]} for m in props["MetricDefinitions"]]
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": algorithm,
        "RoleArn": props["RoleArn"],
        "InputDataConfig": [{
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": props["TrainDataUri"],
                                            "S3DataDistributionType": "FullyReplicated"}},
            "CompressionType": "None",
            "InputMode": "File",
        }],
        "OutputDataConfig": {"S3OutputPath": props["OutputPath"]},
        "ResourceConfig": {"InstanceType": props["InstanceType"], "InstanceCount": int(props.get("InstanceCount", 1)),
                           "VolumeSizeInGB": int(props.get("VolumeSizeInGB", 30))},
        "StoppingCondition": stopping,
        "HyperParameters": {str(k): str(v) for k, v in (props.get("HyperParameters") or {}).items()},
        "EnableNetworkIsolation": _flag(props.get("EnableNetworkIsolation", "false")),
        "EnableManagedSpotTraining": spot,
    }
    if spot:
        stopping["MaxWaitTimeInSeconds"] = int(props["MaxWaitTimeInSeconds"])
        request["CheckpointConfig"] = {"S3Uri": f"{props['CheckpointUri'].rstrip('/')}/{name}/",
                                       "LocalPath": "/opt/ml/checkpoints"}
    return request


def _role_not_assumable_yet(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationException" and "could not assume role" in str(error.get("Message", "")).lower()


def _create(request: dict, context) -> None:
    """CreateTrainingJob, retrying while SageMaker cannot assume the (just created) role yet."""
    deadline = time.monotonic() + ROLE_PROPAGATION_SECONDS
    if context is not None:
        deadline = min(deadline, time.monotonic() + context.get_remaining_time_in_millis() / 1000
                       - _LAMBDA_MARGIN_SECONDS)
    delay = _RETRY_FIRST_DELAY
    while True:
        try:
            _client().create_training_job(**request)
            return
        except ClientError as exc:
            if not _role_not_assumable_yet(exc) or time.monotonic() + delay > deadline:
                raise
            _log(event="role-not-assumable-yet", job=request["TrainingJobName"], retry_in=delay)
            time.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_DELAY)


def start_job(props: dict, context=None) -> str:
    """Start the job for these properties, or adopt the one already running or done; return its name."""
    base = base_job_name(props)
    for name in _attempt_names(base):
        job = _describe(name)
        if job is None:
            _create(create_request(name, props), context)
            _log(event="created", job=name)
            return name
        status = job["TrainingJobStatus"]
        if status in ("Completed", "InProgress"):
            _log(event="adopted", job=name, status=status)
            return name
        _log(event="skipped", job=name, status=status)  # Failed, Stopped, Stopping: try the next name
    raise RuntimeError(f"training jobs {base} and {MAX_ATTEMPTS - 1} retries all failed or were stopped; "
                       "fix the cause (see their FailureReason in the SageMaker console) or change the "
                       "hyperparameters, data or image")


# --- the Provider framework's handlers
def on_event(event, context):
    request = event["RequestType"]
    props = event["ResourceProperties"]
    physical_id = event.get("PhysicalResourceId")
    _log(event="on_event", request=request, physical_id=physical_id)
    if request == "Create":
        return {"PhysicalResourceId": start_job(props, context)}
    if request == "Update":
        if _same_identity(physical_id, base_job_name(props)):
            return {"PhysicalResourceId": physical_id}  # same data, image, hyperparameters: same job
        return {"PhysicalResourceId": start_job(props, context)}
    if request == "Delete":
        if _is_ours(physical_id, props):
            job = _describe(physical_id)
            if job is not None and job["TrainingJobStatus"] in RUNNING:
                _stop(physical_id)
        return {"PhysicalResourceId": physical_id}
    raise ValueError(f"unknown RequestType {request!r}")


def is_complete(event, context):
    request = event["RequestType"]
    if request not in ("Create", "Update", "Delete"):  # never waits on a job for a request it did not start
        raise ValueError(f"unknown RequestType {request!r}")
    props = event["ResourceProperties"]
    name = event["PhysicalResourceId"]
    if request == "Delete":
        if not _is_ours(name, props):
            return {"IsComplete": True}
        job = _describe(name)
        if job is None or job["TrainingJobStatus"] in ENDED:
            return {"IsComplete": True}
        if job["TrainingJobStatus"] in RUNNING:
            _stop(name)
        return {"IsComplete": False}  # Stopping: SageMaker still uploads what the job wrote

    job = _describe(name)
    if job is None:
        raise RuntimeError(f"training job {name} does not exist")
    status = job["TrainingJobStatus"]
    _log(event="is_complete", job=name, status=status, secondary=job.get("SecondaryStatus"))
    if status == "Completed":
        return {"IsComplete": True, "Data": attributes(job, props)}
    if status == "Failed":
        raise RuntimeError(f"training job {name} failed: {job.get('FailureReason', 'no reason given')}")
    if status == "Stopped":
        raise RuntimeError(f"training job {name} was stopped before it completed"
                           + (f": {job['FailureReason']}" if job.get("FailureReason") else ""))
    return {"IsComplete": False}


def metric_attribute(name: str) -> str:
    """``validation:accuracy`` -> ``Metric_validation_accuracy`` (a plain attribute name for Fn::GetAtt).

    model/metrics.py's, which the training stack names its outputs with; this asset ships alone, so a
    test holds the copy to it."""
    return "Metric_" + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def attributes(job: dict, props: dict) -> dict:
    final = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    partition = job["TrainingJobArn"].split(":")[1]  # aws, aws-cn, aws-us-gov
    data = {
        "TrainingJobName": job["TrainingJobName"],
        "TrainingJobArn": job["TrainingJobArn"],
        "ModelArtifactUri": uri,
        "ModelArtifactArn": f"arn:{partition}:s3:::{uri.removeprefix('s3://')}",
        "BillableTimeInSeconds": str(job.get("BillableTimeInSeconds", "n/a")),
    }
    for definition in props.get("MetricDefinitions") or []:
        value = final.get(definition["Name"])
        data[metric_attribute(definition["Name"])] = "n/a" if value is None else f"{float(value):.4f}"
    return data
