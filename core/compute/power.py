"""Reboot, stop/start, pause, suspend, rescue and consoles on the compute host.

The API has already checked the instance's state and set the action's task
state (``powering-off``, ``pausing`` ...) in one conditional write; the host
runs the driver operation under the instance lock and writes the resting state
(vm_state, power_state, no task) on condition that the task state is still the
action's. An action another one took over meanwhile (a delete, or a hard
reboot over a soft one) is dropped quietly: the newer action owns the record.

A driver that lacks the capability (pause, suspend, rescue), or fails, leaves
a fault and the task state put back, as Nova's ``reverts_task_state`` does, so
the instance stays usable; a failed *hard* reboot leaves it in ERROR, since the
guest may be anywhere between off and running. Console output and console
locations are calls: they answer the API, and a ``DriverNotSupported`` reaches
the caller as a 409.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nimbus.core.compute import driver as d
from nimbus.core.compute import states
from nimbus.core.compute.base import ComputeBase, guest_spec
from nimbus.core.compute.driver import ConsoleInfo, HypervisorDriver
from nimbus.core.errors import InvalidInput, NotFound, UnexpectedStateError
from nimbus.core.messages import message
from nimbus.core.service import endpoint

log = logging.getLogger(__name__)


# -- messages: casts of the actions, calls of the consoles ---------------------------------
@dataclass(frozen=True, slots=True)
class InstanceCast:
    """What every power action's cast carries (each action is its own message type)."""

    instance_uuid: str
    request_id: str


@message("compute.reboot_instance")
@dataclass(frozen=True, slots=True)
class RebootInstance(InstanceCast):
    """Reboot the guest: soft (a clean restart of a running guest) or ``hard``."""

    hard: bool = False


@message("compute.stop_instance")
@dataclass(frozen=True, slots=True)
class StopInstance(InstanceCast):
    """Power the guest off; the instance rests in ``stopped``."""


@message("compute.start_instance")
@dataclass(frozen=True, slots=True)
class StartInstance(InstanceCast):
    """Power a stopped guest on."""


@message("compute.pause_instance")
@dataclass(frozen=True, slots=True)
class PauseInstance(InstanceCast):
    """Freeze the guest in memory."""


@message("compute.unpause_instance")
@dataclass(frozen=True, slots=True)
class UnpauseInstance(InstanceCast):
    """Thaw a paused guest."""


@message("compute.suspend_instance")
@dataclass(frozen=True, slots=True)
class SuspendInstance(InstanceCast):
    """Save the guest's memory to disk and stop it."""


@message("compute.resume_instance")
@dataclass(frozen=True, slots=True)
class ResumeInstance(InstanceCast):
    """Restore a suspended guest."""


@message("compute.unrescue_instance")
@dataclass(frozen=True, slots=True)
class UnrescueInstance(InstanceCast):
    """Boot a rescued guest from its own disk again."""


@message("compute.rescue_instance")
@dataclass(frozen=True, slots=True)
class RescueInstance(InstanceCast):
    """Boot the guest from a rescue image (its own image when None), its disk attached."""

    rescue_image_ref: str | None = None
    admin_password: str | None = None


@message("compute.get_console_output")
@dataclass(frozen=True, slots=True)
class GetConsoleOutput:
    """Call: the guest's console log, its last ``length`` lines (all when None)."""

    instance_uuid: str
    length: int | None = None


@message("compute.get_console")
@dataclass(frozen=True, slots=True)
class GetConsole:
    """Call: where the guest's console of ``kind`` (of ``CONSOLE_KINDS``) listens."""

    instance_uuid: str
    kind: str


@message("compute.console")
@dataclass(frozen=True, slots=True)
class ConsoleAnswer:
    """The reply to :class:`GetConsole`."""

    info: ConsoleInfo


DriverOp = Callable[[HypervisorDriver, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Transition:
    """How one of the plain power actions runs here: the task state the API set, the
    capability it needs (None: mandatory operation), the driver call, the rest state."""

    action: str
    task: str
    capability: str | None
    call: DriverOp
    vm_state: str
    power_state: int


TRANSITIONS = {t.action: t for t in (
    Transition("stop", states.POWERING_OFF, None, lambda drv, u: drv.power_off(u),
               states.STOPPED, states.SHUTDOWN),
    Transition("start", states.POWERING_ON, None, lambda drv, u: drv.power_on(u),
               states.ACTIVE, states.RUNNING),
    Transition("pause", states.PAUSING, d.PAUSE, lambda drv, u: drv.pause(u),
               states.PAUSED, states.POWER_PAUSED),
    Transition("unpause", states.UNPAUSING, d.PAUSE, lambda drv, u: drv.unpause(u),
               states.ACTIVE, states.RUNNING),
    Transition("suspend", states.SUSPENDING, d.SUSPEND, lambda drv, u: drv.suspend(u),
               states.SUSPENDED, states.POWER_SUSPENDED),
    Transition("resume", states.RESUMING, d.SUSPEND, lambda drv, u: drv.resume(u),
               states.ACTIVE, states.RUNNING),
)}

_HARD_TASKS = (states.REBOOTING_HARD, states.REBOOT_PENDING_HARD, states.REBOOT_STARTED_HARD)
_SOFT_TASKS = (states.REBOOTING, states.REBOOT_PENDING, states.REBOOT_STARTED)


def tail(text: str, length: int | None) -> str:
    """The last ``length`` lines of ``text`` (all of it when None; nothing for 0 or less)."""
    if length is None:
        return text
    return "".join(text.splitlines(keepends=True)[-length:]) if length > 0 else ""


class PowerActions(ComputeBase):
    """Reboot, stop/start, pause, suspend, rescue and consoles on the compute host."""

    # -- the plain transitions ---------------------------------------------------------------
    @endpoint(StopInstance)
    async def stop_instance(self, msg: StopInstance) -> None:
        """Power the guest off."""
        await self.transition(TRANSITIONS["stop"], msg.instance_uuid, msg.request_id)

    @endpoint(StartInstance)
    async def start_instance(self, msg: StartInstance) -> None:
        """Power the guest on."""
        await self.transition(TRANSITIONS["start"], msg.instance_uuid, msg.request_id)

    @endpoint(PauseInstance)
    async def pause_instance(self, msg: PauseInstance) -> None:
        """Pause the guest (capability ``pause``)."""
        await self.transition(TRANSITIONS["pause"], msg.instance_uuid, msg.request_id)

    @endpoint(UnpauseInstance)
    async def unpause_instance(self, msg: UnpauseInstance) -> None:
        """Unpause the guest (capability ``pause``)."""
        await self.transition(TRANSITIONS["unpause"], msg.instance_uuid, msg.request_id)

    @endpoint(SuspendInstance)
    async def suspend_instance(self, msg: SuspendInstance) -> None:
        """Suspend the guest (capability ``suspend``)."""
        await self.transition(TRANSITIONS["suspend"], msg.instance_uuid, msg.request_id)

    @endpoint(ResumeInstance)
    async def resume_instance(self, msg: ResumeInstance) -> None:
        """Resume the guest (capability ``suspend``)."""
        await self.transition(TRANSITIONS["resume"], msg.instance_uuid, msg.request_id)

    async def transition(self, step: Transition, uuid: str, request_id: str) -> None:
        """Run one plain transition (see :class:`Transition`) under the instance lock."""
        event = f"compute_{step.action}_instance"  # as Nova's instance-actions show it
        async with self.acting(uuid, request_id, event, revert_task_states=[step.task]) as act:
            if act.instance.task_state != step.task:
                log.info("%s: %s of %s dropped: task is now %s", self.host, step.action, uuid,
                         act.instance.task_state)
                return
            if step.capability is not None:
                self.require(step.capability, step.action)
            await step.call(self.driver, uuid)
            await self.settle(uuid, [step.task], vm_state=step.vm_state,
                              power_state=step.power_state)

    async def settle(self, uuid: str, expected: Sequence[str | None], **changes: Any) -> bool:
        """Write an action's end (no task, and ``changes``) if the task state is still one
        of ``expected``; False when another action took the instance over meanwhile."""
        try:
            await self.db.update_instance(uuid, now=self.wall(), task_state=None,
                                          expected_task_states=list(expected), **changes)
        except (UnexpectedStateError, NotFound) as exc:
            # only actions the API lets in over ours (delete, hard reboot) get here
            log.info("%s: %s was taken over; its end is not written: %s", self.host, uuid, exc)
            return False
        return True

    # -- reboot ------------------------------------------------------------------------------
    @endpoint(RebootInstance)
    async def reboot_instance(self, msg: RebootInstance) -> None:
        """Reboot the guest; a failed hard reboot leaves the instance in ERROR."""
        uuid, hard = msg.instance_uuid, msg.hard
        queued, started = ((states.REBOOTING_HARD, states.REBOOT_STARTED_HARD) if hard
                           else (states.REBOOTING, states.REBOOT_STARTED))
        ours = _HARD_TASKS if hard else _SOFT_TASKS
        async with self.acting(uuid, msg.request_id, "compute_reboot_instance",
                               revert_task_states=list(ours)):
            try:
                await self.db.update_instance(uuid, now=self.wall(), task_state=started,
                                              expected_task_states=[queued])
            except UnexpectedStateError as exc:
                log.info("%s: reboot of %s superseded: %s", self.host, uuid, exc)
                return
            try:
                await self.driver.reboot(uuid, hard=hard)
            except Exception:
                if hard:
                    await self._hard_reboot_failed(uuid)
                raise
            await self.settle(uuid, [started], vm_state=states.ACTIVE,
                              power_state=states.RUNNING)

    async def _hard_reboot_failed(self, uuid: str) -> None:
        # the guest may be anywhere between off and running: ERROR says "look at me"
        try:
            await self.db.update_instance(
                uuid, now=self.wall(), vm_state=states.ERROR, task_state=None,
                power_state=await self.power_state_of(uuid),
                expected_task_states=[states.REBOOT_STARTED_HARD])
        except (UnexpectedStateError, NotFound):
            pass  # taken over by another hard reboot or a delete

    # -- rescue ------------------------------------------------------------------------------
    @endpoint(RescueInstance)
    async def rescue_instance(self, msg: RescueInstance) -> None:
        """Boot the guest from a rescue image; the vm_state it had is kept in system
        metadata (``old_vm_state``), as Nova keeps it."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, "compute_rescue_instance",
                               revert_task_states=[states.RESCUING]) as act:
            inst = act.instance
            if inst.task_state != states.RESCUING:
                return
            self.require(d.RESCUE, "rescue")
            await self.driver.rescue(guest_spec(inst), rescue_image_ref=msg.rescue_image_ref,
                                     admin_password=msg.admin_password)
            meta = {**inst.system_metadata, "old_vm_state": inst.vm_state}
            await self.settle(uuid, [states.RESCUING], vm_state=states.RESCUED,
                              power_state=states.RUNNING, system_metadata=meta)

    @endpoint(UnrescueInstance)
    async def unrescue_instance(self, msg: UnrescueInstance) -> None:
        """Boot the guest from its own disk again: the instance is ACTIVE."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, "compute_unrescue_instance",
                               revert_task_states=[states.UNRESCUING]) as act:
            inst = act.instance
            if inst.task_state != states.UNRESCUING:
                return
            self.require(d.RESCUE, "unrescue")
            await self.driver.unrescue(uuid)
            meta = {k: v for k, v in inst.system_metadata.items() if k != "old_vm_state"}
            await self.settle(uuid, [states.UNRESCUING], vm_state=states.ACTIVE,
                              power_state=states.RUNNING, system_metadata=meta)

    # -- consoles (calls) --------------------------------------------------------------------
    @endpoint(GetConsoleOutput)
    async def get_console_output(self, msg: GetConsoleOutput) -> str:
        """The guest's console log, or its last ``msg.length`` lines."""
        self.require(d.CONSOLE_OUTPUT, "console output")
        return tail(await self.driver.get_console_output(msg.instance_uuid), msg.length)

    @endpoint(GetConsole)
    async def get_console(self, msg: GetConsole) -> ConsoleAnswer:
        """Where the guest's console of ``msg.kind`` listens."""
        capability = d.CONSOLE_KINDS.get(msg.kind)
        if capability is None:
            raise InvalidInput(f"unknown console type {msg.kind!r}")
        self.require(capability, f"{msg.kind} consoles")
        return ConsoleAnswer(await self.driver.get_console(msg.instance_uuid, msg.kind))
