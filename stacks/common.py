"""Small pieces every stack uses: cdk-nag acknowledgements, log groups, private buckets, Lambda runtime."""
from __future__ import annotations

import jsii
from aws_cdk import Acknowledgment, CfnResource, Duration, IAspect, RemovalPolicy, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from .settings import LOG_RETENTION_DAYS, Settings

# Our own Lambda functions: the newest Python that Lambda and the installed aws-cdk-lib both offer
# (cdk-nag's AwsSolutions-L1 asks for the latest), on Graviton (cheaper; standard library + boto3 only).
PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64


def ack(construct: IConstruct, rule: str, reason: str, *findings: str) -> None:
    """Acknowledge one cdk-nag rule on one construct (and its children), with a reason.

    ``findings`` narrows a rule that reports several findings per resource (AwsSolutions-IAM5 reports
    one per wildcard): each becomes ``RULE[finding]`` and nothing else is acknowledged.
    """
    ids = [f"{rule}[{f}]" for f in findings] if findings else [rule]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


# RetentionDays members in the order of their day counts (INFINITE last, not offered).
_RETENTION = dict(zip(LOG_RETENTION_DAYS, [m for m in logs.RetentionDays if m is not logs.RetentionDays.INFINITE]))


def retention(settings: Settings) -> logs.RetentionDays:
    return _RETENTION[settings.log_retention_days]


def log_group(scope: Construct, id: str, settings: Settings, name: str | None = None) -> logs.LogGroup:
    """A log group that keeps ``logRetentionDays`` of logs and goes away with ``cdk destroy``."""
    return logs.LogGroup(scope, id, log_group_name=name,
                         retention=retention(settings),
                         removal_policy=RemovalPolicy.DESTROY)


def bucket_removal(settings: Settings, *, data: bool) -> dict:
    """Removal settings: data and model buckets are kept only with ``retainData=true``."""
    if data and settings.retain_data:
        return {"removal_policy": RemovalPolicy.RETAIN, "auto_delete_objects": False}
    return {"removal_policy": RemovalPolicy.DESTROY, "auto_delete_objects": True}


def access_logs_bucket(scope: Construct, id: str, settings: Settings, *,
                       object_ownership: s3.ObjectOwnership = s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                       ) -> s3.Bucket:
    """The bucket that receives S3 server access logs (and CloudFront logs, which need ACLs)."""
    bucket = s3.Bucket(
        scope, id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=object_ownership,
        lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(settings.log_retention_days))],
        **bucket_removal(settings, data=False),
    )
    ack(bucket, "AwsSolutions-S1",
        "This is the access-log bucket itself; logging it into itself would loop, and a second log bucket "
        "would only move the question one bucket further.")
    return bucket


def private_bucket(scope: Construct, id: str, settings: Settings, *, logs_bucket: s3.IBucket, logs_prefix: str,
                   data: bool, versioned: bool = False, bucket_name: str | None = None,
                   lifecycle_rules: list[s3.LifecycleRule] | None = None) -> s3.Bucket:
    """Encrypted, SSL-only, no public access, server access logs on."""
    return s3.Bucket(
        scope, id,
        bucket_name=bucket_name,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=versioned,
        server_access_logs_bucket=logs_bucket,
        server_access_logs_prefix=logs_prefix,
        lifecycle_rules=lifecycle_rules,
        **bucket_removal(settings, data=data),
    )


def ack_bucket_deployment(stack: Stack, settings: Settings, destination: s3.Bucket, what: str,
                          *more_findings: str) -> None:
    """Findings on the Lambda that BucketDeployment brings (a CDK-generated singleton, one per stack)."""
    handler = next(c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
    reason = (f"CDK-generated BucketDeployment handler ({what}): CDK writes its role and picks its runtime; "
              "the grants are CDK's read of its own asset bucket and write of the one destination bucket.")
    ack(handler, "AwsSolutions-IAM4", reason,
        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
    ack(handler, "AwsSolutions-L1", reason)
    ack(handler, "AwsSolutions-IAM5", reason,
        "Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*", "Action::s3:Abort*",
        "Action::s3:DeleteObject*",
        f"Resource::arn:<AWS::Partition>:s3:::cdk-{settings.bootstrap_qualifier}-assets-<AWS::AccountId>-"
        "<AWS::Region>/*",
        f"Resource::<{stack.get_logical_id(destination.node.default_child)}.Arn>/*",
        *more_findings)


@jsii.implements(IAspect)
class RouteStrayLambdaLogs:
    """Give every Lambda function that CDK generates without a log group (the S3 auto-delete provider) a
    stack-level log group with retention that ``cdk destroy`` removes, instead of the /aws/lambda/<name>
    group Lambda would create on first run and leave behind."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CfnResource) or node.cfn_resource_type != "AWS::Lambda::Function":
            return
        if isinstance(node, lambda_.CfnFunction) and node.logging_config is not None:
            return  # our functions, BucketDeployment and the Provider framework already have one
        stack = Stack.of(node)
        group = stack.node.try_find_child("CdkHelperLogs") or log_group(stack, "CdkHelperLogs", self._settings)
        node.add_property_override("LoggingConfig.LogGroup", group.log_group_name)
