"""The instance state machine as Nova names it: vm_state, task_state, power_state.

``vm_state`` is where an instance rests (active, stopped, resized, ...);
``task_state`` is the work under way on it (None when idle); ``power_state``
is what the hypervisor last reported. An action is allowed only in the states
its :class:`ActionRule` names; the API checks that and sets the action's task
state in one conditional write, so two racing actions cannot both start
(the loser gets a ``ConflictError``, 409 at the API).
"""

from __future__ import annotations

from dataclasses import dataclass

# -- vm_state ------------------------------------------------------------------------
ACTIVE = "active"
BUILDING = "building"
PAUSED = "paused"
SUSPENDED = "suspended"
STOPPED = "stopped"
RESCUED = "rescued"
RESIZED = "resized"
SOFT_DELETED = "soft-delete"
DELETED = "deleted"
ERROR = "error"
SHELVED = "shelved"
SHELVED_OFFLOADED = "shelved_offloaded"

# -- task_state ----------------------------------------------------------------------
SCHEDULING = "scheduling"
BLOCK_DEVICE_MAPPING = "block_device_mapping"
NETWORKING = "networking"
SPAWNING = "spawning"
IMAGE_SNAPSHOT = "image_snapshot"
IMAGE_SNAPSHOT_PENDING = "image_snapshot_pending"
IMAGE_PENDING_UPLOAD = "image_pending_upload"
IMAGE_UPLOADING = "image_uploading"
UPDATING_PASSWORD = "updating_password"
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"
RESIZE_CONFIRMING = "resize_confirming"
REBOOTING = "rebooting"
REBOOT_PENDING = "reboot_pending"
REBOOT_STARTED = "reboot_started"
REBOOTING_HARD = "rebooting_hard"
REBOOT_PENDING_HARD = "reboot_pending_hard"
REBOOT_STARTED_HARD = "reboot_started_hard"
PAUSING = "pausing"
UNPAUSING = "unpausing"
SUSPENDING = "suspending"
RESUMING = "resuming"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
RESCUING = "rescuing"
UNRESCUING = "unrescuing"
REBUILDING = "rebuilding"
REBUILD_BLOCK_DEVICE_MAPPING = "rebuild_block_device_mapping"
REBUILD_SPAWNING = "rebuild_spawning"
MIGRATING = "migrating"
DELETING = "deleting"
SOFT_DELETING = "soft-deleting"
RESTORING = "restoring"
SHELVING = "shelving"
SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
SHELVING_OFFLOADING = "shelving_offloading"
UNSHELVING = "unshelving"

#: Task states that mean "work under way": an instance found in one of them when its
#: compute service starts was interrupted (init_host repairs it).
TRANSITIONAL = frozenset({
    SCHEDULING, BLOCK_DEVICE_MAPPING, NETWORKING, SPAWNING, IMAGE_SNAPSHOT,
    IMAGE_SNAPSHOT_PENDING, IMAGE_PENDING_UPLOAD, IMAGE_UPLOADING, UPDATING_PASSWORD,
    RESIZE_PREP, RESIZE_MIGRATING, RESIZE_MIGRATED, RESIZE_FINISH, RESIZE_REVERTING,
    RESIZE_CONFIRMING, REBOOTING, REBOOT_PENDING, REBOOT_STARTED, REBOOTING_HARD,
    REBOOT_PENDING_HARD, REBOOT_STARTED_HARD, PAUSING, UNPAUSING, SUSPENDING, RESUMING,
    POWERING_OFF, POWERING_ON, RESCUING, UNRESCUING, REBUILDING,
    REBUILD_BLOCK_DEVICE_MAPPING, REBUILD_SPAWNING, MIGRATING, DELETING, SOFT_DELETING,
    RESTORING, SHELVING, SHELVING_IMAGE_PENDING_UPLOAD, SHELVING_IMAGE_UPLOADING,
    SHELVING_OFFLOADING, UNSHELVING,
})

# -- power_state (the hypervisor's view; numbers as Nova stores them) ---------------------
NOSTATE = 0
RUNNING = 1
POWER_PAUSED = 3
SHUTDOWN = 4
CRASHED = 6
POWER_SUSPENDED = 7

POWER_STATE_NAMES = {NOSTATE: "NOSTATE", RUNNING: "RUNNING", POWER_PAUSED: "PAUSED",
                     SHUTDOWN: "SHUTDOWN", CRASHED: "CRASHED",
                     POWER_SUSPENDED: "SUSPENDED"}

#: The vm_state an instance rests in for each power state the hypervisor reports,
#: where the two must agree (sync_power_states).
RESTING_POWER = {ACTIVE: RUNNING, STOPPED: SHUTDOWN, PAUSED: POWER_PAUSED,
                 SUSPENDED: POWER_SUSPENDED, RESCUED: RUNNING, RESIZED: RUNNING}


@dataclass(frozen=True, slots=True)
class ActionRule:
    """When an action may start: the vm_states and task_states it accepts.

    ``task_states`` None means "only when idle" (task_state None), the usual case;
    ``needs_host`` refuses instances that are not on a host (never scheduled, or
    shelved offloaded).
    """

    vm_states: frozenset[str]
    task_states: frozenset[str | None] = frozenset({None})
    needs_host: bool = True


def _rule(*vm_states: str, tasks: tuple[str | None, ...] = (None,),
          needs_host: bool = True) -> ActionRule:
    return ActionRule(frozenset(vm_states), frozenset(tasks), needs_host)


_REBOOT_TASKS = (None, REBOOTING, REBOOT_PENDING, REBOOT_STARTED, REBOOTING_HARD,
                 REBOOT_PENDING_HARD, REBOOT_STARTED_HARD)

#: What each action accepts, as Nova's compute API checks it.
RULES: dict[str, ActionRule] = {
    "reboot_soft": _rule(ACTIVE, tasks=(None,)),
    "reboot_hard": _rule(ACTIVE, STOPPED, PAUSED, SUSPENDED, ERROR, tasks=_REBOOT_TASKS),
    "stop": _rule(ACTIVE, RESCUED, ERROR),
    "start": _rule(STOPPED),
    "pause": _rule(ACTIVE),
    "unpause": _rule(PAUSED),
    "suspend": _rule(ACTIVE),
    "resume": _rule(SUSPENDED),
    "rescue": _rule(ACTIVE, STOPPED, ERROR),
    "unrescue": _rule(RESCUED),
    "resize": _rule(ACTIVE, STOPPED),
    "migrate": _rule(ACTIVE, STOPPED),
    "confirm_resize": _rule(RESIZED),
    "revert_resize": _rule(RESIZED),
    "live_migrate": _rule(ACTIVE, PAUSED),
    "evacuate": _rule(ACTIVE, STOPPED, ERROR),
    "rebuild": _rule(ACTIVE, STOPPED, ERROR),
    "shelve": _rule(ACTIVE, STOPPED, PAUSED, SUSPENDED),
    "shelve_offload": _rule(SHELVED),
    "unshelve": _rule(SHELVED, SHELVED_OFFLOADED, needs_host=False),
    "create_image": _rule(ACTIVE, STOPPED, PAUSED, SUSPENDED),
    "console_output": _rule(ACTIVE, STOPPED, PAUSED, SUSPENDED, RESCUED, RESIZED,
                            tasks=(None, *sorted(TRANSITIONAL))),
    "lock": _rule(*{ACTIVE, BUILDING, PAUSED, SUSPENDED, STOPPED, RESCUED, RESIZED,
                    ERROR, SHELVED, SHELVED_OFFLOADED, SOFT_DELETED},
                  tasks=(None, *sorted(TRANSITIONAL)), needs_host=False),
    "delete": _rule(*{ACTIVE, BUILDING, PAUSED, SUSPENDED, STOPPED, RESCUED, RESIZED,
                      ERROR, SHELVED, SHELVED_OFFLOADED, SOFT_DELETED},
                    tasks=(None, *sorted(TRANSITIONAL - {DELETING})), needs_host=False),
}
RULES["unlock"] = RULES["lock"]
# Deferred delete: a delete is soft (restorable) only for an idle instance that ran; a
# force delete is a delete now, from any state but with no task (Nova's force_delete).
RULES["soft_delete"] = _rule(ACTIVE, STOPPED, PAUSED, SUSPENDED)
RULES["restore"] = _rule(SOFT_DELETED)
RULES["force_delete"] = ActionRule(RULES["delete"].vm_states, frozenset({None}),
                                   needs_host=False)
