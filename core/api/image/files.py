"""``/v2/images/{image_id}/file``: upload (``PUT``, 204) and download (``GET``), streamed.

Both are :class:`~nimbus.core.api.image.wire.StreamRoute` handlers: the upload
reads the request body chunk by chunk into the blob store
(:func:`nimbus.core.image.data.upload`), the download answers with a
:class:`~nimbus.core.api.image.wire.StreamingResponse` carrying
``Content-MD5`` (the hex checksum, as Glance sends it) and ``Content-Length``;
an image without data answers 204. Clients check what they download against
``os_hash_value`` (SHA-512).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from nimbus.core.api.http import Response
from nimbus.core.api.image.images import authorize, find_image
from nimbus.core.api.image.wire import ImageEnv, ImageRequest, StreamingResponse, no_content
from nimbus.core.image import data
from nimbus.core.image.errors import GlanceError, bad_request, forbidden

OCTET_STREAM = "application/octet-stream"


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # an empty async generator


def _declared_size(ireq: ImageRequest) -> int | None:
    """The size the client announces (``x-openstack-image-size``, else Content-Length)."""
    raw = ireq.request.header("x-openstack-image-size") or \
        ireq.request.header("content-length")
    if not raw:
        return None
    try:
        size = int(raw)
    except ValueError:
        raise bad_request("Invalid or missing image size in request headers.") from None
    if size < 0:
        raise bad_request("Invalid or missing image size in request headers.")
    return size


async def upload_file(env: ImageEnv, ireq: ImageRequest) -> Response | StreamingResponse:
    """``PUT /v2/images/{image_id}/file``: the image's data, raw bytes (204)."""
    ctype = ireq.request.header("content-type")
    media = ctype.partition(";")[0].strip().lower()
    if media != OCTET_STREAM:
        raise GlanceError(415, f"The request media type {media or 'None'} is not supported "
                               "by this server.", f"Invalid content type {ctype or 'None'}")
    size = _declared_size(ireq)
    image = await find_image(env, ireq)
    authorize(env, ireq, "upload_image", image)
    chunks = ireq.chunks if ireq.chunks is not None else _no_chunks()
    await data.upload(env.store, env.blobs, env.runtime, image, chunks,
                      size_cap=env.config.image_size_cap, declared_size=size)
    return no_content()


async def download_file(env: ImageEnv, ireq: ImageRequest) -> Response | StreamingResponse:
    """``GET /v2/images/{image_id}/file``: the data, streamed (204 if there is none)."""
    image = await find_image(env, ireq)
    authorize(env, ireq, "download_image", image)
    if image.status == "deactivated" and not env.sees_all(ireq.ctx):
        raise forbidden("The requested image has been deactivated. Image data download is "
                        "forbidden.")
    download = await data.open_download(env.blobs, image)
    if download is None:
        return no_content()
    headers = {"Content-Length": str(download.size)}
    if image.checksum:
        headers["Content-MD5"] = image.checksum
    return StreamingResponse(download, 200, headers)
