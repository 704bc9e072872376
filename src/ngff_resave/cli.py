"""Command line interface (placeholder until the converter lands)."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    return 0


def console_main() -> None:
    """Entry point of the ``ngff-resave`` console script."""
    sys.exit(main())
