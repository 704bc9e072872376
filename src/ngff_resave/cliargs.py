"""Command-line options shared by every subcommand that reads or writes a location.

Kept apart from :mod:`ngff_resave.cli` so that :mod:`ngff_resave.scripts` (whose
``convert-array`` and ``finalize`` commands the CLI mounts) uses the same options.
"""

from __future__ import annotations

import argparse

from ngff_resave.locations import LocationSpec


def add_location_args(parser: argparse.ArgumentParser, side: str) -> None:
    """``--{side}-bucket/-endpoint/-anon/-region`` (the original challenge script's names)."""
    group = parser.add_argument_group(f"{side} location (S3)")
    group.add_argument(f"--{side}-bucket", help=f"S3 bucket of the {side}; the path is a prefix")
    group.add_argument(f"--{side}-endpoint", help="S3 endpoint URL, e.g. https://s3.example.org")
    group.add_argument(
        f"--{side}-anon", action="store_true", help="unsigned (anonymous) S3 requests"
    )
    group.add_argument(f"--{side}-region", help="S3 region")


def location_spec(args: argparse.Namespace, side: str, path: str) -> LocationSpec:
    """The :class:`LocationSpec` of one side from the parsed options."""
    return LocationSpec(
        path=path,
        bucket=getattr(args, f"{side}_bucket"),
        endpoint=getattr(args, f"{side}_endpoint"),
        anon=getattr(args, f"{side}_anon"),
        region=getattr(args, f"{side}_region"),
        max_in_flight=getattr(args, "requests_in_flight", 16),
        retry_attempts=getattr(args, "retries", 8),
        retry_delay=getattr(args, "retry_delay", 0.2),
        request_timeout=getattr(args, "request_timeout", 30.0),
    )


def add_remote_tuning(parser: argparse.ArgumentParser) -> None:
    """Object-store request concurrency, retries and timeout."""
    group = parser.add_argument_group("object stores (S3, HTTP)")
    group.add_argument(
        "--requests-in-flight",
        type=int,
        default=16,
        metavar="N",
        help="concurrent object-store requests (default 16)",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=8,
        metavar="N",
        help="attempts per request on transient errors (default 8)",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="connect and read timeout of one request (default 30); a hanging endpoint fails "
        "after about retries x timeout",
    )
    group.add_argument(
        "--retry-delay",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="first back-off delay, doubled per retry (default 0.2)",
    )
