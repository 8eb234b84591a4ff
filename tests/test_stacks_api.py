"""API stack: the proxy Lambda (one env var, one ARN), POST /predict with validation, throttling, logs."""
from __future__ import annotations

import json

from aws_cdk.assertions import Match

from cdk_support import app_default, app_provisioned, synth  # noqa: F401  (fixtures)
from fixtures_local import REPO, load_module


def _function(app):
    (fn,) = [f for f in app.resources("api", "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "handler.handler"]
    return fn["Properties"]


def test_proxy_function(app_default):
    fn = _function(app_default)
    assert fn["Runtime"].startswith("python3.1") and int(fn["Runtime"].split(".")[1]) >= 12
    # The handler's own worst case (2 attempts of connect + read, one back-off) must end before the
    # Lambda is cut off, or the caller gets API Gateway's bare 502 instead of the handler's 504; and
    # the Lambda must end before API Gateway's 29 s integration limit.
    proxy = load_module("proxy_handler_for_the_template", REPO / "lambda" / "proxy" / "handler.py")
    worst = proxy.MAX_ATTEMPTS * (proxy.CONNECT_TIMEOUT_S + proxy.READ_TIMEOUT_S) + 1.0
    assert worst <= fn["Timeout"] < 29, (worst, fn["Timeout"])
    assert list(fn["Environment"]["Variables"]) == ["ENDPOINT_NAME"]
    # The name itself, not a reference to the endpoint stack: a renamed endpoint changes this template.
    assert fn["Environment"]["Variables"]["ENDPOINT_NAME"] == "imdb-sentiment"
    assert "TracingConfig" not in fn  # X-Ray only with xrayTracing=true
    assert "LogGroup" in fn["LoggingConfig"]


def test_proxy_asset_is_lambda_proxy(app_default):
    fn = _function(app_default)
    key = fn["Code"]["S3Key"].removesuffix(".zip")
    # the proxy's own file: lambda/training_job holds a handler.py too
    assert sorted(p.name for p in (app_default.outdir / f"asset.{key}").iterdir()) == ["handler.py"]
    assert ((app_default.outdir / f"asset.{key}" / "handler.py").read_bytes()
            == (REPO / "lambda" / "proxy" / "handler.py").read_bytes())


def test_invoke_endpoint_on_exactly_one_arn(app_default):
    statements = []
    for policy in app_default.resources("api", "AWS::IAM::Policy").values():
        statements += policy["Properties"]["PolicyDocument"]["Statement"]
    invoke = [s for s in statements if "sagemaker:InvokeEndpoint" in json.dumps(s["Action"])]
    assert len(invoke) == 1
    (statement,) = invoke
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    assert statement["Resource"] == {"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, ":sagemaker:", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"},
        ":endpoint/imdb-sentiment"]]}  # the endpoint's own ARN
    assert not any(a.startswith("sagemaker:") for s in statements if s is not statement
                   for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))


def test_post_predict_is_validated(app_default):
    t = app_default.template("api")
    t.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "predict"})
    t.resource_count_is("AWS::ApiGateway::Method", 1)  # no OPTIONS: no CORS at all
    t.has_resource_properties("AWS::ApiGateway::Method", {
        "HttpMethod": "POST", "RequestValidatorId": Match.any_value(),
        "RequestModels": {"application/json": Match.any_value()},
        "Integration": Match.object_like({"Type": "AWS_PROXY", "TimeoutInMillis": 29000})})
    t.has_resource_properties("AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True})
    (model,) = app_default.resources("api", "AWS::ApiGateway::Model").values()
    schema = model["Properties"]["Schema"]
    assert schema["required"] == ["text"] and schema["additionalProperties"] is False
    assert schema["properties"]["text"] == {"type": "string", "minLength": 1, "maxLength": 131072}
    assert schema["properties"]["explain"] == {"type": "boolean"}


def test_stage_throttles_and_logs(app_default):
    t = app_default.template("api")
    t.has_resource_properties("AWS::ApiGateway::Stage", {
        "StageName": "api",
        "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.string_like_regexp("requestId")},
        "MethodSettings": [Match.object_like({"ThrottlingRateLimit": 10, "ThrottlingBurstLimit": 20,
                                              "LoggingLevel": "ERROR", "DataTraceEnabled": False})],
        "TracingEnabled": False,
    })
    t.has_resource_properties("AWS::ApiGateway::RestApi", {"EndpointConfiguration": {"Types": ["REGIONAL"]}})
    # Access logs need API Gateway's account-level CloudWatch role.
    t.resource_count_is("AWS::ApiGateway::Account", 1)


def test_account_cloudwatch_role_outlives_the_stack(app_default):
    """The account setting survives a destroy (API Gateway has no way back to "unset"), so the role it
    names must too: a deleted role would break the logging of every API in the account."""
    resources = app_default.templates["api"]["Resources"]
    (account,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Account"]
    role = resources[account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]]
    assert role["Type"] == "AWS::IAM::Role"
    assert role["DeletionPolicy"] == "Retain" and role["UpdateReplacePolicy"] == "Retain"
    others = [n for n, r in resources.items() if r.get("DeletionPolicy") == "Retain" and r is not role
              and r is not account]
    assert others == []


def test_gateway_errors_use_the_apis_error_shape(app_default):
    responses = {r["Properties"]["ResponseType"]: r["Properties"]
                 for r in app_default.resources("api", "AWS::ApiGateway::GatewayResponse").values()}
    assert set(responses) == {"BAD_REQUEST_BODY", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"}
    body = json.loads(responses["BAD_REQUEST_BODY"]["ResponseTemplates"]["application/json"])
    assert responses["BAD_REQUEST_BODY"]["StatusCode"] == "400" and "text" in body["error"]
    # As API Gateway renders them: $context.error.messageString is the message as a quoted JSON string.
    for kind, response in responses.items():
        template = response["ResponseTemplates"]["application/json"]
        rendered = template.replace("$context.error.messageString", json.dumps("Missing Authentication Token"))
        answer = json.loads(rendered)
        assert list(answer) == ["error"] and answer["error"].strip(), (kind, template)
    assert json.loads(responses["DEFAULT_4XX"]["ResponseTemplates"]["application/json"].replace(
        "$context.error.messageString", json.dumps("Missing Authentication Token"))) == \
        {"error": "Missing Authentication Token"}


def test_provisioned_endpoint_name_and_arn(app_provisioned):
    assert _function(app_provisioned)["Environment"]["Variables"]["ENDPOINT_NAME"] == "imdb-sentiment-m5-large"


def test_invoke_arn_is_lower_case():
    """SageMaker writes endpoint ARNs in lower case; IAM compares them case-sensitively."""
    app = synth(endpointName="Imdb-Sentiment")
    assert app.error is None, app.error
    statements = [s for p in app.resources("api", "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    (invoke,) = [s for s in statements if s["Action"] == "sagemaker:InvokeEndpoint"]
    assert invoke["Resource"]["Fn::Join"][1][-1] == ":endpoint/imdb-sentiment"
    assert _function(app)["Environment"]["Variables"]["ENDPOINT_NAME"] == "Imdb-Sentiment"


def test_xray_is_optional(app_provisioned):
    assert _function(app_provisioned)["TracingConfig"] == {"Mode": "Active"}
    app_provisioned.template("api").has_resource_properties("AWS::ApiGateway::Stage", {"TracingEnabled": True})
