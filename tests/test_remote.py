"""Remote stores against real servers on 127.0.0.1: SeaweedFS and moto (S3), http.server (HTTP).

Faults go through :class:`~tests.support.faultproxy.FaultProxy`; retry delays are small so the
whole module runs in well under a minute.
"""

from __future__ import annotations

import copy
import pickle
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from ngff_resave import remote
from ngff_resave.errors import NodeNotFoundError, ResaveError, StorageError
from ngff_resave.locations import LocationSpec, Store, open_store
from ngff_resave.remote import (
    BucketNotFoundError,
    HttpStore,
    ListingNotSupportedError,
    ReadOnlyStoreError,
    RemoteAccessError,
    RetryPolicy,
    S3Store,
    open_remote_store,
)
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.httpserver import StaticHttpServer
from tests.support.s3servers import S3Server, host_port

# The server fixtures. Other modules that need them should share ONE registration, e.g.
# ``pytest_plugins = ["tests.support.s3servers"]`` in tests/conftest.py (then drop these
# lines): a fixture re-exported by two modules is two fixtures, so two servers per session.
pytestmark = pytest.mark.s3

FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)


def _store(server: S3Server, bucket: str, prefix: str = "", **kwargs: Any) -> S3Store:
    return S3Store(bucket, prefix, endpoint=server.endpoint, retry=FAST_RETRY, **kwargs)


# --------------------------------------------------------------------------- the Store protocol


def test_write_read_exists_and_missing(s3_server: S3Server) -> None:
    bucket = s3_server.unique_bucket()
    store = _store(s3_server, bucket, "img.zarr")
    assert isinstance(store, Store)
    assert store.is_empty()
    store.write("0/.zarray", b'{"zarr_format": 2}')
    store.write("0/0.0", bytes(range(256)) * 1000)
    assert store.read("0/.zarray") == b'{"zarr_format": 2}'
    assert store.read("0/0.0") == bytes(range(256)) * 1000
    assert store.read("0/9.9") is None
    assert store.exists("0/.zarray")
    assert not store.exists("0/9.9")
    assert not store.is_empty()
    # The object sits under the prefix in the bucket, nowhere else.
    listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["img.zarr/0/.zarray", "img.zarr/0/0.0"]


def test_read_many_is_ordered_and_concurrent(s3_server: S3Server) -> None:
    store = _store(s3_server, s3_server.unique_bucket(), "a", max_in_flight=8)
    payloads = {f"c/{i}": f"chunk {i}".encode() * (i + 1) for i in range(40)}
    for key, data in payloads.items():
        store.write(key, data)
    keys = [*payloads, "c/missing", "c/3"]
    assert store.read_many(keys) == [*payloads.values(), None, payloads["c/3"]]
    assert store.read_many([]) == []


def test_read_many_bounds_requests_in_flight(s3_server: S3Server) -> None:
    """``max_in_flight`` caps concurrent GETs, and they do overlap (0.2 s latency each)."""
    bucket = s3_server.unique_bucket()
    keys = [f"k{i}" for i in range(12)]
    for key in keys:
        _store(s3_server, bucket).write(key, key.encode())
    latency = [Fault("latency", count=None, delay=0.2)]
    with FaultProxy(host_port(s3_server.endpoint), latency) as proxy:
        store = S3Store(bucket, endpoint=proxy.endpoint, retry=FAST_RETRY, max_in_flight=4)
        start = time.monotonic()
        assert store.read_many(keys) == [k.encode() for k in keys]
        elapsed = time.monotonic() - start
    assert 2 <= proxy.max_active <= 4
    assert elapsed < 12 * 0.2 / 2, elapsed


def test_listing(s3_server: S3Server) -> None:
    store = _store(s3_server, s3_server.unique_bucket(), "root.zarr")
    for key in ["zarr.json", "0/zarr.json", "0/c/0/0", "1/zarr.json", "labels/a/zarr.json"]:
        store.write(key, b"x")
    assert store.list_children("") == ["0", "1", "labels"]
    assert store.list_children("labels") == ["a"]
    assert store.list_children("0/c/0") == []
    assert store.list_children("nothing") == []
    assert sorted(store.list_keys("")) == sorted(
        ["zarr.json", "0/zarr.json", "0/c/0/0", "1/zarr.json", "labels/a/zarr.json"]
    )
    assert sorted(store.list_keys("0")) == ["0/c/0/0", "0/zarr.json"]


def test_listing_and_deleting_in_pages(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More keys than one ListObjectsV2 page / DeleteObjects batch: all listed, all deleted."""
    monkeypatch.setattr(remote, "_LIST_PAGE", 4)
    monkeypatch.setattr(remote, "_DELETE_BATCH", 3)
    store = _store(s3_server, s3_server.unique_bucket(), "p")
    keys = [f"k/{i:02d}" for i in range(11)] + [f"d{i}/x" for i in range(6)]
    for key in keys:
        store.write(key, b"")
    assert sorted(store.list_keys("")) == sorted(keys)
    assert store.list_children("") == [f"d{i}" for i in range(6)] + ["k"]
    store.delete_prefix("k")
    assert sorted(store.list_keys("")) == [f"d{i}/x" for i in range(6)]


def test_delete_prefix_touches_nothing_else(s3_server: S3Server) -> None:
    bucket = s3_server.unique_bucket()
    out = _store(s3_server, bucket, "out.zarr")
    sibling = _store(s3_server, bucket, "out.zarr2")  # shares the string prefix "out.zarr"
    other = _store(s3_server, bucket, "other")
    for store in (out, sibling, other):
        store.write("zarr.json", b"{}")
        store.write("0/c/0", b"data")
    out.write("labels/x/zarr.json", b"{}")
    out.delete_prefix("labels")
    assert list(out.list_keys("")) != [] and out.read("labels/x/zarr.json") is None
    out.delete_prefix("")
    assert out.is_empty()
    assert sibling.read("0/c/0") == b"data" and other.read("zarr.json") == b"{}"


def test_keys_are_checked(s3_server: S3Server) -> None:
    store = _store(s3_server, "whatever")
    with pytest.raises(ResaveError, match="leaves its root"):
        store.read("../escape")
    with pytest.raises(ResaveError):
        S3Store("bucket", "a/../b")


# --------------------------------------------------------------------------- opening locations


def test_open_store_forms(s3_server: S3Server) -> None:
    bucket = s3_server.unique_bucket()
    _store(s3_server, bucket, "in/a.zarr").write("zarr.json", b"{}")
    by_url = open_store(LocationSpec(f"s3://{bucket}/in/a.zarr", endpoint=s3_server.endpoint))
    by_bucket = open_store(LocationSpec("in/a.zarr/", bucket=bucket, endpoint=s3_server.endpoint))
    for store in (by_url, by_bucket):
        assert isinstance(store, S3Store)
        assert store.url == f"s3://{bucket}/in/a.zarr"
        assert store.read("zarr.json") == b"{}"
    out = open_store(
        LocationSpec("out.zarr", bucket=bucket, endpoint=s3_server.endpoint), for_writing=True
    )
    assert out.is_empty()


def test_missing_prefix_is_not_found(s3_server: S3Server) -> None:
    bucket = s3_server.unique_bucket()
    with pytest.raises(NodeNotFoundError, match="holds no objects"):
        open_store(LocationSpec(f"s3://{bucket}/nope.zarr", endpoint=s3_server.endpoint))


def test_missing_bucket(s3_server: S3Server) -> None:
    name = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BucketNotFoundError, match=f"bucket '{name}' does not exist") as info:
        open_store(LocationSpec(f"s3://{name}/a.zarr", endpoint=s3_server.endpoint))
    assert "\n" not in str(info.value)
    store = _store(s3_server, name, "a.zarr")
    with pytest.raises(BucketNotFoundError):
        store.read("zarr.json")
    with pytest.raises(BucketNotFoundError):
        store.write("zarr.json", b"{}")
    with pytest.raises(BucketNotFoundError):
        open_store(
            LocationSpec(f"s3://{name}/b.zarr", endpoint=s3_server.endpoint), for_writing=True
        )


def test_anonymous_write_is_refused_before_any_request() -> None:
    spec = LocationSpec("s3://bucket/out.zarr", endpoint="http://127.0.0.1:9", anon=True)
    with pytest.raises(ReadOnlyStoreError, match="anonymously"):
        open_store(spec, for_writing=True)
    with pytest.raises(ReadOnlyStoreError, match="anonymously"):
        S3Store("bucket", "out.zarr", endpoint="http://127.0.0.1:9", anon=True).write("k", b"")


# --------------------------------------------------------------------------- SeaweedFS: access


def test_anonymous_read_of_public_bucket(
    seaweed: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = seaweed.unique_bucket("public")
    _store(seaweed, bucket, "img.zarr").write("0/zarr.json", b'{"a": 1}')
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    spec = LocationSpec(f"s3://{bucket}/img.zarr", endpoint=seaweed.endpoint, anon=True)
    store = open_store(spec)
    assert isinstance(store, S3Store) and store.anon
    assert store.read("0/zarr.json") == b'{"a": 1}'
    assert store.read("0/missing") is None
    assert store.list_children("") == ["0"]


def test_anonymous_write_refused_by_server(seaweed: S3Server) -> None:
    """Even past our own check, the server's anonymous identity cannot write."""
    bucket = seaweed.unique_bucket()
    client = seaweed.client(config=Config(signature_version=UNSIGNED))
    with pytest.raises(ClientError, match="AccessDenied"):
        client.put_object(Bucket=bucket, Key="x", Body=b"1")


def test_wrong_secret_is_a_clear_error(seaweed: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = seaweed.unique_bucket()
    wrong = "this-is-the-wrong-secret-0000"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    spec = LocationSpec(f"s3://{bucket}/out.zarr", endpoint=seaweed.endpoint)
    with pytest.raises(RemoteAccessError, match="rejected the credentials") as info:
        open_store(spec, for_writing=True)
    message = str(info.value)
    assert "AWS_SECRET_ACCESS_KEY" in message and "\n" not in message
    assert wrong not in message and seaweed.secret_key not in message
    with pytest.raises(RemoteAccessError, match="SignatureDoesNotMatch"):
        _store(seaweed, bucket, "out.zarr").write("zarr.json", b"{}")


def test_unknown_access_key_and_no_credentials(
    seaweed: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = seaweed.unique_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(RemoteAccessError, match="InvalidAccessKeyId"):
        _store(seaweed, bucket).read("k")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(RemoteAccessError, match="no usable AWS credentials"):
        _store(seaweed, bucket).read("k")


# --------------------------------------------------------------------------- faults and retries


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([Fault("reset", count=3)], id="reset"),
        pytest.param([Fault("cut", count=2, after=20)], id="cut-in-headers"),
        pytest.param([Fault("cut", count=2, after=3000)], id="cut-mid-body"),
        pytest.param([Fault("slowdown", count=3)], id="503-slowdown"),
        pytest.param([Fault("latency", count=1, delay=0.3)], id="latency"),
    ],
)
def test_transient_faults_are_retried(s3_server: S3Server, faults: list[Fault]) -> None:
    faults = copy.deepcopy(faults)  # the proxy spends the budgets; params are shared
    bucket = s3_server.unique_bucket()
    payload = bytes(range(256)) * 64  # 16 KiB: a cut after 3000 bytes is mid-body
    _store(s3_server, bucket, "a").write("big", payload)
    expected = [f.kind for f in faults for _ in range(f.count or 0)]
    with FaultProxy(host_port(s3_server.endpoint), faults) as proxy:
        store = S3Store(bucket, "a", endpoint=proxy.endpoint, retry=FAST_RETRY)
        start = time.monotonic()
        assert store.read("big") == payload
        assert proxy.applied == expected
        elapsed = time.monotonic() - start
        assert elapsed >= sum(f.delay for f in faults)
        assert expected and all(f.count == 0 for f in faults)


def test_faults_during_writes_and_read_many(s3_server: S3Server) -> None:
    bucket = s3_server.unique_bucket()
    with FaultProxy(host_port(s3_server.endpoint)) as proxy:
        store = S3Store(bucket, "w", endpoint=proxy.endpoint, retry=FAST_RETRY, max_in_flight=4)
        proxy.add(Fault("reset", count=2), Fault("slowdown", count=2), Fault("cut", after=10))
        data = {f"k{i}": f"value {i}".encode() * 500 for i in range(12)}
        for key, value in data.items():
            store.write(key, value)
        proxy.add(Fault("cut", count=3, after=2000), Fault("reset", count=3))
        assert store.read_many(list(data)) == list(data.values())
        assert sorted(store.list_keys("")) == sorted(data)
    assert proxy.applied.count("reset") == 5


def test_permanent_failure_is_bounded_and_clear(s3_server: S3Server) -> None:
    bucket = s3_server.unique_bucket()
    policy = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)
    with FaultProxy(host_port(s3_server.endpoint), [Fault("reset", count=None)]) as proxy:
        store = S3Store(bucket, "img.zarr", endpoint=proxy.endpoint, retry=policy, timeout=2)
        start = time.monotonic()
        with pytest.raises(StorageError) as info:
            store.read("0/c/1/2")
        elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < 5, elapsed
    assert proxy.connections == 4  # our attempts, botocore adds none
    assert proxy.endpoint in message and f"s3://{bucket}/img.zarr/0/c/1/2" in message
    assert "gave up after 4 attempts" in message and "\n" not in message
    assert s3_server.secret_key not in message and s3_server.access_key not in message
    assert s3_server.secret_key not in repr(store) + store.url + store.describe("x")


def test_unreachable_endpoint_is_bounded() -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
    store = S3Store("b", endpoint="http://127.0.0.1:9", retry=policy, timeout=1, anon=True)
    start = time.monotonic()
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:9.*gave up after 3 attempts"):
        store.read("k")
    assert time.monotonic() - start < 5


# --------------------------------------------------------------------------- pickling


def test_store_pickles_and_works_in_a_fresh_thread(s3_server: S3Server) -> None:
    store = _store(s3_server, s3_server.unique_bucket(), "p", max_in_flight=3)
    store.read("warm-up")  # the process cache now holds a client; the store must not
    store.write("k", b"value")
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(copy.read_many(["k", "none"])))
    thread.start()
    thread.join()
    assert results == [[b"value", None]]


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def http_dir(tmp_path: Path) -> Path:
    (tmp_path / "img.zarr" / "0").mkdir(parents=True)
    (tmp_path / "img.zarr" / ".zattrs").write_text('{"multiscales": []}')
    (tmp_path / "img.zarr" / "0" / "0.0").write_bytes(bytes(range(256)) * 100)
    (tmp_path / "img.zarr" / "0" / "a b").write_bytes(b"space")
    return tmp_path


def test_http_store_reads(http_dir: Path) -> None:
    with StaticHttpServer(http_dir) as server:
        store = open_store(LocationSpec(f"{server.url}/img.zarr/"))
        assert isinstance(store, HttpStore) and not store.can_list
        assert store.url == f"{server.url}/img.zarr"
        assert store.read(".zattrs") == b'{"multiscales": []}'
        assert store.read("0/0.0") == bytes(range(256)) * 100
        assert store.read("0/a b") == b"space"
        assert store.read("0/.zarray") is None
        assert store.exists(".zattrs") and not store.exists("nope")
        assert store.read_many(["0/0.0", "missing", ".zattrs"]) == [
            bytes(range(256)) * 100,
            None,
            b'{"multiscales": []}',
        ]
        assert pickle.loads(pickle.dumps(store)).read(".zattrs") == b'{"multiscales": []}'
        with pytest.raises(ListingNotSupportedError, match="walk the hierarchy"):
            store.list_children("")
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            store.write("x", b"")
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        open_store(LocationSpec("http://127.0.0.1:9/out.zarr"), for_writing=True)


def test_http_faults_are_retried(http_dir: Path) -> None:
    faults = [Fault("reset"), Fault("cut", after=500), Fault("slowdown")]
    with StaticHttpServer(http_dir) as server, FaultProxy(host_port(server.url), faults) as proxy:
        store = HttpStore(f"{proxy.endpoint}/img.zarr", retry=FAST_RETRY)
        assert store.read("0/0.0") == bytes(range(256)) * 100
        assert proxy.applied == ["reset", "cut", "slowdown"]


def test_http_server_serves_ranges(http_dir: Path) -> None:
    import urllib3

    with StaticHttpServer(http_dir) as server, urllib3.PoolManager() as pool:
        url = f"{server.url}/img.zarr/0/0.0"
        part = pool.request("GET", url, headers={"Range": "bytes=10-19"})
        assert part.status == 206 and part.data == bytes(range(10, 20))
        assert part.headers["Content-Range"] == "bytes 10-19/25600"
        tail = pool.request("GET", url, headers={"Range": "bytes=-4"})
        assert tail.status == 206 and tail.data == bytes(range(252, 256))
        assert pool.request("GET", url, headers={"Range": "bytes=99999-"}).status == 416
        assert pool.request("GET", url).data == bytes(range(256)) * 100


def test_open_remote_store_rejects_mixed_forms() -> None:
    with pytest.raises(ResaveError, match="disagree"):
        open_remote_store(LocationSpec("s3://a/x", bucket="b"), for_writing=False, check=False)
    with pytest.raises(ResaveError, match="no credentials"):
        open_remote_store(LocationSpec("http://u:p@h/x"), for_writing=False)
