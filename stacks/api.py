"""API: the Lambda proxy behind API Gateway, ``POST /predict`` on the stage ``api``.

The stage is named ``api`` so that the site's CloudFront distribution can forward ``/api/*`` to this API's
regional domain unchanged: ``https://<site>/api/predict`` reaches stage ``api``, resource ``/predict``.
The page and the API then share one origin and no CORS is configured at all. The direct URL
(``ApiUrl`` output, ``https://<id>.execute-api.<region>.amazonaws.com/api/``) serves scripts and curl.
"""
from __future__ import annotations

import json

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from model.contract import MAX_BODY_BYTES

from .common import ARCHITECTURE, PYTHON_RUNTIME, ack, log_group
from .endpoint import EndpointStack
from .request_limits import INTEGRATION_TIMEOUT_S, LAMBDA_TIMEOUT_S
from .settings import REPO_ROOT, Settings

STAGE = "api"


class ApiStack(Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, endpoint: EndpointStack, **kwargs) -> None:
        super().__init__(scope, id, description="IMDB sentiment: API Gateway and the Lambda proxy", **kwargs)
        # The endpoint's name and ARN are written here from settings, not read from the endpoint stack: a
        # cross-stack reference renders the same whatever it resolves to, so a renamed endpoint would leave
        # this template unchanged, the CLI would skip the stack, and the proxy would call the old name.
        self.add_stack_dependency(endpoint)
        endpoint_name = settings.hosted_endpoint_name
        # SageMaker lower-cases the name in the endpoint's ARN, and IAM compares ARNs case-sensitively.
        endpoint_arn = (f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
                        f"endpoint/{endpoint_name.lower()}")

        role = iam.Role(self, "ProxyRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="Lambda proxy: invokes one SageMaker endpoint, writes its own logs")
        role.add_to_policy(iam.PolicyStatement(sid="InvokeTheEndpoint", actions=["sagemaker:InvokeEndpoint"],
                                               resources=[endpoint_arn]))
        proxy_logs = log_group(self, "ProxyLogs", settings)
        proxy_logs.grant_write(role)
        self.function = lambda_.Function(
            self, "Proxy",
            runtime=PYTHON_RUNTIME, architecture=ARCHITECTURE,
            code=lambda_.Code.from_asset(str(REPO_ROOT / "lambda" / "proxy"), exclude=["__pycache__", "*.pyc"]),
            handler="handler.handler",
            timeout=Duration.seconds(LAMBDA_TIMEOUT_S), memory_size=256,
            environment={"ENDPOINT_NAME": endpoint_name},
            role=role, log_group=proxy_logs,
            tracing=lambda_.Tracing.ACTIVE if settings.xray_tracing else None,
            description="POST /predict -> SageMaker InvokeEndpoint",
        )
        if settings.xray_tracing:
            ack(role, "AwsSolutions-IAM5", "X-Ray trace segments have no resource-level permissions.",
                "Resource::*")

        access_logs = log_group(self, "AccessLogs", settings)
        self.api = apigw.RestApi(
            self, "Api",
            rest_api_name=f"{settings.stack_prefix}-api",
            description="Movie review sentiment: POST /predict {\"text\": ..., \"explain\": false}",
            endpoint_configuration=apigw.EndpointConfiguration(types=[apigw.EndpointType.REGIONAL]),
            # API Gateway logs to CloudWatch only through the account's CloudWatch role, an account-wide
            # setting this stack takes over. It is kept on destroy: deleting the role would leave the
            # setting pointing at nothing, and every other API's logging in the account failing.
            cloud_watch_role=settings.api_cloudwatch_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                throttling_rate_limit=settings.api_rate_limit,
                throttling_burst_limit=settings.api_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=False),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # never log review texts
                metrics_enabled=True,
                tracing_enabled=settings.xray_tracing,
            ),
        )
        if settings.api_cloudwatch_role:
            ack(self.api, "AwsSolutions-IAM4",
                "API Gateway's account-level CloudWatch role uses the AWS managed policy made for exactly that "
                "purpose (AmazonAPIGatewayPushToCloudWatchLogs).",
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")

        model = self.api.add_model(
            "PredictRequest", content_type="application/json", model_name="PredictRequest",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4, title="PredictRequest", type=apigw.JsonSchemaType.OBJECT,
                required=["text"], additional_properties=False,
                properties={
                    # characters here; the proxy and the endpoint count the body's bytes
                    "text": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, min_length=1,
                                             max_length=MAX_BODY_BYTES),
                    "explain": apigw.JsonSchema(type=apigw.JsonSchemaType.BOOLEAN),
                }))
        validator = self.api.add_request_validator("BodyValidator", validate_request_body=True,
                                                   validate_request_parameters=True)
        predict = self.api.root.add_resource("predict")
        self.method = predict.add_method(
            "POST", apigw.LambdaIntegration(self.function, timeout=Duration.seconds(INTEGRATION_TIMEOUT_S)),
            request_validator=validator, request_models={"application/json": model})
        ack(self.method, "AwsSolutions-APIG4",
            "A public demo API: anyone may classify a review. Abuse is bounded by stage throttling "
            f"({settings.api_rate_limit} requests/s, burst {settings.api_burst_limit}) and the endpoint's "
            "concurrency limit.")
        ack(self.method, "AwsSolutions-COG4", "A public demo API without users: no Cognito user pool to check.")
        ack(self.api.deployment_stage, "AwsSolutions-APIG3",
            "No WAF web ACL (about USD 5+/month fixed) for a demo: stage throttling and request validation "
            "bound the traffic; add one in front of CloudFront if the site becomes a target.")
        self._error_responses()

        self.api_url = self.api.url  # https://<id>.execute-api.<region>.amazonaws.com/api/
        #: the API's regional host name, for the site's CloudFront origin
        self.api_domain = f"{self.api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
        CfnOutput(self, "ApiUrl", value=self.api_url,
                  description="POST {ApiUrl}predict with {\"text\": \"...\"}; the page uses https://<site>/api")

    def _error_responses(self) -> None:
        """API Gateway's own errors in the API's error shape ``{"error": "..."}``."""
        shapes = {
            "BadBody": (apigw.ResponseType.BAD_REQUEST_BODY, "400",
                        {"error": "The body must be JSON {\"text\": "
                                  f"\"<review, 1-{MAX_BODY_BYTES} characters>\", \"explain\": true|false}} "
                                  "with Content-Type: application/json"}),
            "Throttled": (apigw.ResponseType.THROTTLED, "429",
                          {"error": "Too many requests right now: wait a moment and try again"}),
        }
        for id, (kind, status, body) in shapes.items():
            self.api.add_gateway_response(id, type=kind, status_code=status,
                                          templates={"application/json": json.dumps(body)})
        # Everything else: API Gateway's own message, as {"error": "..."}.
        for id, kind in (("Default4xx", apigw.ResponseType.DEFAULT_4_XX), ("Default5xx", apigw.ResponseType.DEFAULT_5_XX)):
            self.api.add_gateway_response(id, type=kind,
                                          templates={"application/json": '{"error": $context.error.messageString}'})
