"""Server actions that move or remake a server, and what every action handler shares.

``POST /servers/{id}/action`` names one action per request (see
:mod:`nimbus.core.api.compute.server_actions`, which dispatches). This module
holds the :class:`Action` table entry, the JSON Schema pieces Nova's action
schemas are made of, and the actions that move a server or remake its disk:
resize (with confirm and revert), cold and live migration, evacuation,
rebuild and create image. Each validates its body against the schema of the
request's microversion (a field sent before the version that added it is a
400, as Nova's ``additionalProperties: false`` makes it), checks what the
lifecycle logic cannot know (the flavor and image exist, the target host is
a compute host) and calls :class:`~nimbus.core.compute.api.ComputeAPI`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nimbus.core.api.compute import server_views as views
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, validate
from nimbus.core.api.http import Response
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import InvalidInput, NotFound

#: The prefix of Nova's rules on servers.
SERVERS = "os_compute_api:servers:"
#: ``handler(env, creq, server_id, body)`` for one action key.
ActionHandler = Callable[[ComputeEnv, ComputeRequest, str, Any], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Action:
    """One action of ``POST /servers/{id}/action``: its handler, the name Nova gives it in
    a 409 ("Cannot 'resize' instance ..."), the policy rule the dispatch checks against
    the server (None: the handler checks, since the rule depends on the body), and the
    microversions it exists at."""

    handler: ActionHandler
    name: str
    rule: str | None
    min_minor: int = 1
    max_minor: int | None = None


# -- schema pieces (Nova's parameter types, Draft 4) ------------------------------------------
BOOL: dict[str, Any] = {"type": ["boolean", "string"], "enum": [
    True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
    False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}
HOST: dict[str, Any] = {"type": ["string", "null"], "pattern": "^[a-zA-Z0-9-._]*$",
                        "minLength": 1, "maxLength": 255}
FQDN: dict[str, Any] = {**HOST, "type": "string"}
NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255,
                        "pattern": r"^\S(?:.*\S)?$"}
NAME_OR_NONE: dict[str, Any] = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 255},
                                          {"type": "null"}]}
PASSWORD: dict[str, Any] = {"type": "string"}
METADATA: dict[str, Any] = {"type": "object", "patternProperties": {
    "^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False}
DISK_CONFIG: dict[str, Any] = {"type": "string", "enum": ["AUTO", "MANUAL"]}
_TRUE = {"true", "1", "on", "yes"}


def obj(props: Mapping[str, Any], required: tuple[str, ...] = (), *,
        nullable: bool = False) -> dict[str, Any]:
    """A closed object schema (Draft 4 wants ``required`` left out when empty)."""
    out: dict[str, Any] = {"type": ["object", "null"] if nullable else "object",
                           "properties": dict(props), "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


def one(key: str, inner: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of an action body: exactly ``{key: <inner>}``."""
    return obj({key: dict(inner)}, (key,))


def truthy(value: object) -> bool:
    """A Nova boolean parameter (already schema-checked) as a bool."""
    return value is True or (isinstance(value, str) and value.lower() in _TRUE)


def accepted() -> Response:
    """202 with no body, the answer of most actions."""
    return json(None, 202)


def new_password(env: ComputeEnv, length: int = 12) -> str:
    """A random admin password (Nova's ``generate_password``: no look-alike characters)."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    return "".join(env.runtime.rng.choice(alphabet) for _ in range(length))


def host_id(project_id: str, host: str | None) -> str:
    """Nova's obfuscated ``hostId``: sha224 of project id and host, "" without a host."""
    return hashlib.sha224((project_id + host).encode()).hexdigest() if host else ""


async def visible_instance(env: ComputeEnv, creq: ComputeRequest, uuid: str, *,
                           read_deleted: bool = False) -> InstanceRecord:
    """The instance if the caller may see it; Nova's 404 otherwise (another project's
    instance is as missing as one that never was)."""
    try:
        inst = await env.store.get_instance(uuid, read_deleted=read_deleted)
    except NotFound:
        inst = None
    if inst is None or (inst.project_id != creq.ctx.project_id
                        and not creq.allows("context_is_admin")):
        raise NotFound(f"Instance {uuid} could not be found.")
    return inst


async def authorized(env: ComputeEnv, creq: ComputeRequest, uuid: str,
                     rule: str) -> InstanceRecord:
    """The instance (404 as :func:`visible_instance`) if the policy allows ``rule`` on it
    (403 otherwise): for handlers whose rule depends on the body, checked once the body
    is valid (a bad body is a 400 first, as Nova's schemas make it)."""
    inst = await visible_instance(env, creq, uuid)
    creq.authorize(rule, inst)
    return inst


async def compute_host_known(env: ComputeEnv, host: str) -> bool:
    """Whether ``host`` runs a compute service."""
    return await env.store.service_by_host_binary(host, env.compute.compute_binary) is not None


# -- resize, confirm, revert, cold migration ----------------------------------------------------
_RESIZE = one("resize", obj({"flavorRef": {"type": ["string", "integer"], "minLength": 1},
                             "OS-DCF:diskConfig": DISK_CONFIG}, ("flavorRef",)))
_CONFIRM, _REVERT = one("confirmResize", {}), one("revertResize", {})
_MIGRATE = one("migrate", obj({"host": HOST}, nullable=True))


async def flavor_for(env: ComputeEnv, creq: ComputeRequest, flavor_ref: str) -> dict[str, Any]:
    """A flavor the caller may use, as an instance's flavor snapshot; 400 otherwise."""
    try:
        f = await env.store.get_flavor(flavor_ref.rstrip("/").rsplit("/", 1)[-1])
        if not (f.is_public or creq.allows("context_is_admin")
                or creq.ctx.project_id in await env.store.list_flavor_access(f.flavorid)):
            raise NotFound(f.flavorid)
    except NotFound:
        raise InvalidInput("Unable to locate requested flavor.") from None
    return {"flavorid": f.flavorid, "name": f.name, "vcpus": f.vcpus,
            "memory_mb": f.memory_mb, "root_gb": f.root_gb, "ephemeral_gb": f.ephemeral_gb,
            "swap": f.swap, "rxtx_factor": f.rxtx_factor, "vcpu_weight": f.vcpu_weight,
            "is_public": f.is_public, "description": f.description,
            "extra_specs": dict(f.extra_specs)}


async def resize(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``resize``: to another flavor (400 for an unknown one)."""
    validate(body, _RESIZE)
    flavor = await flavor_for(env, creq, str(body["resize"]["flavorRef"]))
    await env.compute.resize(creq.ctx, uuid, flavor)
    return accepted()


async def confirm_resize(env: ComputeEnv, creq: ComputeRequest, uuid: str,
                         body: Any) -> Response:
    """``confirmResize``: 204, as Nova answers it."""
    validate(body, _CONFIRM)
    await env.compute.confirm_resize(creq.ctx, uuid)
    return json(None, 204)


async def revert_resize(env: ComputeEnv, creq: ComputeRequest, uuid: str,
                        body: Any) -> Response:
    """``revertResize``."""
    validate(body, _REVERT)
    await env.compute.revert_resize(creq.ctx, uuid)
    return accepted()


async def migrate(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``migrate`` (admin): a target ``host`` from 2.56; before, Nova reads no body."""
    host = None
    if creq.at_least(56):
        validate(body, _MIGRATE)
        host = (body["migrate"] or {}).get("host")
    await authorized(env, creq, uuid,
                     "os_compute_api:os-migrate-server:migrate" + (":host" if host else ""))
    await env.compute.migrate(creq.ctx, uuid, host)
    return accepted()


# -- live migration and evacuation ---------------------------------------------------------------
_LIVE_V21 = obj({"block_migration": BOOL, "disk_over_commit": BOOL, "host": HOST},
                ("block_migration", "disk_over_commit", "host"))
_LIVE_V225 = obj({"block_migration": {**BOOL, "enum": [*BOOL["enum"], "auto"]}, "host": HOST},
                 ("block_migration", "host"))
_LIVE_V230 = obj({**_LIVE_V225["properties"], "force": BOOL}, ("block_migration", "host"))


async def live_migrate(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``os-migrateLive`` (admin): ``block_migration`` may be "auto" from 2.25, ``force``
    exists from 2.30 to 2.67, ``disk_over_commit`` until 2.24."""
    schema = (_LIVE_V21 if not creq.at_least(25) else
              _LIVE_V230 if creq.at_least(30) and not creq.at_least(68) else _LIVE_V225)
    validate(body, one("os-migrateLive", schema))
    args = body["os-migrateLive"]
    host = args.get("host")
    inst = await authorized(env, creq, uuid, "os_compute_api:os-migrate-server:migrate_live"
                            + (":host" if host else ""))
    if truthy(args.get("force", False)) and not host:
        raise InvalidInput("Can't force to a non-provided destination")
    if host:
        if not await compute_host_known(env, host):
            raise InvalidInput(f"Compute host {host} could not be found.")
        if host == inst.host:
            raise InvalidInput(f"Unable to migrate instance ({uuid}) to current host "
                               f"({host}).")
    # "auto" lets the cloud choose; the lifecycle decides on shared storage itself
    block = args["block_migration"] != "auto" and truthy(args["block_migration"])
    await env.compute.live_migrate(creq.ctx, uuid, host or None, block)
    return accepted()


_EVACUATE_V21 = obj({"host": FQDN, "onSharedStorage": BOOL, "adminPass": PASSWORD},
                    ("onSharedStorage",))
_EVACUATE_V214 = obj({"host": FQDN, "adminPass": PASSWORD})
_EVACUATE_V229 = obj({"host": FQDN, "adminPass": PASSWORD, "force": BOOL})


async def evacuate(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``evacuate`` (admin) from a host that is down: 200, with the new admin password
    before 2.14 (``onSharedStorage`` goes at 2.14, ``force`` is there from 2.29 to 2.67)."""
    schema = (_EVACUATE_V21 if not creq.at_least(14) else
              _EVACUATE_V229 if creq.at_least(29) and not creq.at_least(68) else _EVACUATE_V214)
    validate(body, one("evacuate", schema))
    args = body["evacuate"]
    inst = await authorized(env, creq, uuid, "os_compute_api:os-evacuate")
    host = args.get("host")
    if truthy(args.get("force", False)) and not host:
        raise InvalidInput("Can't force to a non-provided destination")
    shared = truthy(args.get("onSharedStorage", False))
    if shared and args.get("adminPass"):
        raise InvalidInput("admin password can't be changed on existing disk")
    password = args.get("adminPass") or (None if shared else new_password(env))
    if host is not None and not await compute_host_known(env, host):
        raise NotFound(f"Compute host {host} not found.")
    if inst.host == host:
        raise InvalidInput("The target host can't be the same one.")
    if inst.host is not None and await env.compute.host_is_up(inst.host):
        raise InvalidInput(f"Compute service of {inst.host} is still in use.")
    await env.compute.evacuate(creq.ctx, uuid, host, password)
    return json(None if creq.at_least(14) else {"adminPass": password}, 200)


# -- rebuild and create image ---------------------------------------------------------------------
_REBUILD_BASE = {"name": NAME, "imageRef": {"type": "string"}, "adminPass": PASSWORD,
                 "metadata": METADATA, "preserve_ephemeral": BOOL,
                 "OS-DCF:diskConfig": DISK_CONFIG, "accessIPv4": {"type": "string"},
                 "accessIPv6": {"type": "string"}, "personality": {"type": "array"}}
_HOSTNAME = {"type": "string", "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$",
             "minLength": 2, "maxLength": 63}


def _rebuild_schema(creq: ComputeRequest) -> dict[str, Any]:
    props = dict(_REBUILD_BASE)
    if creq.at_least(19):
        props["description"] = {"type": ["string", "null"], "maxLength": 255}
    if creq.at_least(54):
        props["key_name"] = NAME_OR_NONE
    if creq.at_least(57):
        del props["personality"]
        props["user_data"] = {"type": ["string", "null"], "maxLength": 65535}
    if creq.at_least(63):
        props["trusted_image_certificates"] = {"type": ["array", "null"],
                                               "items": {"type": "string"}}
    if creq.at_least(90):
        props["hostname"] = FQDN if creq.at_least(94) else _HOSTNAME
    return one("rebuild", obj(props, ("imageRef",)))


async def usable_image(env: ComputeEnv, creq: ComputeRequest, image_id: str) -> None:
    """400 unless ``image_id`` is an active image the caller may see."""
    try:
        image = await env.store.get_visible_image(image_id, creq.ctx.project_id,
                                                  creq.allows("context_is_admin"))
    except NotFound:
        raise InvalidInput(f"Image {image_id} could not be found.") from None
    if image.status != "active":
        raise InvalidInput(f"Image {image_id} is not active.")


async def rebuild(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``rebuild``: 202 with the server (in REBUILD) and its new admin password."""
    validate(body, _rebuild_schema(creq))
    args = body["rebuild"]
    inst = await authorized(env, creq, uuid, SERVERS + "rebuild")
    if args.get("trusted_image_certificates"):
        creq.authorize("os_compute_api:servers:rebuild:trusted_certs", inst)
    await usable_image(env, creq, args["imageRef"])
    changes: dict[str, Any] = {}
    if "key_name" in args:
        key = args["key_name"]
        pair = None if key is None else await _keypair(env, creq, key)
        changes.update(key_name=key, key_data=pair)
    for field, column in (("description", "display_description"), ("user_data", "user_data"),
                          ("hostname", "hostname"), ("accessIPv4", "access_ip_v4"),
                          ("accessIPv6", "access_ip_v6")):
        if field in args:
            changes[column] = args[field]
    password = args.get("adminPass") or new_password(env)
    inst = await env.compute.rebuild(creq.ctx, uuid, args["imageRef"], name=args.get("name"),
                                     metadata=args.get("metadata"), admin_password=password)
    if changes:  # only once the rebuild has started, so that a refused one changes nothing
        inst = await env.store.update_instance(uuid, now=env.runtime.wall_time(), **changes)
    return json({"server": await rebuilt_view(env, creq, inst, password)}, 202)


async def _keypair(env: ComputeEnv, creq: ComputeRequest, name: str) -> str | None:
    try:
        return (await env.store.get_keypair(creq.ctx.user_id, name)).public_key
    except NotFound:
        raise InvalidInput(f"Invalid key_name provided: {name}") from None


_CREATE_IMAGE = one("createImage", obj({"name": NAME, "metadata": METADATA}, ("name",)))


async def create_image(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``createImage``: 202 with the image id in the body from 2.45, in ``Location`` before."""
    validate(body, _CREATE_IMAGE)
    args = body["createImage"]
    image_id = await env.compute.create_image(creq.ctx, uuid, args["name"], args.get("metadata"))
    if creq.at_least(45):
        return json({"image_id": image_id}, 202)
    return json(None, 202, {"Location": creq.link("images", image_id)})


async def rebuilt_view(env: ComputeEnv, creq: ComputeRequest, inst: InstanceRecord,
                       password: str) -> dict[str, Any]:
    """The server as Nova's rebuild answers it: the smaller view of ``PUT /servers``
    (with ``key_name`` from 2.54 and ``user_data`` from 2.57) before 2.75, the whole
    ``GET /servers/{id}`` view from 2.75; with the new admin password."""
    found = await views.Lookups.load(env, creq, [inst], server_groups=creq.at_least(71),
                                     owner=inst)
    view = views.detail(creq, inst, found, full=creq.at_least(75), server_groups=True)
    if creq.at_least(54):
        view.setdefault("key_name", inst.key_name)
    if creq.at_least(57):
        view.setdefault("user_data", inst.user_data)
    view["adminPass"] = password
    return view


#: The actions of this module, by their body key.
MOVE_ACTIONS: dict[str, Action] = {
    "resize": Action(resize, "resize", SERVERS + "resize"),
    "confirmResize": Action(confirm_resize, "confirmResize", SERVERS + "confirm_resize"),
    "revertResize": Action(revert_resize, "revertResize", SERVERS + "revert_resize"),
    "migrate": Action(migrate, "migrate", None),
    "os-migrateLive": Action(live_migrate, "os-migrateLive", None),
    "evacuate": Action(evacuate, "evacuate", None),
    "rebuild": Action(rebuild, "rebuild", None),
    "createImage": Action(create_image, "createImage", SERVERS + "create_image"),
}
