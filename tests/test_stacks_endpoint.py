"""Endpoint stack: unnamed model and config, named endpoint, serverless by default, alarms."""
from __future__ import annotations

import json

from aws_cdk.assertions import Match

from cdk_support import app_default, app_provisioned  # noqa: F401  (fixtures)


def test_model_runs_the_training_image_on_the_trained_artifact(app_default):
    (model,) = app_default.resources("endpoint", "AWS::SageMaker::Model").values()
    props = model["Properties"]
    assert "ModelName" not in props  # unnamed: a new artifact replaces it cleanly
    container = props["PrimaryContainer"]
    (job,) = app_default.resources("training", "Custom::SageMakerTrainingJob").values()
    assert container["Image"] == job["Properties"]["TrainingImage"]  # one image: train and serve
    # The artifact URI is the training job's attribute, read from the training stack's outputs.
    assert "Fn::GetStackOutput" in container["ModelDataUrl"]
    assert container["ModelDataUrl"]["Fn::GetStackOutput"]["StackName"] == app_default.stacks["training"].stack_name
    env = container["Environment"]
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"
    assert env["MODEL_VERSION"] == app_default.stacks["training"].model_version
    assert "EnableNetworkIsolation" not in props  # serverless inference does not support it


def test_serverless_by_default(app_default):
    t = app_default.template("endpoint")
    t.has_resource_properties("AWS::SageMaker::EndpointConfig", {
        "ProductionVariants": [{"VariantName": "AllTraffic",
                                "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 5},
                                "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]}}],
    })
    (config,) = app_default.resources("endpoint", "AWS::SageMaker::EndpointConfig").values()
    assert "EndpointConfigName" not in config["Properties"]
    t.has_resource_properties("AWS::SageMaker::Endpoint", {
        "EndpointName": "imdb-sentiment",
        "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]},
    })
    t.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    assert app_default.templates["endpoint"]["Outputs"]["EndpointName"]["Value"] == {
        "Fn::GetAtt": ["Endpoint", "EndpointName"]}


def test_alarms_on_5xx_and_latency(app_default):
    t = app_default.template("endpoint")
    dims = [{"Name": "EndpointName", "Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}},
            {"Name": "VariantName", "Value": "AllTraffic"}]
    t.has_resource_properties("AWS::CloudWatch::Alarm", {
        "Namespace": "AWS/SageMaker", "MetricName": "Invocation5XXErrors", "Dimensions": dims,
        "Statistic": "Sum", "Threshold": 1, "TreatMissingData": "notBreaching"})
    t.has_resource_properties("AWS::CloudWatch::Alarm", {
        "Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Dimensions": dims,
        "Threshold": 2000 * 1000})  # microseconds


def test_model_role_reads_exactly_one_artifact(app_default):
    (policy,) = [p for p in app_default.resources("endpoint", "AWS::IAM::Policy").values()
                 if "SageMakerModelRole" in json.dumps(p["Properties"]["Roles"])]
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    read = statements["ReadModelArtifact"]
    assert read["Action"] == "s3:GetObject"
    assert "Fn::GetStackOutput" in json.dumps(read["Resource"]) and "*" not in json.dumps(read["Resource"])
    assert json.dumps(statements["Logs"]["Resource"]) == json.dumps({"Fn::GetAtt": [_log_group(app_default), "Arn"]})


def _log_group(app):
    (name,) = [k for k, v in app.resources("endpoint", "AWS::Logs::LogGroup").items()
               if v["Properties"].get("LogGroupName") == "/aws/sagemaker/Endpoints/imdb-sentiment"]
    return name


def test_endpoint_log_group_exists_before_the_endpoint(app_default):
    (endpoint,) = app_default.resources("endpoint", "AWS::SageMaker::Endpoint").values()
    assert _log_group(app_default) in endpoint["DependsOn"]


def test_provisioned_alternative_with_target_tracking(app_provisioned):
    t = app_provisioned.template("endpoint")
    t.has_resource_properties("AWS::SageMaker::EndpointConfig", {
        "ProductionVariants": [Match.object_like({"VariantName": "AllTraffic", "InstanceType": "ml.m5.large",
                                                  "InitialInstanceCount": 1})]})
    t.has_resource_properties("AWS::SageMaker::Model", {"EnableNetworkIsolation": True})
    (model,) = app_provisioned.resources("endpoint", "AWS::SageMaker::Model").values()
    assert "SAGEMAKER_MODEL_SERVER_WORKERS" not in model["Properties"]["PrimaryContainer"]["Environment"]
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "ServiceNamespace": "sagemaker", "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 1, "MaxCapacity": 2,
        "ResourceId": {"Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": ["Endpoint", "EndpointName"]},
                                         "/variant/AllTraffic"]]}})
    (target,) = app_provisioned.resources("endpoint", "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert "RoleARN" not in target["Properties"]  # the service-linked role
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": Match.object_like({
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "TargetValue": 200})})
