"""Image updates: Glance's JSON-patch media types, parsed, checked and applied.

``PATCH /v2/images/{id}`` carries a list of operations in one of two media
types: ``application/openstack-images-v2.1-json-patch`` (``{"op": "add",
"path": "/name", "value": ...}``, the one clients send) and the older
``...-v2.0-json-patch`` (``{"add": "/name", "value": ...}``). Each operation
adds, replaces or removes one attribute: a base attribute (``name``,
``visibility``, ``min_disk`` ...) or an extra string property. The checks and
their statuses are Glance's: a read-only attribute is a 403, replacing or
removing an absent property a 409, a value the schema refuses a 400.
:func:`apply_patch` folds the operations over the image into one
:class:`ImagePatch` for the Store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nimbus.core.db.images import PROJECT_LEN, ImageRecord
from nimbus.core.image.errors import (
    GlanceError,
    bad_request,
    conflict_detail,
    denied,
    forbidden,
    forbidden_detail,
    too_large,
)
from nimbus.core.image.schema import validate_image

#: The patch media types and the JSON-schema draft each follows (as Glance numbers them).
PATCH_TYPES: Mapping[str, int] = {
    "application/openstack-images-v2.0-json-patch": 4,
    "application/openstack-images-v2.1-json-patch": 10,
}
OPERATIONS = ("add", "remove", "replace")

#: What a client may never write (Glance's ``_readonly_properties``).
READONLY = frozenset({"created_at", "updated_at", "status", "checksum", "size",
                      "virtual_size", "direct_url", "self", "file", "schema", "id",
                      "os_hash_algo", "os_hash_value"})
#: What belongs to the service (``_reserved_properties``, and the ``os_glance`` namespace).
RESERVED = frozenset({"location", "locations", "deleted", "deleted_at", "stores"})
RESERVED_PREFIX = "os_glance"
#: Whether the caller may do a policy action (``publicize_image``) on the image at hand.
Allowed = Callable[[str], bool]
#: The policy action each visibility needs beyond the create or modify rule.
VISIBILITY_ACTIONS: Mapping[str, str] = {"public": "publicize_image",
                                         "community": "communitize_image"}
#: The base attributes a patch may set (never remove).
MUTABLE = ("name", "visibility", "protected", "os_hidden", "disk_format", "container_format",
           "min_disk", "min_ram", "owner", "tags")


@dataclass(frozen=True, slots=True)
class Change:
    """One operation: ``op`` on the attribute named ``path`` (one JSON-pointer token)."""

    op: str
    path: str
    value: Any = None
    draft: int = 10


@dataclass(slots=True)
class ImagePatch:
    """What a patch changes: base ``fields`` (keywords of ``Store.update_image``),
    properties set and removed, and the new tags (None: unchanged)."""

    fields: dict[str, Any] = field(default_factory=dict)
    set_properties: dict[str, str] = field(default_factory=dict)
    remove_properties: set[str] = field(default_factory=set)
    tags: tuple[str, ...] | None = None


def patch_media_type(content_type: str) -> int:
    """The draft of a patch media type; 415 with ``Accept-Patch`` for any other."""
    media = content_type.partition(";")[0].strip().lower()
    if media in PATCH_TYPES:
        return PATCH_TYPES[media]
    allowed = ", ".join(sorted(PATCH_TYPES))
    raise GlanceError(415, None, f"Image PATCH expects Content-Type one of: {allowed}",
                      headers={"Accept-Patch": allowed})


def parse_patch(body: Any, draft: int) -> list[Change]:
    """The operations of a patch body, each checked as Glance's deserializer checks it."""
    if not isinstance(body, list):
        raise bad_request("Request body must be a JSON array of operation objects.")
    changes = []
    for raw in body:
        if not isinstance(raw, dict):
            raise bad_request("Operations must be JSON objects.")
        op, pointer = _op_and_path(raw, draft)
        path = decode_pointer(pointer)
        if len(path) != 1 or not path[0]:
            raise bad_request(f"Invalid JSON pointer for this resource: '/{'/'.join(path)}'")
        if op != "remove" and "value" not in raw:
            raise bad_request(f'Operation "{op}" requires a member named "value".')
        change = Change(op, path[0], raw.get("value"), draft)
        _check_change(change)
        changes.append(change)
    return changes


def _op_and_path(raw: dict[str, Any], draft: int) -> tuple[str, str]:
    available = ", ".join(OPERATIONS)
    if draft == 10:
        op = raw.get("op")
        if op is None:
            raise bad_request("Unable to find `op` in JSON Schema change. It must be one of "
                              f"the following: {available}.")
        if op not in OPERATIONS:
            raise bad_request(f"Invalid operation: `{op}`. It must be one of the following: "
                              f"{available}.")
        if "path" not in raw:
            raise bad_request("Unable to find 'path' in JSON Schema change")
        pointer = raw["path"]
    else:
        found = [k for k in OPERATIONS if k in raw]
        if len(found) != 1:
            raise bad_request('Operation objects must contain exactly one member named '
                              '"add", "remove", or "replace".')
        op, pointer = found[0], raw[found[0]]
    if not isinstance(pointer, str):
        raise bad_request(f"Pointer `{pointer}` does not start with \"/\".")
    return op, pointer


def decode_pointer(pointer: str) -> list[str]:
    """The tokens of a JSON pointer, in the limited form Glance accepts; 400 otherwise."""
    if not pointer.startswith("/"):
        raise bad_request(f'Pointer `{pointer}` does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise bad_request(f'Pointer `{pointer}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise bad_request(f'Pointer `{pointer}` end with "/".')
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise bad_request(f'Pointer `{pointer}` contains "~" not part of a recognized '
                          "escape sequence.")
    return [part.replace("~1", "/").replace("~0", "~").strip()
            for part in pointer[1:].split("/")]


def _check_change(change: Change) -> None:
    root = change.path
    if root in READONLY:
        raise forbidden(f"Attribute '{root}' is read-only.")
    if root in RESERVED or root.startswith(RESERVED_PREFIX):
        raise forbidden(f"Attribute '{root}' is reserved.")
    if change.op != "remove":
        if len(root) > 255:
            raise bad_request("Custom property should not be greater than 255 characters.")
        validate_image({root: change.value})


def check_visibility_change(allowed: Allowed, visibility: Any) -> None:
    """Making an image public or community needs Glance's ``publicize_image`` or
    ``communitize_image`` rule (admin only, and the owner, by default)."""
    action = VISIBILITY_ACTIONS.get(visibility) if isinstance(visibility, str) else None
    if action is not None and not allowed(action):
        raise denied(action)


def check_owner(owner: Any) -> None:
    """An owner is a project id: at most :data:`PROJECT_LEN` characters (the Store's
    column; Glance allows 255, but no Keystone project id is that long)."""
    if isinstance(owner, str) and len(owner) > PROJECT_LEN:
        raise bad_request(f"Provided object does not match schema 'image': owner is longer "
                          f"than {PROJECT_LEN} characters")


def apply_patch(allowed: Allowed, image: ImageRecord, changes: list[Change], *,
                property_quota: int, tag_quota: int) -> ImagePatch:
    """Fold ``changes`` over ``image`` as Glance's controller applies them, in order;
    ``allowed`` answers the policy for this caller and image."""
    base: dict[str, Any] = {k: getattr(image, k) for k in MUTABLE if k != "tags"}
    base["tags"] = list(image.tags)
    props: dict[str, str | None] = dict(image.properties)
    for change in changes:
        root = change.path
        if change.op == "remove":
            if root in base:
                raise forbidden_detail(f"Property {root} may not be removed.")
            if root not in props:
                raise conflict_detail(f"Property {root} does not exist.")
            del props[root]
            continue
        if root == "owner" and not allowed("context_is_admin"):
            raise forbidden_detail("Owner can't be updated by non admin.")
        if root == "visibility":
            check_visibility_change(allowed, change.value)
        if change.op == "add" and change.draft == 4 and (root in base or root in props):
            raise conflict_detail(f"Property {root} already present.")
        if root in base:
            _check_base_value(image, root, change.value)
            base[root] = change.value
        elif change.op == "replace" and root not in props:
            raise conflict_detail(f"Property {root} does not exist.")
        else:
            props[root] = change.value
    if len(props) > property_quota and len(props) > len(image.properties):
        raise too_large("The limit has been exceeded on the number of allowed image "
                        f"properties. Attempted: {len(props)}, Maximum: {property_quota}")
    tags = tuple(sorted(set(base.pop("tags"))))
    if len(tags) > tag_quota:
        raise too_large("The limit has been exceeded on the number of allowed image tags. "
                        f"Attempted: {len(tags)}, Maximum: {tag_quota}")
    out = ImagePatch(tags=tags if tags != image.tags else None)
    out.fields = {k: v for k, v in base.items() if v != getattr(image, k)}
    out.set_properties = {k: v for k, v in props.items()
                          if v is not None and image.properties.get(k, object()) != v}
    out.remove_properties = set(image.properties) - set(props)
    return out


def _check_base_value(image: ImageRecord, root: str, value: Any) -> None:
    """Glance's domain checks on a base attribute being set."""
    if root in ("disk_format", "container_format") and image.status not in (
            "queued", "importing"):
        raise forbidden(f"Attribute {root} can be only replaced for a queued image.")
    if root == "owner":
        check_owner(value)
    if root in ("min_disk", "min_ram") and value < 0:
        raise bad_request(f"Invalid value '{value}' for parameter '{root}': Cannot be a "
                          "negative value")
