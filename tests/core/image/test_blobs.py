"""The blob store contract, on every store: the memory one and the file one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from nimbus.core.image.blobs import BlobNotFound, BlobStore, MemoryBlobStore
from nimbus.image_files import FileBlobStore
from nimbus.runtime import AsyncioRuntime

STORES = ["memory", "file"]


def run(kind: str, tmp_path: Path, body: Callable[[BlobStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store: BlobStore
        if kind == "memory":
            store = MemoryBlobStore(chunk_size=3)
        else:
            store = FileBlobStore(tmp_path / "images", AsyncioRuntime(seed=1))
        return await body(store)

    return asyncio.run(main())


async def read_all(store: BlobStore, location: str) -> bytes:
    reader = await store.open_reader(location)
    out = []
    while chunk := await reader.read():
        out.append(chunk)
    await reader.close()
    await reader.close()
    assert reader.size == sum(map(len, out))
    return b"".join(out)


@pytest.mark.parametrize("kind", STORES)
def test_write_commit_read_delete(kind: str, tmp_path: Path) -> None:
    async def body(store: BlobStore) -> None:
        writer = await store.open_writer("img-1")
        for part in (b"hello ", b"", b"world", b"!" * 5000):
            await writer.write(part)
        location = await writer.commit()
        await writer.abort()  # after commit: nothing happens
        assert await read_all(store, location) == b"hello world" + b"!" * 5000
        await store.delete(location)
        await store.delete(location)
        with pytest.raises(BlobNotFound):
            await store.open_reader(location)

    run(kind, tmp_path, body)


@pytest.mark.parametrize("kind", STORES)
def test_abort_leaves_nothing_and_uncommitted_is_unreadable(kind: str, tmp_path: Path) -> None:
    async def body(store: BlobStore) -> None:
        first = await store.open_writer("img-2")
        await first.write(b"keep")
        location = await first.commit()
        second = await store.open_writer("img-2")
        await second.write(b"half of a replacement")
        assert await read_all(store, location) == b"keep"
        await second.abort()
        await second.abort()
        assert await read_all(store, location) == b"keep"
        empty = await store.open_writer("img-3")
        assert await read_all(store, await empty.commit()) == b""

    run(kind, tmp_path, body)
    if kind == "file":
        assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["img-2", "img-3"]


def test_file_store_confines_locations_and_clears_partials(tmp_path: Path) -> None:
    async def body(store: BlobStore) -> None:
        assert isinstance(store, FileBlobStore)
        writer = await store.open_writer("img-4")
        await writer.write(b"x" * (3 << 20))  # past one write batch
        location = await writer.commit()
        assert location == (tmp_path / "images" / "img-4").resolve().as_uri()
        outside = tmp_path / "secret"
        outside.write_bytes(b"no")
        for bad in (outside.as_uri(), "http://h/img-4", f"{location}/../../secret"):
            with pytest.raises(BlobNotFound):
                await store.open_reader(bad)
            await store.delete(bad)
        assert outside.exists()
        with pytest.raises(Exception, match="not a usable image id"):
            await store.open_writer("../escape")
        pending = await store.open_writer("img-5")
        await pending.write(b"unfinished")
        assert store.remove_partials() == 1
        await pending.abort()
        assert len(await read_all(store, location)) == 3 << 20

    run("file", tmp_path, body)
