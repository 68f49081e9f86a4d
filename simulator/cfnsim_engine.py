"""The simulation: stacks, change sets and operations played over (scaled) time.

Everything that mutates state runs under `Sim.lock`: request handlers and the scheduler's
callbacks alike. Time has two faces: callbacks fire after `sim_seconds / time_scale` real
seconds, and event timestamps are in simulated time (real start + elapsed * time_scale), so a
20-minute deployment played at --time-scale 60 takes 20 s and its events span 20 minutes."""

from __future__ import annotations

import heapq
import itertools
import json
import random
import string
import sys
import threading
import time
import traceback
import uuid

import cfnsim_scenario as sc
import cfnsim_template as tpl

STACK_TYPE = tpl.NESTED_STACK_TYPE
ACCOUNT = "123456789012"

UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE",
             "IMPORT_ROLLBACK_COMPLETE"}
FAILURE_ENTRY = {"ROLLBACK_IN_PROGRESS", "CREATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_FAILED",
                 "ROLLBACK_FAILED", "ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
                 "DELETE_FAILED"}
TERMINAL = {"CREATE_COMPLETE", "CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_COMPLETE",
            "UPDATE_FAILED", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "DELETE_COMPLETE",
            "DELETE_FAILED"}


class ApiError(Exception):
    """An error CloudFormation would return: code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


def validation(message: str) -> ApiError:
    return ApiError("ValidationError", message)


class Clock:
    def __init__(self, scale: float):
        self.scale = scale if scale and scale > 0 else 1.0
        self.real0 = time.time()
        self.mono0 = time.monotonic()

    def sim_now(self) -> float:
        return self.sim_at(time.monotonic())

    def sim_at(self, mono: float) -> float:
        return self.real0 + (mono - self.mono0) * self.scale


class Scheduler:
    """Runs callbacks at simulated delays, one at a time, under the simulation lock.

    While a callback runs, `current` is its due time: events it emits are stamped with it and
    the callbacks it schedules count from it. At a high time scale a millisecond of thread
    latency is many simulated seconds; this keeps the simulated timeline exact anyway."""

    def __init__(self, lock, clock: Clock):
        self.lock = lock
        self.clock = clock
        self.heap: list = []
        self.cond = threading.Condition()
        self.seq = itertools.count()
        self.stopped = False
        self.current = None
        self.thread = threading.Thread(target=self._run, name="cfnsim-scheduler", daemon=True)
        self.thread.start()

    def after(self, sim_seconds: float, fn) -> None:
        base = self.current if self.current is not None else time.monotonic()
        due = base + max(0.0, sim_seconds) / self.clock.scale
        with self.cond:
            heapq.heappush(self.heap, (due, next(self.seq), fn))
            self.cond.notify()

    def clear(self) -> None:
        with self.cond:
            self.heap.clear()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopped:
                    if self.heap:
                        wait = self.heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self.cond.wait(wait)
                    else:
                        self.cond.wait()
                if self.stopped:
                    return
                due, _, fn = heapq.heappop(self.heap)
            with self.lock:
                self.current = due
                try:
                    fn()
                except Exception:  # a bug in one callback must not stop the whole simulation
                    traceback.print_exc(file=sys.stderr)
                finally:
                    self.current = None

    def now(self) -> float:
        """Simulated now: the running callback's due time, else the clock."""
        if self.current is not None:
            return self.clock.sim_at(self.current)
        return self.clock.sim_now()


def _rand_suffix(rng: random.Random, n: int = 12) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


class Event:
    __slots__ = ("event_id", "stack_id", "stack_name", "logical", "physical", "rtype", "ts", "status",
                 "reason", "token", "op_id", "real_time")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


class Resource:
    def __init__(self, logical: str, rtype: str):
        self.logical = logical
        self.rtype = rtype
        self.physical = None
        self.status = None
        self.reason = None
        self.ts = None
        self.child = None  # Stack, for AWS::CloudFormation::Stack resources


class Stack:
    def __init__(self, sim, name: str, parent=None, parent_logical=None):
        self.sim = sim
        self.name = name
        self.id = f"arn:aws:cloudformation:{sim.region}:{ACCOUNT}:stack/{name}/{uuid.uuid4()}"
        self.parent = parent
        self.root = parent.root if parent else self
        # A stable name for seeding: nested stacks get random names, their path does not.
        self.path = f"{parent.path}/{parent_logical}" if parent else name
        self.parent_logical = parent_logical
        self.status = None
        self.reason = None
        self.creation_time = sim.scheduler.now()
        self.last_updated = None
        self.deletion_time = None
        self.template = None
        self.template_body = None
        self.params: dict = {}
        self.tags: list = []
        self.capabilities: list = []
        self.role_arn = None
        self.disable_rollback = False
        self.description = None
        self.outputs: list = []
        self.resources: dict = {}
        self.events: list = []
        self.operations: list = []
        self.current_op = None
        self.pending: list = []
        self.change_set_id = None
        self.terminal_events: list = []

    @property
    def scope(self) -> list:
        """Scenario layers for this stack, computed on use so /_sim/scenario applies at once."""
        if self.parent is None:
            return self.sim.scenario.root_scope(self.name)
        parent_scope = self.parent.scope
        return parent_scope + [sc.nested_config(parent_scope, self.parent_logical)]

    @property
    def deleted(self) -> bool:
        return self.status == "DELETE_COMPLETE"

    def when_idle(self, fn) -> None:
        if self.current_op is None:
            fn()
        else:
            self.pending.append(fn)

    def set_template(self, template: dict, body: str, params: dict) -> None:
        self.template = template
        self.template_body = body
        self.params = params
        self.description = template.get("Description")
        for logical, res in template["Resources"].items():
            if logical not in self.resources:
                self.resources[logical] = Resource(logical, res["Type"])
            else:
                self.resources[logical].rtype = res["Type"]


class ChangeSet:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Sim:
    def __init__(self, scenario: sc.Scenario, time_scale: float = 1.0, region: str = "us-east-1"):
        self.lock = threading.RLock()
        self.clock = Clock(time_scale)
        self.scheduler = Scheduler(self.lock, self.clock)
        self.scenario = scenario
        self.region = region
        self.stacks: dict = {}  # id -> Stack
        self.change_sets: dict = {}  # id -> ChangeSet
        self.op_counter = itertools.count()

    # ------------------------------------------------------------------ lookups
    def reset(self) -> None:
        self.scheduler.clear()
        self.stacks.clear()
        self.change_sets.clear()

    def find_stack(self, name_or_id: str, include_deleted_by_id: bool = True):
        if not name_or_id:
            return None
        if name_or_id.startswith("arn:"):
            stack = self.stacks.get(name_or_id)
            if stack and (include_deleted_by_id or not stack.deleted):
                return stack
            return None
        for stack in reversed(list(self.stacks.values())):
            if stack.name == name_or_id and not stack.deleted:
                return stack
        return None

    def find_change_set(self, name_or_id: str, stack_name: str | None):
        if name_or_id and name_or_id.startswith("arn:"):
            cs = self.change_sets.get(name_or_id)
        else:
            stack = self.find_stack(stack_name) if stack_name else None
            cs = None
            if stack is not None:
                for candidate in self.change_sets.values():
                    if candidate.name == name_or_id and candidate.stack is stack:
                        cs = candidate
        if cs is None:
            raise ApiError("ChangeSetNotFound", f"ChangeSet [{name_or_id}] does not exist", 404)
        return cs

    # ------------------------------------------------------------------ events
    def emit(self, stack: Stack, logical: str, rtype: str, status: str, reason=None, physical=None,
             op=None, stack_level: bool = False) -> Event:
        ts = self.scheduler.now()
        if stack.events:  # a request handler and a late callback may race: never go back in time
            ts = max(ts, stack.events[-1].ts)
        precision = sc.scope_get(stack.scope, "timestamp_precision_ms", 1) or 1
        ts = (int(ts * 1000) // int(precision)) * int(precision) / 1000.0
        # Same-timestamp groups: the completion events of the listed logical ids all carry the
        # timestamp of the first one, as CloudFormation does for work finished in one tick.
        if op is not None and (status.endswith("_COMPLETE") or status.endswith("_FAILED")):
            groups = sc.scope_get(stack.scope, "same_timestamp_groups", []) or []
            for index, group in enumerate(groups):
                if logical in group:
                    ts = op.group_ts.setdefault(index, ts)
                    break
        if physical is None and not stack_level and logical in stack.resources:
            physical = stack.resources[logical].physical
        event = Event(
            event_id=str(uuid.uuid4()) if stack_level else f"{logical}-{status}-{uuid.uuid4()}",
            stack_id=stack.id,
            stack_name=stack.name,
            logical=logical,
            physical=stack.id if stack_level else physical,
            rtype=rtype,
            ts=ts,
            status=status,
            reason=reason,
            token=op.token if op else None,
            op_id=op.op_id if op else None,
            real_time=time.time(),
        )
        stack.events.append(event)
        if stack_level:
            stack.status = status
            stack.reason = reason
            if status in TERMINAL:
                stack.terminal_events.append({
                    "status": status,
                    "reason": reason,
                    "operation_id": op.op_id if op else None,
                    "timestamp": ts,
                    "real_time": event.real_time,
                })
            if op is not None:
                for listener in list(op.listeners):
                    listener(status, reason)
        else:
            res = stack.resources.get(logical)
            if res is not None:
                res.status = status
                res.reason = reason
                res.ts = ts
                if physical:
                    res.physical = physical
        return event

    # ------------------------------------------------------------------ stacks
    def new_stack(self, name: str, parent=None, parent_logical=None) -> Stack:
        stack = Stack(self, name, parent, parent_logical)
        self.stacks[stack.id] = stack
        return stack

    def new_child(self, parent: Stack, logical: str) -> Stack:
        cfg = sc.nested_config(parent.scope, logical)
        rng = random.Random()
        child = self.new_stack(f"{parent.name}-{logical}-{_rand_suffix(rng)}", parent=parent, parent_logical=logical)
        template = cfg.get("template") or {
            "Resources": {"Resource": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}
        body = json.dumps(template)
        parsed = tpl.parse_template(body)
        child.set_template(parsed, body, tpl.resolve_parameters(parsed, [], None))
        child.tags = list(parent.tags)
        child.capabilities = list(parent.capabilities)
        child.role_arn = parent.role_arn
        return child

    def compute_outputs(self, stack: Stack) -> list:
        overrides = sc.scope_get(stack.scope, "outputs", {}) or {}
        ctx = {
            "params": stack.params,
            "physical": {k: r.physical for k, r in stack.resources.items() if r.physical},
            "types": {k: r.rtype for k, r in stack.resources.items()},
            "pseudo": {"AWS::Region": self.region, "AWS::AccountId": ACCOUNT, "AWS::StackName": stack.name,
                       "AWS::StackId": stack.id, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"},
            "nested_outputs": {k: {o["OutputKey"]: o["OutputValue"] for o in r.child.outputs}
                               for k, r in stack.resources.items() if r.child is not None},
        }
        outputs = []
        for key, decl in (stack.template.get("Outputs") or {}).items():
            if not isinstance(decl, dict):
                continue
            value = overrides.get(key)
            if value is None:
                value = tpl.resolve_value(decl.get("Value"), ctx)
            entry = {"OutputKey": key, "OutputValue": str(value)}
            if decl.get("Description"):
                entry["Description"] = str(decl["Description"])
            export = decl.get("Export")
            if isinstance(export, dict) and "Name" in export:
                entry["ExportName"] = tpl.resolve_value(export["Name"], ctx)
            outputs.append(entry)
        return outputs

    def start_operation(self, stack: Stack, kind: str, token=None, disable_rollback=False, changes=None,
                        old=None, change_set=None):
        op = Operation(self, stack, kind, token, disable_rollback, changes or {}, old, change_set)
        op.op_type = {"CREATE": "CREATE_STACK", "UPDATE": "UPDATE_STACK", "DELETE": "DELETE_STACK",
                      "UPDATE_ROLLBACK": "ROLLBACK"}[kind]
        stack.operations.append(op)
        stack.current_op = op
        op.start()
        return op


class Phase:
    """Runs resource actions in dependency order; independent ones in parallel (waves)."""

    def __init__(self, op, items: dict, deps: dict, on_done, stop_on_failure: bool):
        self.op = op
        self.items = dict(items)
        self.deps = {k: set(deps.get(k, set())) & set(items) for k in items}
        self.on_done = on_done
        self.stop_on_failure = stop_on_failure
        self.state = {k: "pending" for k in items}
        self.tasks: dict = {}
        self.failed: list = []
        self.cancelled = False
        self.finished = False

    def start(self) -> None:
        self._advance()

    def _advance(self) -> None:
        if self.finished:
            return
        halted = self.cancelled or (self.stop_on_failure and self.failed)
        if not halted:
            for logical in sorted(self.items):
                if self.state[logical] != "pending":
                    continue
                blocked = any(self.state[d] not in ("done", "failed") or
                              (self.stop_on_failure and self.state[d] == "failed")
                              for d in self.deps[logical])
                if not blocked:
                    self.state[logical] = "running"
                    self.tasks[logical] = self.op.run_item(self, logical, self.items[logical])
        running = [k for k, s in self.state.items() if s == "running"]
        if running:
            return
        startable = [k for k, s in self.state.items() if s == "pending"]
        if startable and not halted:
            return  # cannot happen after cycle validation; keep waiting rather than lie
        self.finished = True
        self.on_done(self.failed)

    def item_done(self, logical: str, ok: bool) -> None:
        if self.state.get(logical) != "running":
            return
        self.state[logical] = "done" if ok else "failed"
        self.tasks.pop(logical, None)
        if not ok:
            self.failed.append(logical)
            if self.stop_on_failure:
                self.cancel_running()
        self._advance()

    def cancel_running(self) -> None:
        for logical in sorted(k for k, s in self.state.items() if s == "running"):
            task = self.tasks.pop(logical, None)
            self.state[logical] = "cancelled"
            if task is not None:
                task.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        self.cancel_running()
        self._advance()


class Task:
    """One resource action in flight; cancel() stops its pending callbacks."""

    def __init__(self, on_cancel=None):
        self.cancelled = False
        self.resolved = False
        self.on_cancel = on_cancel

    def cancel(self) -> None:
        if self.cancelled or self.resolved:
            return
        self.cancelled = True
        if self.on_cancel:
            self.on_cancel()


class Operation:
    def __init__(self, sim: Sim, stack: Stack, kind: str, token, disable_rollback: bool, changes: dict,
                 old: dict | None, change_set):
        self.sim = sim
        self.stack = stack
        self.kind = kind
        self.token = token
        self.disable_rollback = disable_rollback
        self.changes = changes  # logical -> Add | Modify | Remove
        self.old = old  # previous template/params/tags for update rollback
        self.change_set = change_set
        self.op_id = str(uuid.uuid4())
        self.op_type = None
        self.listeners: list = []
        self.group_ts: dict = {}
        self.phase = None
        self.cancel_reason = None
        self.done = False
        self.final_status = None
        self.started_real = time.time()
        self.number = next(sim.op_counter)
        self.new_template_doc = stack.template
        self.touched: set = set()  # resources this operation acted on (for rollback)

    # --------------------------------------------------------------- helpers
    def settings(self, logical: str, rtype: str) -> dict:
        return sc.resource_settings(self.stack.scope, logical, rtype)

    def rng(self, logical: str, what: str) -> random.Random:
        seed = self.sim.scenario.get("seed", 0)
        return sc.rng_for(seed, self.stack.path, logical, what, self.kind)

    def overhead(self) -> float:
        return sc.pick(sc.scope_get(self.stack.scope, "stack_overhead", 1.0),
                       self.rng(self.stack.name, "overhead"), 1.0)

    def stack_event(self, status: str, reason=None) -> None:
        self.sim.emit(self.stack, self.stack.name, STACK_TYPE, status, reason, op=self, stack_level=True)

    def res_event(self, res: Resource, status: str, reason=None, physical=None) -> None:
        self.sim.emit(self.stack, res.logical, res.rtype, status, reason, physical=physical, op=self)

    def after(self, seconds: float, fn) -> None:
        self.sim.scheduler.after(seconds, fn)

    def run_phase(self, items: dict, deps: dict, on_done, stop_on_failure: bool) -> None:
        self.phase = Phase(self, items, deps, on_done, stop_on_failure)
        self.phase.start()

    def cancel(self, reason: str) -> None:
        """Stop the forward phase (a parent's sibling failed): the stack then rolls back."""
        if self.done or self.cancel_reason:
            return
        self.cancel_reason = reason
        if self.phase is not None and not self.phase.finished and self.phase.stop_on_failure:
            self.phase.cancel()

    # --------------------------------------------------------------- flows
    def start(self) -> None:
        stack = self.stack
        if self.kind == "CREATE":
            self.stack_event("CREATE_IN_PROGRESS", "User Initiated")
            items = {k: "create" for k in stack.template["Resources"]}
            deps = tpl.dependencies(stack.template)
            self.after(self.overhead(), lambda: self.run_phase(items, deps, self._create_done, True))
        elif self.kind == "UPDATE":
            stack.last_updated = self.sim.scheduler.now()
            self.stack_event("UPDATE_IN_PROGRESS", "User Initiated")
            items = {k: ("create" if a == "Add" else "update") for k, a in self.changes.items() if a != "Remove"}
            deps = tpl.dependencies(stack.template)
            self.after(self.overhead(), lambda: self.run_phase(items, deps, self._update_done, True))
        elif self.kind == "DELETE":
            self.stack_event("DELETE_IN_PROGRESS", "User Initiated")
            items = {k: "delete" for k, r in stack.resources.items()
                     if r.status is not None and r.status != "DELETE_COMPLETE"}
            deps = self._reverse_deps(stack.template)
            self.after(self.overhead(), lambda: self.run_phase(items, deps, self._delete_done, False))
        elif self.kind == "UPDATE_ROLLBACK":
            self._update_rollback("Rollback requested by parent stack")
        else:  # pragma: no cover - programming error
            raise ValueError(self.kind)

    @staticmethod
    def _reverse_deps(template) -> dict:
        if not template:
            return {}
        forward = tpl.dependencies(template)
        reverse: dict = {k: set() for k in forward}
        for logical, needs in forward.items():
            for n in needs:
                reverse.setdefault(n, set()).add(logical)
        return reverse

    def _failed_list(self, failed) -> str:
        return ", ".join(failed)

    def _create_done(self, failed) -> None:
        if not failed and not self.cancel_reason:
            self.after(self.overhead(), lambda: self.finish("CREATE_COMPLETE"))
            return
        if failed:
            reason = f"The following resource(s) failed to create: [{self._failed_list(failed)}]. "
        else:
            reason = self.cancel_reason
        if self.disable_rollback:
            self.after(self.overhead(), lambda: self.finish("CREATE_FAILED", reason))
            return
        if failed:
            reason += "Rollback requested by user."
        self.stack_event("ROLLBACK_IN_PROGRESS", reason)
        items = {k: "delete" for k, r in self.stack.resources.items()
                 if r.status is not None and r.status != "DELETE_COMPLETE"}

        def rolled_back(delete_failed):
            if delete_failed:
                self.finish("ROLLBACK_FAILED",
                            f"The following resource(s) failed to delete: [{self._failed_list(delete_failed)}]. ")
            else:
                self.finish("ROLLBACK_COMPLETE")

        self.after(self.overhead(),
                   lambda: self.run_phase(items, self._reverse_deps(self.stack.template), rolled_back, False))

    def _update_done(self, failed) -> None:
        if not failed and not self.cancel_reason:
            self.stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
            removed = {k: "delete" for k, a in self.changes.items() if a == "Remove"}

            def cleaned(_delete_failed):
                # CloudFormation does not fail an update for a resource it could not clean up.
                for k in removed:
                    self.stack.resources.pop(k, None)
                self.after(self.overhead(), lambda: self.finish("UPDATE_COMPLETE"))

            deps = self._reverse_deps(self.old["template"] if self.old else None)
            self.after(self.overhead(), lambda: self.run_phase(removed, deps, cleaned, False))
            return
        if failed:
            verbs = {"create" if self.changes.get(k) == "Add" else "update" for k in failed}
            verb = "update" if "update" in verbs else "create"
            reason = f"The following resource(s) failed to {verb}: [{self._failed_list(failed)}]. "
        else:
            reason = self.cancel_reason
        if self.disable_rollback:
            self.after(self.overhead(), lambda: self.finish("UPDATE_FAILED", reason))
            return
        self._update_rollback(reason)

    def _update_rollback(self, reason: str) -> None:
        """Revert modified resources, then delete the added ones (cleanup), like CloudFormation."""
        stack = self.stack
        self.stack_event("UPDATE_ROLLBACK_IN_PROGRESS", reason)
        if self.old:
            stack.template = self.old["template"]
            stack.template_body = self.old["body"]
            stack.params = self.old["params"]
            stack.tags = self.old["tags"]
        # A child reverted by its parent rolls back everything its completed update touched.
        touched = self.touched if self.kind == "UPDATE" else set(self.changes)
        reverted = {k: "revert" for k, a in self.changes.items()
                    if a == "Modify" and k in touched and k in stack.resources}
        added = {k: "delete" for k, a in self.changes.items()
                 if a == "Add" and k in touched and k in stack.resources}

        def reverted_done(revert_failed):
            if revert_failed:
                self.finish("UPDATE_ROLLBACK_FAILED",
                            f"The following resource(s) failed to update: [{self._failed_list(revert_failed)}]. ")
                return
            self.stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")

            def cleaned(_delete_failed):
                for k in self.changes:
                    if self.changes[k] == "Add":
                        stack.resources.pop(k, None)
                self.after(self.overhead(), lambda: self.finish("UPDATE_ROLLBACK_COMPLETE"))

            self.after(self.overhead(), lambda: self.run_phase(added, self._reverse_deps(self.new_template_doc),
                                                               cleaned, False))

        deps = self._reverse_deps(stack.template)
        self.after(self.overhead(), lambda: self.run_phase(reverted, deps, reverted_done, False))

    def _delete_done(self, failed) -> None:
        if failed:
            self.finish("DELETE_FAILED",
                        f"The following resource(s) failed to delete: [{self._failed_list(failed)}]. ")
        else:
            self.after(self.overhead(), lambda: self.finish("DELETE_COMPLETE"))

    def finish(self, status: str, reason=None) -> None:
        stack = self.stack
        if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            stack.outputs = self.sim.compute_outputs(stack)
        if status == "DELETE_COMPLETE":
            stack.deletion_time = self.sim.scheduler.now()
        self.done = True
        self.final_status = status
        stack.current_op = None
        if self.change_set is not None:
            ok = status in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
            self.change_set.exec_status = "EXECUTE_COMPLETE" if ok else "EXECUTE_FAILED"
        self.stack_event(status, reason)
        pending, stack.pending = stack.pending, []
        for fn in pending:
            fn()

    # --------------------------------------------------------------- resources
    def run_item(self, phase: Phase, logical: str, action: str) -> Task:
        res = self.stack.resources[logical]
        self.touched.add(logical)
        if res.rtype == STACK_TYPE:
            return self._run_nested(phase, res, action)
        settings = self.settings(logical, res.rtype)
        rng = self.rng(logical, action)
        task = Task()
        duration_key = {"create": "duration", "update": "update_duration", "revert": "update_duration",
                        "delete": "delete_duration"}[action]
        base = sc.pick(settings.get("duration"), rng, 5.0)
        duration = sc.pick(settings.get(duration_key), rng, base if action != "delete" else base * 0.5) \
            if duration_key != "duration" else base

        def finish(ok_status, fail_status, fail_reason):
            if task.cancelled:
                return
            task.resolved = True
            if fail_reason:
                self.res_event(res, fail_status, fail_reason)
                phase.item_done(logical, False)
            else:
                self.res_event(res, ok_status)
                phase.item_done(logical, True)

        if action == "create":
            fail = sc.failure_reason(settings, "create")
            initiated = min(sc.pick(settings.get("initiated_delay", sc.scope_get(
                self.stack.scope, "initiated_delay", [0.2, 1.0])), rng, 0.5), duration)
            self.res_event(res, "CREATE_IN_PROGRESS")
            task.on_cancel = lambda: self.res_event(res, "CREATE_FAILED", "Resource creation cancelled")

            def initiated_event():
                if task.cancelled or task.resolved:
                    return
                physical = f"{self.stack.name}-{logical}-{_rand_suffix(rng)}"
                self.res_event(res, "CREATE_IN_PROGRESS", "Resource creation Initiated", physical=physical)

            self.after(initiated, initiated_event)
            self.after(duration, lambda: finish("CREATE_COMPLETE", "CREATE_FAILED", fail))
        elif action in ("update", "revert"):
            fail = sc.failure_reason(settings, "update") if action == "update" else None
            self.res_event(res, "UPDATE_IN_PROGRESS", physical=res.physical)
            task.on_cancel = lambda: self.res_event(res, "UPDATE_FAILED", "Resource update cancelled")
            self.after(duration, lambda: finish("UPDATE_COMPLETE", "UPDATE_FAILED", fail))
        elif action == "delete":
            fail = sc.failure_reason(settings, "delete")
            self.res_event(res, "DELETE_IN_PROGRESS", physical=res.physical)
            self.after(duration, lambda: finish("DELETE_COMPLETE", "DELETE_FAILED", fail))
        return task

    def _run_nested(self, phase: Phase, res: Resource, action: str) -> Task:
        """An AWS::CloudFormation::Stack resource: play a child stack and follow it."""
        sim = self.sim
        cfg = sc.nested_config(self.stack.scope, res.logical)
        rng = self.rng(res.logical, action)
        lag = sc.pick(cfg.get("complete_lag", sc.scope_get(self.stack.scope, "nested_complete_lag", [3, 10])),
                      rng, 5.0)
        task = Task()

        def resolve(ok: bool, status: str, reason=None, delay: float = 0.0):
            if task.cancelled or task.resolved:
                return
            task.resolved = True

            def emit():
                self.res_event(res, status, reason, physical=res.physical)
                phase.item_done(res.logical, ok)

            if delay > 0:
                self.after(delay, emit)
            else:
                emit()

        if action == "create":
            self.res_event(res, "CREATE_IN_PROGRESS")
            child = sim.new_child(self.stack, res.logical)
            res.child = child

            def on_child(status, reason):
                if status == "CREATE_COMPLETE":
                    resolve(True, "CREATE_COMPLETE", delay=lag)
                elif status in FAILURE_ENTRY:
                    resolve(False, "CREATE_FAILED",
                            f"Embedded stack {child.id} was not successfully created: {reason or status}")

            op = sim.start_operation(child, "CREATE", token=self.token, disable_rollback=self.disable_rollback)
            op.listeners.append(on_child)

            def cancel():
                self.res_event(res, "CREATE_FAILED", "Resource creation cancelled")
                op.cancel("Resource creation cancelled")

            task.on_cancel = cancel

            def initiated():
                if not task.cancelled:
                    self.res_event(res, "CREATE_IN_PROGRESS", "Resource creation Initiated", physical=child.id)

            self.after(min(0.5, lag), initiated)
        elif action == "update":
            child = res.child
            self.res_event(res, "UPDATE_IN_PROGRESS", physical=res.physical)
            if child is None or child.deleted:
                resolve(False, "UPDATE_FAILED", "Nested stack does not exist")
                return task
            selected = cfg.get("update_changes")
            names = list(child.template["Resources"]) if selected is None else [
                n for n in selected if n in child.template["Resources"]]
            changes = {n: "Modify" for n in names}
            old = {"template": child.template, "body": child.template_body, "params": child.params,
                   "tags": child.tags}

            def on_child(status, reason):
                if status == "UPDATE_COMPLETE":
                    resolve(True, "UPDATE_COMPLETE", delay=lag)
                elif status in FAILURE_ENTRY:
                    resolve(False, "UPDATE_FAILED",
                            f"Embedded stack {child.id} was not successfully updated. Currently in {status} "
                            f"with reason: {reason or status}")

            def go():
                op = sim.start_operation(child, "UPDATE", token=self.token, disable_rollback=self.disable_rollback,
                                         changes=changes, old=old)
                op.listeners.append(on_child)
                task.on_cancel = lambda: (self.res_event(res, "UPDATE_FAILED", "Resource update cancelled"),
                                          op.cancel("Resource update cancelled"))

            child.when_idle(go)
        elif action == "revert":
            child = res.child
            self.res_event(res, "UPDATE_IN_PROGRESS", physical=res.physical)

            def revert():
                last = child.operations[-1] if child.operations else None
                if child.status in ("UPDATE_COMPLETE",) and last is not None and last.kind == "UPDATE":
                    op = sim.start_operation(child, "UPDATE_ROLLBACK", token=self.token, changes=last.changes,
                                             old=last.old)
                    op.listeners.append(lambda status, reason: (
                        resolve(True, "UPDATE_COMPLETE", delay=lag) if status == "UPDATE_ROLLBACK_COMPLETE" else
                        resolve(False, "UPDATE_FAILED", reason) if status == "UPDATE_ROLLBACK_FAILED" else None))
                else:
                    resolve(True, "UPDATE_COMPLETE", delay=lag)

            if child is None:
                resolve(True, "UPDATE_COMPLETE")
            else:
                child.when_idle(revert)
        elif action == "delete":
            child = res.child
            self.res_event(res, "DELETE_IN_PROGRESS", physical=res.physical)

            def delete():
                if child.deleted:
                    resolve(True, "DELETE_COMPLETE", delay=0.5)
                    return
                op = sim.start_operation(child, "DELETE", token=self.token)
                op.listeners.append(lambda status, reason: (
                    resolve(True, "DELETE_COMPLETE", delay=min(lag, 2.0)) if status == "DELETE_COMPLETE" else
                    resolve(False, "DELETE_FAILED",
                            f"Embedded stack {child.id} was not successfully deleted: {reason}")
                    if status == "DELETE_FAILED" else None))

            if child is None:
                resolve(True, "DELETE_COMPLETE", delay=0.5)
            else:
                child.when_idle(delete)
        return task
