"""One capacity simulation: a scenario's fleet and workload through the real control plane.

:class:`SimRun` builds the cloud of a :class:`~nimbus.sim.scenario.Scenario` on a
:class:`SimRuntime` (virtual time, one seed), the sim transport and a Store on
the in-memory :class:`SimDatabase`: a conductor, the scheduler and one compute
service on a fake hypervisor per host, each host sized by its class. The
operator's setup goes through the Compute API as an admin would send it
(flavors, quotas, availability zones and aggregates); each arrival of the
workload is a simulated user who sends ``POST /servers`` through the same
routes, token check, policy, validation and quota as ``nimbus serve`` (without
sockets: the :class:`~nimbus.core.api.dispatch.Dispatcher`), keeps the server
for its lifetime, perhaps resizes, migrates, stops and starts or reboots it,
then deletes it.

What the run measures comes from where an operator would look: the API's
answers (refusals), the instances' records (time to ACTIVE from ``created_at`` to
``launched_at``; ERROR and the fault message), placement (utilization and
stranded capacity, sampled every ``sample_interval``), the scheduler's counters
and the transport's queues. The invariant checker runs at the end (and every
``check_interval`` if set). Faults (:mod:`nimbus.sim.faults`) crash hosts,
racks and zones, lose or delay messages, slow the database and make the driver
fail.

The workload draws from its own ``random.Random(seed)``, apart from the
runtime's, so two scheduler configurations compared on one seed see exactly the
same arrivals (``--compare``).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nimbus.backends import fake
from nimbus.core.api.compute.routes import compute_routes
from nimbus.core.api.compute.wire import ComputeEnv
from nimbus.core.api.dispatch import Dispatcher
from nimbus.core.api.http import ApiContext
from nimbus.core.compute import states
from nimbus.core.compute.api import ComputeAPI
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.compute.manager import ComputeService
from nimbus.core.conductor.config import ConductorConfig
from nimbus.core.context import ADMIN, MEMBER, READER, RequestContext
from nimbus.core.db.store import Store
from nimbus.core.errors import ApiError
from nimbus.core.metrics import Metrics
from nimbus.core.runtime import Future
from nimbus.core.scheduler.config import SchedulerConfig
from nimbus.core.scheduler.service import SchedulerServiceConfig
from nimbus.core.service import ServiceContext
from nimbus.sim import faults as fault_plan
from nimbus.sim.cloud import Cloud, HostSetup, start_cloud
from nimbus.sim.db import SimDatabase
from nimbus.sim.invariants import check as check_invariants
from nimbus.sim.outcome import Outcome, Sample, Violation
from nimbus.sim.report import STANDARD as CLASSES
from nimbus.sim.report import classify_failure, percentiles
from nimbus.sim.runtime import SimRuntime
from nimbus.sim.scenario import HostClass, Scenario, host_names, rack_of, zone_of
from nimbus.sim.transport import SimTransport, constant_latency, lognormal_latency
from nimbus.sim.workload import Arrival, adhoc_flavor, arrivals

log = logging.getLogger(__name__)

#: The microversion the simulated users and operator speak.
VERSION = "2.79"
#: The image every server boots (public, active; the image API is not simulated).
IMAGE_ID = "5a3b0e2e-0000-4000-8000-00000000a001"
ADMIN_TOKEN = "sim-admin"
#: Seconds a user waits for a resize or migration to be ready before giving up.
ACTION_TIMEOUT = 3600.0
#: Seconds the run waits at the end for instances still busy to settle.
SETTLE_LIMIT = 600.0


@dataclass(slots=True)
class HostInfo:
    """A host of the fleet and where it stands."""

    name: str
    cls: HostClass
    rack: str
    zone: str
    up: bool = True


@dataclass(slots=True)
class Tracked:
    """What the run knows of one server it created."""

    flavor: str
    vm_state: str = states.BUILDING
    task_state: str | None = states.SCHEDULING
    deleted: bool = False
    active_seen: bool = False
    failed: bool = False


@dataclass(slots=True)
class Tally:
    """Counters filled while the run goes."""

    arrivals: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    actions: dict[str, Counter[str]] = field(default_factory=dict)
    to_active: list[float] = field(default_factory=list)
    host_failures: int = 0
    host_recoveries: int = 0

    def action(self, name: str, result: str) -> None:
        self.actions.setdefault(name, Counter())[result] += 1


def _refusal(status: int, body: Any) -> str:
    """A short, stable reason for an API refusal."""
    message = ""
    if isinstance(body, dict) and body:
        inner = next(iter(body.values()))
        if isinstance(inner, dict):
            message = str(inner.get("message", ""))
    m = re.match(r"Quota exceeded for ([\w,]+)", message)
    if m:
        return f"quota:{m.group(1)}"
    if message.startswith("Quota exceeded"):
        return "quota:" + message.removeprefix("Quota exceeded, too many ").rstrip(".")
    if status == 403 and message.startswith("Policy doesn't allow"):
        return "policy"
    words = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", message).split()[:8]
    return f"http{status}" + (":" + " ".join(words) if words else "")


class SimRun:
    """A scenario's run; :meth:`run` returns its :class:`Outcome`."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None,
                 progress: Callable[[float, int], None] | None = None) -> None:
        self.scenario = s = scenario
        self.seed = scenario.seed if seed is None else seed
        self.rt = SimRuntime(self.seed)
        self.workload_rng = random.Random(self.seed)
        self.progress = progress
        self.metrics = Metrics()
        if s.transport.latency == "lognormal":
            latency = lognormal_latency(self.rt, s.transport.seconds, s.transport.sigma)
        else:
            latency = constant_latency(s.transport.seconds)
        self.transport = SimTransport(self.rt, latency=latency, metrics=self.metrics)
        self.db = SimDatabase(self.rt)
        self.store = Store(self.db)
        self.hosts: dict[str, HostInfo] = {}
        for h in s.hosts:
            for n, name in enumerate(host_names(h)):
                self.hosts[name] = HostInfo(name, h, rack_of(h, n), zone_of(h, n))
        self.flavors = {f.name: f for f in s.flavors}
        #: flavors created so far (the scenario's, then a trace's ad-hoc ones)
        self.flavor_names: set[str] = set()
        self.tally = Tally()
        self.tracked: dict[str, Tracked] = {}
        self.samples: list[Sample] = []
        self.violations: list[Violation] = []
        self.node_host: dict[str, str] = {}
        self.peak_used = 0
        #: the largest VCPU + MEMORY_MB use (fractions of capacity) sampled, and the
        #: flavors of the servers alive then (what "hosts needed" packs)
        self.peak_load = 0.0
        self.peak_flavors: list[str] = []
        self.lifecycles_left = 0
        self.finished = False
        self.cloud: Cloud | None = None
        self.dispatcher: Dispatcher | None = None
        self.tokens: dict[str, RequestContext] = {
            ADMIN_TOKEN: RequestContext("admin", "admin", "", (ADMIN, MEMBER, READER))}
        for p in s.projects:
            self.tokens[f"sim-{p.name}"] = RequestContext(f"{p.name}-user", p.name, "",
                                                          (MEMBER, READER))
        self._groups: dict[int, str | None] = {}
        self._group_members: Counter[int] = Counter()
        self._group_refusals: dict[int, str] = {}
        self._serial = 0
        #: wall times of the last two looks at changed instances
        self._looked = (0.0, 0.0)
        #: servers being built or deleted, which the watcher looks at until they are done
        self._pending: set[str] = set()
        self._wake: Future[None] | None = None
        self._sampled = (0.0, 0.0)

    # -- the run ----------------------------------------------------------------------
    def run(self) -> Outcome:
        """Run the scenario to its end; the outcome."""
        return self.rt.run(self._main())

    async def _main(self) -> Outcome:
        s = self.scenario
        await self._start()
        rt = self.rt
        start = rt.now()
        watcher = rt.spawn(self._watch(), name="sim-watch")
        sampler = rt.spawn(self._sample_loop(), name="sim-sample")
        checker = rt.spawn(self._check_loop(), name="sim-check") if s.check_interval else None
        fault_tasks = fault_plan.schedule(self, start)
        feeder = rt.spawn(self._feed(start), name="sim-feed")
        await feeder.join()
        while self.lifecycles_left and not self._past_horizon(start):
            await rt.sleep(s.compute.poll_interval)
        await self._settle(start)
        self.finished = True
        for task in (watcher, sampler, checker, *fault_tasks):
            if task is not None:
                task.cancel()
        await self._poll_states()
        await self._sample(final=True)
        self.violations.extend(await self._check())
        outcome = self._outcome(rt.now() - start)
        await self._stop()
        return outcome

    def _past_horizon(self, start: float) -> bool:
        return bool(self.scenario.horizon) and self.rt.now() - start >= self.scenario.horizon

    async def _settle(self, start: float) -> None:
        """Wait (up to :data:`SETTLE_LIMIT`) for every live instance to leave its task."""
        deadline = self.rt.now() + SETTLE_LIMIT
        while self.rt.now() < deadline and not self._past_horizon(start):
            await self._poll_states()
            if not any(_busy(t) for t in self.tracked.values() if not t.deleted):
                return
            await self.rt.sleep(self.scenario.compute.poll_interval)

    async def _start(self) -> None:
        s, rt = self.scenario, self.rt
        setups = {}
        for name, info in self.hosts.items():
            h = info.cls
            driver = {"vcpus": h.vcpus, "memory_mb": h.memory_mb, "local_gb": h.disk_gb,
                      "timings": dict(s.driver.timings),
                      "default_timing": s.driver.default_timing,
                      "failure_rates": dict(s.driver.failure_rates)}
            setups[name] = HostSetup(driver, self._compute_config(h))
        filters = SchedulerConfig(**s.scheduler.settings())
        self.cloud = cloud = await start_cloud(
            rt, self.transport, self.store, hosts=list(self.hosts), metrics=self.metrics,
            conductor_config=ConductorConfig(service_down_time=s.compute.service_down_time),
            scheduler_config=SchedulerServiceConfig(), filters=filters, setups=setups)
        for name, svc in cloud.computes.items():
            self.node_host[svc.node_uuid] = name
        api = ComputeAPI(self.store, cloud.client, rt,
                         service_down_time=s.compute.service_down_time)
        env = ComputeEnv(self.store, api, rt, self._authenticate, base_url="http://sim")
        ctx = ApiContext(rt, self.metrics, "http://sim", cloud.client, store=self.store)
        self.dispatcher = Dispatcher(ctx, compute_routes(env))
        await self._operator_setup()

    def _compute_config(self, h: HostClass) -> ComputeConfig:
        c = self.scenario.compute
        return ComputeConfig(
            report_interval=c.report_interval,
            update_resources_interval=c.update_resources_interval,
            sync_power_state_interval=c.sync_power_state_interval,
            periodic_interval=c.periodic_interval,
            usage_report_delay=c.usage_report_delay,
            cpu_allocation_ratio=h.cpu_allocation_ratio,
            ram_allocation_ratio=h.ram_allocation_ratio,
            disk_allocation_ratio=h.disk_allocation_ratio,
            reserved_host_memory_mb=h.reserved_host_memory_mb)

    async def _operator_setup(self) -> None:
        """What an operator does before users come: the image, flavors, quotas, zones
        and aggregates (through the Compute API, as an admin)."""
        s = self.scenario
        await self.store.create_image(id=IMAGE_ID, owner=None, now=self.rt.wall_time(),
                                      name="sim-image", visibility="public", status="active",
                                      disk_format="raw", container_format="bare")
        for f in s.flavors:
            await self._create_flavor(f.name, f.vcpus, f.memory_mb, f.disk_gb, f.extra_specs)
        for p in s.projects:
            limits = {k: getattr(p, k) for k in ("instances", "cores", "ram", "server_groups",
                                                 "server_group_members")}
            await self._admin("PUT", f"/os-quota-sets/{p.name}", {"quota_set": limits})
        zones: dict[str, list[str]] = {}
        aggregates: dict[str, list[str]] = {}
        for name, info in self.hosts.items():
            if info.cls.availability_zones:
                zones.setdefault(info.zone, []).append(name)
            for agg in info.cls.aggregates:
                aggregates.setdefault(agg, []).append(name)
        for zone, members in sorted(zones.items()):
            await self._aggregate(f"az-{zone}", members, zone)
        for agg, members in sorted(aggregates.items()):
            await self._aggregate(agg, members, None)
        assert self.cloud is not None
        await self.cloud.scheduler.refresh()

    async def _create_flavor(self, name: str, vcpus: int, memory_mb: int, disk_gb: int,
                             extra_specs: Mapping[str, str]) -> None:
        await self._admin("POST", "/flavors", {"flavor": {
            "name": name, "id": name, "vcpus": vcpus, "ram": memory_mb, "disk": disk_gb}})
        if extra_specs:
            await self._admin("POST", f"/flavors/{name}/os-extra_specs",
                              {"extra_specs": dict(extra_specs)})
        self.flavor_names.add(name)

    async def _aggregate(self, name: str, members: list[str], zone: str | None) -> None:
        body: dict[str, Any] = {"name": name}
        if zone is not None:
            body["availability_zone"] = zone
        answer = await self._admin("POST", "/os-aggregates", {"aggregate": body})
        agg_id = answer["aggregate"]["id"]
        for host in members:
            await self._admin("POST", f"/os-aggregates/{agg_id}/action",
                              {"add_host": {"host": host}})

    async def _stop(self) -> None:
        if self.cloud is not None:
            for name, info in self.hosts.items():
                if not info.up:  # a crashed host's service is already stopped
                    self.cloud.computes.pop(name, None)
            await self.cloud.stop()
        await self.store.close()

    # -- the API ------------------------------------------------------------------------
    async def _authenticate(self, token: str, request_id: str) -> RequestContext:
        ctx = self.tokens.get(token)
        if ctx is None:
            raise ApiError(401, "The request you have made requires authentication.")
        return ctx.with_request(request_id)

    async def call(self, token: str, method: str, path: str,
                   body: Any = None) -> tuple[int, Any]:
        """One Compute API request as a client sends it; the status and decoded body."""
        assert self.dispatcher is not None
        resp = await self.dispatcher.call(
            method, f"/v2.1{path}", body=body,
            headers={"x-auth-token": token, "openstack-api-version": f"compute {VERSION}"})
        return resp.status, resp.body

    async def _admin(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(ADMIN_TOKEN, method, path, body)
        if status >= 400:
            raise ApiError(status, f"operator setup {method} {path} refused: {answer}")
        return answer

    # -- the workload -------------------------------------------------------------------
    async def _feed(self, start: float) -> None:
        """Start each arrival's user at its time."""
        s, rt = self.scenario, self.rt
        base = Path(s.path).parent if s.path else None
        for a in arrivals(s, self.workload_rng, base):
            if s.horizon and a.t >= s.horizon:
                break
            wait = start + a.t - rt.now()
            if wait > 0:
                await rt.sleep(wait)
            if self.progress is not None:
                self.progress(rt.now() - start, self.rt.events_processed())
            await self._ensure_flavor(a.flavor)
            if a.resize_to is not None:
                await self._ensure_flavor(a.resize_to)
            group = await self._group_for(a) if a.group is not None else None
            self.tally.arrivals += 1
            self.lifecycles_left += 1
            rt.spawn(self._lifecycle(a, group), name="sim-user")

    async def _ensure_flavor(self, name: str) -> None:
        if name in self.flavor_names:
            return
        vcpus, memory_mb = adhoc_flavor(name)
        await self._create_flavor(name, vcpus, memory_mb, 0, {})

    async def _group_for(self, a: Arrival) -> str | None:
        """The server group of ``a``'s group id, made by its first member."""
        assert a.group is not None
        self._group_members[a.group] += 1
        if a.group in self._groups:
            return self._groups[a.group]
        status, answer = await self.call(
            f"sim-{a.project}", "POST", "/os-server-groups",
            {"server_group": {"name": f"group-{a.group}",
                              "policy": a.group_policy or "anti-affinity"}})
        # a group refused (its quota) refuses its members: each counts once, for its reason
        uuid = answer["server_group"]["id"] if status == 200 else None
        if uuid is None:
            self._group_refusals[a.group] = _refusal(status, answer)
        self._groups[a.group] = uuid
        return uuid

    async def _lifecycle(self, a: Arrival, group: str | None) -> None:
        try:
            await self._live(a, group)
        finally:
            self.lifecycles_left -= 1
            if a.group is not None and not self.finished:
                await self._leave_group(a)

    async def _live(self, a: Arrival, group: str | None) -> None:
        rt, token = self.rt, f"sim-{a.project}"
        self._serial += 1
        server: dict[str, Any] = {"name": f"sim-{self._serial}", "imageRef": IMAGE_ID,
                                  "flavorRef": a.flavor, "networks": "none"}
        body: dict[str, Any] = {"server": server}
        if a.group is not None:
            if group is None:
                self.tally.refused[self._group_refusals.get(a.group, "group")] += 1
                return
            body["os:scheduler_hints"] = {"group": group}
        status, answer = await self.call(token, "POST", "/servers", body)
        if status != 202:
            self.tally.refused[_refusal(status, answer)] += 1
            return
        uuid = answer["server"]["id"]
        self.tally.accepted += 1
        self.tracked[uuid] = Tracked(a.flavor)
        self._watching(uuid)
        if a.lifetime is None:
            return
        if a.action is not None:
            await rt.sleep(a.lifetime * a.action_at)
            began = rt.now()
            await self._act(uuid, a)
            await rt.sleep(max(0.0, a.lifetime * (1.0 - a.action_at) - (rt.now() - began)))
        else:
            await rt.sleep(a.lifetime)
        self._watching(uuid)
        status, answer = await self.call(token, "DELETE", f"/servers/{uuid}")
        if status not in (204, 404):
            self.tally.action("delete", _refusal(status, answer))

    async def _leave_group(self, a: Arrival) -> None:
        assert a.group is not None
        self._group_members[a.group] -= 1
        uuid = self._groups.get(a.group)
        if self._group_members[a.group] == 0 and uuid is not None:
            await self.call(f"sim-{a.project}", "DELETE", f"/os-server-groups/{uuid}")

    async def _act(self, uuid: str, a: Arrival) -> None:
        """The arrival's one action on its ACTIVE server (others: ``skipped``)."""
        name, token = a.action or "", f"sim-{a.project}"
        t = self.tracked[uuid]
        if t.vm_state != states.ACTIVE or t.task_state is not None:
            self.tally.action(name, "skipped")
            return
        if name == "stop_start":
            ok = await self._do(name, token, uuid, {"os-stop": None}, states.STOPPED)
            if ok:
                ok = await self._do(name, token, uuid, {"os-start": None}, states.ACTIVE)
        elif name == "reboot":
            ok = await self._do(name, token, uuid, {"reboot": {"type": "SOFT"}}, states.ACTIVE)
        else:
            action: dict[str, Any] = {"migrate": None}
            if name == "resize":
                action = {"resize": {"flavorRef": a.resize_to}}
            # users resize; cold migration is the operator's (admin-only by policy)
            mover = ADMIN_TOKEN if name == "migrate" else token
            ok = await self._do(name, mover, uuid, action, states.RESIZED)
            if ok:
                await self.rt.sleep(self.scenario.compute.confirm_after)
                ok = await self._do(name, token, uuid, {"confirmResize": None}, states.ACTIVE)
        if ok:
            self.tally.action(name, "ok")

    async def _do(self, name: str, token: str, uuid: str, body: Any, until: str) -> bool:
        """Send one action and wait until the server is ``until`` with no task; False
        (counted by outcome) if it was refused or ended elsewhere."""
        status, answer = await self.call(token, "POST", f"/servers/{uuid}/action", body)
        if status >= 400:
            self.tally.action(name, _refusal(status, answer))
            return False
        deadline = self.rt.now() + ACTION_TIMEOUT
        poll = self.scenario.compute.poll_interval
        while self.rt.now() < deadline:
            await self.rt.sleep(poll)
            status, answer = await self.call(token, "GET", f"/servers/{uuid}")
            if status != 200:
                self.tally.action(name, f"gone{status}")
                return False
            server = answer["server"]
            vm_state = server.get("OS-EXT-STS:vm_state")
            if vm_state == states.ERROR:
                self.tally.action(name, "error")
                return False
            if server.get("OS-EXT-STS:task_state") is None:
                # the API set a task before it answered: no task means the action ended,
                # where it wanted or back where it started (no host for a move)
                if vm_state == until:
                    return True
                self.tally.action(name, f"ended-{vm_state}")
                return False
        self.tally.action(name, "timeout")
        return False

    # -- watching -----------------------------------------------------------------------
    async def _watch(self) -> None:
        """Look at changed instances every poll period while a boot or a delete is under
        way; between them (a long quiet stretch of a trace) wait for the next one."""
        while True:
            if not self._pending:
                self._wake = self.rt.future()
                await self._wake
                self._wake = None
            await self.rt.sleep(self.scenario.compute.poll_interval)
            await self._poll_states()

    def _watching(self, uuid: str) -> None:
        """``uuid`` is being built or deleted: the watcher looks until it is done."""
        self._pending.add(uuid)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _poll_states(self, since: float | None = None) -> None:
        """Read the instances changed since the look before last, as a client watching
        its servers does (``changes-since``); note ACTIVE times and failures.

        A service stamps ``updated_at`` before its write crosses the transport to the
        database, so a window starting at the last look could miss a write that landed
        late: each look reaches back to the one before (a poll period of overlap), and
        each sample once more back to the sample before last (late writes under faults).
        """
        now = self.rt.wall_time()
        if since is None:
            since = self._looked[0]
            self._looked = (self._looked[1], now)
        changed = await self.store.instance_states_since(since - 1e-6)
        failed: list[str] = []
        for inst in changed:
            t = self.tracked.get(inst.uuid)
            if t is None:
                continue
            t.vm_state, t.task_state = inst.vm_state, inst.task_state
            t.deleted = inst.deleted or inst.vm_state == states.DELETED
            if t.deleted or not _busy(t):
                self._pending.discard(inst.uuid)
            if (not t.active_seen and inst.launched_at is not None
                    and inst.created_at is not None):
                t.active_seen = True
                self.tally.to_active.append(inst.launched_at - inst.created_at)
            if inst.vm_state == states.ERROR and not t.failed:
                t.failed = True
                failed.append(inst.uuid)
        if failed:
            faults = await self.store.latest_faults(failed)
            for uuid in failed:
                fault = faults.get(uuid)
                self.tally.failed[classify_failure(fault.message if fault else "")] += 1

    # -- sampling -----------------------------------------------------------------------
    async def _sample_loop(self) -> None:
        while True:
            await self._sample()
            await self.rt.sleep(self.scenario.sample_interval)

    async def _sample(self, *, final: bool = False) -> None:
        """Utilization, stranded capacity, hosts and queues now (placement's view)."""
        if final and self.samples and self.samples[-1].t == self.rt.now():
            return
        await self._poll_states(since=self._sampled[0])
        self._sampled = (self._sampled[1], self.rt.wall_time())
        snapshot = await self.store.provider_snapshot()
        mix = [self.flavors[n] for n in (self.scenario.workload.flavor_mix or self.flavors)
               if n in self.flavors]
        min_vcpus = min(f.vcpus for f in mix)
        min_mem = min(f.memory_mb for f in mix)
        used = dict.fromkeys(CLASSES, 0.0)
        capacity = dict.fromkeys(CLASSES, 0.0)
        nonempty = dict.fromkeys(CLASSES, 0.0)
        stranded = {"VCPU": 0.0, "MEMORY_MB": 0.0}
        up = empty = 0
        for uuid, cap in snapshot.items():
            host = self.node_host.get(uuid)
            if host is None or not self.hosts[host].up:
                continue
            up += 1
            free: dict[str, float] = {}
            for rc in CLASSES:
                inv = cap.inventories.get(rc)
                if inv is None:
                    continue
                usable = (inv.total - inv.reserved) * inv.allocation_ratio
                capacity[rc] += usable
                used[rc] += cap.used.get(rc, 0)
                free[rc] = usable - cap.used.get(rc, 0)
            if cap.used.get("VCPU", 0) > 0:
                for rc in CLASSES:
                    inv = cap.inventories.get(rc)
                    if inv is not None:
                        nonempty[rc] += (inv.total - inv.reserved) * inv.allocation_ratio
            else:
                empty += 1
            fv, fm = free.get("VCPU", 0.0), free.get("MEMORY_MB", 0.0)
            if fm < min_mem and fv > 0:
                stranded["VCPU"] += fv
            if fv < min_vcpus and fm > 0:
                stranded["MEMORY_MB"] += fm
        live = [t for t in self.tracked.values() if not t.deleted]
        active = sum(1 for t in live if t.vm_state == states.ACTIVE)
        busy = sum(1 for t in live if _busy(t))
        if up - empty > self.peak_used:
            self.peak_used = up - empty
        load = sum(used[rc] / capacity[rc] for rc in ("VCPU", "MEMORY_MB") if capacity[rc])
        if load > self.peak_load:
            self.peak_load = load
            self.peak_flavors = [t.flavor for t in live if t.vm_state != states.ERROR]
        self.samples.append(Sample(
            t=round(self.rt.now(), 6), hosts_up=up, hosts_empty=empty, used=used,
            capacity=capacity, capacity_nonempty=nonempty, stranded=stranded,
            instances_active=active, instances_busy=busy,
            refused=dict(sorted((self.tally.refused + self.tally.failed).items())),
            queues={k: v for k, v in sorted(self.transport.in_flight.items()) if v}))

    # -- invariants ---------------------------------------------------------------------
    async def _check_loop(self) -> None:
        while True:
            await self.rt.sleep(self.scenario.check_interval)
            found = await check_invariants(self.store, now=self.rt.wall_time(),
                                           settle=ACTION_TIMEOUT)
            self.violations.extend(v for v in found if v.invariant != "stuck")

    async def _check(self) -> list[Violation]:
        """The invariants at the end; an instance left busy on a host that is down is
        where the host left it, not a control plane fault."""
        found = await check_invariants(self.store, now=self.rt.wall_time())
        down = {name for name, info in self.hosts.items() if not info.up}
        return [v for v in found if not (v.invariant == "stuck" and down
                                        and any(h in v.detail for h in down))]

    # -- faults (used by nimbus.sim.faults) ---------------------------------------------
    async def crash(self, names: list[str]) -> None:
        """The hosts lose power: their guests stop, their compute services die."""
        assert self.cloud is not None
        for name in names:
            info = self.hosts[name]
            if not info.up:
                continue
            info.up = False
            self.tally.host_failures += 1
            driver = self.cloud.drivers[name]
            if isinstance(driver, fake.FakeDriver):
                driver.lose_all()
            await self.cloud.computes[name].stop()

    async def recover(self, names: list[str]) -> None:
        """The hosts come back: a new compute service on the same hypervisor."""
        assert self.cloud is not None
        for name in names:
            info = self.hosts[name]
            if info.up or self.finished:
                continue
            ctx = ServiceContext(self.rt, self.transport, name, self.metrics, 30.0)
            svc = ComputeService(ctx, self.cloud.drivers[name], self._compute_config(info.cls))
            await svc.start()
            self.cloud.computes[name] = svc
            info.up = True
            self.tally.host_recoveries += 1

    # -- the outcome --------------------------------------------------------------------
    def _outcome(self, end_time: float) -> Outcome:
        t, cloud = self.tally, self.cloud
        assert cloud is not None
        sched = cloud.scheduler.scheduler
        migrations = int(sum(v for k, v in t.actions.get("migrate", {}).items() if k == "ok"))
        return Outcome(
            scenario=self.scenario.name, seed=self.seed, end_time=round(end_time, 6),
            hosts=len(self.hosts), arrivals=t.arrivals, accepted=t.accepted,
            refused=dict(sorted(t.refused.items())), failed=dict(sorted(t.failed.items())),
            active=sum(1 for x in self.tracked.values()
                       if not x.deleted and x.vm_state == states.ACTIVE),
            time_to_active=percentiles(t.to_active),
            actions={k: dict(sorted(v.items())) for k, v in sorted(t.actions.items())},
            reschedules=_reschedules(self.metrics), migrations=migrations,
            host_failures=t.host_failures, host_recoveries=t.host_recoveries,
            peak_hosts_used=self.peak_used, hosts_needed=self._hosts_needed(),
            decisions=sched.decisions, claim_conflicts=sched.conflicts,
            samples=self.samples, violations=self.violations,
            group_violations=sum(1 for v in self.violations if v.invariant == "server_group"))

    def _hosts_needed(self) -> int:
        """The fewest hosts (largest class first) that hold the peak's instances, packed
        first fit with the largest flavors first, at the classes' allocation ratios."""
        if not self.peak_flavors:
            return 0
        classes = sorted(self.scenario.hosts, key=lambda h: (-h.vcpus * h.cpu_allocation_ratio,
                                                               -h.memory_mb, h.name))
        cls = classes[0]
        cap_v = cls.vcpus * cls.cpu_allocation_ratio
        cap_m = (cls.memory_mb - cls.reserved_host_memory_mb) * cls.ram_allocation_ratio
        sizes = sorted(((self._size(n)) for n in self.peak_flavors), reverse=True)
        bins: list[list[float]] = []
        for v, m in sizes:
            for b in bins:
                if b[0] >= v and b[1] >= m:
                    b[0] -= v
                    b[1] -= m
                    break
            else:
                bins.append([cap_v - v, cap_m - m])
        return len(bins)

    def _size(self, flavor: str) -> tuple[float, float]:
        f = self.flavors.get(flavor)
        if f is not None:
            return float(f.vcpus), float(f.memory_mb)
        v, m = adhoc_flavor(flavor)
        return float(v), float(m)


def _busy(t: Tracked) -> bool:
    return t.task_state is not None or t.vm_state == states.BUILDING


def _reschedules(metrics: Metrics) -> int:
    """Builds sent to another host after a failure (the conductor's count)."""
    value = metrics.registry.get_sample_value("nimbus_instance_builds_total",
                                              {"outcome": "rescheduled"})
    return int(value or 0)


def run(scenario: Scenario, *, seed: int | None = None,
        progress: Callable[[float, int], None] | None = None) -> tuple[Outcome, bytes, float]:
    """Run ``scenario``; its outcome, the Prometheus snapshot and the wall seconds taken."""
    t0 = time.perf_counter()
    sim = SimRun(scenario, seed=seed, progress=progress)
    outcome = sim.run()
    return outcome, sim.metrics.render(), time.perf_counter() - t0
