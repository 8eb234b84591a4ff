"""Endpoint: the model (same image, ``serve``), its endpoint config and the endpoint, with alarms.

Model and EndpointConfig are unnamed, so a new model artifact replaces both (CloudFormation creates the new
pair, points the endpoint at the new config in place, then deletes the old pair); the endpoint keeps its
name. Serverless inference by default; provisioned instances with target-tracking autoscaling otherwise.
A switch SageMaker cannot make in place (instance-based to serverless, a new instance type under
autoscaling) changes the endpoint's name (``Settings.hosted_endpoint_name``), so it is a replacement.
"""
from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from .common import ack, log_group
from .settings import Settings
from .training import TrainingStack

VARIANT = "AllTraffic"


class EndpointStack(Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, training: TrainingStack, **kwargs) -> None:
        super().__init__(scope, id, description="IMDB sentiment: SageMaker model, endpoint config, endpoint", **kwargs)
        serverless = settings.endpoint_mode == "serverless"
        name = settings.hosted_endpoint_name

        # SageMaker writes the endpoint's container logs here; created first so it has a retention and
        # goes away with the stack.
        logs = log_group(self, "EndpointLogs", settings, name=f"/aws/sagemaker/Endpoints/{name}")

        role = iam.Role(self, "SageMakerModelRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                        description="SageMaker model: reads its one artifact, pulls its image, writes its logs")
        role.add_to_policy(iam.PolicyStatement(sid="ReadModelArtifact", actions=["s3:GetObject"],
                                               resources=[training.model_artifact_arn]))
        training.image.repository.grant_pull(role)
        role.add_to_policy(iam.PolicyStatement(
            sid="Logs", actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[logs.log_group_arn]))
        role.add_to_policy(iam.PolicyStatement(
            sid="Metrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}}))
        ack(role, "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; the "
            "latter is held to SageMaker's endpoint namespace by a condition.", "Resource::*")

        environment = {
            # Changes exactly when a new training job is due, so this template changes with the artifact
            # it reads from the training stack (a weak reference, which the CLI's diff cannot see).
            "MODEL_VERSION": training.model_version,
        }
        # A serverless container serves one request at a time: one worker with every CPU as its threads.
        # Instances serve many: the server's default of one worker per CPU unless modelServerWorkers says.
        workers = settings.model_server_workers or (1 if serverless else None)
        if workers:
            environment["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
        model = sagemaker.CfnModel(
            self, "Model",
            execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=training.image.image_uri,  # SageMaker starts it as `docker run <image> serve`
                model_data_url=training.model_artifact_uri,
                mode="SingleModel",
                environment=environment,
            ),
            # Serverless inference does not support network isolation; instances get it.
            enable_network_isolation=None if serverless else True,
        )
        model.node.add_dependency(role.node.find_child("DefaultPolicy"))

        if serverless:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT, model_name=model.attr_model_name,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=settings.serverless_memory_mb,
                    max_concurrency=settings.serverless_max_concurrency))
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT, model_name=model.attr_model_name, initial_variant_weight=1.0,
                instance_type=settings.instance_type, initial_instance_count=settings.instance_count)
        config = sagemaker.CfnEndpointConfig(self, "EndpointConfig", production_variants=[variant])

        self.endpoint = sagemaker.CfnEndpoint(self, "Endpoint", endpoint_name=name,
                                              endpoint_config_name=config.attr_endpoint_config_name)
        self.endpoint.node.add_dependency(logs)
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.endpoint_arn = self.endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN

        if not serverless:
            self._autoscaling(settings)
        self._alarms(settings)
        CfnOutput(self, "EndpointName", value=self.endpoint_name)

    def _autoscaling(self, settings: Settings) -> None:
        # No RoleARN: Application Auto Scaling uses (and creates when missing) its service-linked role.
        target = appscaling.CfnScalableTarget(
            self, "ScalableTarget",
            service_namespace="sagemaker",
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=settings.instance_count, max_capacity=settings.max_instance_count)
        appscaling.CfnScalingPolicy(
            self, "InvocationsPerInstance",
            policy_name="InvocationsPerInstance", policy_type="TargetTrackingScaling",
            scaling_target_id=target.ref,
            target_tracking_scaling_policy_configuration=(
                appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                    target_value=settings.target_invocations_per_instance,
                    predefined_metric_specification=appscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                        predefined_metric_type="SageMakerVariantInvocationsPerInstance"),
                    scale_in_cooldown=300, scale_out_cooldown=60)))

    def _alarms(self, settings: Settings) -> None:
        dims = {"EndpointName": self.endpoint_name, "VariantName": VARIANT}
        errors = cw.Metric(namespace="AWS/SageMaker", metric_name="Invocation5XXErrors", dimensions_map=dims,
                           statistic="Sum", period=Duration.minutes(5))
        self.errors_alarm = cw.Alarm(
            self, "Invocation5xxAlarm", metric=errors, threshold=1, evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="The model container answered with a 5xx (see /aws/sagemaker/Endpoints logs).")
        # ModelLatency is reported in microseconds.
        latency = cw.Metric(namespace="AWS/SageMaker", metric_name="ModelLatency", dimensions_map=dims,
                            statistic="p90", period=Duration.minutes(5))
        self.latency_alarm = cw.Alarm(
            self, "ModelLatencyAlarm", metric=latency, threshold=settings.latency_alarm_ms * 1000,
            evaluation_periods=3, datapoints_to_alarm=2,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"p90 model latency above {settings.latency_alarm_ms} ms in 2 of 3 five-minute periods.")
