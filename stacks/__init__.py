"""The CDK app's stacks, one per concern; ``build`` (stacks/app.py) creates and wires them.

Importing the package loads no CDK: ``settings``, ``security_headers`` and ``request_limits`` are
standard library only, and local mode's front reads the last two without starting the CDK's node
process. ``build`` loads it on first use.
"""
from .settings import Settings, SettingsError

__all__ = ["build", "Settings", "SettingsError"]


def __getattr__(name: str):
    if name == "build":
        from .app import build
        return build
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
