"""Data stack: encrypted, SSL-only, private, logged, versioned bucket; the archive uploaded by content hash."""
from __future__ import annotations

import hashlib

from aws_cdk.assertions import Match

from cdk_support import app_default, app_provisioned, tiny_archive  # noqa: F401  (fixtures)


def test_data_bucket_is_private_encrypted_versioned_and_logged(app_default):
    t = app_default.template("data")
    t.resource_count_is("AWS::S3::Bucket", 2)  # data + access logs
    t.has_resource("AWS::S3::Bucket", {
        "Properties": {
            "BucketName": {"Fn::Join": ["", ["imdbsentiment-data-", {"Ref": "AWS::AccountId"}, "-",
                                             {"Ref": "AWS::Region"}]]},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": {"DestinationBucketName": Match.any_value(),
                                     "LogFilePrefix": "data-bucket/"},
        },
        "DeletionPolicy": "Delete",
    })
    # Both buckets refuse plain HTTP.
    for policy in app_default.resources("data", "AWS::S3::BucketPolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)
    # Destroyed with the stack: emptied first.
    assert len(app_default.resources("data", "Custom::S3AutoDeleteObjects")) == 2


def test_archive_is_uploaded_under_its_content_hash(app_default):
    digest = hashlib.sha256(tiny_archive().read_bytes()).hexdigest()
    data = app_default.stacks["data"]
    assert data.data_prefix == f"datasets/imdb-{digest[:16]}/"
    (deployment,) = app_default.resources("data", "Custom::CDKBucketDeployment").values()
    props = deployment["Properties"]
    assert props["DestinationBucketKeyPrefix"] == f"datasets/imdb-{digest[:16]}/"
    assert props["RetainOnDelete"] is False
    (key,) = props["SourceObjectKeys"]
    staged = app_default.outdir / f"asset.{key.removesuffix('.zip')}"
    assert [p.name for p in staged.iterdir()] == ["aclImdb.tar.gz"]  # the CLI zips this folder at publish time
    assert (staged / "aclImdb.tar.gz").read_bytes() == tiny_archive().read_bytes()


def test_retain_data_keeps_the_data_bucket_only(app_provisioned):
    buckets = app_provisioned.resources("data", "AWS::S3::Bucket")
    policies = {name: b["DeletionPolicy"] for name, b in buckets.items()}
    assert sorted(policies.values()) == ["Delete", "Retain"]  # access logs still go
    assert len(app_provisioned.resources("data", "Custom::S3AutoDeleteObjects")) == 1
