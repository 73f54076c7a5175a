"""Image data in files: the blob store of the image service in real mode.

Each image's data is one file, ``<directory>/<image id>``, and its location
the ``file://`` URL of that file (as Glance's filesystem store names them).
An upload writes a hidden temporary file beside it (``.<id>.<random>.part``),
in batches of about a megabyte off the event loop, fsyncs it and renames it on
commit, so a reader never sees half an image and a crash leaves at most a
``.part`` file, which :meth:`FileBlobStore.remove_partials` clears at start-up.
"""

from __future__ import annotations

import logging
import os
import secrets
import urllib.parse
from pathlib import Path
from typing import BinaryIO

from nimbus.core.image.blobs import BlobNotFound, BlobReader, BlobStoreError, BlobWriter
from nimbus.core.runtime import Runtime

log = logging.getLogger(__name__)

#: Bytes gathered before one write to disk (one hop to a worker thread).
WRITE_BATCH = 1 << 20
#: Bytes read from disk per chunk of a download.
READ_CHUNK = 256 * 1024
PART_SUFFIX = ".part"


def _safe_name(image_id: str) -> str:
    if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith(".") \
            or "\0" in image_id:
        raise BlobStoreError(f"not a usable image id for a file name: {image_id!r}")
    return image_id


class _FileWriter:
    def __init__(self, store: FileBlobStore, final: Path, temp: Path, file: BinaryIO) -> None:
        self.store = store
        self.final = final
        self.temp = temp
        self.file: BinaryIO | None = file
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    async def write(self, chunk: bytes) -> None:
        if self.file is None:
            raise BlobStoreError("write after commit or abort")
        self.pending.append(bytes(chunk))
        self.pending_bytes += len(chunk)
        if self.pending_bytes >= WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if not self.pending or self.file is None:
            return
        data, self.pending, self.pending_bytes = b"".join(self.pending), [], 0
        try:
            await self.store.runtime.run_blocking(self.file.write, data)
        except OSError as exc:
            raise BlobStoreError(f"cannot write image data to {self.temp}: "
                                 f"{exc.strerror or exc}") from None

    async def commit(self) -> str:
        if self.file is None:
            raise BlobStoreError("commit after commit or abort")
        await self._flush()
        file, self.file = self.file, None
        try:
            await self.store.runtime.run_blocking(_sync_close_rename, file, self.temp,
                                                  self.final)
        except OSError as exc:
            await self.store.runtime.run_blocking(_unlink, self.temp)
            raise BlobStoreError(f"cannot keep image data at {self.final}: "
                                 f"{exc.strerror or exc}") from None
        return self.final.as_uri()

    async def abort(self) -> None:
        self.pending, self.pending_bytes = [], 0
        if self.file is None:
            return
        file, self.file = self.file, None
        await self.store.runtime.run_blocking(_close_unlink, file, self.temp)


class _FileReader:
    def __init__(self, store: FileBlobStore, file: BinaryIO, size: int) -> None:
        self.store = store
        self.file: BinaryIO | None = file
        self.size = size

    async def read(self) -> bytes:
        if self.file is None:
            return b""
        try:
            return await self.store.runtime.run_blocking(self.file.read, READ_CHUNK)
        except OSError as exc:
            raise BlobStoreError(f"cannot read image data: {exc.strerror or exc}") from None

    async def close(self) -> None:
        if self.file is not None:
            file, self.file = self.file, None
            await self.store.runtime.run_blocking(file.close)


def _sync_close_rename(file: BinaryIO, temp: Path, final: Path) -> None:
    try:
        file.flush()
        os.fsync(file.fileno())
    finally:
        file.close()
    os.replace(temp, final)


def _close_unlink(file: BinaryIO, temp: Path) -> None:
    file.close()
    _unlink(temp)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _create(path: Path) -> BinaryIO:
    return path.open("xb")


def _open_for_read(path: Path) -> tuple[BinaryIO, int]:
    file = path.open("rb")
    return file, os.fstat(file.fileno()).st_size


class FileBlobStore:
    """A :class:`~nimbus.core.image.blobs.BlobStore` keeping each image in a file of
    ``directory`` (created if missing)."""

    def __init__(self, directory: str | Path, runtime: Runtime) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.runtime = runtime

    def path_of(self, location: str) -> Path:
        """The file of a ``file://`` location; ``BlobNotFound`` if it is not one of ours."""
        parsed = urllib.parse.urlparse(location)
        if parsed.scheme != "file":
            raise BlobNotFound(f"not a file location: {location}")
        path = Path(urllib.parse.unquote(parsed.path))
        if path.parent != self.directory or path.name.startswith("."):
            raise BlobNotFound(f"{location} is not in {self.directory}")
        return path

    async def open_writer(self, image_id: str) -> BlobWriter:
        """A writer to a new temporary file beside the image's file."""
        name = _safe_name(image_id)
        final = self.directory / name
        temp = self.directory / f".{name}.{secrets.token_hex(6)}{PART_SUFFIX}"
        try:
            file = await self.runtime.run_blocking(_create, temp)
        except OSError as exc:
            raise BlobStoreError(f"cannot write image data to {temp}: "
                                 f"{exc.strerror or exc}") from None
        return _FileWriter(self, final, temp, file)

    async def open_reader(self, location: str) -> BlobReader:
        """A reader of the file at ``location``."""
        path = self.path_of(location)
        try:
            file, size = await self.runtime.run_blocking(_open_for_read, path)
        except FileNotFoundError:
            raise BlobNotFound(f"no image data at {location}") from None
        except OSError as exc:
            raise BlobStoreError(f"cannot read {path}: {exc.strerror or exc}") from None
        return _FileReader(self, file, size)

    async def delete(self, location: str) -> None:
        """Remove the file at ``location`` (nothing if there is none)."""
        try:
            path = self.path_of(location)
        except BlobNotFound:
            log.warning("not deleting %s: not a location of this store", location)
            return
        await self.runtime.run_blocking(_unlink, path)

    def remove_partials(self) -> int:
        """Remove the temporary files of uploads cut short by a crash; how many there were.
        Call at start-up, before serving (it runs on the caller's thread)."""
        count = 0
        for path in self.directory.glob(f".*{PART_SUFFIX}"):
            _unlink(path)
            count += 1
        if count:
            log.info("removed %d unfinished image uploads from %s", count, self.directory)
        return count
