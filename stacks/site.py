"""Site: the page in a private bucket behind CloudFront (Origin Access Control), ``/api/*`` to the API.

One origin for the page and the API: CloudFront serves ``web/`` from S3 and forwards ``/api/*`` to the
API Gateway stage ``api`` (``/api/predict`` -> resource ``/predict``), so the page's ``fetch`` is
same-origin, the CSP's ``connect-src 'self'`` covers it and no CORS is needed. ``config.json`` carries
``{"apiUrl": "https://<distribution>/api"}``, resolved at deploy time.

The site depends on the API stack (it needs the API's host name), never the other way round.
"""
from __future__ import annotations

from aws_cdk import Aws, CfnCondition, CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from . import security_headers as web_headers
from .api import STAGE, ApiStack
from .common import access_logs_bucket, ack, ack_bucket_deployment, log_group, private_bucket
from .request_limits import ORIGIN_READ_TIMEOUT_S
from .settings import REPO_ROOT, Settings

# Regions whose S3 buckets CloudFront does not deliver standard logs to (opt-in regions; CloudFront
# Developer Guide, "Choosing an Amazon S3 bucket for your standard logs"). A distribution that names a
# log bucket there fails to create, so in these regions the distribution is created without logs.
NO_CLOUDFRONT_LOG_REGIONS = ("af-south-1", "ap-east-1", "ap-south-2", "ap-southeast-3", "ap-southeast-4",
                             "ca-west-1", "eu-central-2", "eu-south-1", "eu-south-2", "il-central-1",
                             "me-central-1", "me-south-1")

class SiteStack(Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, api: ApiStack, **kwargs) -> None:
        super().__init__(scope, id, description="IMDB sentiment: the page on S3 + CloudFront, /api/* to the API",
                         **kwargs)
        # CloudFront standard logs are written with ACLs, so this log bucket accepts object-writer ACLs.
        logs = access_logs_bucket(self, "AccessLogs", settings, object_ownership=s3.ObjectOwnership.OBJECT_WRITER)
        bucket = private_bucket(self, "SiteBucket", settings, logs_bucket=logs, logs_prefix="site-bucket/", data=False)

        headers = cloudfront.ResponseHeadersPolicy(
            self, "SecurityHeaders",
            comment="Strict CSP and security headers for the sentiment page and its API",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=web_headers.content_security_policy(https=True), override=True),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(web_headers.HSTS_MAX_AGE_DAYS), include_subdomains=True,
                    override=True),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption[web_headers.FRAME_OPTIONS], override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy[
                        web_headers.REFERRER_POLICY.upper().replace("-", "_")], override=True),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(custom_headers=[
                cloudfront.ResponseCustomHeader(header="Permissions-Policy", value=web_headers.PERMISSIONS_POLICY,
                                                override=True),
            ]),
        )

        api_origin = origins.HttpOrigin(
            api.api_domain, protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
            read_timeout=Duration.seconds(ORIGIN_READ_TIMEOUT_S))
        self.distribution = cloudfront.Distribution(
            self, "Distribution",
            comment="Movie review sentiment: page and /api",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
                compress=True,
            ),
            additional_behaviors={
                f"/{STAGE}/*": cloudfront.BehaviorOptions(
                    origin=api_origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    # API Gateway needs its own Host header; everything else goes through.
                    origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                    response_headers_policy=headers,
                ),
            },
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True, log_bucket=logs, log_file_prefix="cloudfront/",
        )
        self._no_logs_in_opt_in_regions(logs)
        ack(self.distribution, "AwsSolutions-CFR4",
            "The distribution uses CloudFront's default *.cloudfront.net certificate, whose minimum viewer "
            "protocol CloudFront fixes at TLSv1; a custom domain with its own certificate is needed for "
            "TLSv1.2_2021.")
        ack(self.distribution, "AwsSolutions-CFR1",
            "A public demo page: no geographic restriction is wanted.")
        ack(self.distribution, "AwsSolutions-CFR2",
            "No WAF web ACL (about USD 5+/month fixed) for a demo; API Gateway throttles /api.")

        self.site_url = f"https://{self.distribution.distribution_domain_name}"
        self.api_url = f"{self.site_url}/{STAGE}"
        deploy_logs = log_group(self, "DeployLogs", settings)
        s3deploy.BucketDeployment(
            self, "DeployWeb",
            sources=[
                # A config.json from local mode stays on the laptop; the deployed one is written here.
                s3deploy.Source.asset(str(REPO_ROOT / "web"), exclude=["config.json"]),
                s3deploy.Source.json_data("config.json", {"apiUrl": self.api_url}),
            ],
            destination_bucket=bucket,
            distribution=self.distribution, distribution_paths=["/*"],
            retain_on_delete=False,
            memory_limit=256,
            log_group=deploy_logs,
        )
        ack_bucket_deployment(self, settings, bucket,
                              "publishes web/ and config.json; cloudfront:CreateInvalidation has no resource-level "
                              "permissions", "Resource::*")

        CfnOutput(self, "SiteUrl", value=self.site_url)
        CfnOutput(self, "SiteApiUrl", value=self.api_url,
                  description="The page's apiUrl: POST {SiteApiUrl}/predict (same origin as the page)")

    def _no_logs_in_opt_in_regions(self, logs: s3.Bucket) -> None:
        """The stack is region-agnostic, so the region is a CloudFormation condition, not a synth-time test."""
        equals = [Fn.condition_equals(Aws.REGION, region) for region in NO_CLOUDFRONT_LOG_REGIONS]
        groups = [Fn.condition_or(*equals[i:i + 10]) for i in range(0, len(equals), 10)]  # Fn::Or takes 2..10
        unavailable = CfnCondition(self, "CloudFrontLogsUnavailable", expression=Fn.condition_or(*groups))
        cfn = self.distribution.node.default_child
        cfn.add_property_override("DistributionConfig.Logging", Fn.condition_if(
            unavailable.logical_id, Aws.NO_VALUE,
            {"Bucket": logs.bucket_regional_domain_name, "Prefix": "cloudfront/"}))
