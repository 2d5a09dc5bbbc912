"""The engine on one node: restores and removes hierarchies, checks resources, recovers them.

Owns the runtime state of every resource here and persists each change, so a restarted
daemon re-adopts what is still running instead of restarting it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tutela.engine.actions import ActionCall, ActionCrashed, ActionRunner, ThreadRunner
from tutela.engine.executor import ActionFailed, Outcome, execute
from tutela.engine.planner import Plan, Step, plan_remove, plan_restore
from tutela.engine.recovery import RecoveryTracker
from tutela.journal.events import Emitter, no_events, recorded
from tutela.kits.base import CheckResult, KitError
from tutela.kits.registry import get_kit
from tutela.lcm.ticks import grid_delay
from tutela.model.config import ClusterConfig, Resource
from tutela.model.errors import Problem
from tutela.model.hierarchy import Hierarchy, build_hierarchies, hierarchy_of
from tutela.model.states import ResourceState

log = logging.getLogger("tutela.engine")
MAINTENANCE_REASON = "left in service by 'tutela stop --leave-resources', unprotected"


class StateStore(Protocol):
    def save_state(self, tag: str, state: ResourceState, reason: str) -> None: ...

    def forget_state(self, tag: str) -> None: ...


@dataclass(frozen=True)
class RuntimeState:
    state: ResourceState
    reason: str
    since: str
    last_in_service: str | None = None
    """When it last went into service on this node (ISO UTC), None if never."""


class OperationError(Exception):
    """A restore or remove did not complete; the message says which resource and why."""


class LeaseGone(OperationError):
    """A restore stopped because this node no longer holds the hierarchy's lease."""


class RestoreRefused(OperationError):
    """A pre-check refused the restore before anything changed (e.g. the address still
    answers elsewhere): not a failure of this node, a reason to wait."""


class NodeEngine:
    def __init__(self, config: ClusterConfig, store: StateStore, state_dir: Path,
                 initial: Mapping[str, RuntimeState] | None = None,
                 runner: ActionRunner | None = None) -> None:
        """`runner`: where kit actions run (default: threads of this process)."""
        self._store = store
        self.journal: Emitter = no_events
        self._resource_dirs = state_dir / "resources"
        self.runner: ActionRunner = runner if runner is not None else ThreadRunner()
        self._locks: dict[str, asyncio.Lock] = {}
        self._monitors: dict[str, asyncio.Task[None]] = {}
        self._trackers: dict[str, RecoveryTracker] = {}
        self.states: dict[str, RuntimeState] = dict(initial or {})
        self.config = config
        self.hierarchies = build_hierarchies(config.resources)

    # --- configuration -------------------------------------------------------------

    def check_change(self, new: ClusterConfig,
                     in_service_elsewhere: Mapping[str, str] | None = None) -> list[Problem]:
        """Problems a new configuration would cause for resources in service now: here, or
        on another node as its last heartbeat said (`in_service_elsewhere`: tag -> node), so
        that a change made on any node is judged alike."""
        problems: list[Problem] = []
        running = {**(in_service_elsewhere or {}),  # here ("") wins over a peer's report
                   **{t: "" for t, s in self.states.items() if s.state.in_service}}
        for tag, node in running.items():
            old_resource, new_resource = self.config.resource(tag), new.resource(tag)
            field, where = f"resources[{tag}]", f" on {node}" if node else ""
            if new_resource is None:
                problems.append(Problem(field, f"is in service{where} and would be deleted",
                                        f"take it out of service first: tutela remove {tag}"))
            elif old_resource and (new_resource.kit, new_resource.params) != (
                    old_resource.kit, old_resource.params):
                problems.append(Problem(f"{field}.params",
                                        f"cannot change while in service{where}",
                                        f"take it out of service first: tutela remove {tag}"))
            elif not node:
                problems += [
                    Problem(f"{field}.depends_on", f"child {child!r} is not in service",
                            f"bring it in service first: tutela restore {child}")
                    for child in new_resource.depends_on if not self._in_service(child)
                ]
        return problems

    def update_config(self, new: ClusterConfig) -> None:
        """Adopt a committed configuration (already validated and checked). Resources it
        leaves as they were keep their state, monitor and recovery count untouched: a
        change elsewhere in a large cluster must cost nothing per resource."""
        old = self.config
        self.config = new
        self.hierarchies = build_hierarchies(new.resources)
        for tag in list(self.states):
            if new.resource(tag) is None:
                self.states.pop(tag)
                self._store.forget_state(tag)
                self._stop_monitor(tag)
        for resource in new.resources:
            if resource.tag in self.states and old.resource(resource.tag) == resource:
                continue
            self.states.setdefault(resource.tag, self._new_state(ResourceState.OSU, "created"))
            self._trackers.pop(resource.tag, None)  # the recovery policy may have changed
            if self._in_service(resource.tag):
                self._set(resource.tag, self._service_state(resource), "configuration changed")
                self._start_monitor(resource)
            else:
                self._stop_monitor(resource.tag)

    # --- operations ----------------------------------------------------------------

    async def adopt(self) -> None:
        """At start-up: check what the last run left in service and take it over as it is."""
        for resource in self.config.resources:
            previous = self.states.get(resource.tag)
            if previous is None or not previous.state.in_service:
                self.states[resource.tag] = previous or self._new_state(ResourceState.OSU, "new")
                continue
            result = await self._check(resource)
            if result.healthy:
                self._set(resource.tag, self._service_state(resource), "re-adopted after restart")
                self._start_monitor(resource)
            elif self._clustered(resource.tag):
                # Not ours to repair: without its lease another node may run it by now
                # (this node may have been powered off). The cluster decides who restores.
                self._set(resource.tag, ResourceState.OSU,
                          f"was in service before the restart but {result.reason}; left to "
                          "the cluster")
            else:
                log.warning("%s: was in service before the restart but %s; recovering",
                            resource.tag, result.reason)
                self._start_monitor(resource, check_now=True)

    async def restore(self, tag: str, allowed: Callable[[], bool] | None = None) -> Plan:
        """Restore `tag` and what it needs. `allowed`, for a clustered hierarchy, says
        whether this node still holds its lease: checked once the hierarchy's lock is held
        (a self-fence may have run meanwhile) and before every step."""
        hierarchy = self._hierarchy(tag)
        async with self._lock(hierarchy):
            plan = plan_restore(hierarchy, tag, self._state_map())
            self._still_allowed(tag, allowed)
            log.info("restore %s: %s", tag, " ".join(plan.tags) or "nothing to do")
            await self._pre_restore_checks(plan)

            async def run_step(step: Step) -> None:
                self._still_allowed(tag, allowed)
                await self._run_step(step)

            outcome = await execute(plan, run_step)
            if not outcome.ok:
                await self._roll_back(hierarchy, outcome)
                self._still_allowed(tag, allowed)  # a lost lease is no failure of this node
                raise OperationError(_describe_failure("restore", tag, outcome))
        return plan

    @staticmethod
    def _still_allowed(tag: str, allowed: Callable[[], bool] | None) -> None:
        if allowed is not None and not allowed():
            raise LeaseGone(f"restore {tag}: this node no longer holds its lease; "
                            "not restoring anything more")

    async def remove(self, tag: str) -> Plan:
        hierarchy = self._hierarchy(tag)
        async with self._lock(hierarchy):
            plan = plan_remove(hierarchy, tag, self._state_map())
            log.info("remove %s: %s", tag, " ".join(plan.tags) or "nothing to do")
            outcome = await execute(plan, self._run_step)
            if not outcome.ok:
                raise OperationError(_describe_failure("remove", tag, outcome))
        return plan

    async def fence(self, root: str, force: bool = False) -> None:
        """Self-fencing: the whole hierarchy out of service, its addresses first (quickest to
        drop, and what clients reach). `force` is the quorum-loss action fastkill: each
        kit's force_remove, without waiting for a restore or remove still running."""
        hierarchy = self._hierarchy(root)
        if force:
            await self._fence(hierarchy, force=True)
            async with self._lock(hierarchy):  # a restore still running may have put parts
                await self._fence(hierarchy, force=True)  # back: once more after it
            return
        async with self._lock(hierarchy):
            await self._fence(hierarchy, force=False)

    async def _fence(self, hierarchy: Hierarchy, force: bool) -> None:
        plan = plan_remove(hierarchy, hierarchy.root, self._state_map())
        first = {t for t in plan.tags if get_kit(self._resource(t).kit).fence_first}
        waves = (tuple(Step(t, "remove", frozenset()) for t in plan.tags if t in first),
                 tuple(Step(s.tag, "remove", s.after - first)
                       for s in plan.steps if s.tag not in first))
        log.warning("fence %s%s: %s", hierarchy.root, " (fastkill)" if force else "",
                    " ".join(sorted(first)) + " first, then the rest" if first else "all")

        async def run_step(step: Step) -> None:
            await self._run_step(step, force)

        for steps in waves:
            outcome = await execute(Plan("remove", hierarchy.root, steps), run_step)
            if not outcome.ok:
                raise OperationError(_describe_failure("remove", hierarchy.root, outcome))

    async def remove_all(self) -> None:
        """Take every hierarchy out of service, each independently, in parallel."""
        results = await asyncio.gather(
            *(self._remove_at_stop(h) for h in self.hierarchies), return_exceptions=True)
        for hierarchy, result in zip(self.hierarchies, results, strict=True):
            if isinstance(result, BaseException):
                log.error("stop: could not remove %s: %s", hierarchy.root, result)

    async def _remove_at_stop(self, hierarchy: Hierarchy) -> None:
        """One hierarchy's remove at stop, recorded when any of it is in service here."""
        if not any(self._in_service(tag) for tag in hierarchy.members):
            await self.remove(hierarchy.root)
            return
        with recorded(self.journal, "remove", hierarchy.root, "tutelad stops"):
            await self.remove(hierarchy.root)

    async def shutdown(self, leave_resources: bool) -> None:
        for tag in list(self._monitors):
            self._stop_monitor(tag)
        if leave_resources:
            self.leave_unprotected()
        else:
            await self.remove_all()
        self.runner.close()

    def leave_unprotected(self) -> None:
        """A maintenance stop: whatever is in service stays so, unprotected (ISU) from now
        on, as nothing checks or recovers it; the next start re-adopts it (ISP again)."""
        for tag, current in list(self.states.items()):
            if current.state.in_service:
                self._set(tag, ResourceState.ISU, MAINTENANCE_REASON)

    # --- steps, checks, recovery ---------------------------------------------------

    async def _pre_restore_checks(self, plan: Plan) -> None:
        """Every resource's pre-check passes before anything of the hierarchy is restored."""
        async def check(tag: str) -> None:
            await self._call(self._resource(tag), "restore", "pre_restore_check")

        results = await asyncio.gather(*(check(t) for t in plan.tags), return_exceptions=True)
        failures = [f"{tag}: {r}" for tag, r in zip(plan.tags, results, strict=True)
                    if isinstance(r, BaseException)]
        if failures:
            raise RestoreRefused(f"restore {plan.target} refused before any change: "
                                 + "; ".join(failures))

    async def _run_step(self, step: Step, force: bool = False) -> None:
        resource = self._resource(step.tag)
        method = step.action if step.action == "restore" or not force else "force_remove"
        try:
            await self._call(resource, step.action, method)
        except ActionFailed as error:
            state = ResourceState.OSF
            self._set(step.tag, state, f"{step.action} failed: {error}")
            raise
        if step.action == "restore":
            self._set(step.tag, self._service_state(resource), "restored")
            self._trackers.pop(step.tag, None)
            self._start_monitor(resource)
        else:
            self._stop_monitor(step.tag)
            self._set(step.tag, ResourceState.OSU, "removed")

    async def _roll_back(self, hierarchy: Hierarchy, outcome: Outcome) -> None:
        """Undo a half-done restore, so the hierarchy is not left partly in service."""
        restored = set(outcome.done)
        if not restored:
            return
        log.warning("restore failed; removing what it had restored: %s", " ".join(sorted(restored)))
        undo = plan_remove(hierarchy, hierarchy.root, self._state_map())
        steps = tuple(Step(s.tag, "remove", s.after & restored)
                      for s in undo.steps if s.tag in restored)
        await execute(Plan("remove", hierarchy.root, steps), self._run_step)

    async def _check(self, resource: Resource) -> CheckResult:
        try:
            result: CheckResult = await self._call(resource, "quick_check", "quick_check")
            return result
        except ActionFailed as error:
            return CheckResult(False, str(error))

    def _start_monitor(self, resource: Resource, check_now: bool = False) -> None:
        if not resource.protected or resource.tag in self._monitors:
            return
        self._monitors[resource.tag] = asyncio.create_task(
            self._monitor(resource.tag, check_now), name=f"monitor-{resource.tag}")

    def _stop_monitor(self, tag: str) -> None:
        task = self._monitors.pop(tag, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _monitor(self, tag: str, check_now: bool) -> None:
        while True:
            resource = self._resource(tag)
            if not check_now:
                # The check period, ended on the next heartbeat tick: checks share the
                # heartbeat round's wake-up instead of each adding one (lcm.ticks).
                tick = self.config.settings.heartbeat_interval
                await asyncio.sleep(grid_delay(time.time(), tick, resource.check_interval))
            check_now = False
            if not self._still_monitoring(tag):
                return
            hierarchy = self._hierarchy(tag)
            if self._lock(hierarchy).locked():
                continue  # an operation is changing this hierarchy; check next period
            result = await self._check(resource)
            if result.healthy:
                continue
            async with self._lock(hierarchy):
                if not self._still_monitoring(tag):
                    return  # removed while it was checked: nothing to recover
                if not await self._recover(resource, result.reason):
                    self._monitors.pop(tag, None)
                    return

    def _still_monitoring(self, tag: str) -> bool:
        """Whether the running monitor is still `tag`'s, and `tag` in service. A remove
        stops the monitor by cancelling it, but a cancellation that arrives as its check
        returns can be lost (asyncio.wait_for in Python 3.11); the monitor then recovered a
        resource just removed, which for a device on shared storage undid the new owner's
        work (tests/lab/test_device_lab.py)."""
        return self._monitors.get(tag) is asyncio.current_task() and self._in_service(tag)

    async def _recover(self, resource: Resource, reason: str) -> bool:
        """Local recovery after a failed check; False when the resource is now failed."""
        tag = resource.tag
        tracker = self._trackers.setdefault(tag, RecoveryTracker(resource.recovery))
        loop = asyncio.get_running_loop()
        while tracker.on_failure(loop.time()) == "recover":
            attempt = tracker.attempts_in_window
            log.warning("%s: quick check failed (%s); local recovery attempt %d of %d",
                        tag, reason, attempt, resource.recovery.attempts)
            self._set(tag, ResourceState.UNKNOWN, f"recovering: {reason}")
            self.journal("recovery.local", tag, f"quick check failed: {reason}", details={
                "attempt": attempt, "attempts": resource.recovery.attempts})
            try:
                await self._call(resource, "recover", "recover")
                result = await self._check(resource)
            except ActionFailed as error:
                result = CheckResult(False, str(error))
            if result.healthy:
                self._set(tag, self._service_state(resource), f"recovered after: {reason}")
                return True
            reason = result.reason
        self._set(tag, ResourceState.OSF,
                  f"local recovery gave up after {resource.recovery.attempts} attempt(s) "
                  f"within {resource.recovery.window:g}s: {reason}")
        return False

    async def _call(self, resource: Resource, action: str, method: str) -> Any:
        """Run one kit action (`method` of the resource's kit) through the runner, bounded
        by the timeout of `action`."""
        timeout = resource.timeouts.get(action, get_kit(resource.kit).default_timeouts[action])
        call = ActionCall(resource.kit, method, resource.tag, dict(resource.params),
                          str(self._resource_dirs / resource.tag), timeout)
        try:
            return await asyncio.wait_for(self.runner.run(call), timeout)
        except TimeoutError:
            raise ActionFailed(f"{action} timed out after {timeout:g}s") from None
        except KitError as error:
            raise ActionFailed(str(error)) from None
        except ActionCrashed as error:  # where it ran, its traceback was logged
            raise ActionFailed(f"{action} crashed: {error}") from None
        except Exception as error:  # a kit bug must not take the daemon down
            log.exception("%s: %s raised", resource.tag, action)
            raise ActionFailed(f"{action} crashed: {error!r}") from None

    # --- state -----------------------------------------------------------------------

    def _set(self, tag: str, state: ResourceState, reason: str) -> None:
        previous = self.states.get(tag)
        if previous is not None and (previous.state, previous.reason) == (state, reason):
            return
        self.states[tag] = self._new_state(state, reason,
                                           previous.last_in_service if previous else None)
        self._store.save_state(tag, state, reason)
        before = previous.state if previous else "-"
        level = logging.ERROR if state == ResourceState.OSF else logging.INFO
        log.log(level, "%s: %s -> %s (%s)", tag, before, state, reason)
        if state == ResourceState.OSF:
            self.journal("resource.osf", tag, reason)

    @staticmethod
    def _new_state(state: ResourceState, reason: str,
                   last_in_service: str | None = None) -> RuntimeState:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        return RuntimeState(state, reason, now, now if state.in_service else last_in_service)

    @staticmethod
    def _service_state(resource: Resource) -> ResourceState:
        return ResourceState.ISP if resource.protected else ResourceState.ISU

    def _state_map(self) -> dict[str, ResourceState]:
        return {tag: s.state for tag, s in self.states.items()}

    def _in_service(self, tag: str) -> bool:
        current = self.states.get(tag)
        return current is not None and current.state.in_service

    def _clustered(self, tag: str) -> bool:
        """Whether the cluster decides where TAG's hierarchy runs (it has equivalencies):
        under an ownership lease, or as multi-node instances (a lost one may no longer be
        wanted here: max_instances may have given its place to another node)."""
        hierarchy = hierarchy_of(self.hierarchies, tag)
        return hierarchy is not None and bool(
            self.config.hierarchy_settings(hierarchy.root).equivalencies)

    def _resource(self, tag: str) -> Resource:
        resource = self.config.resource(tag)
        if resource is None:
            raise OperationError(f"no resource {tag!r}; see 'tutela status' for the tags")
        return resource

    def _hierarchy(self, tag: str) -> Hierarchy:
        hierarchy = hierarchy_of(self.hierarchies, tag)
        if hierarchy is None:
            raise OperationError(f"no resource {tag!r}; see 'tutela status' for the tags")
        return hierarchy

    def _lock(self, hierarchy: Hierarchy) -> asyncio.Lock:
        return self._locks.setdefault(hierarchy.root, asyncio.Lock())


def _describe_failure(action: str, tag: str, outcome: Outcome) -> str:
    failed = "; ".join(f"{t}: {why}" for t, why in outcome.failed.items())
    return f"{action} {tag} failed: {failed}" + (
        f" (not attempted: {', '.join(outcome.not_started)})" if outcome.not_started else "")
