"""CI role: GitHub's OIDC provider and the role that one repository's main branch assumes to deploy.

Deployed once by hand (``npx cdk deploy <prefix>-CiRole -c githubRepo=owner/name``, plus
``-c githubOwnerId=<id> -c githubRepoId=<id>`` for a repository whose token subject carries GitHub's
immutable IDs). The role can do one
thing: assume the CDK bootstrap roles (deploy, file and image publishing, lookup) of this account and
region, which is all ``cdk deploy`` needs; CloudFormation's execution role does the rest.
"""
from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from .settings import Settings

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
BOOTSTRAP_ROLES = ("deploy-role", "file-publishing-role", "image-publishing-role", "lookup-role")


class CiRoleStack(Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, id, description="IMDB sentiment: GitHub OIDC deploy role for CI", **kwargs)
        assert settings.github_repo, "the CI role stack is only added when githubRepo is set"
        if settings.github_oidc_provider_arn:  # the account already has GitHub's provider (one per URL)
            provider_arn = settings.github_oidc_provider_arn
        else:
            provider = iam.OidcProviderNative(self, "GitHubOidc", url=GITHUB_OIDC_URL,
                                              client_ids=["sts.amazonaws.com"])
            provider_arn = provider.oidc_provider_arn

        subjects = settings.github_oidc_subjects
        self.role = iam.Role(
            self, "DeployRole",
            description=f"GitHub Actions on {settings.github_repo}@main: cdk deploy through the bootstrap roles",
            max_session_duration=Duration.hours(2),
            assumed_by=iam.WebIdentityPrincipal(provider_arn, conditions={
                "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                                 f"{GITHUB_OIDC_HOST}:sub": subjects[0] if len(subjects) == 1 else list(subjects)},
            }),
        )
        q = settings.bootstrap_qualifier
        self.role.add_to_policy(iam.PolicyStatement(
            sid="AssumeCdkBootstrapRoles", actions=["sts:AssumeRole"],
            resources=[f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/cdk-{q}-{role}-{Aws.ACCOUNT_ID}-{Aws.REGION}"
                       for role in BOOTSTRAP_ROLES]))
        CfnOutput(self, "DeployRoleArn", value=self.role.role_arn,
                  description="Set as the GitHub repository variable AWS_DEPLOY_ROLE_ARN")
