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


# --------------------------------------------------------------------------- what mutation testing found
# (`make mutation ARGS=settings`): defaults, bounds and relations that no test held to their values.

def _deploy_md_options() -> list[tuple[str, str, str]]:
    """(key, default, allowed) of docs/deploy.md's context options table."""
    text = (REPO / "docs" / "deploy.md").read_text()
    table = text.split("## Context options", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1], cells[2]))
    return rows


def _field(key: str) -> str:
    import dataclasses
    names = {f.name.replace("_", ""): f.name for f in dataclasses.fields(Settings)}
    return names[key.lower()]


def test_defaults_are_those_deploy_md_gives():
    s = Settings.from_context({})
    checked = 0
    for key, default, _ in _deploy_md_options():
        if "/" in key or key.startswith("@") or not re_fullmatch(r"`[^`]+`", default):
            continue
        value = getattr(s, _field(key))
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        assert shown == default.strip("`"), (key, value, default)
        checked += 1
    assert checked >= 18


def re_fullmatch(pattern: str, text: str) -> bool:
    import re
    return re.fullmatch(pattern, text) is not None


# what each range needs beside it to be valid as a whole
_COMPANIONS = {"instanceCount": {"maxInstanceCount": 100}, "maxInstanceCount": {"endpointMode": "provisioned"},
               "apiBurstLimit": {"apiRateLimit": 1}}


def test_every_numeric_range_deploy_md_gives_is_the_one_enforced():
    import re
    checked = 0
    for key, _, allowed in _deploy_md_options():
        m = re.fullmatch(r"(\d+)\.\.(\d+)", allowed)
        if not m or "/" in key:
            continue
        lo, hi = int(m[1]), int(m[2])
        extra = _COMPANIONS.get(key, {})
        for ok in (lo, hi):
            assert getattr(settings(**{key: ok, **extra}), _field(key)) == ok, (key, ok)
        for bad in (lo - 1, hi + 1):
            with pytest.raises(SettingsError, match=key):
                settings(**{key: bad, **extra})
        checked += 1
    assert checked >= 6  # volume, runtime, concurrency, instances, workers, latency
    # the pair in one row: apiRateLimit 1..10000, apiBurstLimit rate..5000
    assert settings(apiRateLimit=1, apiBurstLimit=1).api_burst_limit == 1
    assert settings(apiRateLimit=5000, apiBurstLimit=5000).api_rate_limit == 5000
    for bad in ({"apiRateLimit": 10001}, {"apiBurstLimit": 5001}, {"apiRateLimit": 30, "apiBurstLimit": 29}):
        with pytest.raises(SettingsError):
            settings(**bad)
    # instanceCount..100
    assert settings(maxInstanceCount=100).max_instance_count == 100
    for bad in (0, 101):
        with pytest.raises(SettingsError, match="maxInstanceCount"):
            settings(maxInstanceCount=bad)
    # runtime..48 (spot only)
    assert settings(spotTraining=True, trainingMaxRuntimeMinutes=40, trainingMaxWaitMinutes=48).training_max_wait_minutes == 48
    for bad in (39, 49):
        with pytest.raises(SettingsError, match="trainingMaxWaitMinutes"):
            settings(spotTraining=True, trainingMaxRuntimeMinutes=40, trainingMaxWaitMinutes=bad)
    assert settings(targetInvocationsPerInstance=1).target_invocations_per_instance == 1
    with pytest.raises(SettingsError, match="targetInvocationsPerInstance"):
        settings(targetInvocationsPerInstance=0)


def test_log_retention_is_one_of_cloudwatchs_values():
    """CloudWatch Logs accepts only these (PutRetentionPolicy); any other fails at deploy, not at synth."""
    from aws_cdk import aws_logs

    from stacks.settings import LOG_RETENTION_DAYS
    cloudwatch = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)
    assert LOG_RETENTION_DAYS == cloudwatch
    assert len(aws_logs.RetentionDays) == len(cloudwatch) + 1  # CDK's list: these and INFINITE


def test_instance_counts_may_be_equal_and_github_ids_go_together_with_the_repo():
    assert settings(endpointMode="provisioned", instanceCount=3, maxInstanceCount=3).max_instance_count == 3
    ids = {"githubOwnerId": "123", "githubRepoId": "456"}
    s = settings(githubRepo="owner/name", **ids)
    assert (s.github_owner_id, s.github_repo_id) == ("123", "456")
    for partial in ({"githubOwnerId": "123"}, {"githubRepoId": "456"}):
        with pytest.raises(SettingsError, match="go together"):
            settings(githubRepo="owner/name", **partial)
    with pytest.raises(SettingsError, match="need 'githubRepo'"):
        settings(**ids)


def test_hyperparameters_are_held_to_sagemakers_limits():
    """At most 100 entries, names of 1-256 characters (CreateTrainingJob's HyperParameters)."""
    with pytest.raises(SettingsError, match="has 101 entries; SageMaker allows at most 100"):
        settings(hyperparameters={f"h{i}": 1 for i in range(101)})
    with pytest.raises(SettingsError) as info:  # 100 is not too many; these names are unknown, though
        settings(hyperparameters={f"h{i}": 1 for i in range(100)})
    assert "entries" not in str(info.value)
    with pytest.raises(SettingsError, match="names must be 1-256 characters"):
        settings(hyperparameters={"x" * 257: 1})
    with pytest.raises(SettingsError) as info:
        settings(hyperparameters={"x" * 256: 1})
    assert "1-256" not in str(info.value)


def test_derived_names_are_read_as_attributes():
    s = settings(stackPrefix="My-Prefix", githubRepo="owner/name")
    assert s.resource_prefix == "my-prefix"
    assert s.github_oidc_subjects == ("repo:owner/name:ref:refs/heads/main",)


def test_api_throttling_defaults_and_hyperparameter_values_up_to_sagemakers_2500_characters():
    s = Settings.from_context({})
    assert (s.api_rate_limit, s.api_burst_limit) == (10, 20)  # deploy.md: `10` / `20`
    with pytest.raises(SettingsError, match="longer than SageMaker's 2500 characters"):
        settings(hyperparameters={"preset": "q" * 2501})
    with pytest.raises(SettingsError) as info:  # 2500 is not too long; no preset has that name, though
        settings(hyperparameters={"preset": "q" * 2500})
    assert "2500" not in str(info.value)


def test_a_serverless_endpoint_ignores_the_provisioned_instance_counts():
    assert settings(instanceCount=5).instance_count == 5  # maxInstanceCount stays 2: not checked


def test_an_empty_value_is_the_default():
    """`-c trainingVolumeGb=` gives an empty string: the key counts as unset."""
    assert settings(trainingVolumeGb="", logRetentionDays="").training_volume_gb == 30


def test_a_value_of_the_wrong_kind_is_a_settings_error_not_a_crash():
    for bad in (True, "abc", "3.5"):
        with pytest.raises(SettingsError, match="logRetentionDays"):
            settings(logRetentionDays=bad)


def test_hyperparameter_names_of_one_character_are_allowed_and_empty_ones_not():
    with pytest.raises(SettingsError, match="names must be 1-256 characters"):
        settings(hyperparameters={"": 1})
    with pytest.raises(SettingsError) as info:  # allowed as a name; unknown to train, though
        settings(hyperparameters={"x": 1})
    assert "1-256" not in str(info.value)


def test_a_failed_data_lookup_is_a_settings_error_naming_the_key(monkeypatch):
    import model.download
    from model.download import DownloadError

    def failing():
        raise DownloadError("IMDB_DATA=/nowhere does not exist")
    monkeypatch.setattr(model.download, "find_archive", failing)
    with pytest.raises(SettingsError, match="context 'dataArchive' is not set, and the data lookup failed: IMDB_DATA"):
        Settings.from_context({}).require_data_archive()
