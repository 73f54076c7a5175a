"""Image data: uploads streamed into the blob store with their hashes, and downloads."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from nimbus.core.image import data
from nimbus.core.image.blobs import BlobStoreError, BlobWriter, MemoryBlobStore
from nimbus.core.image.errors import GlanceError

from .conftest import Glance, drive

PAYLOAD = bytes(range(256)) * 41 + b"tail"


def test_round_trip_with_checksums(glance: Glance) -> None:
    iid = glance.create(name="img")["id"]
    assert glance.call("GET", f"/v2/images/{iid}/file").status == 204  # no data yet
    assert glance.upload(iid, PAYLOAD).status == 204
    image = glance.call("GET", f"/v2/images/{iid}").body
    assert image["status"] == "active"
    assert image["size"] == len(PAYLOAD)
    assert image["checksum"] == hashlib.md5(PAYLOAD).hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(PAYLOAD).hexdigest()
    got = glance.call("GET", f"/v2/images/{iid}/file", token="admin")
    assert got.status == 200 and got.body == PAYLOAD
    assert got.headers["Content-MD5"] == image["checksum"]
    assert got.headers["Content-Length"] == str(len(PAYLOAD))
    again = glance.upload(iid, b"more")
    assert again.status == 409 and "from active to saving" in again.message


def test_upload_checks(glance: Glance) -> None:
    iid = glance.create(name="img")["id"]
    url = f"/v2/images/{iid}/file"
    wrong = glance.call("PUT", url, headers={"content-type": "application/json"},
                        chunks=[b"x"])
    assert wrong.status == 415 and "Invalid content type application/json" in wrong.message
    assert glance.call("PUT", url, chunks=[b"x"]).status == 415  # no content type at all
    assert glance.upload(iid, b"x", token="other").status == 404
    assert glance.upload(iid, b"x", token="reader").status == 403
    bare = glance.call("POST", "/v2/images", {"name": "no formats"}).body["id"]
    refused = glance.upload(bare, b"x")
    assert refused.status == 400
    assert "Properties disk_format, container_format must be set" in refused.message
    half = glance.call("POST", "/v2/images", {"disk_format": "raw"}).body["id"]
    assert "Property container_format must be set" in glance.upload(half, b"x").message
    declared = glance.call("PUT", url, chunks=[b"x"], headers={
        "content-type": "application/octet-stream", "content-length": str(2 << 40)})
    assert declared.status == 413
    assert glance.call("GET", f"/v2/images/{iid}").body["status"] == "queued"
    empty = glance.upload(iid, b"")
    assert empty.status == 204
    image = glance.call("GET", f"/v2/images/{iid}").body
    assert image["size"] == 0 and image["checksum"] == hashlib.md5(b"").hexdigest()


async def _breaking(after: int) -> AsyncIterator[bytes]:
    for n in range(after):
        yield f"chunk{n}".encode()
    raise ConnectionResetError("client went away")


def test_a_broken_upload_goes_back_to_queued_and_leaves_nothing(glance: Glance) -> None:
    iid = glance.create(name="img")["id"]
    image = drive(glance.store.get_image(iid))
    with pytest.raises(ConnectionResetError):
        drive(data.upload(glance.store, glance.blobs, glance.runtime, image, _breaking(3),
                          size_cap=1000))
    assert drive(glance.store.get_image(iid)).status == "queued"
    assert glance.blobs.blobs == {}
    assert glance.upload(iid, b"second try").status == 204
    assert glance.call("GET", f"/v2/images/{iid}/file").body == b"second try"


def test_a_store_that_cannot_write_leaves_the_image_queued(glance: Glance) -> None:
    class Full(MemoryBlobStore):
        async def open_writer(self, image_id: str) -> BlobWriter:
            raise BlobStoreError("disk full")

    iid = glance.create(name="img")["id"]
    image = drive(glance.store.get_image(iid))
    with pytest.raises(BlobStoreError):
        drive(data.upload(glance.store, Full(), glance.runtime, image, _breaking(1),
                          size_cap=20))
    assert drive(glance.store.get_image(iid)).status == "queued"


def test_over_the_cap_mid_stream_is_413(glance: Glance) -> None:
    iid = glance.create(name="img")["id"]
    image = drive(glance.store.get_image(iid))
    with pytest.raises(GlanceError) as caught:
        drive(data.upload(glance.store, glance.blobs, glance.runtime, image, _breaking(9),
                          size_cap=20))
    assert caught.value.status == 413
    assert drive(glance.store.get_image(iid)).status == "queued"


def test_a_concurrent_upload_is_refused(glance: Glance) -> None:
    iid = glance.create(name="img")["id"]
    image = drive(glance.store.get_image(iid))
    drive(glance.store.set_image_status(iid, "saving", now=1.0, expected_status="queued"))
    with pytest.raises(GlanceError) as caught:
        drive(data.upload(glance.store, glance.blobs, glance.runtime, image, _breaking(1),
                          size_cap=20))
    assert caught.value.status == 409


def test_deleted_during_upload_is_410_and_drops_the_data(glance: Glance) -> None:
    iid = glance.create(name="img")["id"]
    image = drive(glance.store.get_image(iid))

    async def deleting() -> AsyncIterator[bytes]:
        yield b"abc"
        await glance.store.delete_image(iid, 5.0)
        yield b"def"

    with pytest.raises(GlanceError) as caught:
        drive(data.upload(glance.store, glance.blobs, glance.runtime, image, deleting(),
                          size_cap=20))
    assert caught.value.status == 410
    assert glance.blobs.blobs == {}


def test_data_missing_from_the_store_is_204(glance: Glance) -> None:
    iid = glance.create(name="img")["id"]
    glance.upload(iid, b"abc")
    glance.blobs.blobs.clear()
    assert glance.call("GET", f"/v2/images/{iid}/file").status == 204
