#!/usr/bin/env python3
"""The CDK app: `npx cdk synth` / `make synth` runs this (see cdk.json and docs/deploy.md)."""
import sys

import aws_cdk as cdk

from stacks import SettingsError, build

app = cdk.App()
try:
    build(app)
except SettingsError as exc:
    sys.exit(f"error: {exc}")
app.synth()
