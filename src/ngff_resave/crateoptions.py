"""The ``--rocrate-*`` options, apart from :mod:`ngff_resave.crate`.

Kept light on purpose: the command line builds its parser from these at every start, while the
``rocrate`` library (a noticeable import) is loaded only when a crate is written or checked.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class CrateOptions:
    """What the user said about the dataset (``--rocrate-*``); ``None`` means "not given"."""

    license: str | None = None
    organism: str | None = None
    modality: str | None = None
    name: str | None = None
    description: str | None = None


def add_crate_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--rocrate-*`` options shared by ``convert`` and ``crate``."""
    group = parser.add_argument_group("RO-Crate metadata")
    group.add_argument(
        "--rocrate-license",
        metavar="LICENSE",
        help="CC-BY-4.0, CC0-1.0 (or another CC 4.0 SPDX id) or a license URL; required "
        "when a crate is written",
    )
    group.add_argument(
        "--rocrate-organism",
        metavar="TEXT",
        help='NCBI taxon id (NCBI:txid9606) or name ("Homo sapiens", human)',
    )
    group.add_argument(
        "--rocrate-modality",
        metavar="TEXT",
        help='FBbi id (obo:FBbi_00000369) or name ("confocal microscopy", "light sheet")',
    )
    group.add_argument(
        "--rocrate-name", metavar="TEXT", help="dataset name (default: the image/plate name)"
    )
    group.add_argument("--rocrate-description", metavar="TEXT", help="dataset description")


def crate_options_from_args(args: argparse.Namespace) -> CrateOptions:
    """:class:`CrateOptions` from parsed ``--rocrate-*`` options (blank values count as absent)."""

    def given(name: str) -> str | None:
        value = getattr(args, name, None)
        return value.strip() or None if isinstance(value, str) else None

    return CrateOptions(
        license=given("rocrate_license"),
        organism=given("rocrate_organism"),
        modality=given("rocrate_modality"),
        name=given("rocrate_name"),
        description=given("rocrate_description"),
    )
