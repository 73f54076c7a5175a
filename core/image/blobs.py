"""Where image data lives: the blob store interface and an in-memory store.

An upload opens a :class:`BlobWriter`, writes chunks as they arrive, and either
commits (the data becomes readable under the returned *location*, a URL such
as ``file:///var/lib/nimbus/images/<id>``, which the Store keeps on the image)
or aborts (nothing is left behind). A download opens a :class:`BlobReader` on a
location and reads chunks until an empty one. The real store keeps files
(``nimbus.image_files``); :class:`MemoryBlobStore` keeps bytes in a dict, for
simulations and tests. Every store passes ``tests/core/image/test_blobs.py``.
"""

from __future__ import annotations

from typing import Protocol

from nimbus.core.errors import NimbusError, NotFound

#: The scheme of :class:`MemoryBlobStore` locations.
MEMORY_SCHEME = "memory://"


class BlobNotFound(NotFound):
    """No data at this location (never written, deleted, or not this store's)."""


class BlobStoreError(NimbusError):
    """The store failed to keep or read data (disk full, permissions)."""

    status = 503


class BlobWriter(Protocol):
    """One upload in progress: nothing is readable until :meth:`commit`."""

    async def write(self, chunk: bytes) -> None:
        """Append a chunk."""
        ...

    async def commit(self) -> str:
        """Make the data readable; returns its location. The writer is done."""
        ...

    async def abort(self) -> None:
        """Drop what was written; safe to call after commit or twice."""
        ...


class BlobReader(Protocol):
    """One download in progress."""

    #: The number of bytes at the location.
    size: int

    async def read(self) -> bytes:
        """The next chunk; ``b""`` at the end."""
        ...

    async def close(self) -> None:
        """Release the reader; safe to call twice."""
        ...


class BlobStore(Protocol):
    """Keeps image data under locations."""

    async def open_writer(self, image_id: str) -> BlobWriter:
        """Start writing the data of an image."""
        ...

    async def open_reader(self, location: str) -> BlobReader:
        """Read the data at a location; :class:`BlobNotFound` if there is none."""
        ...

    async def delete(self, location: str) -> None:
        """Remove the data at a location; nothing happens if there is none."""
        ...


class _MemoryWriter:
    def __init__(self, store: MemoryBlobStore, image_id: str) -> None:
        self.store = store
        self.image_id = image_id
        self.parts: list[bytes] = []
        self.done = False

    async def write(self, chunk: bytes) -> None:
        if self.done:
            raise BlobStoreError("write after commit or abort")
        self.parts.append(bytes(chunk))

    async def commit(self) -> str:
        if self.done:
            raise BlobStoreError("commit after commit or abort")
        self.done = True
        location = MEMORY_SCHEME + self.image_id
        self.store.blobs[location] = b"".join(self.parts)
        self.parts = []
        return location

    async def abort(self) -> None:
        self.done = True
        self.parts = []


class _MemoryReader:
    def __init__(self, data: bytes, chunk_size: int) -> None:
        self.data = data
        self.size = len(data)
        self.offset = 0
        self.chunk_size = chunk_size

    async def read(self) -> bytes:
        chunk = self.data[self.offset:self.offset + self.chunk_size]
        self.offset += len(chunk)
        return chunk

    async def close(self) -> None:
        self.offset = self.size


class MemoryBlobStore:
    """A :class:`BlobStore` in a dict: ``blobs`` maps each location to its bytes."""

    def __init__(self, chunk_size: int = 65536) -> None:
        self.blobs: dict[str, bytes] = {}
        self.chunk_size = chunk_size

    async def open_writer(self, image_id: str) -> BlobWriter:
        """A writer that keeps its chunks until commit."""
        return _MemoryWriter(self, image_id)

    async def open_reader(self, location: str) -> BlobReader:
        """A reader over the bytes at ``location``."""
        try:
            data = self.blobs[location]
        except KeyError:
            raise BlobNotFound(f"no image data at {location}") from None
        return _MemoryReader(data, self.chunk_size)

    async def delete(self, location: str) -> None:
        """Forget the bytes at ``location``."""
        self.blobs.pop(location, None)
