"""The API side of reboot, stop/start, pause, suspend, rescue and consoles.

Each action is checked and started with :meth:`ApiBase.begin` (visibility,
lock, state, the task state set in one conditional write, the instance action
recorded) and then cast to the instance's host, which does the work (see
:mod:`nimbus.core.compute.power`). The API cannot know the host's driver: an
action the driver does not support ends on the host with a fault and the task
state put back, as in Nova.

Console output and console locations are reads: they record no action, need no
unlocked instance, and are RPC calls to the host whose answer (or error, turned
back into its own class) goes to the caller.
"""

from __future__ import annotations

from nimbus.core.compute import states
from nimbus.core.compute.api_base import ApiBase
from nimbus.core.compute.driver import CONSOLE_KINDS, ConsoleInfo
from nimbus.core.compute.messages import compute_topic
from nimbus.core.compute.power import (
    ConsoleAnswer,
    GetConsole,
    GetConsoleOutput,
    InstanceCast,
    PauseInstance,
    RebootInstance,
    RescueInstance,
    ResumeInstance,
    StartInstance,
    StopInstance,
    SuspendInstance,
    UnpauseInstance,
    UnrescueInstance,
)
from nimbus.core.context import RequestContext
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import InvalidInput, MessageError, RemoteError, local_error

#: The plain actions (named as their rules): the task state each sets, the message it casts.
_PLAIN: dict[str, tuple[str, type[InstanceCast]]] = {
    "stop": (states.POWERING_OFF, StopInstance),
    "start": (states.POWERING_ON, StartInstance),
    "pause": (states.PAUSING, PauseInstance),
    "unpause": (states.UNPAUSING, UnpauseInstance),
    "suspend": (states.SUSPENDING, SuspendInstance),
    "resume": (states.RESUMING, ResumeInstance),
    "unrescue": (states.UNRESCUING, UnrescueInstance),
}


def _host(inst: InstanceRecord) -> str:
    # every power rule needs a host, so begin/check_state refused a host-less instance
    assert inst.host is not None, f"instance {inst.uuid} has no host"
    return inst.host


class PowerApi(ApiBase):
    """The API side of reboot, stop/start, pause, suspend, rescue and consoles."""

    async def reboot(self, ctx: RequestContext, uuid: str, hard: bool = False) -> None:
        """Reboot an instance: soft only from ACTIVE and idle; hard also from STOPPED,
        PAUSED, SUSPENDED or ERROR, and over a reboot under way (as Nova)."""
        rule, task = ("reboot_hard", states.REBOOTING_HARD) if hard else (
            "reboot_soft", states.REBOOTING)
        inst = await self.begin(ctx, uuid, rule, task_state=task, record="reboot")
        await self.cast_compute(_host(inst), RebootInstance(uuid, ctx.request_id, hard))

    async def stop(self, ctx: RequestContext, uuid: str) -> None:
        """Power an instance off (it rests in ``stopped``)."""
        await self._plain(ctx, uuid, "stop")

    async def start(self, ctx: RequestContext, uuid: str) -> None:
        """Power a stopped instance on."""
        await self._plain(ctx, uuid, "start")

    async def pause(self, ctx: RequestContext, uuid: str) -> None:
        """Pause an active instance."""
        await self._plain(ctx, uuid, "pause")

    async def unpause(self, ctx: RequestContext, uuid: str) -> None:
        """Unpause a paused instance."""
        await self._plain(ctx, uuid, "unpause")

    async def suspend(self, ctx: RequestContext, uuid: str) -> None:
        """Suspend an active instance."""
        await self._plain(ctx, uuid, "suspend")

    async def resume(self, ctx: RequestContext, uuid: str) -> None:
        """Resume a suspended instance."""
        await self._plain(ctx, uuid, "resume")

    async def rescue(self, ctx: RequestContext, uuid: str, rescue_image_ref: str | None = None,
                     admin_password: str | None = None) -> None:
        """Boot an instance from a rescue image (its own image by default)."""
        inst = await self.begin(ctx, uuid, "rescue", task_state=states.RESCUING)
        await self.cast_compute(_host(inst), RescueInstance(
            uuid, ctx.request_id, rescue_image_ref, admin_password))

    async def unrescue(self, ctx: RequestContext, uuid: str) -> None:
        """Boot a rescued instance from its own disk again."""
        await self._plain(ctx, uuid, "unrescue")

    async def _plain(self, ctx: RequestContext, uuid: str, action: str) -> None:
        task, msg_type = _PLAIN[action]
        inst = await self.begin(ctx, uuid, action, task_state=task)
        await self.cast_compute(_host(inst), msg_type(uuid, ctx.request_id))

    # -- consoles ----------------------------------------------------------------------------
    async def get_console_output(self, ctx: RequestContext, uuid: str,
                                 length: int | None = None) -> str:
        """The instance's console log, or its last ``length`` lines (-1 or None: all)."""
        if length is not None and length < -1:
            raise InvalidInput(f"length {length} must be -1 (all) or more")
        inst = await self.get(ctx, uuid)
        self.check_state(inst, "console_output")
        out = await self._call_host(_host(inst), GetConsoleOutput(
            uuid, None if length == -1 else length))
        if not isinstance(out, str):
            raise MessageError(f"console output of {uuid} came back as {type(out).__name__}")
        return out

    async def get_console(self, ctx: RequestContext, uuid: str, kind: str) -> ConsoleInfo:
        """Where the instance's console of ``kind`` (of ``CONSOLE_KINDS``) listens;
        ``DriverNotSupported`` (409) if its host's driver has no such console."""
        if kind not in CONSOLE_KINDS:
            raise InvalidInput(f"unknown console type {kind!r}; valid types: "
                               f"{', '.join(sorted(CONSOLE_KINDS))}")
        inst = await self.get(ctx, uuid)
        self.check_state(inst, "console_output")  # consoles are read in the same states
        answer = await self._call_host(_host(inst), GetConsole(uuid, kind))
        if not isinstance(answer, ConsoleAnswer):
            raise MessageError(f"console of {uuid} came back as {type(answer).__name__}")
        return answer.info

    async def _call_host(self, host: str, msg: object) -> object:
        """Call the compute service of ``host``; its error comes back as its own class."""
        try:
            result: object = await self.rpc.call(compute_topic(host), msg)
        except RemoteError as err:
            raise local_error(err) from None
        return result
