"""Data: the bucket that holds the IMDB archive, the model artifacts and spot checkpoints."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from aws_cdk import AssetHashType, Aws, CfnOutput, Duration, Stack, SymlinkFollowMode
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from .common import access_logs_bucket, ack_bucket_deployment, log_group, private_bucket
from .settings import Settings

DATASETS_PREFIX = "datasets/"
MODELS_PREFIX = "models/"
CHECKPOINTS_PREFIX = "checkpoints/"
# The name the archive has in the training channel (the container reads any *.tar.gz there).
ARCHIVE_NAME = "aclImdb.tar.gz"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_archive(archive: Path, digest: str, outdir: Path) -> Path:
    """A folder holding only a link to the archive under ARCHIVE_NAME, for a directory asset.

    BucketDeployment unpacks zip sources, so the archive travels inside a directory asset (zipped by the
    CLI at publish time) and lands in the bucket as-is. A symbolic link avoids copying it here.
    """
    folder = outdir / ".data-staging" / digest[:16]
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / ARCHIVE_NAME
    if not (link.is_symlink() and Path(os.readlink(link)) == archive):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(archive)
    return folder


class DataStack(Stack):
    def __init__(self, scope: Construct, id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, id, description="IMDB sentiment: training data and model artifacts", **kwargs)
        archive = settings.require_data_archive()
        digest = file_sha256(archive)
        #: identifies the data set in the training job's identity (and in its S3 prefix)
        self.data_hash = digest[:16]
        self.data_prefix = f"{DATASETS_PREFIX}imdb-{self.data_hash}/"

        # A name known at synth time: the training and endpoint stacks build their exact, prefix-scoped
        # grants from it without a cross-stack reference inside an IAM resource.
        self.bucket_name = f"{settings.resource_prefix}-data-{Aws.ACCOUNT_ID}-{Aws.REGION}"
        #: the same name as cdk-nag renders it in its findings
        self.bucket_name_pattern = f"{settings.resource_prefix}-data-<AWS::AccountId>-<AWS::Region>"
        self.access_logs = access_logs_bucket(self, "AccessLogs", settings)
        self.bucket = private_bucket(
            self, "DataBucket", settings, logs_bucket=self.access_logs, logs_prefix="data-bucket/", data=True,
            bucket_name=self.bucket_name,
            # Versioned: an overwritten or deleted model artifact can be recovered for a while.
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30),
                                 abort_incomplete_multipart_upload_after=Duration.days(7)),
                s3.LifecycleRule(prefix=CHECKPOINTS_PREFIX, expiration=Duration.days(7)),
            ],
        )

        staged = stage_archive(archive, digest, Path(self.node.root.outdir).resolve())
        upload_logs = log_group(self, "UploadLogs", settings)
        self.upload = s3deploy.BucketDeployment(
            self, "UploadArchive",
            sources=[s3deploy.Source.asset(str(staged), asset_hash=digest, asset_hash_type=AssetHashType.CUSTOM,
                                           follow_symlinks=SymlinkFollowMode.ALWAYS)],
            destination_bucket=self.bucket,
            destination_key_prefix=self.data_prefix,
            retain_on_delete=False,
            memory_limit=512,
            log_group=upload_logs,
        )
        ack_bucket_deployment(self, settings, self.bucket, "uploads the IMDB archive")

        self.archive_key = f"{self.data_prefix}{ARCHIVE_NAME}"
        self.train_data_uri = f"s3://{self.bucket_name}/{self.data_prefix}"
        self.output_uri = f"s3://{self.bucket_name}/{MODELS_PREFIX}"
        self.checkpoint_uri = f"s3://{self.bucket_name}/{CHECKPOINTS_PREFIX}"
        CfnOutput(self, "DataBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "TrainingDataUri", value=self.train_data_uri)
