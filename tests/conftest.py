"""Shared pytest configuration. Fixture sets live in their own modules, listed here.

Under ``CI=true`` a skipped test fails: a test that skips when something is missing (Chromium, the
CDK CLI, a fixture) would otherwise leave CI green without having run it. Tests that need the
optional SageMaker SDK (marker ``sagemaker_sdk``) are deselected where it is not installed, and say
so: ``make test-sagemaker`` runs them in a venv of their own, and .ci/run runs both.
"""
from __future__ import annotations

import importlib.util
import os

import pytest

# Serving (the shared helpers, handler/server/container fixtures, random-weight models) first:
# fixtures_local imports its helpers. Then local mode, the Lambda proxy, the page and the browser.
pytest_plugins = ["fixtures_model", "fixtures_local"]

HAVE_SAGEMAKER_SDK = importlib.util.find_spec("sagemaker") is not None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_collection_modifyitems(config, items):
    if HAVE_SAGEMAKER_SDK:
        return
    sdk = [item for item in items if item.get_closest_marker("sagemaker_sdk")]
    if sdk:
        config.hook.pytest_deselected(items=sdk)
        items[:] = [item for item in items if not item.get_closest_marker("sagemaker_sdk")]
        config._sagemaker_deselected = len(sdk)


def pytest_terminal_summary(terminalreporter, config):
    count = getattr(config, "_sagemaker_deselected", 0)
    if count:
        terminalreporter.write_line(f"{count} tests need the SageMaker SDK and were deselected here: "
                                    "`make test-sagemaker` runs them")


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true, where every test must run: "
                           f"{_skip_reason(report.longrepr)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:  # a module skipped as a whole (importorskip at module level)
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true, where every test must run: "
                           f"{_skip_reason(report.longrepr)}")
