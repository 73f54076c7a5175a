"""How the servers API shows a server, per microversion, as Nova's view builder does.

``status`` is Nova's mapping of (vm_state, task_state) to one word
(:data:`STATE_MAP`; a deleted row is ``DELETED``, an unknown state
``UNKNOWN``). The detailed view carries the flavor as id and links before 2.47
and embedded from 2.47, ``locked`` from 2.9, ``host_status`` from 2.16
(``servers:show:host_status``, or its ``unknown-only`` variant for an
``UNKNOWN`` status alone), ``description`` from 2.19, ``tags`` from 2.26,
``trusted_image_certificates`` from 2.63, ``server_groups`` from 2.71 (show
and update, never lists), ``locked_reason`` from 2.73, the hostname for
everyone from 2.90, ``pinned_availability_zone`` from 2.96, image properties
from 2.98 and ``scheduler_hints`` from 2.100. ``OS-EXT-SRV-ATTR:*`` need
``os-extended-server-attributes``, the flavor's extra specs
``servers:show:flavor-extra-specs`` and a 500 fault's details an administrator
(:class:`Shown`). Addresses are hidden while a server builds.

:class:`Lookups` holds what a view needs beyond the instance row (addresses,
security groups, faults, host zones and states), fetched once per request.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, isotime
from nimbus.core.compute import states as s
from nimbus.core.db.faults import FaultRecord
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.db.network_schema import FixedIpRecord, FloatingIpRecord, VirtualInterfaceRecord

DEFAULT_ZONE = "nova"
_RESIZING: dict[str | None, str] = {
    t: "RESIZE" for t in (s.RESIZE_PREP, s.RESIZE_MIGRATING, s.RESIZE_MIGRATED,
                          s.RESIZE_FINISH)}
_REBUILDING: dict[str | None, str] = {
    t: "REBUILD" for t in (s.REBUILDING, s.REBUILD_BLOCK_DEVICE_MAPPING, s.REBUILD_SPAWNING)}
#: vm_state -> task_state -> status; ``"default"`` when the task names no other.
STATE_MAP: dict[str, dict[str | None, str]] = {
    s.ACTIVE: {"default": "ACTIVE", s.REBOOTING: "REBOOT", s.REBOOT_PENDING: "REBOOT",
               s.REBOOT_STARTED: "REBOOT", s.REBOOTING_HARD: "HARD_REBOOT",
               s.REBOOT_PENDING_HARD: "HARD_REBOOT", s.REBOOT_STARTED_HARD: "HARD_REBOOT",
               s.UPDATING_PASSWORD: "PASSWORD", s.MIGRATING: "MIGRATING",
               **_REBUILDING, **_RESIZING},
    s.BUILDING: {"default": "BUILD"},
    s.STOPPED: {"default": "SHUTOFF", **_RESIZING, **_REBUILDING},
    s.RESIZED: {"default": "VERIFY_RESIZE", s.RESIZE_REVERTING: "REVERT_RESIZE"},
    s.PAUSED: {"default": "PAUSED", s.MIGRATING: "MIGRATING"},
    s.SUSPENDED: {"default": "SUSPENDED"},
    s.RESCUED: {"default": "RESCUE"},
    s.ERROR: {"default": "ERROR", **_REBUILDING},
    s.DELETED: {"default": "DELETED"},
    s.SOFT_DELETED: {"default": "SOFT_DELETED"},
    s.SHELVED: {"default": "SHELVED"},
    s.SHELVED_OFFLOADED: {"default": "SHELVED_OFFLOADED"},
}
#: One address of a server: (address, MAC, "fixed" or "floating").
Address = tuple[str, str | None, str]
_PROGRESS = frozenset({"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"})
_FAULTY = frozenset({"ERROR", "DELETED"})


def status_of(inst: InstanceRecord) -> str:
    """The server's status as Nova shows it."""
    if inst.deleted:
        return "DELETED"
    tasks = STATE_MAP.get(inst.vm_state)
    if tasks is None:
        return "UNKNOWN"
    return tasks.get(inst.task_state, tasks["default"])


def states_for(statuses: Iterable[str]) -> tuple[list[str], list[str | None]]:
    """The vm_states and task_states a status filter means (Nova's
    ``task_and_vm_state_from_status``): ``"default"`` among the task states means
    "any task"."""
    wanted = {x.strip().lower() for x in statuses}
    vms: set[str] = set()
    tasks: set[str | None] = set()
    for vm_state, by_task in STATE_MAP.items():
        for task, status in by_task.items():
            if status.lower() in wanted:
                vms.add(vm_state)
                tasks.add(task)
    return sorted(vms), sorted(tasks, key=lambda t: t or "")


def host_id(inst: InstanceRecord) -> str:
    """Nova's ``hostId``: sha224 of project and host, empty without a host."""
    if not inst.host:
        return ""
    return hashlib.sha224((inst.project_id + inst.host).encode()).hexdigest()


def usage_time(when: float | None) -> str | None:
    """``OS-SRV-USG`` times: Nova prints a naive datetime with microseconds."""
    if when is None:
        return None
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def links(creq: ComputeRequest, uuid: str) -> list[dict[str, str]]:
    """A server's self and bookmark links."""
    return [{"rel": "self", "href": creq.link("servers", uuid)},
            {"rel": "bookmark", "href": creq.bookmark("servers", uuid)}]


@dataclass(frozen=True, slots=True)
class Shown:
    """What the policy lets the caller see of a server: decided once per request, with
    the server as the target for one server and the caller's project for a list, as
    Nova does."""

    extended: bool = False
    #: "all", "unknown-only" (an UNKNOWN status alone) or "" (none)
    host_status: str = ""
    extra_specs: bool = False
    fault_details: bool = False

    @classmethod
    def of(cls, creq: ComputeRequest, owner: InstanceRecord | None = None) -> Shown:
        """The caller's view of ``owner``'s servers (by default, of its own project's)."""
        rule = "os_compute_api:servers:show:"
        host_status = ("all" if creq.allows(rule + "host_status", owner) else
                       "unknown-only" if creq.allows(rule + "host_status:unknown-only", owner)
                       else "")
        return cls(creq.allows("os_compute_api:os-extended-server-attributes", owner),
                   host_status, creq.allows(rule + "flavor-extra-specs", owner),
                   creq.allows("context_is_admin"))


@dataclass
class Lookups:
    """What views need beyond instance rows, read for a set of instances at once."""

    #: uuid -> network label -> [(address, mac, "fixed"|"floating")]
    addresses: dict[str, dict[str, list[Address]]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    faults: dict[str, FaultRecord] = field(default_factory=dict)
    zones: dict[str, str] = field(default_factory=dict)
    host_status: dict[str, str] = field(default_factory=dict)
    server_groups: dict[str, list[str]] = field(default_factory=dict)
    shown: Shown = field(default_factory=Shown)

    @classmethod
    async def load(cls, env: ComputeEnv, creq: ComputeRequest,
                   insts: Sequence[InstanceRecord], *, detail: bool = True,
                   server_groups: bool = False, owner: InstanceRecord | None = None
                   ) -> Lookups:
        """Read what views of ``insts`` need (less for brief views); ``owner`` is the
        policy target (one server shown), None for a list."""
        out = cls(shown=Shown.of(creq, owner))
        store = env.store
        labels: dict[int, str] = {}
        uuids = [i.uuid for i in insts]
        # one query per kind for the whole page, not one per server
        fixed = await store.fixed_ips_for_instances(uuids)
        vifs = await store.virtual_interfaces_for_instances(uuids)
        floating = await store.floating_ips_for_instances(uuids)
        sec = await store.security_groups_for_instances(uuids) if detail else {}
        for inst in insts:
            out.addresses[inst.uuid] = await _addresses(
                env, fixed.get(inst.uuid, []), vifs.get(inst.uuid, []),
                floating.get(inst.uuid, []), labels)
            if not detail:
                continue
            out.groups[inst.uuid] = [g.name for g in sec.get(inst.uuid, [])]
            if server_groups:
                group = await store.group_for_instance(inst.uuid)
                out.server_groups[inst.uuid] = [] if group is None else [group.uuid]
            if inst.host and inst.host not in out.zones:
                out.zones[inst.host] = (await store.availability_zone_of_host(inst.host)
                                        or DEFAULT_ZONE)
                if out.shown.host_status:
                    out.host_status[inst.host] = await _host_status(env, inst.host)
        if detail:
            faulty = [i.uuid for i in insts if status_of(i) in _FAULTY]
            out.faults = await store.latest_faults(faulty) if faulty else {}
        return out


async def addresses_of(env: ComputeEnv, uuid: str, labels: dict[int, str] | None = None
                       ) -> dict[str, list[Address]]:
    """An instance's addresses by network label: each fixed one with its MAC, followed
    by the floating ones pointing at it (as nova-network lists them)."""
    store = env.store
    ips = await store.fixed_ips_for_instance(uuid)
    if not ips:
        return {}
    return await _addresses(env, ips, await store.virtual_interfaces_for_instance(uuid),
                            await store.floating_ips_for_instance(uuid), labels)


async def _addresses(env: ComputeEnv, ips: Sequence[FixedIpRecord],
                     vifs: Sequence[VirtualInterfaceRecord],
                     floatings: Sequence[FloatingIpRecord],
                     labels: dict[int, str] | None) -> dict[str, list[Address]]:
    """Addresses by network label from an instance's fixed IPs, interfaces and floating IPs."""
    if not ips:
        return {}
    store, labels = env.store, {} if labels is None else labels
    macs = {v.id: v.address for v in vifs}
    floating: dict[str, list[str]] = {}
    for fl in floatings:
        floating.setdefault(fl.fixed_address or "", []).append(fl.address)
    out: dict[str, list[Address]] = {}
    for ip in ips:
        if ip.network_id not in labels:
            net = await store.get_network(ip.network_id)
            labels[ip.network_id] = net.label or net.uuid
        mac = macs.get(ip.virtual_interface_id) if ip.virtual_interface_id else None
        rows = out.setdefault(labels[ip.network_id], [])
        rows.append((ip.address, mac, "fixed"))
        rows.extend((f, mac, "floating") for f in floating.get(ip.address, []))
    return out


def address_view(addrs: Mapping[str, list[Address]], *,
                 extended: bool) -> dict[str, list[dict[str, Any]]]:
    """Addresses as Nova shows them (``OS-EXT-IPS*`` keys only when ``extended``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for label, pairs in addrs.items():
        rows = []
        for addr, mac, kind in pairs:
            row: dict[str, Any] = {"version": 6 if ":" in addr else 4, "addr": addr}
            if extended:
                row["OS-EXT-IPS:type"] = kind
                row["OS-EXT-IPS-MAC:mac_addr"] = mac
            rows.append(row)
        out[label] = rows
    return out


async def _host_status(env: ComputeEnv, host: str) -> str:
    """UP, DOWN (forced down), MAINTENANCE (disabled) or UNKNOWN (not heard from)."""
    compute = env.compute
    svc = await env.store.service_by_host_binary(host, compute.compute_binary)
    if svc is None:
        return ""
    if svc.forced_down:
        return "DOWN"
    if svc.disabled:
        return "MAINTENANCE"
    return "UP" if svc.is_up(compute.wall(), compute.service_down_time) else "UNKNOWN"


def brief(creq: ComputeRequest, inst: InstanceRecord) -> dict[str, Any]:
    """A server in ``GET /servers``: id, name and links."""
    return {"id": inst.uuid, "name": inst.display_name, "links": links(creq, inst.uuid)}


def _flavor(creq: ComputeRequest, inst: InstanceRecord, extra_specs: bool) -> dict[str, Any]:
    fl = inst.flavor
    if not creq.at_least(47):
        fid = str(fl.get("flavorid", inst.flavor_id))
        return {"id": fid, "links": [{"rel": "bookmark", "href": creq.bookmark("flavors", fid)}]}
    out = {"vcpus": inst.vcpus, "ram": inst.memory_mb, "disk": inst.root_gb,
           "ephemeral": inst.ephemeral_gb, "swap": int(fl.get("swap") or 0),
           "original_name": fl.get("name", "")}
    if extra_specs:
        out["extra_specs"] = dict(fl.get("extra_specs") or {})
    return out


def _image(creq: ComputeRequest, inst: InstanceRecord) -> dict[str, Any] | str:
    if not inst.image_ref:
        return ""
    image_id = inst.image_ref.rstrip("/").rsplit("/", 1)[-1]
    out: dict[str, Any] = {"id": image_id, "links": [
        {"rel": "bookmark", "href": creq.bookmark("images", image_id)}]}
    if creq.at_least(98):
        out["properties"] = {k[len("image_"):]: v for k, v in inst.system_metadata.items()
                             if k.startswith("image_") and v is not None}
    return out


def _fault(fault: FaultRecord, details: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"code": fault.code, "created": isotime(fault.created_at),
                           "message": fault.message}
    if fault.details and (details or fault.code != 500):
        out["details"] = fault.details
    return out


def detail(creq: ComputeRequest, inst: InstanceRecord, found: Lookups, *,
           full: bool = True, server_groups: bool = False) -> dict[str, Any]:
    """A server in ``GET /servers/{id}`` and ``/servers/detail``; ``full`` False gives
    the smaller view ``PUT /servers/{id}`` answered with before 2.75."""
    shown, status = found.shown, status_of(inst)
    view: dict[str, Any] = {
        "accessIPv4": inst.access_ip_v4 or "", "accessIPv6": inst.access_ip_v6 or "",
        "addresses": {} if inst.vm_state == s.BUILDING else address_view(
            found.addresses.get(inst.uuid, {}), extended=full),
        "created": isotime(inst.created_at), "flavor": _flavor(creq, inst, shown.extra_specs),
        "hostId": host_id(inst), "id": inst.uuid, "image": _image(creq, inst),
        "links": links(creq, inst.uuid), "metadata": dict(inst.metadata),
        "name": inst.display_name, "status": status, "tenant_id": inst.project_id,
        "user_id": inst.user_id, "updated": isotime(inst.updated_at),
        "OS-DCF:diskConfig": "AUTO" if inst.auto_disk_config else "MANUAL",
    }
    fault = found.faults.get(inst.uuid)
    if status in _FAULTY and fault is not None:
        view["fault"] = _fault(fault, shown.fault_details)
    if status in _PROGRESS:
        view["progress"] = inst.progress
    if full:
        zone = found.zones.get(inst.host or "", "") if inst.host else (
            inst.availability_zone or "")
        view.update({
            "OS-EXT-AZ:availability_zone": zone, "config_drive": "True" if inst.config_drive
            else "", "key_name": inst.key_name,
            "OS-SRV-USG:launched_at": usage_time(inst.launched_at),
            "OS-SRV-USG:terminated_at": usage_time(inst.terminated_at),
            "OS-EXT-STS:task_state": inst.task_state, "OS-EXT-STS:vm_state": inst.vm_state,
            "OS-EXT-STS:power_state": inst.power_state,
            "os-extended-volumes:volumes_attached": [],
            "security_groups": [{"name": n} for n in found.groups.get(inst.uuid, [])],
        })
        if not view["security_groups"]:
            del view["security_groups"]
        if shown.extended:
            view.update(_extended_attributes(creq, inst))
    if creq.at_least(9):
        view["locked"] = inst.locked
    if creq.at_least(16) and full and shown.host_status:
        host_status = found.host_status.get(inst.host, "") if inst.host else ""
        if shown.host_status == "all" or host_status == "UNKNOWN":
            view["host_status"] = host_status
    if creq.at_least(19):
        view["description"] = inst.display_description
    if creq.at_least(26):
        view["tags"] = list(inst.system_metadata.get("tags") or [])
    if creq.at_least(63):
        view["trusted_image_certificates"] = inst.system_metadata.get(
            "trusted_image_certificates")
    if server_groups and creq.at_least(71):
        view["server_groups"] = found.server_groups.get(inst.uuid, [])
    if creq.at_least(73):
        view["locked_reason"] = inst.system_metadata.get("locked_reason")
    if creq.at_least(90) and not (full and shown.extended):
        view["OS-EXT-SRV-ATTR:hostname"] = inst.hostname
    if creq.at_least(96) and full:
        view["pinned_availability_zone"] = inst.availability_zone
    if creq.at_least(100):
        view["scheduler_hints"] = dict(inst.system_metadata.get("scheduler_hints") or {})
    return view


def _extended_attributes(creq: ComputeRequest, inst: InstanceRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"OS-EXT-SRV-ATTR:host": inst.host,
                           "OS-EXT-SRV-ATTR:instance_name": inst.name,
                           "OS-EXT-SRV-ATTR:hypervisor_hostname": inst.node}
    if creq.at_least(3):
        out.update({
            "OS-EXT-SRV-ATTR:hostname": inst.hostname,
            "OS-EXT-SRV-ATTR:kernel_id": inst.kernel_id or "",
            "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
            "OS-EXT-SRV-ATTR:ramdisk_id": inst.ramdisk_id or "",
            "OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
            "OS-EXT-SRV-ATTR:root_device_name": inst.root_device_name,
            "OS-EXT-SRV-ATTR:user_data": inst.user_data})
    return out
