"""Remote stores: S3 (read and write) and plain HTTP(S) (read only).

Both are small frozen, picklable values that hold configuration only (bucket, prefix, endpoint,
retry policy, concurrency), never a client, a session or a credential. The boto3 client and the
urllib3 pool are created lazily, once per process and configuration, and shared by every thread
(boto3 clients and urllib3 pool managers are thread-safe; boto3 *sessions* are not, so they are
only touched under a lock). A store sent to a Dask worker builds its own client there.

Credentials come only from the standard AWS sources (environment variables, ``AWS_PROFILE`` and
the shared config files), resolved by boto3. They never appear in a store's ``repr``, ``url``,
:meth:`describe` or in any message.

Retries are ours, not botocore's (botocore's own retries are switched off), so the bound is
explicit and testable: transient failures (connection refused/reset, a connection cut mid-body,
timeouts, HTTP 429/500/502/503/504, ``SlowDown``) are retried :attr:`RetryPolicy.attempts` times
with exponential backoff and jitter; permanent ones (403, 404, a missing bucket, a wrong secret)
fail at once with a one-line message that says what to do.

Listing over plain HTTP is impossible: :class:`HttpStore` has ``can_list = False`` and its
:meth:`~HttpStore.list_children`, :meth:`~HttpStore.list_keys` and :meth:`~HttpStore.is_empty`
raise :class:`ListingNotSupportedError` (rather than return an empty list, which would silently
drop sub-groups); callers walk HTTP inputs from their metadata alone.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import urllib3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from ngff_resave.errors import InputError, NodeNotFoundError, StorageError
from ngff_resave.locations import LocationSpec, Store, check_key, join_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
log = logging.getLogger("ngff_resave")

#: How many requests one process keeps in flight for :meth:`read_many` by default.
DEFAULT_MAX_IN_FLIGHT = 16

#: S3 error codes that mean "try again later".
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
#: S3 error codes that mean the credentials (not the permissions) are wrong.
_BAD_CREDENTIAL_CODES = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken"}
)
#: Environment variables that decide which credentials boto3 picks up: part of the client
#: cache key (hashed), so a changed environment gets a fresh client.
_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
#: Part size of a streamed (multipart) shard upload; S3 wants >= 5 MiB for all but the last.
MULTIPART_PART_BYTES = 8 * 1024 * 1024
#: Parts of one streamed upload in flight at once (memory: this many parts, per shard task).
MULTIPART_IN_FLIGHT = 4
#: DeleteObjects accepts at most this many keys per request (tests make it small).
_DELETE_BATCH = 1000
#: Keys per ListObjectsV2 page (1000 is the S3 maximum; tests make it small).
_LIST_PAGE = 1000


class RemoteAccessError(StorageError, PermissionError):
    """The endpoint refused the request: wrong or missing credentials, or no permission."""


class BucketNotFoundError(StorageError, FileNotFoundError):
    """The bucket named by the location does not exist at the endpoint."""


class ReadOnlyStoreError(StorageError):
    """A write or delete was asked of a read-only location (plain HTTP, anonymous S3)."""


class ListingNotSupportedError(StorageError):
    """The location cannot list its contents (plain HTTP); walk it from its metadata."""


def content_md5(data: bytes) -> str:
    """The ``Content-MD5`` of a body: the server refuses the object if what it received differs
    (a body cut short by a dropped connection must not become a short object)."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: ``attempts`` tries in all, exponential backoff.

    The wait before retry ``n`` (0-based) is drawn uniformly from ``[d/2, d]`` with
    ``d = min(max_delay, base_delay * 2**n)`` ("equal jitter": never zero, never in lockstep).
    The worst case before giving up is about ``attempts * timeout + sum of waits``.
    """

    attempts: int = 8
    base_delay: float = 0.2
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(f"invalid retry policy {self}: attempts >= 1 and delays >= 0")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 = the first retry)."""
        cap = min(self.max_delay, self.base_delay * (2.0**retry))
        return cap / 2 + random.uniform(0, cap / 2)


def _summary(exc: BaseException) -> str:
    """A short description of a failure, without anything from the request (no credentials)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        return f"HTTP {status} {err.get('Code', '')}".rstrip()
    if isinstance(exc, _HttpStatusError):
        return f"HTTP {exc.status}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _UnframedResponseError(Exception):
    """A 200 response with neither Content-Length nor chunked encoding: cut in its headers."""


def _check_framed(headers: Any) -> None:
    """Raise (transient) unless the response says how long its body is.

    A connection cut inside the response headers looks to http.client like a complete
    response with an empty body; without this check that empty body would be taken as data.
    """
    if "content-length" in headers or "chunked" in str(headers.get("transfer-encoding", "")):
        return
    raise _UnframedResponseError("response without Content-Length (cut in its headers?)")


def _is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying (network trouble, throttling, 5xx)."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS
    if isinstance(exc, _HttpStatusError):
        return exc.status in _TRANSIENT_STATUS
    return isinstance(
        exc,
        HTTPClientError  # connection closed, read timeout, body cut (ResponseStreamingError)
        | IncompleteReadError
        | EndpointConnectionError
        | ConnectTimeoutError
        | urllib3.exceptions.ProtocolError
        | urllib3.exceptions.TimeoutError
        | urllib3.exceptions.NewConnectionError
        | _UnframedResponseError
        | ConnectionError,  # builtin: reset, refused, aborted
    )


def _with_retries(
    policy: RetryPolicy, fn: Callable[[], T], on_give_up: Callable[[BaseException, int], Exception]
) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures per ``policy``.

    Permanent failures propagate unchanged at once; after the last attempt the error from
    ``on_give_up(last_exception, attempts)`` is raised.
    """
    for attempt in range(policy.attempts):
        try:
            return fn()
        except Exception as exc:
            if not _is_transient(exc):
                raise
            if attempt + 1 >= policy.attempts:
                raise on_give_up(exc, policy.attempts) from exc
            time.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- per-process caches

_cache_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}
_sessions: dict[tuple[int, str], Any] = {}
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_http_pools: dict[tuple[Any, ...], urllib3.PoolManager] = {}


def _credential_fingerprint() -> str:
    """A hash of the credential-related environment (so the cache key holds no secret)."""
    text = "\x00".join(os.environ.get(name, "") for name in _CREDENTIAL_ENV)
    return hashlib.sha256(text.encode()).hexdigest()


def _executor(max_in_flight: int) -> ThreadPoolExecutor:
    """The process-wide thread pool for concurrent reads with ``max_in_flight`` workers.

    Shared by every store and every engine thread of the process, so ``max_in_flight`` bounds
    the number of concurrent GETs of the whole process, not of one call.
    """
    key = (os.getpid(), max_in_flight)
    pool = _pools.get(key)
    if pool is None:
        with _cache_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="ngff-resave-io")
                _pools[key] = pool
    return pool


def _pool_size(max_in_flight: int) -> int:
    # read_many's workers plus engine threads writing shards at the same time.
    return max_in_flight + 32


def _read_all(store: S3Store | HttpStore, keys: list[str]) -> list[bytes | None]:
    if len(keys) <= 1:
        return [store.read(k) for k in keys]
    return list(_executor(store.max_in_flight).map(store.read, keys))


# --------------------------------------------------------------------------- S3


@dataclass(frozen=True)
class S3Store:
    """Objects under ``s3://bucket/prefix`` at an S3-compatible endpoint.

    ``prefix`` has no leading or trailing ``/`` (``""`` is the bucket root). ``endpoint`` is
    ``None`` for AWS itself. ``anon`` sends unsigned requests (public buckets, read only).
    ``max_in_flight`` bounds concurrent GETs of :meth:`read_many` per process; ``timeout`` is
    the connect and read timeout of one request in seconds.
    """

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    anon: bool = False
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not self.bucket or "/" in self.bucket:
            raise InputError(f"invalid bucket name {self.bucket!r}")
        if self.prefix:
            check_key(self.prefix)
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")

    # ---- naming

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def can_list(self) -> bool:
        return True

    def _full(self, key: str) -> str:
        return join_key(self.prefix, check_key(key))

    def _dir(self, key: str) -> str:
        """The S3 prefix that holds everything "inside" ``key`` (ends with ``/`` unless root)."""
        full = self._full(key)
        return f"{full}/" if full else ""

    def describe(self, key: str) -> str:
        where = f"s3://{self.bucket}/{self._full(key)}"
        return f"{where} at {self.endpoint}" if self.endpoint else where

    # ---- client and error handling

    def _client(self) -> S3Client:
        key = (
            os.getpid(),
            self.endpoint,
            self.region,
            self.anon,
            self.max_in_flight,
            self.timeout,
            _credential_fingerprint(),
        )
        client = _clients.get(key)
        if client is None:
            with _cache_lock:
                client = _clients.get(key)
                if client is None:
                    client = self._make_client()
                    _clients[key] = client
        return client

    def _make_client(self) -> S3Client:
        import boto3  # boto3 is slow to import; only remote runs pay for it

        config = Config(
            signature_version=UNSIGNED if self.anon else None,
            max_pool_connections=_pool_size(self.max_in_flight),
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            # Our own retry loop decides; botocore's would multiply the bound.
            retries={"total_max_attempts": 1, "mode": "standard"},
            # Custom endpoints (SeaweedFS, MinIO, 127.0.0.1) want path-style addressing.
            s3={"addressing_style": "path"} if self.endpoint else None,
            # Checksums only where the API requires them: many S3-compatible servers reject the
            # streaming trailers newer botocore sends by default. SigV4 signs the payload hash
            # over HTTP; TLS protects it over HTTPS.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # One session per process and credential environment (called under _cache_lock:
        # sessions are not thread-safe): its loaded service models make new clients cheap.
        session_key = (os.getpid(), _credential_fingerprint())
        session = _sessions.get(session_key)
        if session is None:
            session = _sessions[session_key] = boto3.session.Session()
        region = self.region or session.region_name or "us-east-1"
        return session.client("s3", endpoint_url=self.endpoint, region_name=region, config=config)

    def _translate(self, exc: Exception, action: str, key: str) -> Exception:
        """A one-line :class:`StorageError` for a permanent failure of ``action`` on ``key``."""
        where = self.describe(key)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return RemoteAccessError(
                f"no usable AWS credentials to {action} {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or use --*-anon for a public bucket"
            )
        if isinstance(exc, ParamValidationError):
            return InputError(f"invalid S3 request to {action} {where}: {_summary(exc)}")
        if not isinstance(exc, ClientError):
            if isinstance(exc, BotoCoreError):
                return StorageError(f"cannot {action} {where}: {_summary(exc)}")
            return exc
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "NoSuchBucket":
            return BucketNotFoundError(
                f"bucket {self.bucket!r} does not exist at {self.endpoint or 'AWS S3'} "
                f"(while trying to {action} {where}); check the bucket name and the endpoint"
            )
        if code in _BAD_CREDENTIAL_CODES:
            return RemoteAccessError(
                f"the endpoint rejected the credentials ({code}) to {action} {where}: check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            )
        if status == 403 or code in ("AccessDenied", "AllAccessDisabled", "403"):
            if self.anon:
                hint = "anonymous (unsigned) requests are not allowed here; drop --*-anon and "
                hint += "provide credentials"
            else:
                hint = "check that the credentials allow it (or use --*-anon for a public bucket)"
            return RemoteAccessError(f"access denied ({code}) to {action} {where}: {hint}")
        return StorageError(f"cannot {action} {where}: {_summary(exc)}")

    def _call(self, action: str, key: str, fn: Callable[[], T]) -> T:
        """Run one S3 request with retries; translate every failure into a one-line error."""

        def give_up(exc: BaseException, attempts: int) -> Exception:
            return StorageError(
                f"cannot {action} {self.describe(key)}: {_summary(exc)} "
                f"(gave up after {attempts} attempts); check that the endpoint is reachable "
                "and healthy, then run again"
            )

        try:
            return _with_retries(self.retry, fn, give_up)
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate(exc, action, key) from exc

    # ---- the Store protocol

    def read(self, key: str) -> bytes | None:
        full = self._full(key)

        def get() -> bytes | None:
            try:
                response = self._client().get_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            _check_framed(response["ResponseMetadata"].get("HTTPHeaders", {}))
            # Reading the body is part of the attempt: a connection cut mid-body is retried
            # (botocore compares the bytes read with Content-Length).
            with response["Body"] as body:
                return body.read()

        return self._call("read", key, get)

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        return _read_all(self, keys)

    def write(self, key: str, data: bytes) -> None:
        if self.anon:
            raise ReadOnlyStoreError(
                f"cannot write {self.describe(key)} anonymously: unsigned requests are read-only;"
                " drop --output-anon and provide credentials"
            )
        full = self._full(key)
        # One PutObject: S3 makes an object visible only once it is complete.
        self._call(
            "write",
            key,
            lambda: self._client().put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentMD5=content_md5(data)
            ),
        )

    def write_parts(self, key: str, parts: Iterable[bytes]) -> int:
        """Write the concatenation of ``parts`` at ``key``, uploading while they arrive.

        Bytes are gathered into parts of :data:`MULTIPART_PART_BYTES` uploaded in the
        background (at most :data:`MULTIPART_IN_FLIGHT` at once) while ``parts`` is still
        producing, so fetching a shard's chunks and uploading the shard overlap. S3 shows a
        multipart object only once it is completed: readers see all of it or nothing; on any
        failure the upload is aborted. Less than one part is written with a single PutObject.
        """
        if self.anon:
            self.write(key, b"")  # raises the read-only error
        full = self._full(key)
        client = self._client
        buffer: list[bytes] = []
        buffered = 0
        total = 0
        upload_id: str | None = None
        futures: list[Future[dict[str, Any]]] = []
        pool = ThreadPoolExecutor(MULTIPART_IN_FLIGHT, thread_name_prefix="ngff-resave-part")

        def start() -> str:
            return str(client().create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"])

        def send(uid: str, number: int, body: bytes) -> dict[str, Any]:
            def upload() -> dict[str, Any]:
                response = client().upload_part(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=uid,
                    PartNumber=number,
                    Body=body,
                    ContentMD5=content_md5(body),
                )
                return {"PartNumber": number, "ETag": response["ETag"]}

            return self._call("write", key, upload)

        try:
            for piece in parts:
                buffer.append(piece)
                buffered += len(piece)
                total += len(piece)
                if buffered < MULTIPART_PART_BYTES:
                    continue
                if upload_id is None:
                    upload_id = self._call("write", key, start)
                futures.append(pool.submit(send, upload_id, len(futures) + 1, b"".join(buffer)))
                buffer, buffered = [], 0
                # Bound the memory held by parts not yet uploaded; fail early on an error.
                while len(running := [f for f in futures if not f.done()]) >= MULTIPART_IN_FLIGHT:
                    wait(running, return_when=FIRST_COMPLETED)
                for future in futures:
                    if future.done() and future.exception() is not None:
                        future.result()
            if upload_id is None:
                if total:
                    self.write(key, b"".join(buffer))
                return total
            if buffer:
                futures.append(pool.submit(send, upload_id, len(futures) + 1, b"".join(buffer)))
            done: list[Any] = [f.result() for f in futures]
            uid = upload_id
            self._call(
                "write",
                key,
                lambda: client().complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=uid, MultipartUpload={"Parts": done}
                ),
            )
            return total
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # no part may land after the abort
            if upload_id is not None:
                self._abort(full, upload_id)
            raise
        finally:
            pool.shutdown(wait=True)

    def _abort(self, full: str, upload_id: str) -> None:
        """Best effort: drop the parts of a failed upload (the original error matters more)."""
        try:
            self._client().abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except Exception:  # the endpoint may be the very thing that failed
            log.debug("could not abort the multipart upload of s3://%s/%s", self.bucket, full)

    def exists(self, key: str) -> bool:
        full = self._full(key)

        def head() -> bool:
            try:
                self._client().head_object(Bucket=self.bucket, Key=full)
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return False
                raise
            return True

        return self._call("check", key, head)

    def _pages(self, key: str, **extra: Any) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages under ``key``'s directory prefix, each fetched with retries."""
        token: str | None = None
        while True:
            args: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self._dir(key),
                "MaxKeys": _LIST_PAGE,
                **extra,
            }
            if token:
                args["ContinuationToken"] = token
            page = self._call("list", key, self._lister(args))
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _lister(self, args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        def list_page() -> dict[str, Any]:
            return dict(self._client().list_objects_v2(**args))

        return list_page

    def list_children(self, prefix: str) -> list[str]:
        base = self._dir(prefix)
        names = {
            cp["Prefix"][len(base) :].rstrip("/")
            for page in self._pages(prefix, Delimiter="/")
            for cp in page.get("CommonPrefixes", [])
        }
        return sorted(n for n in names if n)

    def list_keys(self, prefix: str) -> Iterator[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in self._pages(prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def delete_prefix(self, prefix: str) -> None:
        if self.anon:
            raise ReadOnlyStoreError(
                f"cannot delete {self.describe(prefix)} anonymously; drop --output-anon"
            )
        keys = [self._full(k) for k in self.list_keys(prefix)]
        # Like LocalStore: a single object named exactly ``prefix`` goes too.
        if prefix and self.exists(prefix):
            keys.append(self._full(prefix))
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            errors = self._call("delete", prefix, self._deleter(batch))
            if errors:
                first = errors[0]
                raise StorageError(
                    f"cannot delete {len(errors)} object(s) under {self.describe(prefix)}, e.g. "
                    f"{first.get('Key')!r}: {first.get('Code')}; check the permissions"
                )

    def _deleter(self, keys: list[str]) -> Callable[[], list[Any]]:
        def delete_batch() -> list[Any]:
            response = self._client().delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
            return list(response.get("Errors", []))

        return delete_batch

    def is_empty(self) -> bool:
        page = next(self._pages("", MaxKeys=1))
        return not page.get("KeyCount", len(page.get("Contents", [])))

    def check_location(self, *, for_writing: bool) -> None:
        """Fail early and clearly if the bucket is missing or the credentials are rejected.

        For an input with listing allowed, an empty prefix is :class:`NodeNotFoundError`
        (like a missing local path). A plain "access denied" on listing is tolerated: public
        buckets may allow GET but not LIST, and the walk then goes by metadata.
        """
        try:
            page = next(self._pages("", MaxKeys=1))
        except RemoteAccessError as exc:
            if isinstance(exc.__cause__, ClientError):
                code = exc.__cause__.response.get("Error", {}).get("Code", "")
                if code not in _BAD_CREDENTIAL_CODES and not for_writing:
                    return
            raise
        if not for_writing and not page.get("KeyCount", len(page.get("Contents", []))):
            raise NodeNotFoundError(
                f"input {self.url} at {self.endpoint or 'AWS S3'} holds no objects; "
                "check the bucket and prefix"
            )


# --------------------------------------------------------------------------- HTTP


class _HttpStatusError(Exception):
    """An unexpected HTTP status (internal: turned into a StorageError)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class HttpStore:
    """Objects under a plain ``http(s)://`` base URL, read only, no listing.

    A key is fetched with ``GET base_url/key``; 404 and 410 mean "nothing there" (``None``).
    """

    base_url: str
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError(f"not an http(s) URL: {self.base_url!r}")
        if parts.username or parts.password:
            raise InputError("put no credentials in an http(s) URL; they would end up in reports")
        if self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def can_list(self) -> bool:
        return False

    def describe(self, key: str) -> str:
        check_key(key)
        return f"{self.base_url}/{quote(key, safe='/')}" if key else self.base_url

    def _pool(self) -> urllib3.PoolManager:
        key = (os.getpid(), self.max_in_flight, self.timeout)
        pool = _http_pools.get(key)
        if pool is None:
            with _cache_lock:
                pool = _http_pools.get(key)
                if pool is None:
                    pool = urllib3.PoolManager(
                        maxsize=_pool_size(self.max_in_flight),
                        retries=False,
                        timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
                    )
                    _http_pools[key] = pool
        return pool

    def _request(self, method: str, key: str) -> urllib3.BaseHTTPResponse | None:
        url = self.describe(key)

        def attempt() -> urllib3.BaseHTTPResponse | None:
            # preload_content reads the whole body now, so a cut body fails this attempt.
            response = self._pool().request(method, url, preload_content=True)
            if response.status in (404, 410):
                return None
            if response.status >= 400:
                raise _HttpStatusError(response.status)
            if method == "GET":
                _check_framed(response.headers)  # urllib3's headers: case-insensitive
            return response

        def give_up(exc: BaseException, attempts: int) -> Exception:
            return StorageError(
                f"cannot read {url}: {_summary(exc)} (gave up after {attempts} attempts); "
                "check that the server is reachable and healthy, then run again"
            )

        try:
            return _with_retries(self.retry, attempt, give_up)
        except StorageError:
            raise
        except _HttpStatusError as exc:
            if exc.status in (401, 403):
                raise RemoteAccessError(
                    f"access denied (HTTP {exc.status}) reading {url}; is the URL public?"
                ) from exc
            raise StorageError(f"cannot read {url}: HTTP {exc.status}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StorageError(f"cannot read {url}: {_summary(exc)}") from exc

    def read(self, key: str) -> bytes | None:
        response = self._request("GET", key)
        return None if response is None else response.data

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        return _read_all(self, keys)

    def exists(self, key: str) -> bool:
        return self._request("HEAD", key) is not None

    def _read_only(self, action: str, key: str) -> ReadOnlyStoreError:
        return ReadOnlyStoreError(
            f"cannot {action} {self.describe(key)}: plain HTTP(S) locations are read-only; "
            "write to a local path or an S3 bucket"
        )

    def write(self, key: str, data: bytes) -> None:
        raise self._read_only("write", key)

    def delete_prefix(self, prefix: str) -> None:
        raise self._read_only("delete", prefix)

    def _no_listing(self) -> ListingNotSupportedError:
        return ListingNotSupportedError(
            f"cannot list {self.base_url}: plain HTTP(S) has no directory listing; "
            "walk the hierarchy from its metadata (can_list is False)"
        )

    def list_children(self, prefix: str) -> list[str]:
        raise self._no_listing()

    def list_keys(self, prefix: str) -> Iterator[str]:
        raise self._no_listing()

    def is_empty(self) -> bool:
        raise self._no_listing()


# --------------------------------------------------------------------------- opening


def _split_s3_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise InputError("put no credentials in an s3:// URL; use the AWS environment instead")
    return parts.netloc, parts.path.strip("/")


def open_remote_store(
    spec: LocationSpec,
    *,
    for_writing: bool,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    retry: RetryPolicy | None = None,
    check: bool = True,
) -> Store:
    """The :class:`S3Store` or :class:`HttpStore` for a user's location.

    ``s3://bucket/prefix``, or ``spec.bucket`` with ``spec.path`` the prefix inside it, opens S3
    at ``spec.endpoint`` (AWS if unset); ``http(s)://`` opens a read-only :class:`HttpStore`.
    With ``check``, an S3 location is probed once (one LIST): a missing bucket, rejected
    credentials or an empty input prefix fail here with a clear message.
    """
    policy = retry or RetryPolicy()
    path = spec.path
    if path.startswith(("http://", "https://")) and not spec.bucket:
        if for_writing:
            raise ReadOnlyStoreError(
                f"cannot write to {path}: plain HTTP(S) locations are read-only; "
                "write to a local path or an S3 bucket"
            )
        return HttpStore(
            path, max_in_flight=max_in_flight, timeout=spec.request_timeout, retry=policy
        )
    if path.startswith("s3://"):
        bucket, prefix = _split_s3_url(path)
        if spec.bucket and spec.bucket != bucket:
            raise InputError(
                f"the bucket {spec.bucket!r} and the URL {path!r} disagree; give one of them"
            )
    elif spec.bucket:
        bucket, prefix = spec.bucket, path.strip("/")
        if prefix == ".":
            prefix = ""
    else:
        raise InputError(f"{path!r} is not an s3:// or http(s):// location")
    if for_writing and spec.anon:
        raise ReadOnlyStoreError(
            f"cannot write to s3://{bucket}/{prefix} anonymously: unsigned requests are "
            "read-only; drop --output-anon and provide credentials"
        )
    if prefix:
        check_key(prefix)
    store = S3Store(
        bucket=bucket,
        prefix=prefix,
        endpoint=spec.endpoint,
        region=spec.region,
        anon=spec.anon,
        max_in_flight=max_in_flight,
        timeout=spec.request_timeout,
        retry=policy,
    )
    if check:
        store.check_location(for_writing=for_writing)
    return store
