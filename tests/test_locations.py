"""LocalStore: atomic writes from bytes and whole files, edges and ranges of files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ngff_resave.errors import StorageError
from ngff_resave.locations import TEMP_SUFFIX, FilePart, LocalStore


def _parts(tmp_path: Path) -> tuple[list[bytes | FilePart], bytes]:
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(300_000))
    b = tmp_path / "b.bin"
    b.write_bytes(b"xyz")
    parts: list[bytes | FilePart] = [b"head", FilePart(str(a), 300_000), b"", FilePart(str(b), 3)]
    return parts, b"head" + a.read_bytes() + b"xyz"


def test_write_parts_concatenates_bytes_and_files(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "out"))
    parts, expected = _parts(tmp_path)
    assert store.write_parts("x/c/0", parts) == len(expected)
    assert (tmp_path / "out" / "x" / "c" / "0").read_bytes() == expected
    assert not list((tmp_path / "out").rglob(f"*{TEMP_SUFFIX}"))


@pytest.mark.parametrize("code", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP], ids=str)
def test_file_parts_are_copied_where_the_kernel_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Across file systems copy_file_range fails with EXDEV (older kernels): read and write."""

    def refuse(*args: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "copy_file_range", refuse)
    store = LocalStore(str(tmp_path / "out"))
    parts, expected = _parts(tmp_path)
    assert store.write_parts("k", parts) == len(expected)
    assert (tmp_path / "out" / "k").read_bytes() == expected


def test_a_file_that_shrank_fails_and_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "out"))
    (tmp_path / "f").write_bytes(b"12345")
    with pytest.raises(StorageError, match="changed size"):
        store.write_parts("k", [FilePart(str(tmp_path / "f"), 10)])
    assert not (tmp_path / "out" / "k").exists()
    assert not list((tmp_path / "out").rglob(f"*{TEMP_SUFFIX}"))


def test_nothing_is_written_for_no_parts(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "out"))
    assert store.write_parts("k", []) == 0
    assert not (tmp_path / "out" / "k").exists()


def test_file_edges_and_ranges(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    (tmp_path / "c").write_bytes(bytes(range(40)))
    edges = store.file_edges("c")
    assert edges is not None
    part, head, tail = edges
    assert part == FilePart(str(tmp_path / "c"), 40)
    assert head == bytes(range(16)) and tail == bytes(range(36, 40))
    assert store.file_edges("missing") is None
    assert store.read_ranges("c", [(2, 3), (-4, 4)]) == [b"\x02\x03\x04", bytes(range(36, 40))]
