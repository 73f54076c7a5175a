"""Every route of the image API (Glance v2), as data, for one :class:`ImageEnv`.

:func:`image_routes` are plain core routes; :func:`stream_routes` are the two
whose bodies are image data. Serving them (``nimbus serve``'s ``image``
service, port 9292 by default; ``nimbus.image_http`` binds both kinds)::

    env = ImageEnv(store, FileBlobStore(data_dir, runtime), runtime,
                   identity_logic.context_for, config.image)
    app = build_image_app(ApiContext(runtime, metrics, config.image.public_url), env)
    runner = await start_http(app, config.image.listen, config.image.port)

Discovery needs no token: ``GET /`` (and any unknown version such as
``GET /v2``) answers 300 with the versions, ``GET /versions`` 200.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import Response, Route
from nimbus.core.api.image import files, images, listing, members
from nimbus.core.api.image.views import IMAGES_SCHEMA_HREF
from nimbus.core.api.image.wire import (
    ImageEnv,
    ImageHandler,
    ImageRequest,
    StreamRoute,
    json_response,
    route,
    stream_route,
)
from nimbus.core.image.schema import IMAGE_SCHEMA, MEMBER_SCHEMA, collection_schema

#: The versions a default Glance (no image cache, one store) lists, the current first.
VERSIONS = (("2.17", "CURRENT"), ("2.15", "SUPPORTED"), ("2.9", "SUPPORTED"),
            ("2.7", "SUPPORTED"), ("2.6", "SUPPORTED"), ("2.5", "SUPPORTED"),
            ("2.4", "SUPPORTED"), ("2.3", "SUPPORTED"), ("2.2", "SUPPORTED"),
            ("2.1", "SUPPORTED"), ("2.0", "SUPPORTED"))


def version_document(base_url: str) -> dict[str, Any]:
    """``{"versions": [...]}``, each version linking to ``<base>/v2/``."""
    href = f"{base_url.rstrip('/')}/v2/"
    return {"versions": [{"id": f"v{v}", "status": s,
                          "links": [{"rel": "self", "href": href}]} for v, s in VERSIONS]}


async def versions(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``GET /``: 300 Multiple Choices with the versions (no token needed)."""
    return json_response(version_document(ireq.base_url), 300)


async def versions_explicit(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``GET /versions``: the same document, 200."""
    return json_response(version_document(ireq.base_url))


def _schema_handler(document: dict[str, Any], name: str) -> ImageHandler:
    async def schema(env: ImageEnv, ireq: ImageRequest) -> Response:
        return json_response(document)

    schema.__name__ = f"schema_{name}"
    return schema


IMG = "/v2/images/{image_id}"
MEMBER = f"{IMG}/members/{{member_id}}"


def image_routes(env: ImageEnv) -> tuple[Route, ...]:
    """The image API's plain routes (a ``GET`` route also answers ``HEAD``)."""
    open_table = (
        ("GET", "/", versions),
        ("GET", "/versions", versions_explicit),
        ("GET", "/v2", versions),
        ("GET", "/v2/", versions),
    )
    table = (
        ("GET", "/v2/images", listing.list_images),
        ("POST", "/v2/images", images.create_image),
        ("GET", IMG, images.show_image),
        ("PATCH", IMG, images.update_image),
        ("DELETE", IMG, images.delete_image),
        ("POST", f"{IMG}/actions/deactivate", images.deactivate_image),
        ("POST", f"{IMG}/actions/reactivate", images.reactivate_image),
        ("PUT", f"{IMG}/tags/{{tag}}", images.add_tag),
        ("DELETE", f"{IMG}/tags/{{tag}}", images.remove_tag),
        ("GET", f"{IMG}/members", members.list_members),
        ("POST", f"{IMG}/members", members.add_member),
        ("GET", MEMBER, members.show_member),
        ("PUT", MEMBER, members.update_member),
        ("DELETE", MEMBER, members.delete_member),
        ("GET", "/v2/schemas/image", _schema_handler(IMAGE_SCHEMA, "image")),
        ("GET", IMAGES_SCHEMA_HREF,
         _schema_handler(collection_schema("images", IMAGE_SCHEMA), "images")),
        ("GET", "/v2/schemas/member", _schema_handler(MEMBER_SCHEMA, "member")),
        ("GET", "/v2/schemas/members",
         _schema_handler(collection_schema("members", MEMBER_SCHEMA), "members")),
    )
    return (tuple(route(env, m, p, h, needs_token=False) for m, p, h in open_table)
            + tuple(route(env, m, p, h) for m, p, h in table))


def stream_routes(env: ImageEnv) -> tuple[StreamRoute, ...]:
    """The routes whose bodies are image data."""
    return (stream_route(env, "PUT", f"{IMG}/file", files.upload_file),
            stream_route(env, "GET", f"{IMG}/file", files.download_file))
