"""End to end through object stores: conversions from and to S3 (SeaweedFS and moto) and HTTP.

Every case goes through ``ngff_resave.cli.main``. S3 outputs are judged independently: the
output prefix is downloaded with boto3 into a temporary directory and checked there by the
official 0.5 schemas, ome-zarr-models and zarr-python/tensorstore read-back (``tests.support``
checks), never by the converter's own code. Faults go through
:class:`~tests.support.faultproxy.FaultProxy`; retry delays are small.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import ngff_resave.engines.local as local_engine
from ngff_resave.cli import main
from ngff_resave.copying import CopyTask, ShardOutcome
from tests.support import builders, checks
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.httpserver import StaticHttpServer
from tests.support.s3servers import S3Server, host_port

pytestmark = pytest.mark.s3

#: Small, bounded retries: a permanent failure must end in well under a second of waiting.
FAST = ["--retries", "3", "--retry-delay", "0.01"]
RUN_MARKER = ".ngff-resave-run.json"


# --------------------------------------------------------------------------- helpers


def upload(server: S3Server, bucket: str, prefix: str, root: Path) -> int:
    """Put every file under ``root`` at ``prefix/<relative path>``; returns the object count."""
    client = server.client()
    files = [path for path in sorted(root.rglob("*")) if path.is_file()]

    def put(path: Path) -> None:
        key = f"{prefix}/{path.relative_to(root).as_posix()}"
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))
    return len(files)


def object_keys(server: S3Server, bucket: str, prefix: str = "") -> list[str]:
    """Every key in ``bucket`` under ``prefix`` (sorted), listed with the test's own client."""
    paginator = server.client().get_paginator("list_objects_v2")
    return sorted(
        obj["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    )


def download(server: S3Server, bucket: str, prefix: str, dest: Path) -> Path:
    """Copy every object under ``prefix/`` into ``dest`` (the layout a local output has)."""
    client = server.client()
    for key in object_keys(server, bucket, f"{prefix}/"):
        path = dest / key[len(prefix) + 1 :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return dest


def endpoint_args(server: S3Server | str, *sides: str) -> list[str]:
    endpoint = server if isinstance(server, str) else server.endpoint
    return [arg for side in sides for arg in (f"--{side}-endpoint", endpoint)]


def secrets_of(server: S3Server) -> list[str]:
    return [server.secret_key, server.access_key]


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Each server in turn; on moto (which accepts any key) with a distinctive secret."""
    if not s3_server.checks_credentials:
        secret = f"NGFF-SECRET-{uuid.uuid4().hex}"
        s3_server = copy.copy(s3_server)
        s3_server.secret_key = secret
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    return s3_server


def image_with_labels(root: Path) -> Path:
    return builders.build_image(
        root,
        axes="czyx",
        shape=(2, 4, 40, 36),
        chunks=(1, 2, 16, 16),
        missing_chunks=True,
        with_labels=True,
    )


def small_image(root: Path) -> Path:
    """One small array: for cases about locations and errors rather than the hierarchy."""
    return builders.build_image(root, axes="yx", shape=(40, 36), chunks=(16, 16), levels=1)


def bioformats2raw(root: Path) -> Path:
    return builders.build_bioformats2raw(root, series=2, ome_xml=True)


def plate(root: Path) -> Path:
    return builders.build_plate(root, rows=1, cols=2, fields=1)


INPUTS: list[tuple[str, Callable[[Path], Path]]] = [
    ("image-labels-missing", image_with_labels),
    ("plate", plate),
    ("bioformats2raw", bioformats2raw),
    ("tables", builders.build_with_tables),
]
INPUT_IDS = [name for name, _ in INPUTS]


# --------------------------------------------------------------------------- directions


@pytest.mark.parametrize(("kind", "build"), INPUTS, ids=INPUT_IDS)
def test_s3_to_s3(s3: S3Server, tmp_path: Path, kind: str, build: Callable[[Path], Path]) -> None:
    """Bucket to bucket with ``--input-bucket``/``--output-bucket`` (the fast path)."""
    src = build(tmp_path / "in.zarr")
    in_bucket, out_bucket = s3.unique_bucket("in"), s3.unique_bucket("out")
    n_objects = upload(s3, in_bucket, "data/in.zarr", src)
    report = tmp_path / "report.json"
    args = ["convert", "data/in.zarr", "conv/out.zarr", "-q", "--verify", "full"]
    args += ["--input-bucket", in_bucket, "--output-bucket", out_bucket, "--report", str(report)]
    assert main([*args, *endpoint_args(s3, "input", "output")]) == 0
    out = download(s3, out_bucket, "conv/out.zarr", tmp_path / "out.zarr")
    checks.judge_output(src, out)
    if kind == "bioformats2raw":
        xml = (src / "OME" / "METADATA.ome.xml").read_bytes()
        assert (out / "OME" / "METADATA.ome.xml").read_bytes() == xml
    # The input is untouched; the output is under its prefix and nowhere else.
    assert len(object_keys(s3, in_bucket)) == n_objects
    assert all(k.startswith("conv/out.zarr/") for k in object_keys(s3, out_bucket))
    doc = json.loads(report.read_text())
    assert doc["input"] == f"s3://{in_bucket}/data/in.zarr"
    assert doc["output"] == f"s3://{out_bucket}/conv/out.zarr"
    assert doc["total"]["shards_written"] > 0
    text = report.read_text()
    assert not any(secret in text for secret in secrets_of(s3))


def test_s3_to_local(s3: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = image_with_labels(tmp_path / "in.zarr")
    bucket = s3.unique_bucket("in")
    upload(s3, bucket, "in.zarr", src)
    out = tmp_path / "out.zarr"
    args = ["convert", "in.zarr", str(out), "--input-bucket", bucket, "--verify", "full"]
    assert main([*args, *endpoint_args(s3, "input")]) == 0
    err = capsys.readouterr().err
    assert "converted" in err and not any(secret in err for secret in secrets_of(s3))
    checks.judge_output(src, out)


def test_local_to_s3(s3: S3Server, tmp_path: Path) -> None:
    src = builders.build_with_tables(tmp_path / "in.zarr")
    bucket = s3.unique_bucket("out")
    args = ["convert", str(src), "out.zarr", "-q", "--output-bucket", bucket]
    assert main([*args, *endpoint_args(s3, "output")]) == 0
    checks.judge_output(src, download(s3, bucket, "out.zarr", tmp_path / "out.zarr"))


@pytest.mark.parametrize(
    "extra",
    [["--output-codec", "zstd:3"], ["--output-chunks", "1,3,20,24", "--output-codec", "gzip:1"]],
    ids=["same-chunks", "other-chunks"],
)
def test_reencode_streams_shards_to_s3(s3: S3Server, tmp_path: Path, extra: list[str]) -> None:
    """Re-encoded inner chunks go to S3 as they are encoded (multipart), read back equal."""
    src = builders.build_image(
        tmp_path / "in.zarr",
        axes="czyx",
        shape=(2, 6, 45, 50),
        chunks=(1, 3, 16, 16),
        missing_chunks=True,
    )
    bucket = s3.unique_bucket("out")
    args = ["convert", str(src), "out.zarr", "-q", "--verify", "full", "--output-bucket", bucket]
    assert main([*args, *extra, *endpoint_args(s3, "output")]) == 0
    out = download(s3, bucket, "out.zarr", tmp_path / "out.zarr")
    checks.judge_output(src, out)
    codecs = json.loads((out / "0" / "zarr.json").read_text())["codecs"]
    assert codecs[0]["configuration"]["codecs"][1]["name"] == extra[-1].split(":")[0]


def test_url_form_and_validate(
    s3: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``s3://bucket/prefix`` positionals; ``ngff-resave validate s3://…`` reads the output."""
    src = image_with_labels(tmp_path / "in.zarr")
    in_bucket, out_bucket = s3.unique_bucket("in"), s3.unique_bucket("out")
    upload(s3, in_bucket, "a.zarr", src)
    args = ["convert", f"s3://{in_bucket}/a.zarr", f"s3://{out_bucket}/b.zarr", "-q"]
    assert main([*args, *endpoint_args(s3, "input", "output")]) == 0
    checks.judge_output(src, download(s3, out_bucket, "b.zarr", tmp_path / "out.zarr"))
    capsys.readouterr()
    validate = ["validate", f"s3://{out_bucket}/b.zarr", *endpoint_args(s3, "input")]
    assert main(validate) == 0
    captured = capsys.readouterr()
    assert "0 failed" in captured.err
    assert "labels/cells" in captured.out  # every node is listed, labels included
    # A broken node is found over S3 too.
    s3.client().put_object(Bucket=out_bucket, Key="b.zarr/zarr.json", Body=b"{}")
    assert main(validate) == 1


def test_write_details_of_s3_input(
    s3: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = small_image(tmp_path / "in.zarr")
    bucket = s3.unique_bucket("in")
    upload(s3, bucket, "in.zarr", src)
    details = tmp_path / "plan.json"
    args = ["convert", f"s3://{bucket}/in.zarr", str(details), "--output-write-details"]
    assert main([*args, *endpoint_args(s3, "input")]) == 0
    text = details.read_text()
    doc = json.loads(text)
    assert f"s3://{bucket}/in.zarr" in text
    assert doc["arrays"] and not any(secret in text for secret in secrets_of(s3))
    assert not any(secret in capsys.readouterr().err for secret in secrets_of(s3))
    # The plan file drives a real conversion of the same input.
    out = tmp_path / "out.zarr"
    args = ["convert", f"s3://{bucket}/in.zarr", str(out), "-q"]
    assert main([*args, "--output-read-details", str(details), *endpoint_args(s3, "input")]) == 0
    checks.judge_output(src, out)


# --------------------------------------------------------------------------- output safety


def test_existing_output_refused_and_overwrite_deletes_only_its_prefix(
    s3: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = small_image(tmp_path / "in.zarr")
    bucket = s3.unique_bucket("shared")  # input, output and neighbours in one bucket
    upload(s3, bucket, "in.zarr", src)
    client = s3.client()
    neighbours = {"out.zarr2/keep": b"sibling", "other/keep": b"other", "out.zarr.txt": b"file"}
    for key, body in {**neighbours, "out.zarr/precious": b"old output"}.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    args = ["convert", f"s3://{bucket}/in.zarr", f"s3://{bucket}/out.zarr", "-q"]
    args += endpoint_args(s3, "input", "output")
    assert main(args) == 1
    assert "--output-overwrite" in checks.one_error_line(capsys.readouterr().err)
    assert client.get_object(Bucket=bucket, Key="out.zarr/precious")["Body"].read() == b"old output"

    assert main([*args, "--output-overwrite"]) == 0
    keys = object_keys(s3, bucket)
    assert "out.zarr/precious" not in keys and "out.zarr/zarr.json" in keys
    for key, body in neighbours.items():
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    checks.judge_output(src, download(s3, bucket, "out.zarr", tmp_path / "out.zarr"))


# --------------------------------------------------------------------------- access


def test_anonymous_read_of_public_bucket(
    seaweed: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = image_with_labels(tmp_path / "in.zarr")
    bucket = seaweed.unique_bucket("public")
    upload(seaweed, bucket, "in.zarr", src)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)  # no credentials at all: only unsigned requests can work
    out = tmp_path / "out.zarr"
    args = ["convert", "in.zarr", str(out), "-q", "--input-bucket", bucket, "--input-anon"]
    assert main([*args, *endpoint_args(seaweed, "input")]) == 0
    checks.judge_output(src, out)


def test_anonymous_write_is_refused(
    seaweed: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = small_image(tmp_path / "in.zarr")
    bucket = seaweed.unique_bucket("out")
    args = ["convert", str(src), f"s3://{bucket}/out.zarr", "--output-anon"]
    assert main([*args, *endpoint_args(seaweed, "output")]) == 1
    line = checks.one_error_line(capsys.readouterr().err)
    assert "anonymously" in line and "--output-anon" in line
    assert object_keys(seaweed, bucket) == []


def test_wrong_secret_is_one_clear_line(
    seaweed: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = small_image(tmp_path / "in.zarr")
    bucket = seaweed.unique_bucket("in")
    upload(seaweed, bucket, "in.zarr", src)
    wrong = f"WRONG-SECRET-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    report = tmp_path / "report.json"
    args = ["convert", f"s3://{bucket}/in.zarr", str(tmp_path / "out.zarr"), *FAST]
    assert main([*args, "--report", str(report), *endpoint_args(seaweed, "input")]) == 1
    err = capsys.readouterr().err
    line = checks.one_error_line(err)
    assert "credentials" in line and "SignatureDoesNotMatch" in line
    assert wrong not in err and seaweed.access_key not in err
    assert not report.exists()


def test_missing_bucket_and_missing_prefix(
    s3: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    out = str(tmp_path / "out.zarr")
    assert main(["convert", f"s3://{missing}/a.zarr", out, *endpoint_args(s3, "input")]) == 1
    line = checks.one_error_line(capsys.readouterr().err)
    assert f"bucket '{missing}' does not exist" in line and s3.endpoint in line

    bucket = s3.unique_bucket("in")
    s3.client().put_object(Bucket=bucket, Key="elsewhere/.zattrs", Body=b"{}")
    assert main(["convert", f"s3://{bucket}/nope.zarr", out, *endpoint_args(s3, "input")]) == 1
    line = checks.one_error_line(capsys.readouterr().err)
    assert f"s3://{bucket}/nope.zarr" in line and "holds no objects" in line

    src = small_image(tmp_path / "in.zarr")
    args = ["convert", str(src), f"s3://{missing}/out.zarr", *endpoint_args(s3, "output")]
    assert main(args) == 1
    assert f"bucket '{missing}' does not exist" in checks.one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- faults


def test_transient_faults_during_a_conversion(s3: S3Server, tmp_path: Path) -> None:
    """Resets, bodies cut mid-way and 503 SlowDown on both sides: retried, output correct."""
    src = bioformats2raw(tmp_path / "in.zarr")
    in_bucket, out_bucket = s3.unique_bucket("in"), s3.unique_bucket("out")
    upload(s3, in_bucket, "in.zarr", src)
    with FaultProxy(host_port(s3.endpoint)) as proxy:
        # Faults spread over the run (pass-through connections between them), so they hit
        # listing, chunk GETs and shard PUTs alike; at most 3 in a row, well under 8 attempts.
        proxy.add(
            Fault("reset", count=2),
            Fault("latency", count=3),  # no delay: pass through
            Fault("cut", count=2, after=700),  # a 0.4 chunk here is ~1-3 kB: cut mid-body
            Fault("latency", count=3),
            Fault("slowdown", count=3),
            Fault("latency", count=3),
            Fault("cut", count=2, after=30),  # in the status line/headers
        )
        args = ["convert", f"s3://{in_bucket}/in.zarr", f"s3://{out_bucket}/out.zarr", "-q"]
        args += ["--retries", "8", "--retry-delay", "0.01", "--verify", "full"]
        assert main([*args, *endpoint_args(proxy.endpoint, "input", "output")]) == 0
        applied = list(proxy.applied)
    faults = [kind for kind in applied if kind != "latency"]
    assert sorted(set(faults)) == ["cut", "reset", "slowdown"] and len(faults) == 9
    checks.judge_output(src, download(s3, out_bucket, "out.zarr", tmp_path / "out.zarr"))


def _stop_after(
    monkeypatch: pytest.MonkeyPatch, shards: int, action: Callable[[], None]
) -> list[str]:
    """Make the engine call ``action`` after ``shards`` shard tasks finished (once)."""
    done: list[str] = []
    lock = threading.Lock()
    original = local_engine.copy_shard

    def copy_then_maybe_act(task: CopyTask) -> ShardOutcome:
        with lock:
            if len(done) >= shards:
                action()
        outcome = original(task)
        with lock:
            done.append(outcome.shard_key)
        return outcome

    monkeypatch.setattr(local_engine, "copy_shard", copy_then_maybe_act)
    return done


def _many_shards(root: Path) -> Path:
    """An image whose arrays have several shards each (with ``--output-shards 1,32,32``)."""
    return builders.build_image(
        root, axes="cyx", shape=(2, 96, 96), chunks=(1, 16, 16), levels=2, missing_chunks=True
    )


def test_permanent_failure_is_bounded_and_leaves_no_partial_shard(
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The output endpoint dies mid-run: exit 1 quickly, naming endpoint and object."""
    src = _many_shards(tmp_path / "in.zarr")
    reference = tmp_path / "reference.zarr"
    shards = ["--output-shards", "1,32,32", "--workers", "2"]
    assert main(["convert", str(src), str(reference), "-q", *shards]) == 0
    bucket = s3.unique_bucket("out")
    with FaultProxy(host_port(s3.endpoint)) as proxy:
        killed = threading.Event()

        def kill_endpoint() -> None:
            if not killed.is_set():
                killed.set()
                proxy.stop()  # every later connection is refused: a dead endpoint

        _stop_after(monkeypatch, 4, kill_endpoint)
        args = ["convert", str(src), f"s3://{bucket}/out.zarr", *shards, *FAST]
        start = time.monotonic()
        assert main([*args, *endpoint_args(proxy.endpoint, "output")]) == 1
        elapsed = time.monotonic() - start
    line = checks.one_error_line(capsys.readouterr().err)
    assert elapsed < 20, elapsed
    assert proxy.endpoint in line and f"s3://{bucket}/out.zarr/" in line
    assert "gave up after 3 attempts" in line
    # Every shard that is visible is whole: byte for byte the shard of a good run.
    keys = object_keys(s3, bucket, "out.zarr/")
    shard_keys = [k for k in keys if "/c/" in k]
    assert 4 <= len(shard_keys) < len(list(reference.rglob("c/*/*/*")))
    client = s3.client()
    for key in shard_keys:
        stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert stored == (reference / key.removeprefix("out.zarr/")).read_bytes(), key
    assert "out.zarr/zarr.json" not in keys  # the run never looks done


def test_resume_on_s3(
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An interrupted S3 run is resumed by rerunning it; finished shards are kept."""
    src = _many_shards(tmp_path / "in.zarr")
    in_bucket, out_bucket = s3.unique_bucket("in"), s3.unique_bucket("out")
    upload(s3, in_bucket, "in.zarr", src)
    args = ["convert", f"s3://{in_bucket}/in.zarr", f"s3://{out_bucket}/out.zarr", "-q"]
    args += ["--output-shards", "1,32,32", "--workers", "1", "--report", str(tmp_path / "r.json")]
    args += endpoint_args(s3, "input", "output")

    def interrupt() -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        done = _stop_after(patch, 5, interrupt)
        assert main(args) == 130
    assert "rerun the same command to resume" in checks.one_error_line(capsys.readouterr().err)
    keys = object_keys(s3, out_bucket, "out.zarr/")
    assert f"out.zarr/{RUN_MARKER}" in keys and "out.zarr/zarr.json" not in keys
    assert len(done) == 5
    finished = [k for k in done if f"out.zarr/{k}" in keys]  # empty shards are not written
    assert finished

    assert main(args) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["total"]["shards_skipped_existing"] == len(finished)
    assert doc["total"]["shards_written"] + len(finished) == len(
        [k for k in object_keys(s3, out_bucket, "out.zarr/") if "/c/" in k]
    )
    assert "already done" in capsys.readouterr().err
    checks.judge_output(src, download(s3, out_bucket, "out.zarr", tmp_path / "out.zarr"))


# --------------------------------------------------------------------------- HTTP


def test_http_input_is_walked_from_metadata(tmp_path: Path) -> None:
    """A plain HTTP server (no listing): the hierarchy comes from the metadata alone."""
    src = image_with_labels(tmp_path / "site" / "in.zarr")
    out = tmp_path / "out.zarr"
    with StaticHttpServer(tmp_path / "site") as server:
        args = ["convert", f"{server.url}/in.zarr", str(out), "-q", "--verify", "full"]
        assert main(args) == 0
        assert server.requests > 0
    checks.judge_output(src, out)


def test_credentials_never_leak(
    s3: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With debug logging, neither the key nor the secret shows in stderr, report or plan."""
    src = small_image(tmp_path / "in.zarr")
    in_bucket, out_bucket = s3.unique_bucket("in"), s3.unique_bucket("out")
    upload(s3, in_bucket, "in.zarr", src)
    report, details = tmp_path / "report.json", tmp_path / "plan.json"
    base = ["convert", f"s3://{in_bucket}/in.zarr", "--log", "debug"]
    base += endpoint_args(s3, "input", "output")
    assert main([*base, str(details), "--output-write-details"]) == 0
    out = f"s3://{out_bucket}/out.zarr"
    assert (
        main(
            [
                *base,
                out,
                "--report",
                str(report),
                "--output-rocrate",
                "--rocrate-license",
                "CC-BY-4.0",
            ]
        )
        == 0
    )
    crate = s3.client().get_object(Bucket=out_bucket, Key="out.zarr/ro-crate-metadata.json")
    texts: dict[str, Any] = {
        "stderr": capsys.readouterr().err,
        "report": report.read_text(),
        "details": details.read_text(),
        "ro-crate": crate["Body"].read().decode(),
    }
    for where, text in texts.items():
        for secret in secrets_of(s3):
            assert secret not in text, f"credential in {where}"


# --------------------------------------------------------------------------- streamed shards


def test_multipart_shard_upload_is_whole_or_absent(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard larger than one part is uploaded in parts; a failed upload leaves nothing."""
    from ngff_resave import remote

    monkeypatch.setattr(remote, "MULTIPART_IN_FLIGHT", 2)
    bucket = s3.unique_bucket("mp")
    store = remote.S3Store(bucket, "o.zarr", endpoint=s3.endpoint)
    piece = bytes(range(256)) * 4096  # 1 MiB
    assert store.write_parts("0/c/0", (piece for _ in range(19))) == 19 * len(piece)
    assert store.read("0/c/0") == piece * 19  # 8 + 8 + 3 MiB: three parts
    assert store.write_parts("0/c/1", iter([])) == 0 and not store.exists("0/c/1")

    def failing() -> Any:
        yield from (piece for _ in range(17))
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        store.write_parts("0/c/2", failing())
    assert not store.exists("0/c/2")
    uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert uploads == []  # aborted, no parts left behind


def test_hanging_endpoint_fails_within_the_request_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An endpoint that accepts connections but never answers: bounded by --request-timeout."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "hang-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hang-secret-not-to-be-printed")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        code = main(
            [
                "convert",
                "s3://in/a.zarr",
                str(tmp_path / "out.zarr"),
                "--input-endpoint",
                endpoint,
                "--request-timeout",
                "0.5",
                "--retries",
                "2",
                "--retry-delay",
                "0.01",
            ]
        )
        elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert endpoint in err and "hang-secret" not in err
    assert not (tmp_path / "out.zarr").exists()
