"""The CDK app's stacks, one per concern, and ``build`` that wires them (``app.py`` calls it)."""
from __future__ import annotations

import os

from aws_cdk import App, AspectPriority, Aspects, Environment, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from .api import ApiStack
from .ci import CiRoleStack
from .common import RouteStrayLambdaLogs
from .data import DataStack
from .endpoint import EndpointStack
from .settings import Settings, SettingsError
from .site import SiteStack
from .training import TrainingStack

__all__ = ["build", "Settings", "SettingsError"]


def build(app: App) -> dict[str, Stack]:
    """Create every stack on ``app`` from its context; a bad context value raises ``SettingsError``.

    Dependencies run one way: data <- training <- endpoint <- api <- site (the CI role stands alone and
    is only added when ``githubRepo`` is set). Values cross stacks as weak references
    (``Fn::GetStackOutput``, the current CDK default), so a retrained model's new artifact URI can flow
    to the endpoint without CloudFormation's export lock.
    """
    settings = Settings.from_context(app.node.try_get_context)
    settings.require_data_archive()  # before any stack exists, with the command that fetches it
    # Environment-agnostic unless the CLI knows the account (cdk deploy with credentials).
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    p = settings.stack_prefix
    stacks: dict[str, Stack] = {}
    stacks["data"] = data = DataStack(app, f"{p}-Data", settings=settings, env=env)
    stacks["training"] = training = TrainingStack(app, f"{p}-Training", settings=settings, data=data, env=env)
    training.add_stack_dependency(data)  # names the data bucket by name, not by reference
    stacks["endpoint"] = endpoint = EndpointStack(app, f"{p}-Endpoint", settings=settings, training=training,
                                                  env=env)
    stacks["api"] = api = ApiStack(app, f"{p}-Api", settings=settings, endpoint=endpoint, env=env)
    stacks["site"] = SiteStack(app, f"{p}-Site", settings=settings, api=api, env=env)
    if settings.github_repo:
        stacks["ci"] = CiRoleStack(app, f"{p}-CiRole", settings=settings, env=env)

    Tags.of(app).add("project", "imdb-sentiment")
    Aspects.of(app).add(RouteStrayLambdaLogs(settings), priority=AspectPriority.MUTATING)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stacks
