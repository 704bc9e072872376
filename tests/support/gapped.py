"""The small 0.4 image that the report and verification tests convert, once per copy path.

Level 0 is 5×40×36 uint16 in chunks 2×16×16, written into shards 4×32×32: a 2×2×2 shard
grid with edge shards whose inner chunks reach beyond the array. Each test module removes
the level-0 source chunks it needs gone ("gaps") before converting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ngff_resave.convert import ConvertOptions, ConvertResult, VerifyMode, convert
from ngff_resave.locations import LocationSpec
from ngff_resave.planning import PATH_COPY, PATH_REENCODE, PlanOptions, parse_codec
from tests.support import builders

SHAPE = (5, 40, 36)
CHUNKS = (2, 16, 16)
SHARDS = (4, 32, 32)
#: Copy path -> plan options (the CLI's ``--output-shards 4,32,32`` [``--output-codec …``]).
PLANS: dict[str, PlanOptions] = {
    "copy": PlanOptions(shards=SHARDS),
    "reencode": PlanOptions(shards=SHARDS, codec=parse_codec("blosc-zstd"), codec_given=True),
}
#: Copy path -> the path the plan takes.
PATH_TAKEN = {"copy": PATH_COPY, "reencode": PATH_REENCODE}


def build_gapped_image(root: Path, removed: Sequence[str], seed: int) -> Path:
    """The two-level zyx image at ``root``, its level-0 chunk files ``removed`` deleted."""
    builders.build_image(root, axes="zyx", shape=SHAPE, chunks=CHUNKS, levels=2, seed=seed)
    for key in removed:
        (root / "0" / key).unlink()
    return root


def convert_options(src: Path, out: Path, plan: PlanOptions, verify: VerifyMode) -> ConvertOptions:
    """Options converting ``src`` to ``out`` with ``plan``, on one worker (a stable order)."""
    return ConvertOptions(
        LocationSpec(str(src)), LocationSpec(str(out)), plan=plan, verify=verify, workers=1
    )


def convert_each_way(
    src: Path, base: Path, verify: VerifyMode
) -> dict[str, tuple[Path, ConvertOptions, ConvertResult]]:
    """Convert ``src`` once per copy path of :data:`PLANS` into ``base/<path>.zarr``."""
    done: dict[str, tuple[Path, ConvertOptions, ConvertResult]] = {}
    for name, plan in PLANS.items():
        out = base / f"{name}.zarr"
        options = convert_options(src, out, plan, verify)
        done[name] = (out, options, convert(options))
    return done
