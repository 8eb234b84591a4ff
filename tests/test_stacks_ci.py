"""CI role stack: GitHub's OIDC provider and a role only main of one repository can assume."""
from __future__ import annotations

import json

import pytest

from cdk_support import EXISTING_OIDC_PROVIDER, GITHUB_REPO, app_default, app_provisioned, build_only, synth  # noqa: F401
from stacks.settings import Settings, SettingsError
from stacks.ci import BOOTSTRAP_ROLES


def test_oidc_provider_for_github_actions(app_default):
    app_default.template("ci").has_resource_properties("AWS::IAM::OIDCProvider", {
        "Url": "https://token.actions.githubusercontent.com", "ClientIdList": ["sts.amazonaws.com"]})


def test_role_trusts_only_main_of_one_repository(app_default):
    (role,) = app_default.resources("ci", "AWS::IAM::Role").values()
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {"StringEquals": {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": f"repo:{GITHUB_REPO}:ref:refs/heads/main"}}
    assert "StringLike" not in json.dumps(statement)  # no wildcard subject
    assert "ManagedPolicyArns" not in role["Properties"]


def test_role_can_only_assume_the_cdk_bootstrap_roles(app_default):
    (policy,) = app_default.resources("ci", "AWS::IAM::Policy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    resources = [json.dumps(r) for r in statement["Resource"]]
    assert len(resources) == len(BOOTSTRAP_ROLES)
    for role, resource in zip(BOOTSTRAP_ROLES, resources):
        assert f":role/cdk-hnb659fds-{role}-" in resource and "*" not in resource


def test_stack_only_exists_with_a_repository():
    assert "ci" not in build_only()
    assert "ci" in build_only(githubRepo=GITHUB_REPO)


def test_existing_provider_can_be_reused(app_provisioned):
    assert not app_provisioned.resources("ci", "AWS::IAM::OIDCProvider")
    (role,) = app_provisioned.resources("ci", "AWS::IAM::Role").values()
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Federated": EXISTING_OIDC_PROVIDER}


def _trust(app):
    (role,) = app.resources("ci", "AWS::IAM::Role").values()
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return statement


def test_repository_with_immutable_subject_claims():
    """Repositories created, renamed or transferred after 2026-06-18 carry owner and repository IDs in
    the subject. GitHub's docs append them with '@', its changelog with '-': the role trusts both forms
    of this one repository's main branch, and not the name-only form any more (a recycled name)."""
    app = synth(githubRepo=GITHUB_REPO, githubOwnerId="123456", githubRepoId="456789")
    assert app.error is None, app.error
    statement = _trust(app)
    assert statement["Condition"] == {"StringEquals": {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": [
            "repo:example-org@123456/imdb-sentiment@456789:ref:refs/heads/main",
            "repo:example-org-123456/imdb-sentiment-456789:ref:refs/heads/main"]}}
    assert "StringLike" not in json.dumps(statement) and "*" not in json.dumps(statement["Condition"])


@pytest.mark.parametrize("context, expected", [
    ({"githubOwnerId": "123456"}, "'githubOwnerId' and 'githubRepoId' go together"),
    ({"githubRepoId": "456789"}, "'githubOwnerId' and 'githubRepoId' go together"),
    ({"githubOwnerId": "octocat", "githubRepoId": "1"}, "context 'githubOwnerId' must be the numeric ID"),
    ({"githubOwnerId": "1", "githubRepoId": "1*"}, "context 'githubRepoId' must be the numeric ID"),
])
def test_immutable_ids_are_validated(context, expected):
    with pytest.raises(SettingsError, match=expected):
        Settings.from_context({"githubRepo": GITHUB_REPO, **context})
