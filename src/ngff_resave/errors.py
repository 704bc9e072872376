"""Errors raised by ngff-resave.

Every error inherits from :class:`ResaveError` *and* a builtin exception, so callers can
catch either (the zarr-python pattern). Messages say what went wrong, where, and what to do.
The CLI turns any :class:`ResaveError` into a one-line ``ERROR`` message and exit status 1.
"""

from __future__ import annotations


class ResaveError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(ResaveError, ValueError):
    """The input hierarchy is malformed, unsupported or not OME-Zarr 0.4."""


class NodeNotFoundError(ResaveError, FileNotFoundError):
    """A node (group, array or file) the metadata refers to does not exist."""


class UnsafePathError(ResaveError, ValueError):
    """A path in the metadata would escape the input or output root."""


class OutputExistsError(ResaveError, FileExistsError):
    """The output location already holds data and ``--output-overwrite`` was not given."""


class PlanError(ResaveError, ValueError):
    """A chunk/shard plan is invalid (e.g. a shard that is not a multiple of the chunk)."""


class UnsupportedCodecError(ResaveError, ValueError):
    """A codec of the source array cannot be decoded here."""


class CorruptChunkError(ResaveError, ValueError):
    """A stored chunk could not be decoded (truncated or corrupt bytes)."""


class VerificationError(ResaveError, RuntimeError):
    """The written output does not validate or does not equal the input."""


class StorageError(ResaveError, OSError):
    """Reading or writing a storage location failed (after retries, where they apply)."""


class MissingDependencyError(ResaveError, ImportError):
    """An optional dependency needed by the requested feature is not installed."""
