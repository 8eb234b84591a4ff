"""One typed, validated settings object, read from CDK context (``cdk.json`` or ``-c key=value``).

Every key, its type, default and allowed values live here and nowhere else; ``docs/deploy.md`` has the
table for users. A bad value fails synth with a ``SettingsError`` that names the key, what it got and
what it accepts, before a single construct is created.

Values from ``cdk.json`` arrive typed (``true``, ``3072``, ``{...}``); values from ``-c key=value`` arrive
as strings (``"true"``, ``"3072"``, ``'{"epochs": "3"}'``). Both are accepted.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from model.hyperparameters import HyperparameterError, parse_bool, resolve

REPO_ROOT = Path(__file__).resolve().parent.parent

# CloudFormation waits at most one hour for a custom resource (ServiceTimeout 1..3600 s).
CFN_CUSTOM_RESOURCE_LIMIT_MINUTES = 60
# The Provider framework's total timeout stays this far under CloudFormation's limit, so the framework
# (not CloudFormation) reports a timeout, with a message, and the rollback stops the job.
PROVIDER_SLACK_MINUTES = 2
# Time a training job spends outside MaxRuntime/MaxWait: instance start, image pull, data download,
# model upload. The provider's total timeout covers the job's budget plus this.
TRAINING_STARTUP_MARGIN_MINUTES = 10

ENDPOINT_MODES = ("serverless", "provisioned")
ENDPOINT_NAME_MAX = 63  # SageMaker's limit on endpoint names
# SageMaker Serverless Inference: MemorySizeInMB is one of these; MaxConcurrency is 1..200.
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_MAX_CONCURRENCY = (1, 200)
# aws_logs.RetentionDays values (CloudWatch Logs accepts only these).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)

DATA_COMMANDS = "`make data` (or `python -m model.download`)"
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker endpoint / job name pattern
_GITHUB_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_QUALIFIER = re.compile(r"^[a-z0-9_-]{1,10}$")
_ML_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_ARN_OIDC = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$")


class SettingsError(ValueError):
    """A context value is missing or not allowed; the message names the key and what it accepts."""


@dataclass(frozen=True)
class Settings:
    # naming
    stack_prefix: str = "ImdbSentiment"
    endpoint_name: str = "imdb-sentiment"
    # data; None: where `make data` finds or puts it (model.download.find_archive)
    data_archive: Path | None = None
    retain_data: bool = False
    # training
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    training_instance_type: str = "ml.m5.xlarge"
    training_volume_gb: int = 30
    training_max_runtime_minutes: int = 40
    spot_training: bool = False
    training_max_wait_minutes: int = 45
    # endpoint
    endpoint_mode: str = "serverless"
    serverless_memory_mb: int = 3072
    serverless_max_concurrency: int = 5
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    max_instance_count: int = 2
    target_invocations_per_instance: int = 200
    model_server_workers: int | None = None  # None: 1 on serverless, the server's one per CPU otherwise
    latency_alarm_ms: int = 2000
    # API
    api_rate_limit: int = 10
    api_burst_limit: int = 20
    api_cloudwatch_role: bool = True
    xray_tracing: bool = False
    # hygiene
    log_retention_days: int = 30
    # CI
    github_repo: str | None = None
    github_oidc_provider_arn: str | None = None
    # GitHub's immutable numeric IDs of the repository's owner and of the repository, for repositories
    # whose OIDC subject carries them (created, renamed or transferred after 2026-06-18, or opted in)
    github_owner_id: str | None = None
    github_repo_id: str | None = None
    bootstrap_qualifier: str = "hnb659fds"

    # --- derived values
    @property
    def training_budget_minutes(self) -> int:
        """What the job may take by its own stopping condition (MaxWait covers MaxRuntime with spot)."""
        return self.training_max_wait_minutes if self.spot_training else self.training_max_runtime_minutes

    @property
    def provider_total_timeout_minutes(self) -> int:
        return self.training_budget_minutes + TRAINING_STARTUP_MARGIN_MINUTES

    @property
    def hosted_endpoint_name(self) -> str:
        """The SageMaker endpoint's name: ``endpointName`` when serverless, ``<endpointName>-<instance
        type>`` (``imdb-sentiment-m5-large``) when provisioned.

        SageMaker cannot update an instance-based endpoint to serverless, nor change the instance type
        of a variant registered with autoscaling (every provisioned variant here is). A name that changes
        with exactly those makes CloudFormation replace the endpoint (create the new one, then delete
        the old) where an in-place update would fail; counts, memory and models stay in-place updates.
        """
        if self.endpoint_mode == "serverless":
            return self.endpoint_name
        return f"{self.endpoint_name}-{self.instance_type.removeprefix('ml.').replace('.', '-')}"

    @property
    def github_oidc_subjects(self) -> tuple[str, ...]:
        """The ``sub`` claims of GitHub Actions tokens for this repository's ``main`` branch.

        By name (``repo:owner/name:ref:refs/heads/main``), or with immutable IDs when they are given. GitHub's
        documentation appends them with ``@`` (``repo:owner@123/name@456:...``), its changelog of 2026-04-23
        with ``-`` (``repo:owner-123/name-456:...``); both are trusted, and both name the one repository
        by IDs GitHub never reuses.
        """
        assert self.github_repo
        branch = ":ref:refs/heads/main"
        if not self.github_owner_id:
            return (f"repo:{self.github_repo}{branch}",)
        owner, name = self.github_repo.split("/")
        return tuple(f"repo:{owner}{d}{self.github_owner_id}/{name}{d}{self.github_repo_id}{branch}" for d in "@-")

    @property
    def resource_prefix(self) -> str:
        """``stackPrefix`` for names that must be lower case (S3 buckets)."""
        return self.stack_prefix.lower()

    # --- reading
    @classmethod
    def from_context(cls, get: Callable[[str], Any] | Mapping[str, Any]) -> "Settings":
        """Read every key through ``get(key)`` (``node.try_get_context``) or from a mapping."""
        lookup = get.get if isinstance(get, Mapping) else get
        r = _Reader(lookup)
        d = cls()
        s = cls(
            stack_prefix=r.name("stackPrefix", d.stack_prefix, re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,23}$"),
                                "letters, digits and '-', starting with a letter, at most 24 characters "
                                "(it also names the data bucket)"),
            endpoint_name=r.name("endpointName", d.endpoint_name, _NAME,
                                 "letters, digits and '-', at most 63 characters (SageMaker's rule)"),
            data_archive=r.path("dataArchive"),
            retain_data=r.boolean("retainData", d.retain_data),
            hyperparameters=r.hyperparameters("hyperparameters"),
            training_instance_type=r.name("trainingInstanceType", d.training_instance_type, _ML_INSTANCE,
                                          "a SageMaker instance type such as ml.m5.xlarge"),
            training_volume_gb=r.integer("trainingVolumeGb", d.training_volume_gb, 1, 16384),
            training_max_runtime_minutes=r.integer("trainingMaxRuntimeMinutes", d.training_max_runtime_minutes,
                                                   1, 24 * 60),
            spot_training=r.boolean("spotTraining", d.spot_training),
            training_max_wait_minutes=r.integer("trainingMaxWaitMinutes", d.training_max_wait_minutes, 1,
                                                24 * 60),
            endpoint_mode=r.choice("endpointMode", d.endpoint_mode, ENDPOINT_MODES),
            serverless_memory_mb=r.choice_int("serverlessMemoryMb", d.serverless_memory_mb, SERVERLESS_MEMORY_MB),
            serverless_max_concurrency=r.integer("serverlessMaxConcurrency", d.serverless_max_concurrency,
                                                 *SERVERLESS_MAX_CONCURRENCY),
            instance_type=r.name("instanceType", d.instance_type, _ML_INSTANCE,
                                 "a SageMaker instance type such as ml.m5.large"),
            instance_count=r.integer("instanceCount", d.instance_count, 1, 100),
            max_instance_count=r.integer("maxInstanceCount", d.max_instance_count, 1, 100),
            target_invocations_per_instance=r.integer("targetInvocationsPerInstance",
                                                      d.target_invocations_per_instance, 1, 1_000_000),
            model_server_workers=r.integer("modelServerWorkers", None, 1, 64),
            latency_alarm_ms=r.integer("latencyAlarmMs", d.latency_alarm_ms, 1, 60_000),
            api_rate_limit=r.integer("apiRateLimit", d.api_rate_limit, 1, 10_000),
            api_burst_limit=r.integer("apiBurstLimit", d.api_burst_limit, 1, 5_000),
            api_cloudwatch_role=r.boolean("apiCloudWatchRole", d.api_cloudwatch_role),
            xray_tracing=r.boolean("xrayTracing", d.xray_tracing),
            log_retention_days=r.choice_int("logRetentionDays", d.log_retention_days, LOG_RETENTION_DAYS),
            github_repo=r.optional_name("githubRepo", _GITHUB_REPO, "'owner/name' of the GitHub repository"),
            github_oidc_provider_arn=r.optional_name(
                "githubOidcProviderArn", _ARN_OIDC,
                "the ARN of an existing token.actions.githubusercontent.com OIDC provider"),
            github_owner_id=r.optional_name("githubOwnerId", _GITHUB_ID,
                                            "the numeric ID of the repository's owner (gh api repos/OWNER/NAME "
                                            "--jq .owner.id)"),
            github_repo_id=r.optional_name("githubRepoId", _GITHUB_ID,
                                           "the numeric ID of the repository (gh api repos/OWNER/NAME --jq .id)"),
            bootstrap_qualifier=r.name("@aws-cdk/core:bootstrapQualifier", d.bootstrap_qualifier, _QUALIFIER,
                                       "the `cdk bootstrap --qualifier` value: 1-10 of a-z, 0-9, '_' or '-'"),
        )
        s._check_relations()
        return s

    def _check_relations(self) -> None:
        if self.spot_training and self.training_max_wait_minutes < self.training_max_runtime_minutes:
            raise SettingsError(
                f"context 'trainingMaxWaitMinutes' ({self.training_max_wait_minutes}) must be >= "
                f"'trainingMaxRuntimeMinutes' ({self.training_max_runtime_minutes}) with spotTraining "
                "(SageMaker's MaxWaitTimeInSeconds covers the run time)")
        limit = CFN_CUSTOM_RESOURCE_LIMIT_MINUTES - PROVIDER_SLACK_MINUTES
        if self.provider_total_timeout_minutes > limit:
            key = "trainingMaxWaitMinutes" if self.spot_training else "trainingMaxRuntimeMinutes"
            raise SettingsError(
                f"context '{key}' ({self.training_budget_minutes}) is too long: CloudFormation waits at most "
                f"{CFN_CUSTOM_RESOURCE_LIMIT_MINUTES} minutes for the training-job resource, and the job needs "
                f"{TRAINING_STARTUP_MARGIN_MINUTES} more minutes to start and upload its model, so the allowed "
                f"values are 1..{limit - TRAINING_STARTUP_MARGIN_MINUTES}")
        if self.endpoint_mode == "provisioned" and self.max_instance_count < self.instance_count:
            raise SettingsError(
                f"context 'maxInstanceCount' ({self.max_instance_count}) must be >= 'instanceCount' "
                f"({self.instance_count})")
        if len(self.hosted_endpoint_name) > ENDPOINT_NAME_MAX:
            raise SettingsError(
                f"context 'endpointName' ({self.endpoint_name!r}) is too long for a provisioned endpoint: the name "
                f"with its instance type, {self.hosted_endpoint_name!r}, has {len(self.hosted_endpoint_name)} "
                f"characters and SageMaker allows {ENDPOINT_NAME_MAX}; shorten endpointName to at most "
                f"{ENDPOINT_NAME_MAX - len(self.hosted_endpoint_name) + len(self.endpoint_name)} characters")
        if (self.github_owner_id is None) != (self.github_repo_id is None):
            raise SettingsError(
                "context 'githubOwnerId' and 'githubRepoId' go together: the immutable OIDC subject names both "
                f"(got githubOwnerId={self.github_owner_id!r}, githubRepoId={self.github_repo_id!r})")
        if self.github_owner_id and not self.github_repo:
            raise SettingsError("context 'githubOwnerId' and 'githubRepoId' need 'githubRepo' (owner/name) as well")
        if self.api_burst_limit < self.api_rate_limit:
            raise SettingsError(
                f"context 'apiBurstLimit' ({self.api_burst_limit}) must be >= 'apiRateLimit' ({self.api_rate_limit})")

    def require_data_archive(self) -> Path:
        """The archive to upload; a missing file fails synth with the command that makes it.

        Without ``dataArchive`` it is where ``make data`` leaves it: the same lookup as
        ``python -m model.download`` ($IMDB_DATA, data/aclImdb_v1.tar.gz, the shared copy).
        """
        path = self.data_archive
        if path is None:
            from model.download import DownloadError, find_archive
            try:
                path = find_archive()
            except DownloadError as exc:
                raise SettingsError(f"context 'dataArchive' is not set, and the data lookup failed: {exc}") from None
            if path is None:
                raise SettingsError(
                    f"context 'dataArchive': no IMDB archive here yet. Run {DATA_COMMANDS} to fetch it "
                    "(into data/aclImdb_v1.tar.gz), or point the key at an aclImdb tar.gz, e.g. "
                    "-c dataArchive=path/to/aclImdb_v1.tar.gz")
        if not path.is_file():
            raise SettingsError(
                f"context 'dataArchive': {path} is not an archive file. Run {DATA_COMMANDS} to fetch the IMDB "
                "archive, or point the key (or IMDB_DATA) at an aclImdb tar.gz")
        return path


class _Reader:
    def __init__(self, lookup: Callable[[str], Any]):
        self._lookup = lookup

    def _get(self, key: str) -> Any:
        value = self._lookup(key)
        return None if value is None or value == "" else value

    def integer(self, key: str, default: int | None, low: int, high: int) -> int | None:
        raw = self._get(key)
        if raw is None:
            return default
        if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not re.fullmatch(r"[-+]?\d+", str(raw).strip()):
            raise SettingsError(f"context '{key}' must be a whole number in {low}..{high} (got {raw!r})")
        value = int(str(raw).strip())
        if not low <= value <= high:
            raise SettingsError(f"context '{key}' must be in {low}..{high} (got {value})")
        return value

    def choice_int(self, key: str, default: int, allowed: tuple[int, ...]) -> int:
        raw = self._get(key)
        if raw is None:
            return default
        text = str(raw).strip()
        if isinstance(raw, bool) or not text.isdigit() or int(text) not in allowed:
            raise SettingsError(
                f"context '{key}' must be one of {', '.join(map(str, allowed))} (got {raw!r})")
        return int(text)

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._get(key)
        if raw is None:
            return default
        if raw not in allowed:
            raise SettingsError(f"context '{key}' must be one of {', '.join(allowed)} (got {raw!r})")
        return raw

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._get(key)
        if raw is None:
            return default
        try:
            return parse_bool(raw)
        except ValueError:
            raise SettingsError(f"context '{key}' must be true or false (got {raw!r})") from None

    def name(self, key: str, default: str, pattern: re.Pattern[str], what: str) -> str:
        raw = self._get(key)
        if raw is None:
            return default
        if not isinstance(raw, str) or not pattern.fullmatch(raw):
            raise SettingsError(f"context '{key}' must be {what} (got {raw!r})")
        return raw

    def optional_name(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        raw = self._get(key)
        return None if raw is None else self.name(key, "", pattern, what)

    def path(self, key: str) -> Path | None:
        raw = self._get(key)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise SettingsError(f"context '{key}' must be a file path (got {raw!r})")
        path = Path(raw).expanduser()
        return path if path.is_absolute() else (REPO_ROOT / path).resolve()

    def hyperparameters(self, key: str) -> dict[str, str]:
        """Name -> value as SageMaker passes them (strings), checked at synth by the code ``train`` runs.

        SageMaker's own limits (100 entries, names of 1-256 and values of up to 2500 characters), then
        ``model.hyperparameters.resolve``: every name, value and ``preset``. Nothing is merged here; the
        job starts from the preset (``full`` unless ``preset`` is given) and overrides what is set.
        """
        raw = self._get(key)
        if raw is None:
            return {}
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"context '{key}' must be a JSON object such as "
                                    f"'{{\"epochs\": \"3\"}}' ({exc})") from None
        if not isinstance(raw, dict):
            raise SettingsError(f"context '{key}' must be an object of name -> value (got {raw!r})")
        if len(raw) > 100:
            raise SettingsError(f"context '{key}' has {len(raw)} entries; SageMaker allows at most 100")
        out: dict[str, str] = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not 0 < len(name) <= 256:
                raise SettingsError(f"context '{key}': names must be 1-256 characters (got {name!r})")
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float, str)):
                text = str(value)
            else:
                raise SettingsError(
                    f"context '{key}': value of {name!r} must be a string, number or boolean (got {value!r})")
            if len(text) > 2500:
                raise SettingsError(f"context '{key}': value of {name!r} is longer than SageMaker's 2500 characters")
            out[name] = text
        try:
            resolve(out)
        except HyperparameterError as exc:
            raise SettingsError(f"context '{key}': {exc}") from None
        return dict(sorted(out.items()))
