"""Site stack: private bucket, CloudFront with OAC, strict CSP, /api/* to the API, config.json at deploy."""
from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from cdk_support import REPO, app_default  # noqa: F401  (fixtures)


def _distribution(app):
    (dist,) = app.resources("site", "AWS::CloudFront::Distribution").values()
    return dist["Properties"]["DistributionConfig"]


def test_bucket_is_private_and_served_through_origin_access_control(app_default):
    t = app_default.template("site")
    t.resource_count_is("AWS::CloudFront::OriginAccessControl", 1)
    config = _distribution(app_default)
    (s3_origin,) = [o for o in config["Origins"] if "S3OriginConfig" in o]
    assert "OriginAccessControlId" in s3_origin
    assert s3_origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    t.has_resource_properties("AWS::S3::Bucket", {
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "LoggingConfiguration": {"DestinationBucketName": Match.any_value(), "LogFilePrefix": "site-bucket/"}})
    # Only CloudFront (this distribution) may read the bucket.
    policies = json.dumps([p["Properties"]["PolicyDocument"]
                           for p in app_default.resources("site", "AWS::S3::BucketPolicy").values()])
    assert "cloudfront.amazonaws.com" in policies and "AWS:SourceArn" in policies


def test_https_and_logging(app_default):
    config = _distribution(app_default)
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["DefaultRootObject"] == "index.html"
    assert _logging_in(app_default, "us-east-1")["Prefix"] == "cloudfront/"
    assert "CustomErrorResponses" not in config  # they would rewrite the API's own 4xx answers


def test_api_is_routed_through_the_same_origin(app_default):
    config = _distribution(app_default)
    (behavior,) = config["CacheBehaviors"]
    assert behavior["PathPattern"] == "/api/*"
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert "POST" in behavior["AllowedMethods"]
    assert behavior["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
    assert behavior["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"  # AllViewerExceptHostHeader
    (api_origin,) = [o for o in config["Origins"] if o["Id"] == behavior["TargetOriginId"]]
    assert "OriginPath" not in api_origin  # /api/predict reaches stage "api", resource /predict
    assert api_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    domain = json.dumps(api_origin["DomainName"])
    assert ".execute-api." in domain and app_default.stacks["api"].stack_name in domain


def test_strict_content_security_policy(app_default):
    (policy,) = app_default.resources("site", "AWS::CloudFront::ResponseHeadersPolicy").values()
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    directives = dict((d.split(" ", 1) + [""])[:2] for d in csp.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    config = _distribution(app_default)
    policy_ref = config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"]
    assert config["CacheBehaviors"][0]["ResponseHeadersPolicyId"] == policy_ref


def test_cloudfront_sends_the_one_list_of_security_headers(app_default):
    """The policy, rendered as the headers a browser gets, is stacks/security_headers.py's list (which the
    local front sends too, less what needs HTTPS: tests/test_local_front.py)."""
    from stacks.security_headers import security_headers

    (policy,) = app_default.resources("site", "AWS::CloudFront::ResponseHeadersPolicy").values()
    config = policy["Properties"]["ResponseHeadersPolicyConfig"]
    sec = config["SecurityHeadersConfig"]
    assert set(sec) == {"ContentSecurityPolicy", "ContentTypeOptions", "FrameOptions", "ReferrerPolicy",
                        "StrictTransportSecurity"}
    hsts = sec["StrictTransportSecurity"]
    sent = {
        "Content-Security-Policy": sec["ContentSecurityPolicy"]["ContentSecurityPolicy"],
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": sec["FrameOptions"]["FrameOption"],
        "Referrer-Policy": sec["ReferrerPolicy"]["ReferrerPolicy"],
        "Strict-Transport-Security": f"max-age={hsts['AccessControlMaxAgeSec']}"
                                     + ("; includeSubDomains" if hsts.get("IncludeSubdomains") else "")
                                     + ("; preload" if hsts.get("Preload") else ""),
        **{h["Header"]: h["Value"] for h in config["CustomHeadersConfig"]["Items"]},
    }
    assert sent == security_headers(https=True)
    assert all(v["Override"] for v in [*sec.values(), *config["CustomHeadersConfig"]["Items"]])


def test_plain_http_leaves_out_only_what_needs_https():
    from stacks.security_headers import HTTPS_CSP_DIRECTIVES, security_headers

    cloud, local = security_headers(https=True), security_headers(https=False)
    assert set(cloud) - set(local) == {"Strict-Transport-Security"}
    assert [d for d in cloud["Content-Security-Policy"].split("; ") if d not in HTTPS_CSP_DIRECTIVES] == \
        local["Content-Security-Policy"].split("; ")
    assert {k: v for k, v in cloud.items() if k not in ("Strict-Transport-Security", "Content-Security-Policy")} == \
        {k: v for k, v in local.items() if k != "Content-Security-Policy"}


def test_page_and_config_json_are_deployed(app_default):
    (deployment,) = app_default.resources("site", "Custom::CDKBucketDeployment").values()
    props = deployment["Properties"]
    assert props["DistributionPaths"] == ["/*"]
    web_key, config_key = [k.removesuffix(".zip") for k in props["SourceObjectKeys"]]
    web = app_default.outdir / f"asset.{web_key}"
    assert (web / "index.html").is_file() and (web / "app.js").is_file()
    assert not (web / "config.json").exists()  # a local-mode config.json never ships
    # config.json: {"apiUrl": "https://<this distribution>/api"}, filled in at deploy time.
    marker = props["SourceMarkers"][1]
    (value,) = marker.values()
    assert json.dumps(value) == json.dumps({"Fn::Join": ["", ["\"https://", {"Fn::GetAtt": [
        _distribution_id(app_default), "DomainName"]}, "/api\""]]})
    config_json = next((app_default.outdir / f"asset.{config_key}").glob("config.json")).read_text()
    assert json.loads(config_json.replace(next(iter(marker)), '"X"')) == {"apiUrl": "X"}


def test_site_url_output(app_default):
    outputs = app_default.templates["site"]["Outputs"]
    assert outputs["SiteUrl"]["Value"] == {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [
        _distribution_id(app_default), "DomainName"]}]]}


def _condition(app, expression, region):
    """Evaluate a CloudFormation condition of the site template (Fn::Or, Fn::Equals on AWS::Region)."""
    if "Condition" in expression:
        return _condition(app, app.templates["site"]["Conditions"][expression["Condition"]], region)
    if "Fn::Or" in expression:
        items = expression["Fn::Or"]
        assert 2 <= len(items) <= 10  # CloudFormation's limits on Fn::Or
        return any(_condition(app, e, region) for e in items)
    (left, right) = expression["Fn::Equals"]
    return (region if left == {"Ref": "AWS::Region"} else left) == right


def _logging_in(app, region):
    """The distribution's Logging as CloudFormation renders it in this region (None: no logs)."""
    logging = _distribution(app)["Logging"]
    if "Fn::If" not in logging:
        return logging
    condition, yes, no = logging["Fn::If"]
    chosen = yes if _condition(app, app.templates["site"]["Conditions"][condition], region) else no
    return None if chosen == {"Ref": "AWS::NoValue"} else chosen


@pytest.mark.parametrize("region", ["af-south-1", "ap-east-1", "eu-south-1", "me-south-1"])
def test_no_cloudfront_logs_where_cloudfront_cannot_deliver_them(app_default, region):
    """CloudFront does not deliver standard logs to buckets in opt-in regions, and a distribution that
    names one fails to create: there the distribution has no Logging at all."""
    assert _logging_in(app_default, region) is None
    for logged in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        assert _logging_in(app_default, logged)["Bucket"] == {"Fn::GetAtt": [_log_bucket(app_default),
                                                                              "RegionalDomainName"]}


def _log_bucket(app):
    (name,) = [k for k, v in app.resources("site", "AWS::S3::Bucket").items()
               if v["Properties"].get("OwnershipControls", {}).get("Rules") == [{"ObjectOwnership": "ObjectWriter"}]]
    return name


def _distribution_id(app):
    (name,) = app.resources("site", "AWS::CloudFront::Distribution")
    return name


def test_page_posts_to_api_url_plus_predict():
    """The contract the site relies on: web/app.js reads config.json's apiUrl and POSTs to apiUrl + /predict."""
    script = (REPO / "web" / "app.js").read_text()
    assert '"config.json"' in script and '"/predict"' in script
