"""The optional SageMaker SDK script: argument checks always; the SDK calls under moto when installed."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import sagemaker_job  # noqa: E402

COMMON = ["--image-uri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/imdb:latest",
          "--role", "arn:aws:iam::123456789012:role/sm-exec",
          "--data", "s3://bucket/data/", "--output", "s3://bucket/out/"]


def test_overrides_are_checked_against_the_package_hyperparameters():
    assert sagemaker_job.parse_overrides(["epochs=3", "preset=quick"]) == {"epochs": "3", "preset": "quick"}
    with pytest.raises(sagemaker_job.UsageError, match="unknown hyperparameter 'epoch'"):
        sagemaker_job.parse_overrides(["epoch=3"])
    with pytest.raises(sagemaker_job.UsageError, match="KEY=VALUE"):
        sagemaker_job.parse_overrides(["epochs"])
    # the preset and the values are checked too, as `train` reads them
    with pytest.raises(sagemaker_job.UsageError, match="unknown preset 'quik'"):
        sagemaker_job.parse_overrides(["preset=quik"])
    with pytest.raises(sagemaker_job.UsageError, match="epochs='many' is not a valid int"):
        sagemaker_job.parse_overrides(["epochs=many"])


def test_ranges():
    assert sagemaker_job.parse_ranges([]) == sagemaker_job.DEFAULT_RANGES
    assert sagemaker_job.parse_ranges(["hidden_dim=32:64"]) == {"hidden_dim": ("integer", 32.0, 64.0)}
    assert sagemaker_job.parse_ranges(["dropout=0.1:0.3"])["dropout"][0] == "continuous"
    for bad, message in (["preprocessing=1:2", "not a numeric"], ["dropout=0.5:0.1", "LOW must be below"],
                         ["dropout=a:b", "must be numbers"], ["dropout", "NAME=LOW:HIGH"]):
        with pytest.raises(sagemaker_job.UsageError, match=message):
            sagemaker_job.parse_ranges([bad])


def test_job_uses_the_stack_metric_definitions_and_spot_settings():
    args = sagemaker_job.build_parser().parse_args(["train", *COMMON, "--spot"])
    kwargs = sagemaker_job.estimator_kwargs(args, {"epochs": "2"})
    names = [d["Name"] for d in kwargs["metric_definitions"]]
    assert "validation:accuracy" in names
    assert kwargs["use_spot_instances"] and kwargs["max_wait"] >= kwargs["max_run"]
    assert kwargs["checkpoint_s3_uri"] == "s3://bucket/out/checkpoints/"


def test_bad_uris_are_refused_before_any_aws_call(capsys):
    assert sagemaker_job.main(["train", *COMMON[:4], "--data", "/local/path", "--output", "s3://b/o/"]) == 2
    assert "s3:// URIs" in capsys.readouterr().err


def test_missing_sdk_says_how_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # `import sagemaker` fails, as without the SDK
    assert sagemaker_job.main(["train", *COMMON]) == 2
    err = capsys.readouterr().err
    assert ".venv-sagemaker/bin/python" in err and "`make test-sagemaker`" in err


# Deselected where the SDK is missing (tests/conftest.py); `make test-sagemaker` runs these in
# .venv-sagemaker, where they fail, not skip, if the SDK cannot be imported.
@pytest.mark.sagemaker_sdk
@pytest.mark.parametrize("command", ["train", "tune"])
def test_sdk_starts_the_job_with_our_image_and_contract(command, monkeypatch, capsys):
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="bucket")
        extra = ["--max-jobs", "2", "--range", "dropout=0.1:0.3"] if command == "tune" else []
        assert sagemaker_job.main([command, *COMMON, "--set", "epochs=2", *extra]) == 0
        name = capsys.readouterr().out.strip().splitlines()[-1]  # the SDK prints its own INFO lines
        sm = boto3.client("sagemaker")
        if command == "train":
            job = sm.describe_training_job(TrainingJobName=name)
            assert job["AlgorithmSpecification"]["TrainingImage"] == COMMON[1]
            assert job["HyperParameters"]["epochs"] == "2"
            assert job["InputDataConfig"][0]["ChannelName"] == "train"
        else:
            job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            objective = job["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
            assert objective["MetricName"] == "validation:accuracy"
