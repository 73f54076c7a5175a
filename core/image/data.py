"""Image data: an upload streamed into the blob store, a download streamed out of it.

An upload takes the image from ``queued`` to ``saving`` (which also keeps a
second upload out: it finds the image no longer queued, a 409), writes each
chunk to a :class:`~nimbus.core.image.blobs.BlobWriter` while counting its
size and hashing it (MD5 for ``checksum``, SHA-512 for ``os_hash_value``, as
Glance), then commits and records size, hashes and location, making the image
``active``. Whatever goes wrong on the way (the size cap, the client going
away, the store failing) aborts the writer and puts the image back to
``queued`` so that the upload can be retried, as Glance does. The chunks come
from whoever serves the request (the HTTP adapter reads them off the socket);
this module only awaits them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from nimbus.core.db.images import ImageRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import ConflictError, NotFound
from nimbus.core.image.blobs import BlobNotFound, BlobReader, BlobStore
from nimbus.core.image.errors import GlanceError, bad_request, conflict, too_large
from nimbus.core.runtime import Runtime

log = logging.getLogger(__name__)

#: The algorithm of ``os_hash_value`` (Glance's ``hashing_algorithm`` default).
HASH_ALGO = "sha512"


@dataclass(frozen=True, slots=True)
class Download:
    """Image data ready to stream: its size and MD5, and the chunks (closing the reader
    when they end or when :meth:`close` is called)."""

    size: int
    checksum: str | None
    reader: BlobReader

    async def chunks(self) -> AsyncIterator[bytes]:
        """The data, chunk by chunk; the reader is closed at the end."""
        try:
            while chunk := await self.reader.read():
                yield chunk
        finally:
            await self.reader.close()

    async def close(self) -> None:
        """Release the reader (when the answer is not sent after all)."""
        await self.reader.close()


class _Tally:
    """Size and hashes of the data seen so far."""

    def __init__(self) -> None:
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha = hashlib.new(HASH_ALGO)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.md5.update(chunk)
        self.sha.update(chunk)


def check_uploadable(image: ImageRecord) -> None:
    """Glance's checks before data is taken: the image is ``queued`` (409 otherwise) and
    has both formats (400 naming the missing ones)."""
    if image.status != "queued":
        raise conflict(f"Image status transition from {image.status} to saving is not "
                       "allowed")
    missing = [k for k in ("disk_format", "container_format") if not getattr(image, k)]
    if len(missing) == 1:
        raise bad_request(f"Property {missing[0]} must be set prior to saving data.")
    if missing:
        raise bad_request(f"Properties {', '.join(missing)} must be set prior to saving "
                          "data.")


async def upload(store: Store, blobs: BlobStore, runtime: Runtime, image: ImageRecord,
                 chunks: AsyncIterable[bytes], *, size_cap: int,
                 declared_size: int | None = None) -> ImageRecord:
    """Stream ``chunks`` into the blob store as ``image``'s data; the image, now active.

    ``declared_size`` (the request's Content-Length) lets an upload over
    ``size_cap`` be refused before any byte is read (413).
    """
    check_uploadable(image)
    if declared_size is not None and declared_size > size_cap:
        raise _over_cap(declared_size, size_cap)
    try:
        await store.set_image_status(image.id, "saving", now=runtime.wall_time(),
                                     expected_status="queued")
    except ConflictError:
        current = await store.get_image(image.id)
        raise conflict(f"Image status transition from {current.status} to saving is not "
                       "allowed") from None
    try:
        writer = await blobs.open_writer(image.id)
    except BaseException:
        await _restore(store, runtime, image.id)
        raise
    tally = _Tally()
    try:
        async for chunk in chunks:
            if tally.size + len(chunk) > size_cap:
                raise _over_cap(tally.size + len(chunk), size_cap)
            tally.add(chunk)
            await writer.write(chunk)
        location = await writer.commit()
    except BaseException:
        try:
            await writer.abort()
        except Exception:
            log.exception("cannot drop the partial data of image %s", image.id)
        await _restore(store, runtime, image.id)
        raise
    try:
        return await store.set_image_data(
            image.id, size=tally.size, checksum=tally.md5.hexdigest(),
            os_hash_algo=HASH_ALGO, os_hash_value=tally.sha.hexdigest(),
            location=location, now=runtime.wall_time())
    except (ConflictError, NotFound):
        # deleted (or its upload reset) while the data came in: drop the data
        await blobs.delete(location)
        raise GlanceError(410, f"Image {image.id} could not be found after upload. The "
                               "image may have been deleted during the upload, cleaning "
                               "up the chunks uploaded.") from None


def _over_cap(size: int, cap: int) -> GlanceError:
    return too_large(f"The incoming image is too large: {size} bytes is over the limit of "
                     f"{cap} bytes")


async def _restore(store: Store, runtime: Runtime, image_id: str) -> None:
    """Back to ``queued`` after a failed upload, so that it can be tried again."""
    try:
        await store.set_image_status(image_id, "queued", now=runtime.wall_time(),
                                     expected_status="saving")
    except (ConflictError, NotFound):
        pass  # deleted meanwhile: nothing to restore
    except Exception:
        log.exception("cannot restore image %s to queued", image_id)


async def open_download(blobs: BlobStore, image: ImageRecord) -> Download | None:
    """The data of ``image`` to stream, None if it has none (Glance answers 204)."""
    if image.location is None or image.status not in ("active", "deactivated"):
        return None
    try:
        reader = await blobs.open_reader(image.location)
    except BlobNotFound:
        log.warning("image %s: no data at %s", image.id, image.location)
        return None
    return Download(reader.size, image.checksum, reader)


async def delete_data(blobs: BlobStore, image: ImageRecord) -> None:
    """Remove a deleted image's data; a failure is logged, never raised (the image is
    gone either way)."""
    if image.location is None:
        return
    try:
        await blobs.delete(image.location)
    except Exception:
        log.exception("cannot remove the data of image %s at %s", image.id, image.location)
