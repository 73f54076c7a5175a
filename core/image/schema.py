"""Glance's image and member schemas: what a client may write, and the documents served.

Bodies are checked with ``jsonschema`` against :data:`IMAGE_SCHEMA` (Glance's
``get_schema()``, trimmed to what Nimbus serves); extra properties must be
strings, as Glance's permissive schema says. A failure is a 400 with Glance's
sentence, ``Provided object does not match schema 'image': <reason>``.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import jsonschema.exceptions

from nimbus.core.image.errors import bad_request

#: Glance's default ``[image_format] disk_formats`` and ``container_formats``.
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
                "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")

UUID_PATTERN = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                "-([0-9a-fA-F]){12}$")

_RO: dict[str, Any] = {"readOnly": True}

#: The base properties of an image (Glance's ``get_base_properties()``, without locations).
IMAGE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "pattern": UUID_PATTERN},
    "name": {"type": ["null", "string"], "maxLength": 255},
    "status": {"type": "string", **_RO, "enum": [
        "queued", "saving", "active", "killed", "deleted", "uploading", "importing",
        "pending_delete", "deactivated"]},
    "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"]},
    "protected": {"type": "boolean"},
    "os_hidden": {"type": "boolean"},
    "checksum": {"type": ["null", "string"], **_RO, "maxLength": 32},
    "os_hash_algo": {"type": ["null", "string"], **_RO, "maxLength": 64},
    "os_hash_value": {"type": ["null", "string"], **_RO, "maxLength": 128},
    "owner": {"type": ["null", "string"], "maxLength": 255},
    "size": {"type": ["null", "integer"], **_RO},
    "virtual_size": {"type": ["null", "integer"], **_RO},
    "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS]},
    "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS]},
    "created_at": {"type": "string", **_RO},
    "updated_at": {"type": "string", **_RO},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
    "direct_url": {"type": "string", **_RO},
    "min_ram": {"type": "integer"},
    "min_disk": {"type": "integer"},
    "self": {"type": "string", **_RO},
    "file": {"type": "string", **_RO},
    "schema": {"type": "string", **_RO},
}

#: The image schema (``GET /v2/schemas/image``); unknown keys are string properties.
IMAGE_SCHEMA: dict[str, Any] = {
    "name": "image",
    "properties": IMAGE_PROPERTIES,
    "additionalProperties": {"type": "string"},
    "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
              {"rel": "describedby", "href": "{schema}"}],
}

MEMBER_SCHEMA: dict[str, Any] = {
    "name": "member",
    "properties": {
        "member_id": {"type": "string"},
        "image_id": {"type": "string", "pattern": UUID_PATTERN},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]},
        "schema": {"type": "string", **_RO},
    },
}


def collection_schema(name: str, item: dict[str, Any]) -> dict[str, Any]:
    """A collection's schema (``images``, ``members``), as Glance's ``CollectionSchema``."""
    links = [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
             {"rel": "describedby", "href": "{schema}"}]
    doc: dict[str, Any] = {"name": name, "properties": {
        name: {"type": "array", "items": copy.deepcopy(item)},
        "schema": {"type": "string"}}, "links": links}
    if name == "images":
        doc["properties"].update(first={"type": "string"}, next={"type": "string"})
    return doc


_VALIDATOR = jsonschema.Draft4Validator(
    {"type": "object", "properties": IMAGE_PROPERTIES,
     "additionalProperties": {"type": "string"}})


def validate_image(document: Any) -> None:
    """Check an image document (a create body, or one changed attribute); a 400 naming
    the first problem otherwise."""
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        reason = f"{error.message} (at {where})" if where else error.message
        raise bad_request(f"Provided object does not match schema 'image': {reason}")
