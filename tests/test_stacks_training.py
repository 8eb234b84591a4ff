"""Training stack: one linux/amd64 image, a least-privilege SageMaker role, the job as a custom resource."""
from __future__ import annotations

import json
import re

from aws_cdk.assertions import Match

from cdk_support import app_default, app_provisioned  # noqa: F401  (fixtures)
from fixtures_local import REPO, load_module
from model.metrics import LOGGED_METRICS, metric_definitions


def _job(app):
    (job,) = app.resources("training", "Custom::SageMakerTrainingJob").values()
    return job


def test_one_image_asset_pinned_to_linux_amd64(app_default):
    manifest = json.loads((app_default.outdir / app_default.stacks["training"].artifact_id).with_suffix(
        ".assets.json").read_text())
    images = manifest["dockerImages"]
    assert len(images) == 1
    (image,) = images.values()
    from stacks import training
    staged = app_default.outdir / image["source"]["directory"]
    assert (staged / "Dockerfile").read_bytes() == (training.REPO_ROOT / "model" / "Dockerfile").read_bytes()
    assert image["source"]["platform"] == "linux/amd64"
    # The endpoint uses that same image (no second asset anywhere in the app).
    for key in ("data", "endpoint", "api", "site"):
        path = app_default.outdir / f"{app_default.stacks[key].artifact_id}.assets.json"
        assert not json.loads(path.read_text()).get("dockerImages")


def test_training_job_properties(app_default):
    props = _job(app_default)["Properties"]
    assert props["JobNamePrefix"] == "imdb-sentiment"
    assert props["InstanceType"] == "ml.m5.xlarge"
    assert props["Spot"] == "false" and props["EnableNetworkIsolation"] == "true"
    assert props["HyperParameters"] == {}  # the package's defaults
    assert props["MetricDefinitions"] == metric_definitions()
    assert "Fn::Sub" in props["TrainingImage"] and "container-assets" in props["TrainingImage"]["Fn::Sub"]
    # Data and output locations come from the data stack's bucket name.
    joined = json.dumps(props["TrainDataUri"])
    assert "imdbsentiment-data-" in joined and "datasets/imdb-" in joined
    assert "/models/" in json.dumps(props["OutputPath"])
    # MaxRuntime + start-up margin fits the provider's total timeout, which fits CloudFormation's hour.
    assert int(props["MaxRuntimeInSeconds"]) == 40 * 60
    assert int(_job(app_default)["Properties"]["ServiceTimeout"]) == 3600


def test_job_identity_follows_the_data_stacks_generation(app_default):
    """A destroy takes the bucket and its model.tar.gz; the data stack created afterwards has a new id, so
    the job name (a hash of the properties) is new and the deploy trains instead of adopting."""
    reference = _job(app_default)["Properties"]["DataStackId"]["Fn::GetStackOutput"]
    assert reference["StackName"] == app_default.stacks["data"].stack_name
    output = app_default.templates["data"]["Outputs"][reference["OutputName"]]
    assert output["Value"] == {"Ref": "AWS::StackId"}


def test_provider_waits_long_enough_and_not_longer_than_cloudformation(app_default):
    (machine,) = app_default.resources("training", "AWS::StepFunctions::StateMachine").values()
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    interval = int(re.search(r'IntervalSeconds\\":(\d+)', definition).group(1))
    attempts = int(re.search(r'MaxAttempts\\":(\d+)', definition).group(1))
    total = interval * attempts
    runtime = int(_job(app_default)["Properties"]["MaxRuntimeInSeconds"])
    assert interval == 60
    assert runtime + 10 * 60 <= total <= 3600 - 120
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"


def test_waiter_logs_under_vendedlogs(app_default):
    """Step Functions log delivery adds a CloudWatch Logs resource-policy entry for a group outside
    /aws/vendedlogs/, and that policy's size limit is reached in busy accounts."""
    (machine,) = app_default.resources("training", "AWS::StepFunctions::StateMachine").values()
    (destination,) = machine["Properties"]["LoggingConfiguration"]["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    name = app_default.templates["training"]["Resources"][group]["Properties"]["LogGroupName"]
    assert name == "/aws/vendedlogs/states/ImdbSentiment-Training-TrainingJobWaiter"


def test_spot_training_sets_wait_and_checkpoints(app_provisioned):
    props = _job(app_provisioned)["Properties"]
    assert props["Spot"] == "true"
    assert int(props["MaxWaitTimeInSeconds"]) >= int(props["MaxRuntimeInSeconds"])
    assert "/checkpoints/" in json.dumps(props["CheckpointUri"])
    (machine,) = app_provisioned.resources("training", "AWS::StepFunctions::StateMachine").values()
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    attempts = int(re.search(r'MaxAttempts\\":(\d+)', definition).group(1))
    assert int(props["MaxWaitTimeInSeconds"]) + 600 <= attempts * 60 <= 3600 - 120


def test_hyperparameters_from_context_are_strings(app_default, app_provisioned):
    assert _job(app_provisioned)["Properties"]["HyperParameters"] == {"bidirectional": "false", "epochs": "3"}
    # A different identity: a new model version for the endpoint.
    assert app_provisioned.stacks["training"].model_version != app_default.stacks["training"].model_version


def _statements(app, key, role_prefix):
    policies = app.resources(key, "AWS::IAM::Policy")
    found = []
    for policy in policies.values():
        roles = json.dumps(policy["Properties"].get("Roles", []))
        if role_prefix in roles:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_sagemaker_role_is_least_privilege(app_default):
    statements = {s.get("Sid"): s for s in _statements(app_default, "training", "SageMakerTrainingRole")}
    assert statements["ReadTrainingData"]["Action"] == "s3:GetObject"
    assert json.dumps(statements["ReadTrainingData"]["Resource"]).endswith('/aclImdb.tar.gz"]]}')
    assert statements["ListTrainingData"]["Condition"]["StringLike"]["s3:prefix"][0].startswith("datasets/imdb-")
    assert statements["WriteModel"]["Action"] == "s3:PutObject"
    assert "/models/imdb-sentiment-*" in json.dumps(statements["WriteModel"]["Resource"])
    assert statements["Metrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}
    assert "Checkpoints" not in statements  # only with spot training
    assert "/aws/sagemaker/TrainingJobs" in json.dumps(statements["Logs"]["Resource"])


def test_custom_resource_handlers_may_only_touch_this_apps_jobs(app_default):
    for role in ("OnEventRole", "IsCompleteRole"):
        statements = _statements(app_default, "training", role)
        sagemaker = [s for s in statements if any(a.startswith("sagemaker:") for a in _actions(s))]
        assert sagemaker and all(
            "training-job/imdb-sentiment-*" in json.dumps(s["Resource"]) for s in sagemaker)
        passes = [s for s in statements if "iam:PassRole" in _actions(s)]
        if role == "OnEventRole":
            (passrole,) = passes
            assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
            assert "SageMakerTrainingRole" in json.dumps(passrole["Resource"])
        else:
            assert not passes


def test_handlers_run_the_training_job_code(app_default):
    t = app_default.template("training")
    # on_event may wait out IAM propagation of the new training role (ROLE_PROPAGATION_SECONDS, 120 s).
    for handler, timeout in (("handler.on_event", 180), ("handler.is_complete", 60)):
        t.has_resource_properties("AWS::Lambda::Function", {
            "Handler": handler, "Runtime": Match.string_like_regexp(r"^python3\.1[2-9]$"), "Timeout": timeout})


def test_handlers_code_is_the_folder_that_holds_the_handler(app_default):
    """Each function's Code is the asset of lambda/training_job, the handler file as it is in the
    repository (any other folder would synthesize as well and fail only in the deploy, with
    "Unable to import module 'handler'" or the wrong module's handler)."""
    source = REPO / "lambda" / "training_job" / "handler.py"
    functions = [f["Properties"] for f in app_default.resources("training", "AWS::Lambda::Function").values()
                 if f["Properties"].get("Handler", "").startswith("handler.")]
    assert sorted(f["Handler"] for f in functions) == ["handler.is_complete", "handler.on_event"]
    for fn in functions:
        asset = app_default.outdir / f"asset.{fn['Code']['S3Key'].removesuffix('.zip')}"
        assert sorted(p.name for p in asset.iterdir()) == ["handler.py"], fn["Handler"]
        assert (asset / "handler.py").read_bytes() == source.read_bytes(), fn["Handler"]
        module = load_module(f"training_job_asset_{fn['Handler'].split('.')[1]}", asset / "handler.py")
        assert callable(getattr(module, fn["Handler"].split(".")[1]))


def test_outputs(app_default):
    outputs = app_default.templates["training"]["Outputs"]
    for name, attribute in (("ModelArtifactUri", "ModelArtifactUri"), ("TrainingJobName", "TrainingJobName"),
                            ("ValidationAccuracy", "Metric_validation_accuracy"),
                            ("TestAccuracy", "Metric_test_accuracy")):
        assert outputs[name]["Value"] == {"Fn::GetAtt": ["TrainingJob", attribute]}


def test_metric_regexes_read_only_their_own_name():
    """Every name against a real `train` run's output: tests/test_training.py; here the edges."""
    regex = {d["Name"]: d["Regex"] for d in metric_definitions()}
    assert set(regex) == set(LOGGED_METRICS)
    assert re.findall(regex["train:loss"], "xtrain:loss=9 train:loss=0.5 train:loss_x=7") == ["0.5"]
    assert re.findall(regex["validation:f1"], "validation:f1=1e-3 validation:f12=3") == ["1e-3"]


def _actions(statement):
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions
