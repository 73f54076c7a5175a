"""``POST /servers/{id}/action`` and ``POST /servers/{id}/remote-consoles``.

An action request carries exactly one key, the action's name (Nova answers 400
"too many body keys" otherwise, and 400 "There is no such action" for a name
it does not know); an action outside its microversion range is a 404, as Nova
answers a versioned method that is not there. The instance is looked up first
(404 for another project's, as for a missing one) and the action's policy rule
checked with the server's project as the target (403: a reader may look, not
act); then the action's handler validates its body and calls the lifecycle
logic. Where the rule depends on the body (``migrate`` with a host, unshelve to
a host, an admin's lock) or is for admins (a bad body is a 400 before the 403),
the handler checks it once the body is valid. A refused state comes back
as Nova words it: "Cannot 'reboot' instance <id> while it is in vm_state
stopped" (409).

This module holds the dispatch and the actions that keep a server where it
is: power, pause, suspend, rescue, lock, shelve, restore, reset state,
password, crash dump and consoles. Moves and rebuilds are in
:mod:`nimbus.core.api.compute.server_actions_moves`.

Consoles: until the console proxy and its token service exist, a console URL
is a placeholder in the proxy's shape (``<base>/vnc_auto.html?path=%3Ftoken%3D<token>``)
whose token nothing checks yet.
"""

from __future__ import annotations

import re
from typing import Any

from nimbus.core.api.compute.server_actions_moves import (
    MOVE_ACTIONS,
    PASSWORD,
    SERVERS,
    Action,
    ActionHandler,
    accepted,
    authorized,
    new_password,
    obj,
    one,
    visible_instance,
)
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route, validate
from nimbus.core.api.http import Response, Route
from nimbus.core.compute import states
from nimbus.core.errors import (
    ApiError,
    DriverNotSupported,
    InstanceInvalidState,
    InvalidInput,
)

_C = "os_compute_api:"
LOCK = _C + "os-lock-server:"
_CONSOLE = _C + "os-remote-consoles"
#: When a crash dump may be asked for (Nova's rule; the lifecycle has no such action).
CRASH_DUMP_RULE = states.ActionRule(frozenset({
    states.ACTIVE, states.PAUSED, states.RESCUED, states.RESIZED, states.ERROR}))
#: When a password may be set (Nova: active and idle).
PASSWORD_RULE = states.ActionRule(frozenset({states.ACTIVE}))


def _plain(method: str, key: str) -> ActionHandler:
    """The handler of an action whose body value Nova does not read."""
    schema = one(key, {})

    async def handler(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
        validate(body, schema)
        await getattr(env.compute, method)(creq.ctx, uuid)
        return accepted()

    handler.__name__ = method
    return handler


_REBOOT = one("reboot", obj({"type": {"type": "string", "enum": [
    "HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}}, ("type",)))


async def reboot(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``reboot`` {"type": SOFT|HARD}."""
    validate(body, _REBOOT)
    await env.compute.reboot(creq.ctx, uuid, hard=body["reboot"]["type"].upper() == "HARD")
    return accepted()


_RESCUE = one("rescue", obj({"adminPass": PASSWORD, "rescue_image_ref": {"type": "string"}},
                            nullable=True))


async def rescue(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``rescue``: 200 with the rescue boot's admin password, as Nova answers."""
    validate(body, _RESCUE)
    args = body["rescue"] or {}
    password = args.get("adminPass") or new_password(env)
    await env.compute.rescue(creq.ctx, uuid, rescue_image_ref=args.get("rescue_image_ref"),
                             admin_password=password)
    return json({"adminPass": password})


_LOCK_V273 = one("lock", obj({"locked_reason": {"type": "string", "minLength": 1,
                                                "maxLength": 255}}, nullable=True))


async def lock(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``lock``, with a ``locked_reason`` from 2.73 (before, Nova reads no body)."""
    reason = None
    if creq.at_least(73):
        validate(body, _LOCK_V273)
        reason = (body["lock"] or {}).get("locked_reason")
    else:
        validate(body, one("lock", {}))
    await env.compute.lock(creq.ctx, uuid, reason)
    return accepted()


async def unlock(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``unlock``; a lock taken from the other side (an admin's, for the owner) needs
    ``unlock:unlock_override`` too (403 otherwise, as Nova)."""
    validate(body, one("unlock", {}))
    inst = await visible_instance(env, creq, uuid)
    side = "owner" if inst.project_id == creq.ctx.project_id else "admin"
    if inst.locked_by and inst.locked_by != side:
        creq.authorize(LOCK + "unlock:unlock_override", inst)
    await env.compute.unlock(creq.ctx, uuid)
    return accepted()


_UNSHELVE_V277 = one("unshelve", obj({"availability_zone": {
    "type": "string", "minLength": 1, "maxLength": 255}}, ("availability_zone",),
    nullable=True))
_UNSHELVE_V291 = one("unshelve", obj({"availability_zone": {"type": ["string", "null"]},
                                      "host": {"type": "string"}}, nullable=True))


async def unshelve(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``unshelve``: null, or an ``availability_zone`` from 2.77 (null unpins from 2.91)."""
    zone = None
    if creq.at_least(77):
        validate(body, _UNSHELVE_V291 if creq.at_least(91) else _UNSHELVE_V277)
        args = body["unshelve"] or {}
        if "host" in args:
            await authorized(env, creq, uuid, _C + "os-shelve:unshelve_to_host")
            raise InvalidInput("Unshelving to a chosen host is not supported by this cloud.")
        zone = args.get("availability_zone")
    else:
        validate(body, one("unshelve", {}))
    await env.compute.unshelve(creq.ctx, uuid, zone)
    return accepted()


async def shelve_offload(env: ComputeEnv, creq: ComputeRequest, uuid: str,
                         body: Any) -> Response:
    """``shelveOffload``: an admin action by Nova's default policy."""
    validate(body, one("shelveOffload", {}))
    await authorized(env, creq, uuid, _C + "os-shelve:shelve_offload")
    await env.compute.shelve_offload(creq.ctx, uuid)
    return accepted()


_RESET_STATE = one("os-resetState", obj({"state": {"type": "string",
                                                   "enum": ["active", "error"]}}, ("state",)))


async def reset_state(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
    """``os-resetState`` (admin): set the vm_state to active or error and clear the task,
    whatever they were (an operator's repair; no lock or state check, as in Nova)."""
    validate(body, _RESET_STATE)
    await authorized(env, creq, uuid, _C + "os-admin-actions:reset_state")
    await env.store.update_instance(uuid, now=env.runtime.wall_time(),
                                    vm_state=body["os-resetState"]["state"], task_state=None)
    await env.compute.record_action(creq.ctx, uuid, "resetState")
    return accepted()


async def _checked(env: ComputeEnv, creq: ComputeRequest, uuid: str, name: str,
                   rule: states.ActionRule) -> str:
    """Lock and state checks of an action the lifecycle has no rule for; the host."""
    inst = await env.compute.get(creq.ctx, uuid)
    env.compute.check_lock(creq.ctx, inst)
    if (inst.vm_state not in rule.vm_states or inst.task_state not in rule.task_states
            or inst.host is None):
        where = (f"task_state {inst.task_state}" if inst.vm_state in rule.vm_states
                 and inst.task_state not in rule.task_states else f"vm_state {inst.vm_state}")
        raise InstanceInvalidState(f"Cannot '{name}' instance {uuid} while it is in {where}")
    return inst.host


_CHANGE_PASSWORD = one("changePassword", obj({"adminPass": PASSWORD}, ("adminPass",)))


async def change_password(env: ComputeEnv, creq: ComputeRequest, uuid: str,
                          body: Any) -> Response:
    """``changePassword``: checked and recorded; no driver sets a guest's password yet,
    so the guest keeps the one it has (the fake driver keeps none)."""
    validate(body, _CHANGE_PASSWORD)
    await _checked(env, creq, uuid, "changePassword", PASSWORD_RULE)
    await env.compute.record_action(creq.ctx, uuid, "changePassword")
    return accepted()


async def trigger_crash_dump(env: ComputeEnv, creq: ComputeRequest, uuid: str,
                             body: Any) -> Response:
    """``trigger_crash_dump`` (2.17): 409, since no driver can inject an NMI yet."""
    validate(body, one("trigger_crash_dump", {"type": "null"}))
    host = await _checked(env, creq, uuid, "trigger_crash_dump", CRASH_DUMP_RULE)
    raise DriverNotSupported(f"Triggering a crash dump is not supported by the hypervisor "
                             f"of host {host}.")


_CONSOLE_OUTPUT = one("os-getConsoleOutput", obj({"length": {
    "type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$", "minimum": -1}}))


async def console_output(env: ComputeEnv, creq: ComputeRequest, uuid: str,
                         body: Any) -> Response:
    """``os-getConsoleOutput``: 200 {"output"}, the last ``length`` lines if given."""
    validate(body, _CONSOLE_OUTPUT)
    length = body["os-getConsoleOutput"].get("length")
    output = await env.compute.get_console_output(
        creq.ctx, uuid, None if length is None else int(length))
    return json({"output": output})


# -- consoles --------------------------------------------------------------------------------
#: Console types by protocol (Nova's remote-consoles pairs) and the URL path of each type.
_PROTOCOL_TYPES = {"vnc": ("novnc", "xvpvnc"), "spice": ("spice-html5", "spice-direct"),
                   "serial": ("serial",), "rdp": ("rdp-html5",), "mks": ("webmks",)}
_URL_SHAPES = {"novnc": "{base}/vnc_auto.html?path=%3Ftoken%3D{token}",
               "xvpvnc": "{base}/console?token={token}",
               "spice-html5": "{base}/spice_auto.html?token={token}",
               "serial": "{ws}/?token={token}"}


async def console_url(env: ComputeEnv, creq: ComputeRequest, uuid: str, kind: str) -> str:
    """The URL of the instance's console of ``kind`` (400 if its host has none)."""
    shape = _URL_SHAPES.get(kind)
    if shape is None:
        raise InvalidInput(f"Unavailable console type {kind}.")
    try:
        await env.compute.get_console(creq.ctx, uuid, kind)
    except DriverNotSupported:
        raise InvalidInput(f"Unavailable console type {kind}.") from None
    ws = creq.base_url.replace("http", "ws", 1)
    return shape.format(base=creq.base_url, ws=ws, token=env.runtime.new_id())


def _legacy_console(key: str, types: tuple[str, ...]) -> ActionHandler:
    schema = one(key, obj({"type": {"type": "string", "enum": list(types)}}, ("type",)))

    async def handler(env: ComputeEnv, creq: ComputeRequest, uuid: str, body: Any) -> Response:
        validate(body, schema)
        kind = body[key]["type"]
        return json({"console": {"type": kind, "url": await console_url(env, creq, uuid, kind)}})

    handler.__name__ = key
    return handler


def _remote_console_schema(creq: ComputeRequest) -> dict[str, Any]:
    protocols, kinds = ["vnc", "spice", "serial", "rdp"], [
        "novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5"]
    if creq.at_least(8):
        protocols, kinds = [*protocols, "mks"], [*kinds, "webmks"]
    if creq.at_least(99):
        kinds.append("spice-direct")
    return obj({"remote_console": obj({"protocol": {"type": "string", "enum": protocols},
                                       "type": {"type": "string", "enum": kinds}},
                                      ("protocol", "type"))}, ("remote_console",))


async def create_remote_console(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /servers/{id}/remote-consoles`` (2.6): 200 {"remote_console"}."""
    uuid = creq.param("server_id")
    creq.authorize(_C + "os-remote-consoles", await visible_instance(env, creq, uuid))
    body = creq.body(_remote_console_schema(creq))["remote_console"]
    protocol, kind = body["protocol"], body["type"]
    if protocol == "rdp":
        raise InvalidInput(f"Unavailable console type {protocol}.")
    if kind not in _PROTOCOL_TYPES[protocol]:
        raise InvalidInput(f"Invalid console type {kind} for protocol {protocol}.")
    url = await console_url(env, creq, uuid, kind)
    return json({"remote_console": {"protocol": protocol, "type": kind, "url": url}})


# -- the table and the dispatch --------------------------------------------------------------
ACTIONS: dict[str, Action] = {
    "reboot": Action(reboot, "reboot", SERVERS + "reboot"),
    "os-stop": Action(_plain("stop", "os-stop"), "stop", SERVERS + "stop"),
    "os-start": Action(_plain("start", "os-start"), "start", SERVERS + "start"),
    "pause": Action(_plain("pause", "pause"), "pause", _C + "os-pause-server:pause"),
    "unpause": Action(_plain("unpause", "unpause"), "unpause",
                      _C + "os-pause-server:unpause"),
    "suspend": Action(_plain("suspend", "suspend"), "suspend",
                      _C + "os-suspend-server:suspend"),
    "resume": Action(_plain("resume", "resume"), "resume", _C + "os-suspend-server:resume"),
    "rescue": Action(rescue, "rescue", _C + "os-rescue"),
    "unrescue": Action(_plain("unrescue", "unrescue"), "unrescue", _C + "os-unrescue"),
    "lock": Action(lock, "lock", LOCK + "lock"),
    "unlock": Action(unlock, "unlock", LOCK + "unlock"),
    "shelve": Action(_plain("shelve", "shelve"), "shelve", _C + "os-shelve:shelve"),
    "shelveOffload": Action(shelve_offload, "shelveOffload", None),
    "unshelve": Action(unshelve, "unshelve", _C + "os-shelve:unshelve"),
    "restore": Action(_plain("restore", "restore"), "restore",
                      _C + "os-deferred-delete:restore"),
    "forceDelete": Action(_plain("force_delete", "forceDelete"), "forceDelete",
                          _C + "os-deferred-delete:force"),
    "os-resetState": Action(reset_state, "os-resetState", None),
    "changePassword": Action(change_password, "changePassword", _C + "os-admin-password"),
    "trigger_crash_dump": Action(trigger_crash_dump, "trigger_crash_dump",
                                 SERVERS + "trigger_crash_dump", min_minor=17),
    "os-getConsoleOutput": Action(console_output, "get_console_output",
                                  _C + "os-console-output"),
    "os-getVNCConsole": Action(_legacy_console("os-getVNCConsole", ("novnc", "xvpvnc")),
                               "get_vnc_console", _CONSOLE, max_minor=5),
    "os-getSPICEConsole": Action(_legacy_console("os-getSPICEConsole", ("spice-html5",)),
                                 "get_spice_console", _CONSOLE, max_minor=5),
    "os-getSerialConsole": Action(_legacy_console("os-getSerialConsole", ("serial",)),
                                  "get_serial_console", _CONSOLE, max_minor=5),
    **MOVE_ACTIONS,
}

_INVALID = re.compile(r"^Cannot '([^']+)' instance (\S+) while it is in vm_state (\S+), "
                      r"task_state (\S+)$")


def nova_conflict(exc: InstanceInvalidState, name: str, uuid: str) -> InstanceInvalidState:
    """The lifecycle's refusal in Nova's words: the API action's name, and the one state
    (vm_state or task_state) that refused it."""
    m = _INVALID.match(exc.message)
    if m is None:  # another refusal (a host down, a race lost): keep it, renamed
        return InstanceInvalidState(re.sub(r"^Cannot '[^']+'", f"Cannot '{name}'", exc.message))
    rule = states.RULES.get(m[1])
    vm, task = m[3], None if m[4] == "None" else m[4]
    if rule is not None and vm in rule.vm_states and task not in rule.task_states:
        where = f"task_state {task}"
    else:
        where = f"vm_state {vm}"
    return InstanceInvalidState(f"Cannot '{name}' instance {uuid} while it is in {where}")


async def server_action(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /servers/{id}/action``: one action key, dispatched to its handler."""
    uuid = creq.param("server_id")
    body = creq.body()
    if not isinstance(body, dict) or not body:
        raise InvalidInput("Malformed request body")
    if len(body) != 1:
        raise InvalidInput("Malformed request body: too many body keys")
    key = next(iter(body))
    action = ACTIONS.get(key)
    if action is None:
        raise InvalidInput(f"There is no such action: {key}")
    if not creq.at_least(action.min_minor) or (
            action.max_minor is not None and creq.at_least(action.max_minor + 1)):
        raise ApiError(404, f"The resource could not be found at microversion "
                            f"{creq.version}.")
    inst = await visible_instance(env, creq, uuid)
    if action.rule is not None:  # the server's project is the target, as in Nova
        creq.authorize(action.rule, inst)
    try:
        return await action.handler(env, creq, uuid, body)
    except InstanceInvalidState as exc:
        raise nova_conflict(exc, action.name, uuid) from None


def routes(env: ComputeEnv) -> list[Route]:
    """The server action and remote console routes."""
    return [*route(env, "POST", "/servers/{server_id}/action", server_action),
            *route(env, "POST", "/servers/{server_id}/remote-consoles", create_remote_console,
                   min_minor=6)]
