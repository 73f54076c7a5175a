"""``/servers``: create, show, update and delete servers, and their addresses.

Create checks what Nova checks before anything is made: the body against the
schema of its microversion, the flavor (unknown, disabled or private to another
project: 400 "Flavor <id> could not be found."), the image (missing or not
visible under Glance's rules: 400 "Image <id> could not be found."), the key
pair, the availability zone and the block device mappings (the image->local
root disk the CLI always sends; no volumes, there is no volume service). Then
:meth:`~nimbus.core.compute.api.ComputeAPI.create` checks the quota (403),
makes the records and gives each an address on the default network when
networks are ``auto`` (2.37+) or ``[]`` (before 2.37, where an empty or missing
list means the same). Lists are in :mod:`~nimbus.core.api.compute.server_list`,
views in :mod:`~nimbus.core.api.compute.server_views`, metadata in
:mod:`~nimbus.core.api.compute.server_metadata`.
"""

from __future__ import annotations

import string
from typing import Any

from nimbus.core.api.compute import server_list, server_metadata
from nimbus.core.api.compute import server_views as views
from nimbus.core.api.compute.server_schemas import (
    check_formats,
    create_schema,
    is_uuid,
    update_schema,
)
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.compute import states
from nimbus.core.compute.api_create import release_networks
from nimbus.core.context import RequestContext
from nimbus.core.db.aggregates import AZ_KEY
from nimbus.core.db.block_devices import BlockDeviceSpec, image_root_disk
from nimbus.core.db.images import ImageRecord
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import InvalidInput, NotFound
from nimbus.core.image.visibility import visible_image

_TRUE = frozenset({"true", "1", "on", "yes"})
_PASSWORD_CHARS = string.ascii_letters + string.digits
SERVERS = "os_compute_api:servers:"
NO_VOLUMES = "Block device mappings of volumes are not supported: there is no volume service."


def last_segment(ref: Any) -> str:
    """An id from an id or an href (``http://h/v2.1/p/flavors/1`` -> ``1``)."""
    return str(ref).rstrip("/").rsplit("/", 1)[-1]


async def find(env: ComputeEnv, creq: ComputeRequest, uuid: str) -> InstanceRecord:
    """A server the caller may see; 404 in Nova's words otherwise."""
    try:
        return await env.compute.get(creq.ctx, uuid)
    except NotFound:
        raise NotFound(f"Instance {uuid} could not be found.") from None


async def flavor_for_create(env: ComputeEnv, creq: ComputeRequest,
                            ref: Any) -> dict[str, Any]:
    """The flavor snapshot a new server gets; 400 if the caller may not use it."""
    flavorid, ctx = last_segment(ref), creq.ctx
    missing = InvalidInput(f"Flavor {flavorid} could not be found.")
    try:
        f = await env.store.get_flavor(flavorid)
    except NotFound:
        raise missing from None
    if f.disabled or (not f.is_public and not creq.allows("context_is_admin")
                      and ctx.project_id not in await env.store.list_flavor_access(flavorid)):
        raise missing
    return {"flavorid": f.flavorid, "name": f.name, "vcpus": f.vcpus,
            "memory_mb": f.memory_mb, "root_gb": f.root_gb, "ephemeral_gb": f.ephemeral_gb,
            "swap": f.swap, "rxtx_factor": f.rxtx_factor, "extra_specs": dict(f.extra_specs)}


async def image_for_create(env: ComputeEnv, ctx: RequestContext, image_id: str,
                           flavor: dict[str, Any]) -> ImageRecord:
    """The image a new server boots; 400 if missing, invisible, not active or too big."""
    try:
        image = await visible_image(env.store, ctx, image_id)
    except NotFound:
        raise InvalidInput(f"Image {image_id} could not be found.") from None
    if image.status != "active":
        raise InvalidInput(f"Image {image_id} is not active.")
    if int(flavor["memory_mb"]) < image.min_ram:
        raise InvalidInput("Flavor's memory is too small for requested image.")
    if 0 < int(flavor["root_gb"]) < image.min_disk:
        raise InvalidInput("Flavor's disk is too small for requested image.")
    return image


def root_and_disks(server: dict[str, Any]) -> tuple[str, list[BlockDeviceSpec]]:
    """The image to boot and the disks to make, from ``imageRef`` and the mappings."""
    image_id = last_segment(server["imageRef"]) if server.get("imageRef") else ""
    v2, legacy = server.get("block_device_mapping_v2") or [], server.get(
        "block_device_mapping") or []
    if v2 and legacy:
        raise InvalidInput("Using different block_device_mapping syntaxes is not allowed "
                           "in the same request.")
    if legacy:
        raise InvalidInput(NO_VOLUMES)
    disks: list[BlockDeviceSpec] = []
    for bdm in v2:
        source, dest = bdm.get("source_type"), bdm.get("destination_type", "local")
        boot = bdm.get("boot_index")
        boot_index = None if boot in (None, "") else int(boot)
        size = int(bdm["volume_size"]) if bdm.get("volume_size") else None
        if dest == "volume" or source in ("volume", "snapshot"):
            raise InvalidInput(NO_VOLUMES)
        if source == "image":
            uuid = str(bdm.get("uuid") or bdm.get("image_id") or "")
            if boot_index != 0:
                raise InvalidInput("Mapping image to local is not supported.")
            if image_id and uuid and uuid != image_id:
                raise InvalidInput(f"Block device mapping image {uuid} is not imageRef "
                                   f"{image_id}.")
            image_id = image_id or uuid
            disks.append(image_root_disk("", image_id, size_gb=size))
        elif source == "blank":
            disks.append(BlockDeviceSpec(
                "", "blank", "local", boot_index=boot_index, guest_format=bdm.get(
                    "guest_format"), volume_size=size, device_name=bdm.get("device_name"),
                disk_bus=bdm.get("disk_bus"), delete_on_termination=True))
        else:
            raise InvalidInput(f"Invalid block device mapping: source_type {source!r}")
    if not image_id:
        raise InvalidInput("Missing imageRef attribute")
    if not any(d.boot_index == 0 for d in disks):
        disks.insert(0, image_root_disk("", image_id))
    return image_id, disks


def requested_networks(creq: ComputeRequest, server: dict[str, Any]) -> Any:
    """``"auto"``, ``"none"`` or a list of ``{"uuid", "fixed_ip"?}`` (400 if malformed)."""
    nets = server.get("networks")
    if nets is None or nets == [] or nets == "auto":
        return "auto"  # before 2.37 no list (or an empty one) means every usable network
    if nets == "none":
        return "none"
    out = []
    for net in nets:
        if net.get("port"):
            raise InvalidInput("Ports are not supported: there is no network service.")
        if "uuid" not in net:
            raise InvalidInput("Bad network format: missing 'uuid'")
        if not is_uuid(net["uuid"]):
            raise InvalidInput("Bad networks format: network uuid is not in proper format "
                               f"({net['uuid']})")
        out.append({"uuid": net["uuid"], "fixed_ip": net.get("fixed_ip")})
    return out


async def check_zone(env: ComputeEnv, ctx: RequestContext, zone: str | None) -> None:
    """400 unless ``zone`` is the default zone or an aggregate's."""
    if zone is None:
        return
    if ":" in zone:
        raise InvalidInput("Forcing a host with zone:host:node is not supported.")
    zones = {views.DEFAULT_ZONE}
    for meta in (await env.store.hosts_aggregate_metadata()).values():
        zones.update(meta.get(AZ_KEY, ()))
    if zone not in zones:
        raise InvalidInput("The requested availability zone is not available")


async def create_server(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /servers``: 202 with the new server's id, links and password."""
    body = creq.body(create_schema(creq.version.minor))
    check_formats(body)
    server, ctx = body["server"], creq.ctx
    # Nova's target for create: the caller's project and user, and the zone asked for
    target = {"project_id": ctx.project_id, "user_id": ctx.user_id,
              "availability_zone": server.get("availability_zone")}
    creq.authorize(SERVERS + "create", target)
    if creq.at_least(63) and server.get("trusted_image_certificates"):
        creq.authorize(SERVERS + "create:trusted_certs", target)
    if ":" in (server.get("availability_zone") or ""):  # "zone:host[:node]", refused below
        creq.authorize(SERVERS + "create:forced_host", target)
    min_count = int(server.get("min_count", 1))
    max_count = int(server.get("max_count", min_count))
    if min_count > max_count:
        raise InvalidInput("min_count must be <= max_count")
    hostname = server.get("hostname") if creq.at_least(90) else None
    if hostname and max_count > 1:
        raise InvalidInput("Unable to allocate a hostname to multiple instances: give "
                           "the hostname only when creating a single instance.")
    if server.get("host") or server.get("hypervisor_hostname"):
        creq.authorize(SERVERS + "create:requested_destination", target)
        raise InvalidInput("Requesting a destination host is not supported.")
    if server.get("networks") not in (None, [], "none"):
        creq.authorize(SERVERS + "create:attach_network", target)
    if server.get("block_device_mapping_v2") or server.get("block_device_mapping"):
        creq.authorize(SERVERS + "create:attach_volume", target)
    flavor = await flavor_for_create(env, creq, server["flavorRef"])
    image_id, disks = root_and_disks(server)
    image = await image_for_create(env, ctx, image_id, flavor)
    key_data = None
    if server.get("key_name") is not None:
        try:
            key_data = (await env.store.get_keypair(ctx.user_id, server["key_name"])).public_key
        except NotFound:
            raise InvalidInput("Invalid key_name provided.") from None
    await check_zone(env, ctx, server.get("availability_zone"))
    await server_metadata.check_items_quota(env, creq, server.get("metadata") or {})
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    groups = [g["name"] for g in server.get("security_groups", []) if g.get("name")]
    extra: dict[str, Any] = {}
    if creq.at_least(52) and server.get("tags"):
        extra["tags"] = list(dict.fromkeys(server["tags"]))
    if creq.at_least(63) and server.get("trusted_image_certificates"):
        extra["trusted_image_certificates"] = list(server["trusted_image_certificates"])
    password = server.get("adminPass") or "".join(
        env.runtime.rng.choice(_PASSWORD_CHARS) for _ in range(12))
    try:
        created = await env.compute.create(
            ctx, flavor=flavor, image_ref=image.id,
            image_properties={k: v for k, v in image.properties.items() if v is not None},
            name=server["name"], description=server.get("description") if creq.at_least(19)
            else server["name"], min_count=min_count, max_count=max_count,
            availability_zone=server.get("availability_zone"), group_uuid=hints.get("group"),
            scheduler_hints={k: v for k, v in hints.items()
                             if k != "group" and isinstance(v, (str, list))},
            key_name=server.get("key_name"), key_data=key_data,
            user_data=server.get("user_data"), metadata=server.get("metadata"),
            admin_password=password, hostname=hostname,
            networks=requested_networks(creq, server), security_groups=groups or ["default"],
            block_devices=disks, config_drive=str(server.get("config_drive")).lower() in _TRUE,
            system_metadata=extra, enforce_quota=True)
    except NotFound as exc:  # a server group that is not there, or not the caller's
        raise InvalidInput(exc.message) from None
    if str(server.get("return_reservation_id", "")).lower() in _TRUE:
        return json({"reservation_id": created[0].reservation_id}, 202)
    first = created[0]
    view = {"id": first.uuid, "links": views.links(creq, first.uuid),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": n} for n in groups or ["default"]],
            "adminPass": password}
    return json({"server": view}, 202, {"Location": creq.link("servers", first.uuid)})


async def show_server(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{server_id}``."""
    inst = await find(env, creq, creq.param("server_id"))
    creq.authorize(SERVERS + "show", inst)
    found = await views.Lookups.load(env, creq, [inst], server_groups=creq.at_least(71),
                                     owner=inst)
    return json({"server": views.detail(creq, inst, found, server_groups=True)})


async def update_server(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /servers/{server_id}``: name, description (2.19), hostname (2.90)."""
    body = creq.body(update_schema(creq.version.minor))["server"]
    inst = await find(env, creq, creq.param("server_id"))
    creq.authorize(SERVERS + "update", inst)
    changes: dict[str, Any] = {}
    for key, column in (("name", "display_name"), ("description", "display_description"),
                        ("hostname", "hostname"), ("accessIPv4", "access_ip_v4"),
                        ("accessIPv6", "access_ip_v6")):
        if key in body:
            changes[column] = body[key]
    if "OS-DCF:diskConfig" in body:
        changes["auto_disk_config"] = body["OS-DCF:diskConfig"] == "AUTO"
    if changes:
        inst = await env.store.update_instance(inst.uuid, now=env.compute.wall(), **changes)
    full = creq.at_least(75)
    found = await views.Lookups.load(env, creq, [inst], detail=full,
                                     server_groups=creq.at_least(71), owner=inst)
    return json({"server": views.detail(creq, inst, found, full=full, server_groups=True)})


async def delete_server(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /servers/{server_id}``: 204; the server's addresses go back at once
    (a soft-deleted one keeps them, to be restorable)."""
    uuid = creq.param("server_id")
    creq.authorize(SERVERS + "delete", await find(env, creq, uuid))
    try:
        await env.compute.delete(creq.ctx, uuid)
    except NotFound:
        raise NotFound(f"Instance {uuid} could not be found.") from None
    inst = await env.store.get_instance(uuid, read_deleted=True)
    if inst.vm_state != states.SOFT_DELETED and inst.task_state != states.SOFT_DELETING:
        await release_networks(env.store, uuid, env.compute.wall())
    return Response(204, None)


async def list_ips(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{server_id}/ips``: the addresses by network."""
    inst = await find(env, creq, creq.param("server_id"))
    creq.authorize("os_compute_api:ips:index", inst)
    addrs = await views.addresses_of(env, inst.uuid)
    return json({"addresses": views.address_view(addrs, extended=False)})


async def show_ips(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{server_id}/ips/{network_label}``."""
    inst = await find(env, creq, creq.param("server_id"))
    creq.authorize("os_compute_api:ips:show", inst)
    label = creq.param("network_label")
    addrs = await views.addresses_of(env, inst.uuid)
    if label not in addrs:
        raise NotFound("Instance is not a member of specified network")
    return json(views.address_view({label: addrs[label]}, extended=False))


def routes(env: ComputeEnv) -> list[Route]:
    """The servers routes (and their metadata's)."""
    one = "/servers/{server_id}"
    return [
        *route(env, "GET", "/servers", server_list.list_servers),
        *route(env, "GET", "/servers/detail", server_list.list_servers_detail),
        *route(env, "POST", "/servers", create_server),
        *route(env, "GET", one, show_server),
        *route(env, "PUT", one, update_server),
        *route(env, "DELETE", one, delete_server),
        *route(env, "GET", one + "/ips", list_ips),
        *route(env, "GET", one + "/ips/{network_label}", show_ips),
        *server_metadata.routes(env),
    ]

