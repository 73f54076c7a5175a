# mypy: disable-error-code="import-not-found,import-untyped"
# (nova is installed in its own virtual environment, not in nimbus's)
"""Nova 34's own scheduler, in-process, on the fleet and request stream of bench/scheduler.py.

Runs INSIDE a virtual environment that has PyPI ``nova`` 34.x (it never imports nimbus):

    python3 -m venv /tmp/nova-venv
    /tmp/nova-venv/bin/pip install 'nova>=34,<35'
    /tmp/nova-venv/bin/python bench/nova_scheduler.py [--sizes 100,1000,10000] [--json]

What is timed, per decision (one instance): Nova's ``SchedulerManager._schedule`` with
``return_alternates=True``, i.e. ``HostManager.get_filtered_hosts`` (Nova's default
``enabled_filters``), ``HostManager.get_weighed_hosts`` (``weight_classes`` = all weighers),
the host_subset_size pick, ``HostState.consume_from_request`` and the Selection objects for
the chosen host and its alternates (``max_attempts`` 3). All of it is Nova's code, on real
``nova.scheduler.host_manager.HostState`` objects filled by ``HostState.update()`` from
in-memory ``ComputeNode`` objects, service records and ``Aggregate`` objects, once, before
timing. Three modes:

* ``legacy`` (no placement): ``_schedule`` with no allocation candidates, the path Nova
  takes when placement returns nothing usable (``_legacy_find_hosts``).
* ``claim``: ``_schedule`` as in production, one fake allocation candidate per candidate
  host (Nova deep-copies them onto the HostStates for every request), and
  ``nova.scheduler.utils.claim_resources`` replaced by ``return True`` (no HTTP).
* ``full``: ``claim`` plus Nova's per-request ``HostManager._get_host_states()`` on the
  ComputeNode and service rows held in memory (the DB queries before it are left out): Nova
  34 builds a new HostState per candidate host for every request. Picks are written back
  to the ComputeNode rows as the compute's resource tracker would (not timed).

Not timed, as they are DB or placement work in Nova: the candidate hosts placement would
return (a plain-Python stand-in here: enabled hosts, in the requested availability zone,
with room for the flavor: Nova 34 answers the zone and the disabled status through
placement, and has no RAM/CPU/disk filters any more), the server group's members and hosts
(the conductor loads them from the DB), deleting old instances, and Nova's
``select_destinations`` wrapper (notifications, the provider summary lookup). Nova's
loggers are set to ERROR so that its per-host warning about hosts down writes nothing.

Up computes heartbeat every 10 s of wall time (not timed), so that none drops past
``service_down_time`` during a long run. Prints decisions/s per fleet size and mode;
``--json`` prints one JSON object per size and mode instead
(bench/scheduler.py --nova-venv reads those).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import random
import sys
import time
import uuid as uuidlib
import warnings
from collections import deque
from typing import Any
from unittest import mock

# The fleet and the request mix: the same constants and the same random draws, in the
# same order, as bench/scheduler.py's make_fleet / make_requests (so that one seed gives
# the same hosts and the same requests in both).
# (share, vcpus, memory_mb, disk_gb, cpu ratio)
HOST_TYPES = [(0.55, 32, 262144, 2000, 4.0), (0.25, 64, 262144, 1000, 4.0),
              (0.12, 48, 1048576, 2000, 2.0), (0.08, 16, 131072, 500, 8.0)]
# (share, name, vcpus, memory_mb, root_gb)
FLAVORS = [(0.15, "m1.tiny", 1, 512, 1), (0.35, "m1.small", 1, 2048, 20),
           (0.30, "m1.medium", 2, 4096, 40), (0.15, "m1.large", 4, 8192, 80),
           (0.05, "m1.xlarge", 8, 16384, 160)]
ZONES = ["az1", "az2", "az3"]
MEMORY_MB_RESERVED = 4096
DISK_GB_RESERVED = 50


def _setup_nova():
    # futurist imports eventlet, which warns that it is deprecated (nova is not monkey-patched)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import nova.conf
    from nova import objects

    conf = nova.conf.CONF
    conf([], project="nova", default_config_files=[], default_config_dirs=[])
    objects.register_all()
    logging.getLogger("nova").setLevel(logging.ERROR)
    logging.getLogger("oslo_concurrency").setLevel(logging.ERROR)
    return conf


def make_fleet(size, rng, plain=False):
    """Host dicts, as bench/scheduler.py draws them, plus the aggregates."""
    hosts = []
    shares = [t[0] for t in HOST_TYPES]
    for i in range(size):
        _s, vcpus, ram, disk, ratio = rng.choices(HOST_TYPES, shares)[0]
        hv_version = rng.choice([6002000, 8000000])
        fill = rng.random() * 0.5
        used = dict(vcpus_used=int(vcpus * ratio * fill), memory_mb_used=int(ram * fill),
                    disk_gb_used=int(disk * fill), num_instances=int(20 * fill),
                    io_ops=rng.choice([0, 0, 0, 1, 2]),
                    failed_builds=1 if rng.random() < 0.01 else 0)
        if plain:
            used["failed_builds"] = 0
        up = plain or rng.random() > 0.01
        disabled = not plain and rng.random() < 0.01
        hosts.append(dict(name=f"cmp{i:06d}", vcpus=vcpus, memory_mb=ram, disk_gb=disk,
                          cpu_ratio=ratio, zone=ZONES[i % 3], hv_version=hv_version,
                          up=up, disabled=disabled, **used))
    names = [h["name"] for h in hosts]
    aggregates = [
        ("ssd", {"ssd": "true"}, [n for n in names if rng.random() < 0.3]),
        ("tenant-a", {"filter_tenant_id": "tenant-a"}, [n for n in names if rng.random() < 0.02]),
    ]
    # Nova keeps availability zones as aggregates with that metadata key.
    for z in ZONES:
        aggregates.append((z, {"availability_zone": z},
                           [h["name"] for h in hosts if h["zone"] == z]))
    return hosts, aggregates


def make_requests(count, rng, plain=False):
    """Request dicts, as bench/scheduler.py draws them."""
    shares = [f[0] for f in FLAVORS]
    groups = [(f"group{g}", "anti-affinity" if g % 2 else "soft-anti-affinity")
              for g in range(20)]
    out = []
    for k in range(count):
        _s, name, vcpus, ram, disk = rng.choices(FLAVORS, shares)[0]
        roll = 0.5 if plain else rng.random()
        out.append(dict(
            flavor=name, vcpus=vcpus, memory_mb=ram, root_gb=disk,
            project_id=rng.choice(["p1", "p2", "p3"]),
            availability_zone=rng.choice(ZONES) if roll < 0.2 else None,
            image_properties={"hw_architecture": "x86_64"} if 0.2 <= roll < 0.3 else {},
            group=rng.choice(groups) if roll >= 0.9 else None,
            instance_uuid=str(uuidlib.UUID(int=k + 1))))
    return out


def build_host_states(hosts, aggregates, cell_uuid):
    """Real HostState objects, filled by HostState.update() from ComputeNode objects."""
    from nova import objects
    from nova.scheduler import host_manager

    now = datetime.datetime.now(datetime.UTC)
    long_ago = now - datetime.timedelta(hours=1)
    aggs_by_host: dict[str, list[Any]] = {}
    for agg_id, (name, metadata, members) in enumerate(aggregates, start=1):
        agg = objects.Aggregate(id=agg_id, uuid=str(uuidlib.uuid4()), name=name,
                                hosts=list(members), metadata=dict(metadata))
        for m in members:
            aggs_by_host.setdefault(m, []).append(agg)
    hv_spec = objects.HVSpec(arch="x86_64", hv_type="qemu", vm_mode="hvm")
    cpu_info = json.dumps({"arch": "x86_64", "features": ["avx2", "sse4"]})
    states: list[Any] = []
    for h in hosts:
        mem_used = h["memory_mb_used"] + MEMORY_MB_RESERVED
        disk_used = h["disk_gb_used"] + DISK_GB_RESERVED
        compute = objects.ComputeNode(
            id=len(states) + 1, uuid=str(uuidlib.uuid4()), host=h["name"],
            hypervisor_hostname=h["name"], host_ip="10.0.0.1",
            vcpus=h["vcpus"], vcpus_used=h["vcpus_used"],
            memory_mb=h["memory_mb"], memory_mb_used=mem_used,
            free_ram_mb=h["memory_mb"] - mem_used,
            local_gb=h["disk_gb"], local_gb_used=disk_used,
            free_disk_gb=h["disk_gb"] - disk_used, disk_available_least=None,
            hypervisor_type="QEMU", hypervisor_version=h["hv_version"], cpu_info=cpu_info,
            supported_hv_specs=[hv_spec], numa_topology=None,
            pci_device_pools=objects.PciDevicePoolList(objects=[]),
            stats={"num_instances": str(h["num_instances"]), "io_workload": str(h["io_ops"]),
                   "failed_builds": str(h["failed_builds"])},
            metrics="[]", cpu_allocation_ratio=h["cpu_ratio"], ram_allocation_ratio=1.0,
            disk_allocation_ratio=1.0, updated_at=now)
        service = {"id": len(states) + 1, "host": h["name"], "binary": "nova-compute",
                   "topic": "compute", "disabled": h["disabled"],
                   "disabled_reason": "bench" if h["disabled"] else None, "forced_down": False,
                   "created_at": long_ago, "updated_at": now if h["up"] else long_ago,
                   "last_seen_up": now if h["up"] else long_ago}
        # Instances already on the host (their uuids are what the group filters look at).
        instances = {f"{h['name']}-old{j}": None for j in range(h["num_instances"])}
        state = host_manager.HostState(h["name"], h["name"], cell_uuid)
        state.update(compute=compute, service=service,
                     aggregates=aggs_by_host.get(h["name"], []), inst_dict=instances)
        state.zone = h["zone"]  # bench bookkeeping (placement's member_of stand-in)
        state.enabled = not h["disabled"]
        state.up = h["up"]
        state.compute = compute  # the DB rows, for the full mode
        state.service_row = service
        states.append(state)
    return states, aggs_by_host


def build_request_specs(requests, ctxt):
    from nova import objects

    flavors: dict[str, Any] = {}
    for _s, name, vcpus, ram, disk in FLAVORS:
        flavors[name] = objects.Flavor(
            id=len(flavors) + 1, flavorid=str(len(flavors) + 1), name=name, vcpus=vcpus,
            memory_mb=ram, root_gb=disk, ephemeral_gb=0, swap=0, rxtx_factor=1.0,
            vcpu_weight=0, disabled=False, is_public=True, extra_specs={}, description=None)
    groups = {}
    specs = []
    for r in requests:
        group = None
        if r["group"] is not None:
            name, policy = r["group"]
            if name not in groups:
                groups[name] = objects.InstanceGroup(
                    uuid=str(uuidlib.uuid4()), name=name, policy=policy, policies=[policy],
                    rules={},
                    members=[], hosts=[], project_id="p1", user_id="u1")
            group = groups[name]
        image = {"id": str(uuidlib.UUID(int=7)), "name": "cirros", "status": "active",
                 "container_format": "bare", "disk_format": "qcow2", "min_ram": 0,
                 "min_disk": 0, "size": 16338944, "properties": dict(r["image_properties"])}
        spec = objects.RequestSpec.from_components(
            ctxt, r["instance_uuid"], image, flavors[r["flavor"]], None,
            objects.InstancePCIRequests(requests=[]), {}, group, r["availability_zone"],
            project_id=r["project_id"], user_id="u1")
        spec.requested_resources = []
        specs.append(spec)
    return specs, groups


class Bench:
    """One fleet, one Nova scheduler; feeds it requests, deleting the oldest instances."""

    def __init__(self, size, seed, plain, mode):
        from nova import context as nova_context
        from nova import objects
        from nova.scheduler import host_manager, manager

        self.mode = mode
        self.ctxt = nova_context.get_admin_context()
        hosts, aggregates = make_fleet(size, random.Random(seed), plain)
        self.cell_uuid = str(uuidlib.uuid4())
        t0 = time.perf_counter()
        self.states, aggs_by_host = build_host_states(hosts, aggregates, self.cell_uuid)
        self.setup_seconds = time.perf_counter() - t0
        with mock.patch.object(host_manager.HostManager, "refresh_cells_caches"), \
                mock.patch.object(host_manager.HostManager, "_init_aggregates"), \
                mock.patch.object(host_manager.HostManager, "_init_instance_info"):
            hm = host_manager.HostManager()
        # SchedulerManager without its service plumbing (RPC, notifier, placement client):
        # only what _schedule and its helpers use.
        class Manager(manager.SchedulerManager):
            placement_client = None  # only handed to claim_resources, replaced below

        sched = Manager.__new__(Manager)
        sched.host_manager = hm
        self.candidates: list[Any] = []
        if mode == "full":
            # Nova's own HostManager._get_host_states on the DB rows held in memory (the
            # ComputeNodeList / ServiceList queries of _get_computes_for_cells are the I/O
            # left out): it builds a new HostState per candidate host for every request.
            for agg in {id(a): a for aggs in aggs_by_host.values() for a in aggs}.values():
                hm.aggs_by_id[agg.id] = agg
                for host in agg.hosts:
                    hm.host_aggregates_map[host].add(agg.id)
            for st in self.states:
                hm._instance_info[st.host] = {"instances": st.instances, "updated": True}
            services = {st.host: st.service_row for st in self.states}
            sched._get_all_host_states = lambda context, spec_obj, summaries: \
                hm._get_host_states(context, {self.cell_uuid: [
                    st.compute for st in self.candidates]}, services)
        else:
            sched._get_all_host_states = \
                lambda context, spec_obj, summaries: iter(self.candidates)
        self.scheduler = sched
        self.filters = [type(f).__name__ for f in hm.enabled_filters]
        self.weighers = [type(w).__name__ for w in hm.weighers]
        self.objects = objects
        self.live: deque[tuple[Any, Any, str]] = deque()
        self.live_limit = max(size * 20, 1)
        self.group_hosts = {}  # group uuid -> {instance uuid: host name}
        self.last_heartbeat = time.monotonic()

    def _heartbeat(self):
        """Up computes report every 10 s (service_down_time is 60 s); not timed."""
        if time.monotonic() - self.last_heartbeat < 10:
            return
        now = datetime.datetime.now(datetime.UTC)
        for st in self.states:
            if st.up:
                st.service.data["last_seen_up"] = st.service.data["updated_at"] = now
                st.service_row["last_seen_up"] = st.service_row["updated_at"] = now
        self.last_heartbeat = time.monotonic()

    def _placement_candidates(self, spec):
        """What placement would return: enabled hosts in the zone with room (not timed)."""
        vcpus, ram, disk_mb = spec.vcpus, spec.memory_mb, (spec.root_gb + spec.ephemeral_gb) * 1024
        zone = spec.availability_zone
        return [s for s in self.states
                if s.enabled and (zone is None or s.zone == zone)
                and s.vcpus_total * s.cpu_allocation_ratio - s.vcpus_used >= vcpus
                and s.free_ram_mb >= ram and s.free_disk_mb >= disk_mb]

    def _delete_oldest(self):
        state, spec, uuid = self.live.popleft()
        state.free_ram_mb += spec.memory_mb
        state.free_disk_mb += (spec.root_gb + spec.ephemeral_gb) * 1024
        state.vcpus_used -= spec.vcpus
        state.num_instances -= 1
        state.num_io_ops = max(0, state.num_io_ops - 1)
        state.instances.pop(uuid, None)
        if spec.instance_group is not None:
            group = spec.instance_group
            self.group_hosts[group.uuid].pop(uuid, None)
        if self.mode == "full":
            self._write_back(state)

    @staticmethod
    def _write_back(state):
        """What the compute's resource tracker writes to its ComputeNode row (full mode)."""
        c = state.compute
        c.free_ram_mb = state.free_ram_mb
        c.memory_mb_used = c.memory_mb - state.free_ram_mb
        c.vcpus_used = state.vcpus_used
        c.free_disk_gb = state.free_disk_mb // 1024
        c.local_gb_used = c.local_gb - c.free_disk_gb
        c.stats = dict(c.stats, num_instances=str(state.num_instances),
                       io_workload=str(state.num_io_ops))
        c.updated_at = datetime.datetime.now(datetime.UTC)

    def run(self, specs):
        """Seconds spent in _schedule over ``specs``, and how many found no host."""
        from nova import exception
        from nova.scheduler import utils as scheduler_utils

        spent = 0.0
        failures = 0
        clock = time.perf_counter
        with mock.patch.object(scheduler_utils, "claim_resources", return_value=True):
            for spec in specs:
                while len(self.live) >= self.live_limit:
                    self._delete_oldest()
                self._heartbeat()
                uuid = spec.instance_uuid
                group = spec.instance_group
                if group is not None:  # the conductor loads these from the DB
                    placed = self.group_hosts.setdefault(group.uuid, {})
                    group.members = [*placed, uuid]
                    group.hosts = sorted(set(placed.values()))
                    group.obj_reset_changes(["members", "hosts"])
                self.candidates = self._placement_candidates(spec)
                alloc_reqs: dict[str, Any] | None = None
                summaries: dict[str, Any] | None = None
                if self.mode in ("claim", "full"):
                    alloc_reqs = {}
                    for s in self.candidates:
                        alloc_reqs[s.uuid] = [{
                            "allocations": {s.uuid: {"resources": {
                                "VCPU": spec.vcpus, "MEMORY_MB": spec.memory_mb,
                                "DISK_GB": spec.root_gb}}},
                            "mappings": {}}]
                    summaries = {key: {} for key in alloc_reqs}
                t0 = clock()
                try:
                    selections = self.scheduler._schedule(
                        self.ctxt, spec, [uuid], alloc_reqs, summaries,
                        allocation_request_version="1.36", return_alternates=True)
                except exception.NoValidHost:
                    spent += clock() - t0
                    failures += 1
                    continue
                spent += clock() - t0
                host = selections[0][0].service_host
                state = next(s for s in self.candidates if s.host == host)
                if self.mode == "full":  # Nova consumed from a HostState built for this request
                    state.consume_from_request(spec)
                    self._write_back(state)
                state.instances[uuid] = None
                if group is not None:
                    self.group_hosts[group.uuid][uuid] = host
                self.live.append((state, spec, uuid))
        return spent, failures


def default_decisions(size):
    """Timed decisions per size: enough for a steady figure, few where each takes long."""
    return max(3, min(1000, 200_000 // size))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100,1000,10000", help="fleet sizes")
    p.add_argument("--decisions", type=int, default=0,
                   help="timed decisions per size (default: 200,000 / hosts, 3 to 1,000)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed decisions first (default 3; 1 at 100,000 hosts or more)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plain", action="store_true",
                   help="flavors only: no zones, images, groups, failed builds or hosts down")
    p.add_argument("--modes", default="legacy,claim,full",
                   help="legacy (no placement), claim (fake candidates, no HTTP), full (claim\n"
                        "plus Nova's per-request HostState rebuild from in-memory DB rows)")
    p.add_argument("--json", action="store_true", help="one JSON object per size and mode")
    a = p.parse_args(argv)
    conf = _setup_nova()
    import nova.version

    modes = [m for m in a.modes.split(",") if m]
    for m in modes:
        if m not in ("legacy", "claim", "full"):
            p.error(f"unknown mode {m!r}: legacy, claim, full")
    header = False
    for size in (int(s) for s in a.sizes.split(",")):
        n = a.decisions or default_decisions(size)
        warmup = a.warmup if a.warmup is not None else (3 if size < 100_000 else 1)
        requests = make_requests(warmup + n, random.Random(a.seed + 1), a.plain)
        for mode in modes:
            bench = Bench(size, a.seed, a.plain, mode)
            specs, _groups = build_request_specs(requests, bench.ctxt)
            bench.run(specs[:warmup])
            spent, failures = bench.run(specs[warmup:])
            rate = n / spent
            if a.json:
                print(json.dumps({
                    "nova": nova.version.version_string(), "hosts": size, "mode": mode,
                    "decisions": n, "seconds": round(spent, 4), "decisions_per_s": rate,
                    "no_valid_host": failures, "setup_seconds": round(bench.setup_seconds, 2),
                    "filters": bench.filters, "weighers": bench.weighers,
                    "host_subset_size": conf.filter_scheduler.host_subset_size,
                    "max_attempts": conf.scheduler.max_attempts}), flush=True)
                continue
            if not header:
                print(f"nova {nova.version.version_string()}; filters: "
                      f"{', '.join(bench.filters)}; weighers: {', '.join(bench.weighers)}")
                print(f"{'hosts':>8} {'mode':>7} {'Nova scheduler':>18} {'ms/decision':>12}")
                header = True
            print(f"{size:>8,} {mode:>7} {rate:>12,.3f} dec/s {1000 * spent / n:>12,.2f} "
                  f"(n={n}{f', {failures} NoValidHost' if failures else ''})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
