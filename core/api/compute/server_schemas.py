"""Request schemas of the servers API per microversion, as Nova's ``schemas/servers.py``
defines them (our own JSON Schema text), and the query parameters each version knows.

Nova checks some strings by JSON Schema *formats* (uuid, base64, IP addresses);
the shared validator checks no formats, so :func:`check_formats` does those by
hand after the schema passed, with the same 400.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import ipaddress
import re
from typing import Any

from nimbus.core.errors import InvalidInput

_INT_MAX = 0x7FFFFFFF
#: Printable, not starting or ending with whitespace (Nova's ``name`` format).
NAME_PATTERN = r"^(?!\s)[^\x00-\x1f\x7f-\x9f]*(?<!\s)$"
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}$")
BOOLEAN = {"type": ["boolean", "string"], "enum": [
    True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
    False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}
NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NAME_PATTERN}
DESCRIPTION = {"type": ["string", "null"], "minLength": 0, "maxLength": 255,
               "pattern": _PRINTABLE}
METADATA = {"type": "object", "patternProperties": {
    "^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False}
_POSITIVE = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1,
             "minLength": 1, "maximum": _INT_MAX}
_HOSTNAME = {"type": "string", "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$",
             "minLength": 2, "maxLength": 63}
_FQDN = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1,
         "maxLength": 255}
_TAG = {"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": 60}
_BDM = {"type": "object", "properties": {
    "virtual_name": {"type": "string", "maxLength": 255},
    "volume_id": {"type": "string"}, "snapshot_id": {"type": "string"},
    "volume_size": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1},
    "device_name": {"type": "string", "minLength": 1, "maxLength": 255,
                    "pattern": "^[a-zA-Z0-9._/-]*$"},
    "delete_on_termination": BOOLEAN, "no_device": {},
    "connection_info": {"type": "string", "maxLength": 16777215},
    "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
    "uuid": {"type": "string", "minLength": 1, "maxLength": 255,
             "pattern": "^[a-zA-Z0-9._-]*$"},
    "image_id": {"type": "string"},
    "destination_type": {"type": "string", "enum": ["local", "volume"]},
    "guest_format": {"type": "string", "maxLength": 255},
    "device_type": {"type": "string", "maxLength": 255},
    "disk_bus": {"type": "string", "maxLength": 255},
    "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"},
}, "additionalProperties": False}
_NETWORK_ITEM: dict[str, Any] = {"type": "object", "properties": {
    "fixed_ip": {"type": "string"}, "port": {"type": ["string", "null"]},
    "uuid": {"type": "string"}}, "additionalProperties": False}
_HINTS = {"type": "object", "properties": {
    "group": {"type": "string"},
    "different_host": {"type": ["string", "array"], "items": {"type": "string"}},
    "same_host": {"type": ["string", "array"], "items": {"type": "string"}},
    "query": {"type": ["string", "object"]},
    "target_cell": NAME,
    "different_cell": {"type": ["string", "array"], "items": {"type": "string"}},
    "build_near_host_ip": {"type": "string"},
    "cidr": {"type": "string", "pattern": "^/[0-9a-f.:]+$"},
}, "additionalProperties": True}

_SERVER: dict[str, Any] = {
    "name": NAME,
    "imageRef": {"type": "string", "maxLength": 255},
    "flavorRef": {"type": ["string", "integer"], "minLength": 1},
    "adminPass": {"type": "string"},
    "metadata": METADATA,
    "networks": {"type": "array", "items": _NETWORK_ITEM},
    "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
    "accessIPv4": {"type": "string"}, "accessIPv6": {"type": "string"},
    "personality": {"type": "array", "items": {"type": "object", "properties": {
        "path": {"type": "string"}, "contents": {"type": "string"}},
        "additionalProperties": False}},
    "availability_zone": NAME, "key_name": NAME,
    "block_device_mapping": {"type": "array", "items": _BDM},
    "block_device_mapping_v2": {"type": "array", "items": _BDM},
    "config_drive": BOOLEAN, "min_count": _POSITIVE, "max_count": _POSITIVE,
    "return_reservation_id": BOOLEAN,
    "security_groups": {"type": "array", "items": {
        "type": "object", "properties": {"name": NAME}, "additionalProperties": False}},
    "user_data": {"type": "string", "maxLength": 65535},
}


@functools.cache
def create_schema(minor: int) -> dict[str, Any]:
    """The body of ``POST /servers`` at 2.``minor`` (built once per microversion and
    shared: do not change it)."""
    server = copy.deepcopy(_SERVER)
    required = ["name", "flavorRef"]
    if minor >= 19:
        server["description"] = DESCRIPTION
    if minor >= 32:
        server["networks"] = {"type": "array", "items": {
            **_NETWORK_ITEM, "properties": {**_NETWORK_ITEM["properties"], "tag": _TAG}}}
    if minor >= 37:
        required.append("networks")
        item: dict[str, Any] = copy.deepcopy(_NETWORK_ITEM)
        if minor >= 42:
            item["properties"]["tag"] = _TAG
        server["networks"] = {"oneOf": [{"type": "array", "items": item},
                                        {"type": "string", "enum": ["none", "auto"]}]}
    if minor == 32 or minor >= 42:
        server["block_device_mapping_v2"]["items"]["properties"]["tag"] = _TAG
    if minor >= 52:
        server["tags"] = {"type": "array", "items": _TAG, "maxItems": 50}
    if minor >= 57:
        del server["personality"]
    if minor >= 63:
        server["trusted_image_certificates"] = {
            "type": ["array", "null"], "minItems": 1, "maxItems": 50, "uniqueItems": True,
            "items": {"type": "string", "minLength": 1}}
    if minor >= 67:
        server["block_device_mapping_v2"]["items"]["properties"]["volume_type"] = {
            "type": ["string", "null"], "minLength": 0, "maxLength": 255}
    if minor >= 74:
        server["host"] = _FQDN
        server["hypervisor_hostname"] = _FQDN
    if minor >= 90:
        server["hostname"] = _FQDN if minor >= 94 else _HOSTNAME
    return {"type": "object", "properties": {
        "server": {"type": "object", "properties": server, "required": required,
                   "additionalProperties": False},
        "os:scheduler_hints": _HINTS, "OS-SCH-HNT:scheduler_hints": _HINTS},
        "required": ["server"], "additionalProperties": False}


def update_schema(minor: int) -> dict[str, Any]:
    """The body of ``PUT /servers/{id}`` at 2.``minor``."""
    server: dict[str, Any] = {
        "name": NAME, "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string"}, "accessIPv6": {"type": "string"}}
    if minor >= 19:
        server["description"] = DESCRIPTION
    if minor >= 90:
        server["hostname"] = _FQDN if minor >= 94 else _HOSTNAME
    return {"type": "object", "properties": {"server": {
        "type": "object", "properties": server, "additionalProperties": False}},
        "required": ["server"], "additionalProperties": False}


def is_uuid(text: str) -> bool:
    """Whether ``text`` looks like a uuid (dashes optional, as Nova's check)."""
    return bool(_UUID.match(text))


def _bad(field: str, value: Any, what: str) -> InvalidInput:
    return InvalidInput(f"Invalid input for field/attribute {field}. Value: {value}. "
                        f"{value!r} is not a '{what}'")


def check_formats(body: dict[str, Any]) -> None:
    """The format checks of Nova's create schema (uuid, base64, IP addresses)."""
    server = body["server"]
    image = server.get("imageRef")
    if image and not is_uuid(str(image).rstrip("/").rsplit("/", 1)[-1]):
        raise _bad("imageRef", image, "uuid")
    data = server.get("user_data")
    if data is not None:
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("user_data", data, "base64") from None
    for key, version in (("accessIPv4", 4), ("accessIPv6", 6)):
        if key in server and not _is_ip(server[key], version):
            raise _bad(key, server[key], f"ipv{version}")
    nets = server.get("networks")
    for net in nets if isinstance(nets, list) else []:
        if "fixed_ip" in net and not _is_ip(net["fixed_ip"], None):
            raise _bad("networks/fixed_ip", net["fixed_ip"], "ip_address")
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    for key in ("group", "same_host", "different_host"):
        values = hints.get(key)
        for value in [values] if isinstance(values, str) else values or []:
            if not is_uuid(value):
                raise _bad(f"os:scheduler_hints/{key}", value, "uuid")


def _is_ip(text: str, version: int | None) -> bool:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or addr.version == version


# -- the list queries --------------------------------------------------------------------
#: Every query parameter Nova's list schema knows (2.75 refuses any other).
_QUERY_V21 = frozenset({
    "user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "kernel_id",
    "ramdisk_id", "hostname", "key_name", "power_state", "vm_state", "task_state", "host",
    "node", "flavor", "reservation_id", "launched_at", "terminated_at",
    "availability_zone", "name", "display_name", "description", "display_description",
    "locked_by", "uuid", "root_device_name", "config_drive", "access_ip_v4",
    "access_ip_v6", "auto_disk_config", "progress", "sort_key", "sort_dir", "all_tenants",
    "soft_deleted", "deleted", "status", "changes-since", "ip", "ip6", "created_at",
    "block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
    "security_groups", "pci_devices", "limit", "marker"})
#: Filters that join other tables: refused at every version.
JOINED = frozenset({"block_device_mapping", "services", "metadata", "system_metadata",
                    "info_cache", "security_groups", "pci_devices"})
#: Sort keys Nova accepts; those in ``IGNORED_SORT_KEYS`` are dropped before 2.75.
SORT_KEYS = frozenset({
    "access_ip_v4", "access_ip_v6", "auto_disk_config", "availability_zone",
    "config_drive", "created_at", "display_description", "display_name", "host",
    "hostname", "image_ref", "instance_type_id", "kernel_id", "key_name", "launch_index",
    "launched_at", "locked_by", "node", "power_state", "progress", "project_id",
    "ramdisk_id", "root_device_name", "task_state", "terminated_at", "updated_at",
    "user_id", "uuid", "vm_state"})
IGNORED_SORT_KEYS = frozenset({
    "architecture", "cell_name", "cleaned", "default_ephemeral_device",
    "default_swap_device", "deleted", "deleted_at", "disable_terminate", "ephemeral_gb",
    "ephemeral_key_uuid", "id", "key_data", "launched_on", "locked", "memory_mb",
    "os_type", "reservation_id", "root_gb", "shutdown_terminate", "user_data", "vcpus",
    "vm_mode"})


def known_query(minor: int) -> frozenset[str]:
    """The query parameters the list schema of 2.``minor`` names."""
    names = set(_QUERY_V21)
    if minor >= 26:
        names |= {"tags", "tags-any", "not-tags", "not-tags-any"}
    if minor >= 66:
        names.add("changes-before")
    if minor >= 73:
        names.add("locked")
    return frozenset(names)


def user_filters(minor: int) -> frozenset[str]:
    """The filters a non-admin may use at 2.``minor`` (others are dropped, as Nova)."""
    names = {"reservation_id", "name", "status", "image", "flavor", "ip", "changes-since",
             "all_tenants"}
    if minor >= 5:
        names.add("ip6")
    if minor >= 26:
        names |= {"tags", "tags-any", "not-tags", "not-tags-any"}
    if minor >= 66:
        names.add("changes-before")
    if minor >= 73:
        names.add("locked")
    if minor >= 83:
        names |= {"availability_zone", "config_drive", "key_name", "created_at",
                  "launched_at", "terminated_at", "power_state", "task_state", "vm_state",
                  "progress", "user_id"}
    if minor >= 90:
        names.add("hostname")
    return frozenset(names)
