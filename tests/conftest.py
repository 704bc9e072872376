"""Shared pytest fixtures. Helpers live in ``tests/support``; keep this file to fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.samples import SHARED

#: The S3 server fixtures (SeaweedFS and moto on 127.0.0.1), shared by every test module.
pytest_plugins = ["tests.support.s3servers"]


@pytest.fixture
def tmp_input(tmp_path: Path) -> Path:
    """Where a test builds its 0.4 input (``<tmp>/input.zarr``, not yet created)."""
    return tmp_path / "input.zarr"


@pytest.fixture
def tmp_output(tmp_path: Path) -> Path:
    """Where a test writes its 0.5 output (``<tmp>/output.zarr``, not yet created)."""
    return tmp_path / "output.zarr"


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` next to the repository; skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared directory not found at {SHARED}")
    return SHARED
