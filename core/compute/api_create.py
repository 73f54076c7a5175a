"""What creating servers needs beyond their records: quota checks, networks, security
groups, and undoing a create that failed half-way (used by ``ComputeAPI.create``).

Quota, as Nova counts it since Pike: there is no usage table; usage is counted
from the instance rows. :func:`quota_room` checks before any record is made
(and, as Nova does for ``max_count`` > ``min_count``, lowers the count to what
fits); :func:`recheck_quota` checks again once the records exist, because
concurrent creates may all have passed the first check. A plain recount that
comes out over the limit does not by itself fail a create: only the instances
made *before* this request's last one (by row id) count against it, so of any
number of racing creates the earliest ones keep their servers and exactly the
limit's worth survive, never fewer.

Networks: until the network service exists, an instance that asks for ``auto``
networking gets one fixed IPv4 address from the default network: the first
network with an IPv4 CIDR that is shared (no project) or the caller's, and if
there is none, ``private`` 10.0.0.0/24 is created on first use (with a fixed
uuid, so that two API processes racing to create it make one). Each address
hangs off a virtual interface with a ``fa:16:3e`` MAC. Addresses go back when
the server is deleted through the API (:func:`release_networks`); addresses
still held by instances that are gone (deleted another way) are reclaimed when
a network runs out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nimbus.core.compute.api_base import ApiBase
from nimbus.core.context import RequestContext
from nimbus.core.db.instance_schema import SOFT_DELETED, InstanceRecord
from nimbus.core.db.network import NoMoreAddresses
from nimbus.core.db.network_schema import NetworkRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import (
    ApiError,
    DuplicateError,
    InUse,
    InvalidInput,
    NotFound,
    QuotaExceeded,
)

#: The default network made on first use, and its fixed uuid.
DEFAULT_NETWORK = ("private", "10.0.0.0/24")
DEFAULT_NETWORK_UUID = "6b1c5a4e-0d0c-4c5e-9a1e-64656661756c"
#: The instance resources quotas count, and what one instance of a flavor takes of each.
_COUNTED = (("instances", None), ("cores", "vcpus"), ("ram", "memory_mb"))
#: Tries at drawing a MAC address nobody has.
_MAC_TRIES = 8


def quota_deltas(flavor: Mapping[str, Any], count: int) -> dict[str, int]:
    """What ``count`` instances of ``flavor`` take of each counted quota resource."""
    return {r: count * (1 if col is None else int(flavor[col])) for r, col in _COUNTED}


async def quota_room(api: ApiBase, ctx: RequestContext, flavor: Mapping[str, Any],
                     min_count: int, max_count: int) -> int:
    """How many instances (``min_count`` .. ``max_count``) the caller's project and user
    quotas leave room for; ``QuotaExceeded`` (403) if not even ``min_count``."""
    store = api.store
    try:
        await store.check_quota(ctx.project_id, ctx.user_id, quota_deltas(flavor, max_count))
        return max_count
    except QuotaExceeded:
        if max_count == min_count:
            raise
    room = max_count
    for user in (None, ctx.user_id):
        limits = await store.get_quota_limits(ctx.project_id, user)
        used = await store.count_usage(ctx.project_id, user)
        for resource, per in quota_deltas(flavor, 1).items():
            if limits[resource] >= 0 and per > 0:
                room = min(room, (limits[resource] - used[resource]) // per)
    if room < min_count:  # raises with Nova's numbers for min_count
        await store.check_quota(ctx.project_id, ctx.user_id, quota_deltas(flavor, min_count))
    return max(room, min_count)


async def recheck_quota(api: ApiBase, ctx: RequestContext,
                        created: Sequence[InstanceRecord]) -> None:
    """``QuotaExceeded`` if the instances just made take the project or user over a
    limit, counting only instances made before the last of them (module docstring)."""
    store, last = api.store, max(i.id for i in created)
    mine = {i.uuid for i in created}
    for user in (None, ctx.user_id):
        limits = await store.get_quota_limits(ctx.project_id, user)
        if all(limits[r] < 0 for r, _ in _COUNTED):
            continue  # nothing counted is limited: nothing to count
        used = await store.count_usage(ctx.project_id, user)
        if not any(0 <= limits[r] < used[r] for r, _ in _COUNTED):
            continue
        rows = await store.list_instances(project_id=ctx.project_id, user_id=user,
                                          sort=(("id", "asc"),))
        earlier = [i for i in rows if i.id <= last and i.vm_state != SOFT_DELETED
                   and not i.hidden]
        ours = [i for i in earlier if i.uuid in mine]
        others = [i for i in earlier if i.uuid not in mine]
        for resource, col in _COUNTED:
            def held(insts: Sequence[InstanceRecord], c: str | None = col) -> int:
                return sum(1 if c is None else int(getattr(i, c)) for i in insts)
            limit, before, asked = limits[resource], held(others), held(ours)
            if 0 <= limit < before + asked:
                raise QuotaExceeded([resource], asked, before, limit)


# -- security groups and networks --------------------------------------------------------
async def join_security_groups(api: ApiBase, ctx: RequestContext,
                               created: Sequence[InstanceRecord], names: Sequence[str]) -> None:
    """Put the new instances in the project's security groups ``names`` (``default`` is
    made if missing); 400 for a group the project does not have."""
    store, now = api.store, api.wall()
    groups = []
    for name in dict.fromkeys(names):
        if name == "default":
            groups.append(await store.ensure_default_security_group(
                ctx.project_id, now=now, user_id=ctx.user_id))
            continue
        try:
            groups.append(await store.security_group_by_name(ctx.project_id, name))
        except NotFound:
            raise InvalidInput(f"Security group {name} not found for project "
                               f"{ctx.project_id}.") from None
    for inst in created:
        for group in groups:
            await store.add_instance_to_security_group(inst.uuid, group.id)


async def attach_networks(api: ApiBase, ctx: RequestContext,
                          created: Sequence[InstanceRecord],
                          networks: str | Sequence[Mapping[str, Any]] | None) -> None:
    """Give each new instance an address on each requested network: ``"auto"`` the
    default network, ``None``/``"none"`` nothing, or ``[{"uuid", "fixed_ip"?}, ...]``."""
    if networks is None or networks == "none":
        return
    asked: list[tuple[NetworkRecord, str | None]]
    if isinstance(networks, str):
        if networks != "auto":
            raise InvalidInput(f"Bad networks format: {networks!r}")
        asked = [(await default_network(api, ctx), None)]
    else:
        asked = [(await _requested_network(api, ctx, str(n.get("uuid"))), n.get("fixed_ip"))
                 for n in networks]
    for inst in created:
        for net, address in asked:
            await _plug(api, inst.uuid, net, address)


async def default_network(api: ApiBase, ctx: RequestContext) -> NetworkRecord:
    """The network ``auto`` means for the caller (made on first use; module docstring)."""
    store, now = api.store, api.wall()
    usable = [n for n in await store.list_networks()
              if n.cidr and n.project_id in (None, ctx.project_id)]
    if usable:
        return usable[0]
    label, cidr = DEFAULT_NETWORK
    try:
        net = await store.create_network(uuid=DEFAULT_NETWORK_UUID, label=label, cidr=cidr,
                                         now=now)
    except DuplicateError:  # another API process made it meanwhile
        return await store.get_network_by_uuid(DEFAULT_NETWORK_UUID)
    await store.create_fixed_ips(net.id, now=now)
    return net


async def _requested_network(api: ApiBase, ctx: RequestContext, uuid: str) -> NetworkRecord:
    try:
        net = await api.store.get_network_by_uuid(uuid)
    except NotFound:
        net = None
    if net is None or (net.project_id not in (None, ctx.project_id)
                       and not api.is_admin(ctx)):
        raise InvalidInput(f"Network {uuid} could not be found.")
    return net


async def _plug(api: ApiBase, instance_uuid: str, net: NetworkRecord,
                address: str | None) -> None:
    """One virtual interface on ``net`` and an address for it."""
    store, now, rng = api.store, api.wall(), api.runtime.rng
    vif = None
    for _ in range(_MAC_TRIES):
        mac = "fa:16:3e:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
        try:
            vif = await store.create_virtual_interface(
                uuid=api.runtime.new_id(), address=mac, instance_uuid=instance_uuid,
                network_id=net.id, now=now)
            break
        except DuplicateError:
            continue
    if vif is None:
        raise ApiError(409, "Could not draw a free MAC address; try again")
    for attempt in range(3):
        try:
            await store.allocate_fixed_ip(net.id, instance_uuid, now=now,
                                          virtual_interface_id=vif.id, address=address)
            return
        except InUse as exc:
            raise InvalidInput(f"Fixed IP address {address} is not available: "
                               f"{exc.message}") from None
        except NoMoreAddresses:
            if attempt == 0:
                await _reclaim_addresses(store, net.id, now)
            elif not await store.fixed_ips_for_network(net.id):
                await api.runtime.sleep(0.1)  # its addresses are being made right now
            else:
                break
    raise ApiError(409, f"No fixed IP addresses available for network: {net.uuid}")


async def _reclaim_addresses(store: Store, network_id: int, now: float) -> None:
    """Take back the addresses of a network held by instances that no longer exist."""
    for ip in await store.fixed_ips_for_network(network_id, allocated_only=True):
        assert ip.instance_uuid is not None
        try:
            await store.get_instance(ip.instance_uuid)
        except NotFound:
            try:
                await store.release_fixed_ip(ip.address, now)
            except (NotFound, InUse):
                pass


async def release_networks(store: Store, instance_uuid: str, now: float) -> None:
    """Give back an instance's addresses (its floating IPs are disassociated first, and
    stay with the project, as nova-network does) and interfaces, and take it out of its
    security groups."""
    for floating in await store.floating_ips_for_instance(instance_uuid):
        try:
            await store.disassociate_floating_ip(floating.address, now)
        except NotFound:
            pass
    for ip in await store.fixed_ips_for_instance(instance_uuid):
        try:
            await store.release_fixed_ip(ip.address, now)
        except (NotFound, InUse):
            pass
    await store.delete_virtual_interfaces_for_instance(instance_uuid)
    await store.remove_instance_from_all_security_groups(instance_uuid)


async def undo_create(api: ApiBase, created: Sequence[InstanceRecord]) -> None:
    """Remove what a failed create made: addresses, group memberships, the records
    (deleted, so that they count for no quota and show in no list)."""
    store, now = api.store, api.wall()
    for inst in created:
        await release_networks(store, inst.uuid, now)
        try:
            await store.soft_delete_instance(inst.uuid, now=now)
        except NotFound:
            pass
