"""Context validation: every bad value fails synth with a message naming the key and what it accepts."""
from __future__ import annotations

import pytest

from cdk_support import REPO, tiny_archive
from stacks.settings import (CFN_CUSTOM_RESOURCE_LIMIT_MINUTES, PROVIDER_SLACK_MINUTES, SERVERLESS_MEMORY_MB,
                             TRAINING_STARTUP_MARGIN_MINUTES, Settings, SettingsError)


def settings(**context) -> Settings:
    return Settings.from_context({"dataArchive": str(tiny_archive()), **context})


def test_defaults_are_the_documented_serverless_deployment():
    s = Settings.from_context({})
    assert s.endpoint_mode == "serverless"
    assert s.serverless_memory_mb in SERVERLESS_MEMORY_MB
    assert s.data_archive is None  # where `make data` finds or puts it
    assert s.hyperparameters == {}
    assert not s.spot_training and not s.retain_data
    assert s.bootstrap_qualifier == "hnb659fds"
    assert s.github_repo is None


@pytest.mark.parametrize("key, value, expected", [
    ("endpointMode", "gpu", "context 'endpointMode' must be one of serverless, provisioned (got 'gpu')"),
    ("serverlessMemoryMb", 1500, "context 'serverlessMemoryMb' must be one of 1024, 2048, 3072, 4096, 5120, 6144"),
    ("serverlessMemoryMb", "8192", "'serverlessMemoryMb' must be one of 1024, 2048"),
    ("serverlessMaxConcurrency", 0, "context 'serverlessMaxConcurrency' must be in 1..200 (got 0)"),
    ("serverlessMaxConcurrency", 201, "context 'serverlessMaxConcurrency' must be in 1..200"),
    ("instanceCount", -1, "context 'instanceCount' must be in 1..100 (got -1)"),
    ("instanceCount", "two", "context 'instanceCount' must be a whole number in 1..100 (got 'two')"),
    ("trainingMaxRuntimeMinutes", -5, "context 'trainingMaxRuntimeMinutes' must be in 1..1440 (got -5)"),
    ("trainingVolumeGb", 1.5, "context 'trainingVolumeGb' must be a whole number"),
    ("apiRateLimit", 0, "context 'apiRateLimit' must be in 1..10000"),
    ("spotTraining", "maybe", "context 'spotTraining' must be true or false (got 'maybe')"),
    ("logRetentionDays", 10, "context 'logRetentionDays' must be one of 1, 3, 5, 7, 14, 30"),
    ("githubRepo", "not a repo", "context 'githubRepo' must be 'owner/name' of the GitHub repository"),
    ("githubRepo", "owner/name/extra", "context 'githubRepo' must be 'owner/name'"),
    ("trainingInstanceType", "m5.xlarge", "context 'trainingInstanceType' must be a SageMaker instance type"),
    ("endpointName", "bad_name!", "context 'endpointName' must be letters, digits and '-'"),
    ("stackPrefix", "x" * 30, "context 'stackPrefix' must be letters, digits and '-'"),
    ("hyperparameters", "{epochs: 3}", "context 'hyperparameters' must be a JSON object"),
    ("hyperparameters", ["epochs"], "context 'hyperparameters' must be an object of name -> value"),
    ("hyperparameters", {"epochs": [1, 2]}, "value of 'epochs' must be a string, number or boolean"),
    # checked by the code `train` runs, so a typo fails synth rather than the training job
    ("hyperparameters", {"epoch": 3}, "context 'hyperparameters': unknown hyperparameter 'epoch'; known: "),  # the list follows
    ("hyperparameters", '{"epochs": "three"}', "context 'hyperparameters': hyperparameter epochs='three' is not a "
                                               "valid int: a whole number"),
    ("hyperparameters", {"bidirectional": "maybe"}, "bidirectional='maybe' is not a valid bool: true or false"),
    ("hyperparameters", {"dropout": 1.5}, "context 'hyperparameters': hyperparameter dropout=1.5: must be in [0, 1)"),
    ("hyperparameters", {"preset": "huge"}, "context 'hyperparameters': unknown preset 'huge'; choose one of full, "
                                            "quick, tiny, original"),
])
def test_bad_values_name_the_key_and_the_allowed_values(key, value, expected):
    with pytest.raises(SettingsError) as info:
        settings(**{key: value})
    assert expected in str(info.value)


def test_cli_strings_are_parsed_like_cdk_json_values():
    s = settings(spotTraining="true", serverlessMemoryMb="2048", instanceCount="2", maxInstanceCount="3",
                 endpointMode="provisioned", hyperparameters='{"epochs": 3, "bidirectional": false}',
                 trainingMaxWaitMinutes="45")
    assert s.spot_training is True and s.serverless_memory_mb == 2048 and s.instance_count == 2
    assert s.hyperparameters == {"bidirectional": "false", "epochs": "3"}  # SageMaker-style strings
    assert settings(hyperparameters={"preset": "quick", "epochs": 3}).hyperparameters == {"epochs": "3",
                                                                                           "preset": "quick"}


def test_a_misspelt_hyperparameter_fails_cdk_synth_with_the_key_named(tmp_path):
    """What `cdk synth -c hyperparameters=...` runs: app.py, with cdk.json's context and the -c values in
    CDK_CONTEXT_JSON."""
    import json
    import os
    import subprocess
    import sys

    context = {**json.loads((REPO / "cdk.json").read_text())["context"], "dataArchive": str(tiny_archive()),
               "hyperparameters": {"learning_rte": "0.01"}}
    run = subprocess.run([sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)})
    assert run.returncode == 1
    assert "error: context 'hyperparameters': unknown hyperparameter 'learning_rte'; known: " in run.stderr
    assert "learning_rate" in run.stderr and "Traceback" not in run.stderr
    assert not list(tmp_path.iterdir())  # nothing synthesized


def test_relations_between_keys():
    with pytest.raises(SettingsError, match="'maxInstanceCount' \\(1\\) must be >= 'instanceCount' \\(2\\)"):
        settings(endpointMode="provisioned", instanceCount=2, maxInstanceCount=1)
    with pytest.raises(SettingsError, match="'trainingMaxWaitMinutes' \\(20\\) must be >= 'trainingMaxRuntimeMinutes'"):
        settings(spotTraining=True, trainingMaxRuntimeMinutes=30, trainingMaxWaitMinutes=20)
    with pytest.raises(SettingsError, match="'apiBurstLimit' \\(5\\) must be >= 'apiRateLimit' \\(10\\)"):
        settings(apiRateLimit=10, apiBurstLimit=5)


def test_provisioned_endpoint_name_with_its_instance_type_fits_sagemakers_limit():
    assert settings(endpointName="e" * 63).hosted_endpoint_name == "e" * 63  # serverless: the name itself
    assert settings(endpointName="e" * 54, endpointMode="provisioned").hosted_endpoint_name == "e" * 54 + "-m5-large"
    with pytest.raises(SettingsError) as info:
        settings(endpointName="e" * 55, endpointMode="provisioned")
    message = str(info.value)
    assert "context 'endpointName'" in message and "64 characters" in message and "at most 54" in message


def test_training_budget_fits_cloudformations_hour():
    limit = CFN_CUSTOM_RESOURCE_LIMIT_MINUTES - PROVIDER_SLACK_MINUTES - TRAINING_STARTUP_MARGIN_MINUTES
    assert settings(trainingMaxRuntimeMinutes=limit).provider_total_timeout_minutes <= 60 - PROVIDER_SLACK_MINUTES
    with pytest.raises(SettingsError) as info:
        settings(trainingMaxRuntimeMinutes=limit + 1)
    assert "context 'trainingMaxRuntimeMinutes'" in str(info.value) and f"1..{limit}" in str(info.value)
    with pytest.raises(SettingsError, match="context 'trainingMaxWaitMinutes'"):
        settings(spotTraining=True, trainingMaxRuntimeMinutes=30, trainingMaxWaitMinutes=limit + 1)
    # Every allowed combination keeps MaxRuntime (or MaxWait) + start-up margin <= provider timeout < 1 hour.
    for spot, runtime, wait in ((False, 1, 45), (False, limit, 45), (True, 10, limit), (True, limit, limit)):
        s = settings(spotTraining=spot, trainingMaxRuntimeMinutes=runtime, trainingMaxWaitMinutes=wait)
        budget = wait if spot else runtime
        assert budget + TRAINING_STARTUP_MARGIN_MINUTES <= s.provider_total_timeout_minutes < 60


def test_missing_archive_names_the_command_that_fetches_it(tmp_path):
    s = Settings.from_context({"dataArchive": str(tmp_path / "nowhere.tar.gz")})
    with pytest.raises(SettingsError) as info:
        s.require_data_archive()
    message = str(info.value)
    assert "context 'dataArchive'" in message and "make data" in message and "python -m model.download" in message


def test_default_archive_is_where_make_data_leaves_it(tmp_path, monkeypatch):
    import model.download

    archive = tmp_path / "aclImdb_v1.tar.gz"
    archive.write_bytes(tiny_archive().read_bytes())
    monkeypatch.setattr(model.download, "find_archive", lambda: archive)
    assert Settings.from_context({}).require_data_archive() == archive
    monkeypatch.setattr(model.download, "find_archive", lambda: None)
    with pytest.raises(SettingsError, match="no IMDB archive here yet. Run `make data`"):
        Settings.from_context({}).require_data_archive()
    monkeypatch.setattr(model.download, "find_archive", lambda: tmp_path)  # IMDB_DATA=<extracted folder>
    with pytest.raises(SettingsError, match="is not an archive file"):
        Settings.from_context({}).require_data_archive()


def test_relative_archive_paths_are_read_from_the_repository_root():
    s = Settings.from_context({"dataArchive": "../shared/data/aclImdb_v1_labeled.tar.gz"})
    assert s.data_archive == (REPO / "../shared/data/aclImdb_v1_labeled.tar.gz").resolve()


def test_bad_context_fails_the_app_before_any_stack_exists():
    import aws_cdk as cdk
    from stacks import build

    app = cdk.App(context={"dataArchive": str(tiny_archive()), "endpointMode": "bogus"})
    with pytest.raises(SettingsError, match="endpointMode"):
        build(app)
    assert not [c for c in app.node.children if isinstance(c, cdk.Stack)]
    missing = cdk.App(context={"dataArchive": "/nonexistent/aclImdb.tar.gz"})
    with pytest.raises(SettingsError, match="make data"):
        build(missing)
