"""Fuzz the JSON readers for a bounded time: ``python -m tests.reliability.fuzz_json --seconds 60``.

Hypothesis generates ``.zattrs`` / ``.zarray`` / ``.zgroup`` documents — valid 0.4 ones with
keys replaced by arbitrary JSON, at any depth, or arbitrary documents outright — writes them
as an image on disk (with a label image and a non-OME child), and runs everything that reads
them before a byte of output is written: ``discover``, codec loading, planning, the v3 array
and 0.5 group metadata. Any exception other than the package's own :class:`ResaveError` is a
bug; the falsifying documents are printed and the command exits 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from ngff_resave.chunkcodecs import check_source_codecs
from ngff_resave.convert import array_document, group_document
from ngff_resave.discover import discover
from ngff_resave.errors import ResaveError
from ngff_resave.locations import LocalStore
from ngff_resave.metadata.ome import migrate_attributes
from ngff_resave.planning import PlanOptions, plan_inventory

ZARRAY: dict[str, Any] = {
    "zarr_format": 2,
    "shape": [2, 40, 36],
    "chunks": [1, 16, 16],
    "dtype": "<u2",
    "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    "fill_value": 0,
    "order": "C",
    "filters": None,
    "dimension_separator": "/",
}
ZATTRS: dict[str, Any] = {
    "multiscales": [
        {
            "version": "0.4",
            "name": "image",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
            ],
        }
    ],
    "omero": {"channels": [{"window": {"start": 0, "end": 1, "min": 0, "max": 1}}]},
}
LABEL_ATTRS: dict[str, Any] = {
    **copy.deepcopy(ZATTRS),
    "image-label": {"version": "0.4", "colors": [{"label-value": 1, "rgba": [1, 2, 3, 4]}]},
}

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, -1, 2, 3, 5, 2**31, 2**63, 2**64])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(
        [
            "NaN",
            "Infinity",
            "<u2",
            ">f8",
            "|b1",
            "<U4",
            "O",
            "C",
            "F",
            ".",
            "/",
            "..",
            "/etc",
            "0",
            "blosc",
            "zstd",
            "gzip",
            "zlib",
            "lz4",
            "0.4",
            "0.5",
            "0.3",
            "space",
            "x",
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "path", "name", "type", "version", "axes", "datasets"])
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)


@st.composite
def mutated(draw: st.DrawFn, base: Any, depth: int = 0) -> Any:
    """``base`` with a few values, at any depth, replaced by arbitrary JSON (or deleted).

    Most documents stay valid (two in three are untouched), so the walk gets deep enough to
    plan arrays and migrate metadata with one or two values broken.
    """
    if depth == 0 and draw(st.integers(0, 2)) > 0:
        return copy.deepcopy(base)
    if draw(st.integers(0, 40)) == 0:
        return draw(JSON)
    if isinstance(base, dict):
        out = {}
        for key, value in base.items():
            choice = draw(st.integers(0, 30))
            if choice == 0:
                continue  # key deleted
            out[key] = draw(mutated(value, depth + 1)) if choice < 6 else copy.deepcopy(value)
        if draw(st.integers(0, 10)) == 0:
            out[draw(st.text(max_size=4))] = draw(JSON)
        return out
    if isinstance(base, list):
        items = [
            draw(mutated(v, depth + 1)) if draw(st.integers(0, 4)) == 0 else copy.deepcopy(v)
            for v in base
        ]
        if draw(st.integers(0, 10)) == 0:
            items.append(draw(JSON))
        return items
    return draw(JSON) if draw(st.integers(0, 2)) == 0 else base


def _write(path: Path, doc: Any, raw: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if raw else json.dumps(doc))


def exercise(docs: dict[str, Any]) -> None:
    """Write ``docs`` (relative path → document) as a tree and run every reader on it."""
    with tempfile.TemporaryDirectory(prefix="ngff-fuzz-") as tmp:
        root = Path(tmp, "in.zarr")
        for rel, doc in docs.items():
            _write(root / rel, doc, isinstance(doc, str))
        store = LocalStore(str(root))
        try:
            inventory = discover(store)
            for node in inventory.arrays:
                check_source_codecs(node.meta, node.path)
            plans = plan_inventory(inventory, PlanOptions(shard_bytes=1 << 20))
            nodes = {n.path: n for n in inventory.arrays}
            for plan in plans:
                array_document(nodes[plan.path], plan)  # the array zarr.json the run writes
            for group in inventory.groups:
                group_document(migrate_attributes(group.attrs, group.kind))
        except ResaveError:
            pass  # the package's own, clean error: fine


DOCUMENTS = st.fixed_dictionaries(
    {
        ".zgroup": mutated({"zarr_format": 2}),
        ".zattrs": mutated(ZATTRS),
        "0/.zarray": mutated(ZARRAY),
        "labels/.zgroup": st.just({"zarr_format": 2}),
        "labels/.zattrs": mutated({"labels": ["cells"]}),
        "labels/cells/.zgroup": st.just({"zarr_format": 2}),
        "labels/cells/.zattrs": mutated(LABEL_ATTRS),
        "labels/cells/0/.zarray": mutated({**ZARRAY, "dtype": "<u4", "shape": [1, 40, 36]}),
        "extra/.zarray": mutated({**ZARRAY, "shape": [7], "chunks": [3]}),
    }
)


def run_batch(batch_seed: int, examples: int) -> None:
    """One hypothesis run of ``examples`` documents from ``batch_seed`` (raises on a bug)."""

    @seed(batch_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(docs=DOCUMENTS)
    def fuzz(docs: dict[str, Any]) -> None:
        exercise(docs)

    fuzz()


def fuzz_for(seconds: float, batch: int = 20, first_seed: int = 0) -> int:
    """Run batches until ``seconds`` have passed; returns the number of documents tried."""
    deadline = time.monotonic() + seconds
    tried = 0
    batch_seed = first_seed
    while time.monotonic() < deadline:
        run_batch(batch_seed, batch)
        tried += batch
        batch_seed += 1
    return tried


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="first batch seed (default 0)")
    args = parser.parse_args(argv)
    try:
        tried = fuzz_for(args.seconds, first_seed=args.seed)
    except Exception as exc:  # the falsifying example was printed by hypothesis
        print(f"fuzz: BUG: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"fuzz: {tried} generated inputs, no crash other than ResaveError")
    return 0


if __name__ == "__main__":
    sys.exit(main())
