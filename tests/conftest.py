"""Shared fixtures."""

import os

import pytest


@pytest.fixture
def lava():
    """Lava runs in its own Python 3.10 venv (``make lava-env``). Where it is missing a test that needs it is
    skipped, except under CI=true, where it fails."""
    from quantal.targets.lava import driver

    if driver.lava_python() is None:
        msg = "Lava venv missing (make lava-env)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " and CI=true: the Lava tests must run")
        pytest.skip(msg)
