"""glibc allocator tuning: applied once, and never against the user's own settings."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ngff_resave.engines import allocator


def _in_child(code: str, env_extra: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter (mallopt changes the whole process)."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in allocator.ENV_VARIABLES}
    env.update(env_extra or {})
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_thresholds_are_raised_on_glibc() -> None:
    out = _in_child(
        """
        from ngff_resave.engines.allocator import tune_allocator
        print(tune_allocator(), tune_allocator())
        """
    )
    assert out == "True True"


def test_user_settings_are_left_alone() -> None:
    out = _in_child(
        """
        from ngff_resave.engines.allocator import tune_allocator
        print(tune_allocator())
        """,
        {"MALLOC_TRIM_THRESHOLD_": "65536"},
    )
    assert out == "False"
