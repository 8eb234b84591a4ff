"""``build``: every stack of the CDK app on one ``App``, wired one way (the root ``app.py`` calls it)."""
from __future__ import annotations

from aws_cdk import App, AspectPriority, Aspects, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from .api import ApiStack
from .ci import CiRoleStack
from .common import RouteStrayLambdaLogs
from .data import DataStack
from .endpoint import EndpointStack
from .settings import Settings
from .site import SiteStack
from .training import TrainingStack


def build(app: App) -> dict[str, Stack]:
    """Create every stack on ``app`` from its context; a bad context value raises ``SettingsError``.

    Dependencies run one way: data <- training <- endpoint <- api <- site (the CI role stands alone and
    is only added when ``githubRepo`` is set). Values cross stacks as weak references
    (``Fn::GetStackOutput``, the current CDK default), so a retrained model's new artifact URI can flow
    to the endpoint without CloudFormation's export lock.
    """
    settings = Settings.from_context(app.node.try_get_context)
    settings.require_data_archive()  # before any stack exists, with the command that fetches it
    # Stacks are environment-agnostic: the account and region are the deploying credentials' (AWS_REGION
    # or the profile's region), and the templates are the same whatever machine synthesizes them.
    p = settings.stack_prefix
    stacks: dict[str, Stack] = {}
    stacks["data"] = data = DataStack(app, f"{p}-Data", settings=settings)
    stacks["training"] = training = TrainingStack(app, f"{p}-Training", settings=settings, data=data)
    training.add_stack_dependency(data)  # names the data bucket by name, not by reference
    stacks["endpoint"] = endpoint = EndpointStack(app, f"{p}-Endpoint", settings=settings, training=training)
    stacks["api"] = api = ApiStack(app, f"{p}-Api", settings=settings, endpoint=endpoint)
    stacks["site"] = SiteStack(app, f"{p}-Site", settings=settings, api=api)
    if settings.github_repo:
        stacks["ci"] = CiRoleStack(app, f"{p}-CiRole", settings=settings)

    Tags.of(app).add("project", "imdb-sentiment")
    Aspects.of(app).add(RouteStrayLambdaLogs(settings), priority=AspectPriority.MUTATING)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stacks
