"""Training: the model image, the SageMaker execution role and the training job as a custom resource."""
from __future__ import annotations

import hashlib
import json

from aws_cdk import Aws, CfnOutput, CustomResource, Duration, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

# What the training log prints and SageMaker scrapes: one definition, shared with scripts/sagemaker_job.py.
from model.metrics import metric_attribute, metric_definitions

from .common import ARCHITECTURE, PYTHON_RUNTIME, ack, log_group
from .data import CHECKPOINTS_PREFIX, MODELS_PREFIX, DataStack
from .settings import CFN_CUSTOM_RESOURCE_LIMIT_MINUTES, REPO_ROOT, Settings

def job_name_prefix(settings: Settings) -> str:
    """Training job names are ``<prefix>-<16 hex>[-r<n>]``: at most 63 characters."""
    return settings.endpoint_name[:40].rstrip("-")


class TrainingStack(Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, data: DataStack, **kwargs) -> None:
        super().__init__(scope, id, description="IMDB sentiment: model image and SageMaker training job", **kwargs)
        # One image, two commands: SageMaker runs `docker run <image> train` here and `serve` on the endpoint.
        self.image = ecr_assets.DockerImageAsset(
            self, "ModelImage", directory=str(REPO_ROOT / "model"), platform=ecr_assets.Platform.LINUX_AMD64)

        prefix = job_name_prefix(settings)
        #: changes whenever the job's name can (its prefix, image, data, output bucket, hyperparameters), so
        #: the endpoint template that reads the job's artifact through a weak reference changes with it
        self.model_version = hashlib.sha256(json.dumps(
            {"prefix": prefix, "bucket": settings.resource_prefix, "image": self.image.asset_hash,
             "data": data.data_hash, "hyperparameters": dict(settings.hyperparameters)},
            sort_keys=True).encode()).hexdigest()[:16]

        bucket = s3.Bucket.from_bucket_name(self, "DataBucket", data.bucket_name)
        role = iam.Role(self, "SageMakerTrainingRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                        description="SageMaker training job: reads its data, writes its model, pulls its image")
        role.add_to_policy(iam.PolicyStatement(
            sid="ReadTrainingData", actions=["s3:GetObject"], resources=[bucket.arn_for_objects(data.archive_key)]))
        role.add_to_policy(iam.PolicyStatement(
            sid="ListTrainingData", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{data.data_prefix}*"]}}))
        # Job names are decided at deploy time (a content hash): output and checkpoint grants are held to
        # this app's job-name prefix.
        role.add_to_policy(iam.PolicyStatement(sid="WriteModel", actions=["s3:PutObject"],
                                               resources=[bucket.arn_for_objects(f"{MODELS_PREFIX}{prefix}-*")]))
        prefixes = [MODELS_PREFIX]
        if settings.spot_training:
            role.add_to_policy(iam.PolicyStatement(
                sid="Checkpoints", actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{CHECKPOINTS_PREFIX}{prefix}-*")]))
            role.add_to_policy(iam.PolicyStatement(
                sid="ListCheckpoints", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{CHECKPOINTS_PREFIX}{prefix}-*"]}}))
            prefixes.append(CHECKPOINTS_PREFIX)
        wildcards = [f"Resource::arn:<AWS::Partition>:s3:::{data.bucket_name_pattern}/{p}{prefix}-*" for p in prefixes]
        self.image.repository.grant_pull(role)
        training_logs = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/TrainingJobs"
        role.add_to_policy(iam.PolicyStatement(
            sid="Logs", actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                                 "logs:DescribeLogStreams"],
            resources=[training_logs, f"{training_logs}:log-stream:*"]))
        role.add_to_policy(iam.PolicyStatement(
            sid="Metrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}))
        ack(role, "AwsSolutions-IAM5",
            "Prefix-scoped: the job writes only under models/<this app's job prefix>- (and checkpoints/ with spot "
            "training), and logs only to SageMaker's training log group; ecr:GetAuthorizationToken and "
            "cloudwatch:PutMetricData have no resource-level permissions (the latter is held to SageMaker's "
            "training namespace by a condition).",
            *wildcards,
            "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/"
            "TrainingJobs:log-stream:*",
            "Resource::*")

        # --- the custom resource
        job_arns = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:training-job/{prefix}-*"
        code = lambda_.Code.from_asset(str(REPO_ROOT / "lambda" / "training_job"),
                                       exclude=["__pycache__", "*.pyc"])
        handlers = {}
        # on_event retries CreateTrainingJob for up to two minutes while a new role propagates in IAM.
        for key, handler, timeout, actions in (
                ("OnEvent", "handler.on_event", Duration.minutes(3),
                 ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"]),
                ("IsComplete", "handler.is_complete", Duration.minutes(1),
                 ["sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"])):
            fn_role = iam.Role(self, f"{key}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
            logs = log_group(self, f"{key}Logs", settings)
            fn = lambda_.Function(
                self, f"{key}Handler", runtime=PYTHON_RUNTIME, architecture=ARCHITECTURE, code=code,
                handler=handler, timeout=timeout, memory_size=256, role=fn_role, log_group=logs,
                description=f"Custom::SageMakerTrainingJob {handler}")
            logs.grant_write(fn_role)
            fn_role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[job_arns]))
            if key == "OnEvent":
                fn_role.add_to_policy(iam.PolicyStatement(
                    actions=["iam:PassRole"], resources=[role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
            ack(fn_role, "AwsSolutions-IAM5",
                "Training job names are <prefix>-<content hash>, decided at deploy time; the grant is held to "
                "this app's name prefix.",
                "Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/"
                f"{prefix}-*")
            handlers[key] = fn

        framework_logs = log_group(self, "ProviderLogs", settings)
        provider = cr.Provider(
            self, "TrainingJobProvider",
            on_event_handler=handlers["OnEvent"], is_complete_handler=handlers["IsComplete"],
            query_interval=Duration.minutes(1),
            total_timeout=Duration.minutes(settings.provider_total_timeout_minutes),
            log_group=framework_logs,
            disable_waiter_state_machine_logging=False,
            waiter_state_machine_log_options=cr.LogOptions(
                # Step Functions delivers logs as a vended log source: under /aws/vendedlogs/ CloudWatch Logs
                # needs no resource-policy entry per group, whose 5,120-character limit busy accounts reach.
                destination=log_group(self, "WaiterLogs", settings,
                                      name=f"/aws/vendedlogs/states/{self.stack_name}-TrainingJobWaiter"),
                level=sfn.LogLevel.ALL,
                include_execution_data=False),
        )
        self._ack_provider(provider, handlers)

        self.job = CustomResource(
            self, "TrainingJob", service_token=provider.service_token,
            resource_type="Custom::SageMakerTrainingJob",
            service_timeout=Duration.minutes(CFN_CUSTOM_RESOURCE_LIMIT_MINUTES),
            properties={
                "JobNamePrefix": prefix,
                "TrainingImage": self.image.image_uri,
                "RoleArn": role.role_arn,
                "TrainDataUri": data.train_data_uri,
                # New with every creation of the data stack, as is the bucket the artifact lives in: a
                # deploy after a destroy trains again instead of adopting the finished job of the same
                # name, whose model.tar.gz went with the old bucket.
                "DataStackId": data.stack_id,
                "OutputPath": data.output_uri,
                "InstanceType": settings.training_instance_type,
                "InstanceCount": "1",
                "VolumeSizeInGB": str(settings.training_volume_gb),
                "MaxRuntimeInSeconds": str(settings.training_max_runtime_minutes * 60),
                "Spot": str(settings.spot_training).lower(),
                "MaxWaitTimeInSeconds": str(settings.training_max_wait_minutes * 60),
                "CheckpointUri": data.checkpoint_uri,
                # The image holds everything it needs (NLTK stopwords included): no network in the job.
                "EnableNetworkIsolation": "true",
                "HyperParameters": dict(settings.hyperparameters),
                "MetricDefinitions": metric_definitions(),
            },
        )
        # The role's policy must exist before SageMaker assumes the role.
        self.job.node.add_dependency(role.node.find_child("DefaultPolicy"))

        self.model_artifact_uri = self.job.get_att_string("ModelArtifactUri")
        #: the artifact's object ARN, for the model role's exact s3:GetObject grant
        self.model_artifact_arn = self.job.get_att_string("ModelArtifactArn")
        self.training_job_name = self.job.get_att_string("TrainingJobName")
        CfnOutput(self, "ModelArtifactUri", value=self.model_artifact_uri)
        CfnOutput(self, "TrainingJobName", value=self.training_job_name)
        for output, metric in (("ValidationAccuracy", "validation:accuracy"), ("TestAccuracy", "test:accuracy")):
            CfnOutput(self, output, value=self.job.get_att_string(metric_attribute(metric)))

    def _ack_provider(self, provider: cr.Provider, handlers: dict[str, lambda_.Function]) -> None:
        """Findings on the Lambdas, roles and state machine that the CDK Provider framework generates."""
        reason = ("CDK-generated Provider framework: CDK writes these roles (AWSLambdaBasicExecutionRole, and "
                  "lambda:InvokeFunction on the handler ARNs with their version/alias suffix) and picks the "
                  "Node.js runtime of its functions.")
        invoke = [f"Resource::<{self.get_logical_id(fn.node.default_child)}.Arn>:*" for fn in handlers.values()]
        for name in ("framework-onEvent", "framework-isComplete", "framework-onTimeout"):
            fn = provider.node.find_child(name)
            ack(fn, "AwsSolutions-IAM4", reason,
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
            ack(fn, "AwsSolutions-IAM5", reason, *invoke)
            ack(fn, "AwsSolutions-L1", reason)
        waiter = provider.node.find_child("waiter-state-machine")
        ack(waiter, "AwsSolutions-IAM5", reason, *(
            f"Resource::<{self.get_logical_id(provider.node.find_child(name).node.default_child)}.Arn>:*"
            for name in ("framework-isComplete", "framework-onTimeout")))
        ack(waiter, "AwsSolutions-IAM5",
            "CDK-generated: Step Functions log delivery (logs:CreateLogDelivery and friends) has no resource-level "
            "permissions, so CDK grants it on '*'.", "Resource::*")
        ack(waiter, "AwsSolutions-SF2",
            "CDK-generated Provider waiter state machine: the construct does not expose X-Ray tracing; it logs "
            "every state to its log group instead.")
