"""Where data lives: a minimal key/value view of a local directory (and, later, S3 or HTTP).

Everything else in the package reads and writes through a :class:`Store`, with keys that are
``/``-separated paths relative to the store's root (``"0/.zarray"``, ``"labels/zarr.json"``).
A store is a small frozen, picklable value: it holds configuration, never open handles, so the
same copy task can run in a thread or on a Dask worker.

Rules every store follows:

* :meth:`Store.read` returns ``None`` for a missing key (a missing chunk means fill_value).
* :meth:`Store.write` is atomic: readers see the old object or the whole new one, never a part
  (local: write to a temporary name in the same directory, then ``os.replace``).
* Keys are checked with :func:`check_key`: no ``..``, no absolute paths, no empty parts, so
  nothing is ever read or written outside the root.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ngff_resave.errors import NodeNotFoundError, ResaveError, StorageError, UnsafePathError

#: Suffix of the temporary files a local atomic write uses; leftovers are cleaned on resume.
TEMP_SUFFIX = ".ngff-resave-tmp"


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`UnsafePathError`.

    A safe key has no empty, ``.`` or ``..`` parts, does not start with ``/`` or a drive, and
    contains no backslash or NUL: the metadata of a hostile input cannot point outside the root.
    """
    if key == "":
        return key
    if key.startswith("/") or "\\" in key or "\x00" in key or (len(key) > 1 and key[1] == ":"):
        raise UnsafePathError(f"path {key!r} is absolute or malformed; paths must be relative")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePathError(
                f"path {key!r} leaves its root or has an empty part; fix the metadata that names it"
            )
    return key


def remove_temporaries(store: Store, prefix: str = "") -> int:
    """Delete the temporary files that interrupted atomic writes left under ``prefix``.

    Only local stores write temporary files (an S3 PUT is atomic by itself). A writer killed
    mid-write (a crash, a killed Dask worker) leaves one; it is never mistaken for a shard.
    Returns how many were removed.
    """
    if not isinstance(store, LocalStore):
        return 0
    leftovers = [k for k in store.list_keys(prefix) if k.endswith(TEMP_SUFFIX)]
    for key in leftovers:
        store.delete_prefix(key)
    return len(leftovers)


def join_key(*parts: str) -> str:
    """Join key parts with ``/``, skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


@runtime_checkable
class Store(Protocol):
    """A key/value view of one storage location (see module docstring for the rules)."""

    @property
    def url(self) -> str:
        """Where the store is, for messages and reports (never with credentials)."""
        ...

    @property
    def can_list(self) -> bool:
        """Whether :meth:`list_children` and :meth:`list_keys` work (plain HTTP cannot list)."""
        ...

    def describe(self, key: str) -> str:
        """A human-readable location of ``key`` for messages."""
        ...

    def read(self, key: str) -> bytes | None:
        """The bytes stored at ``key``, or ``None`` if there is nothing."""
        ...

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        """:meth:`read` of many keys; remote stores fetch them concurrently (bounded)."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically (whole or not at all)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""
        ...

    def list_children(self, prefix: str) -> list[str]:
        """Names of the immediate "sub-directories" under ``prefix`` (sorted)."""
        ...

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, recursively (relative to the store root)."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix`` (only ever called on the output)."""
        ...

    def is_empty(self) -> bool:
        """Whether the location holds nothing at all (a missing location is empty)."""
        ...


@runtime_checkable
class StreamingWriteStore(Protocol):
    """A store that can upload an object while its bytes are still being produced.

    Object stores write a large shard in parts (S3 multipart upload) as the source chunks
    arrive, instead of after all of them: reading and writing one shard then overlap. The
    object still appears whole or not at all (S3 shows it only on completion).
    """

    def write_parts(self, key: str, parts: Iterable[bytes | FilePart]) -> int:
        """Store the concatenation of ``parts`` at ``key`` atomically; returns its size.

        Nothing is written when ``parts`` yields no bytes at all.
        """
        ...


@dataclass(frozen=True)
class FilePart:
    """A whole local file to put into an object as it is (copied by the kernel)."""

    path: str
    size: int

    def __len__(self) -> int:
        """Its length in bytes, as for the bytes parts it stands beside in a shard."""
        return self.size


@dataclass(frozen=True)
class LocalStore:
    """A directory on a local (or mounted) file system."""

    root: str

    @property
    def url(self) -> str:
        return self.root

    @property
    def can_list(self) -> bool:
        return True

    def _path(self, key: str) -> Path:
        return Path(self._fspath(key))

    def _fspath(self, key: str) -> str:
        """The file system path of ``key`` as a string (pathlib costs ~70 µs a chunk)."""
        check_key(key)
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def describe(self, key: str) -> str:
        return self._fspath(key)

    def _open(self, key: str) -> tuple[str, int] | None:
        """The path of ``key`` and a read-only descriptor of it (None: no such file)."""
        path = self._fspath(key)
        try:
            return path, os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def read(self, key: str) -> bytes | None:
        opened = self._open(key)
        if opened is None:
            return None
        path, fd = opened
        try:
            size = os.fstat(fd).st_size
            data = os.read(fd, size + 1)  # one call for a regular file; more if it grew
            if len(data) <= size:
                return data
            parts = [data]
            while block := os.read(fd, 1 << 20):
                parts.append(block)
            return b"".join(parts)
        except IsADirectoryError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        # Local reads are fast and the engine already runs one task per worker thread.
        return [self.read(k) for k in keys]

    def write(self, key: str, data: bytes) -> None:
        self.write_parts(key, [data])

    def write_parts(self, key: str, parts: Iterable[bytes | FilePart]) -> int:
        """Write the concatenation of ``parts`` atomically, part by part (no joined copy).

        A unique temporary name in the same directory, then an atomic rename: a crash leaves
        either the old object or the whole new one (plus a temporary file that resume
        removes). Nothing is written when ``parts`` yields no bytes at all.
        """
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
        size = 0
        wrote_any = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: bytes go straight to the file and the kernel's copies append at the
            # file offset, with no buffer to flush or position to resync per part.
            with open(tmp, "wb", buffering=0) as fh:
                for part in parts:
                    wrote_any = True
                    if isinstance(part, FilePart):
                        size += _copy_file_into(part, fh.fileno())
                    else:
                        size += _write_all(fh.fileno(), part)
            if not wrote_any:
                tmp.unlink()
                return 0
            os.replace(tmp, path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)  # a failing producer (e.g. a corrupt chunk) or disk
            if isinstance(exc, OSError) and not isinstance(exc, ResaveError):
                raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
            raise
        return size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[bytes] | None:
        """The bytes at ``(offset, length)`` ranges of the file at ``key`` (None: no file).

        A negative offset counts from the end. Verification reads a shard's index and a few
        inner chunks this way instead of the whole shard.
        """
        opened = self._open(key)
        if opened is None:
            return None
        path, fd = opened
        try:
            size = os.fstat(fd).st_size
            return [os.pread(fd, n, o if o >= 0 else max(0, size + o)) for o, n in ranges]
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def size(self, key: str) -> int | None:
        """The size of the file at ``key`` (None: no file)."""
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def file_edges(self, key: str) -> tuple[FilePart, bytes, bytes] | None:
        """The file at ``key`` as a :class:`FilePart`, with its first 16 and last 4 bytes.

        ``None`` when there is no file. Lets the fast path check a chunk's header and copy it
        file to file without reading it into Python.
        """
        opened = self._open(key)
        if opened is None:
            return None
        path, fd = opened
        try:
            size = os.fstat(fd).st_size
            head = os.pread(fd, 16, 0)
            tail = os.pread(fd, 4, max(0, size - 4))
        finally:
            os.close(fd)
        return FilePart(path, size), head, tail

    def list_children(self, prefix: str) -> list[str]:
        path = self._path(prefix)
        try:
            return sorted(e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        root = Path(self.root)
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                yield Path(dirpath, name).relative_to(root).as_posix()

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()

    def is_empty(self) -> bool:
        path = Path(self.root)
        if not path.exists():
            return True
        if not path.is_dir():
            return False
        return not any(path.iterdir())

    def is_symlink_escape(self, key: str) -> bool:
        """Whether ``key`` resolves (through symlinks) to a place outside the root."""
        root = Path(self.root).resolve()
        target = self._path(key).resolve()
        return target != root and root not in target.parents


def _write_all(fd: int, data: bytes) -> int:
    """Write all of ``data`` at the file offset of ``fd`` (a write may be partial)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _copy_file_into(part: FilePart, out: int) -> int:
    """Append the file ``part`` to the open file descriptor ``out`` in the kernel.

    ``copy_file_range`` moves the bytes without bringing them into Python; where the file
    systems do not support it, a plain read/write loop does the same.
    """
    copied = 0
    src = os.open(part.path, os.O_RDONLY)
    try:
        try:
            while copied < part.size:
                n = os.copy_file_range(src, out, part.size - copied)
                if n == 0:
                    break
                copied += n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            while copied < part.size:
                chunk = os.pread(src, min(8 << 20, part.size - copied), copied)
                if not chunk:
                    break
                copied += _write_all(out, chunk)
    finally:
        os.close(src)
    if copied != part.size:
        raise StorageError(f"{part.path}: changed size while being copied; rerun the conversion")
    return copied


@dataclass(frozen=True)
class LocationSpec:
    """What the user gave on the command line for one side (input or output)."""

    path: str
    bucket: str | None = None
    endpoint: str | None = None
    anon: bool = False
    region: str | None = None
    #: Object-store requests in flight at once (remote stores only).
    max_in_flight: int = 16
    #: Attempts per request on transient errors, and the first back-off delay in seconds.
    retry_attempts: int = 8
    retry_delay: float = 0.2
    #: Connect and read timeout of one object-store request, in seconds.
    request_timeout: float = 30.0


def open_store(spec: LocationSpec, *, for_writing: bool = False) -> Store:
    """Turn a user's location into a :class:`Store`.

    A plain path is a :class:`LocalStore`. ``s3://bucket/prefix``, ``--*-bucket`` and
    ``http(s)://`` URLs are handled by the remote stores.
    """
    if spec.bucket or spec.path.startswith(("s3://", "http://", "https://")):
        from ngff_resave import remote  # imported lazily: boto3 is only needed for remote data

        return remote.open_remote_store(
            spec,
            for_writing=for_writing,
            max_in_flight=spec.max_in_flight,
            retry=remote.RetryPolicy(attempts=spec.retry_attempts, base_delay=spec.retry_delay),
        )
    path = os.path.abspath(os.path.expanduser(spec.path))
    if not for_writing and not os.path.exists(path):
        raise NodeNotFoundError(f"input {path} does not exist; check the path")
    return LocalStore(path)


def make_temp_dir(prefix: str = "ngff-resave-") -> str:
    """A fresh temporary directory (used by tests and benchmarks)."""
    return tempfile.mkdtemp(prefix=prefix)
