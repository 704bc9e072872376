"""Carry over arrays the pixel pipeline does not handle (strings, objects), via zarr-python.

Non-OME arrays such as an AnnData table's ``obs/_index`` (``|O`` + ``vlen-utf8``) have no
fixed-size Zarr v3 core data type. They are small, so they are read whole with zarr-python
(v2) from an in-memory copy of their keys, re-created as Zarr v3 arrays (zarr-python picks the
v3 ``string`` data type and codecs) and their keys written through our :class:`Store`.
That keeps them readable by zarr-python, never dropped silently, and works for any store.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from ngff_resave.errors import InputError
from ngff_resave.locations import Store, join_key

if TYPE_CHECKING:  # zarr is imported lazily: it costs a second at every CLI start
    from zarr.storage import MemoryStore

#: Largest array carried over this way (they are held in memory whole).
MAX_GENERIC_BYTES = 2 * 1024**3


def is_generic_dtype(doc: Any) -> bool:
    """Whether a ``.zarray`` document has a dtype the pixel pipeline cannot copy."""
    if not isinstance(doc, dict):
        return False
    dtype = doc.get("dtype")
    if isinstance(dtype, list):  # structured
        return True
    # Objects, strings, bytes, void, and datetime/timedelta (no v3 core type either: zarr-python
    # writes its numpy.datetime64/timedelta64 extension types).
    return isinstance(dtype, str) and dtype.lstrip("<>|=")[:1] in ("O", "U", "S", "V", "M", "m")


async def _load(memory: MemoryStore, items: dict[str, bytes]) -> None:
    from zarr.core.buffer import default_buffer_prototype

    for key, value in items.items():
        await memory.set(key, default_buffer_prototype().buffer.from_bytes(value))


async def _dump(memory: MemoryStore) -> dict[str, bytes]:
    from zarr.core.buffer import default_buffer_prototype

    out: dict[str, bytes] = {}
    async for key in memory.list():
        buf = await memory.get(key, prototype=default_buffer_prototype())
        if buf is not None:
            out[key] = buf.to_bytes()
    return out


def copy_generic_array(source: Store, dest: Store, path: str) -> int:
    """Copy the v2 array at ``path`` to a v3 array at the same path; returns bytes read."""
    import zarr
    from zarr.storage import MemoryStore

    keys = [k for k in source.list_keys(path) if k.startswith(path + "/")]
    items: dict[str, bytes] = {}
    total = 0
    for key in keys:
        data = source.read(key)
        if data is None:
            continue
        total += len(data)
        if total > MAX_GENERIC_BYTES:
            raise InputError(
                f"{source.describe(path)}: non-numeric array larger than "
                f"{MAX_GENERIC_BYTES // 1024**3} GiB; it cannot be carried over in memory"
            )
        items[key[len(path) + 1 :]] = data
    v2_store = MemoryStore()
    asyncio.run(_load(v2_store, items))
    try:
        src = zarr.open_array(v2_store, mode="r", zarr_format=2)
        values = src[...]
    except Exception as exc:
        raise InputError(f"{source.describe(path)}: cannot read this array ({exc})") from exc
    v3_store = MemoryStore()
    attrs = json.loads(items.get(".zattrs", b"{}") or b"{}")
    try:
        zarr.create_array(
            v3_store,
            shape=src.shape,
            # zarr's own data type (vlen-bytes, vlen-utf8…), not the NumPy object dtype it
            # could not tell apart
            dtype=src.metadata.dtype,
            chunks=src.chunks,
            fill_value=src.fill_value,
            attributes=attrs,
            zarr_format=3,
        )[...] = values
    except Exception as exc:
        raise InputError(
            f"{source.describe(path)}: cannot write this array as Zarr v3 ({exc}); leave it out "
            "of the input or convert it separately"
        ) from exc
    for key, data in asyncio.run(_dump(v3_store)).items():
        dest.write(join_key(path, key), data)
    return total
