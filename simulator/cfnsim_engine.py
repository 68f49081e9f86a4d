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
import sys
import threading
import time
import traceback
import uuid

import cfnsim_scenario as sc
import cfnsim_status as st
import cfnsim_template as tpl
from cfnsim_operation import OPERATION_TYPES, Operation

STACK_TYPE = tpl.NESTED_STACK_TYPE
ACCOUNT = "123456789012"
UPDATABLE = st.UPDATABLE


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


class Event:
    """A stack event. `seq` orders everything the simulation emits (events, operation starts and
    ends, validation errors) for DescribeEvents; `detailed`/`hook` hold DetailedStatus and the
    Hook* fields of the events that have them."""

    __slots__ = ("event_id", "stack_id", "stack_name", "logical", "physical", "rtype", "ts", "status",
                 "reason", "token", "op_id", "real_time", "seq", "detailed", "hook")

    def __init__(self, **kw):
        self.detailed = None
        self.hook = None
        for k, v in kw.items():
            setattr(self, k, v)


class OpRecord:
    """One CloudFormation operation as DescribeEvents groups them: an OperationId, its type, when
    it started and ended, and how. A deployment that fails and rolls back is two of them (the
    automatic rollback has its own OperationId), a change set's creation is one too."""

    def __init__(self, sim, stack, op_type: str, token):
        self.op_id = str(uuid.uuid4())
        self.op_type = op_type
        self.stack = stack
        self.token = token
        self.start = sim.scheduler.now()
        self.end = None
        self.final_status = None
        self.seq_start = next(sim.seq)
        self.seq_end = None
        self.start_event_id = str(uuid.uuid4())
        self.end_event_id = str(uuid.uuid4())
        self.validation_errors: list = []  # VALIDATION_ERROR OperationEvents
        sim.records[self.op_id] = self
        stack.records.append(self)

    @property
    def status(self) -> str:
        return st.operation_status(self.final_status)

    def close(self, sim, final_status: str) -> None:
        if self.end is None:
            self.end = sim.scheduler.now()
            self.final_status = final_status
            self.seq_end = next(sim.seq)


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
        self.detailed_status = None
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
        self.operations: list = []  # Operation: what was started (create, update, ...)
        self.records: list = []  # OpRecord: the OperationIds those went through, oldest first
        self.current_op = None
        self.pending: list = []
        self.change_set_id = None
        self.terminal_events: list = []
        self.failed_rollback = None  # the Operation whose update rollback failed, for ContinueUpdateRollback

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
        self.records: dict = {}  # OperationId -> OpRecord
        self.seq = itertools.count()

    # ------------------------------------------------------------------ lookups
    def reset(self) -> None:
        self.scheduler.clear()
        self.stacks.clear()
        self.change_sets.clear()
        self.records.clear()

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
             op=None, stack_level: bool = False, record=None, detailed=None, hook=None, event_id=None) -> Event:
        """Append an event. `op` is the Operation emitting it (its current OperationId and token);
        events outside one (REVIEW_IN_PROGRESS) name their `record`."""
        ts = self.scheduler.now()
        if stack.events:  # a request handler and a late callback may race: never go back in time
            ts = max(ts, stack.events[-1].ts)
        precision = sc.timestamp_precision_ms(stack.scope)
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
        if record is None and op is not None:
            record = op.record
        event = Event(
            event_id=event_id or (str(uuid.uuid4()) if stack_level else f"{logical}-{status}-{uuid.uuid4()}"),
            stack_id=stack.id,
            stack_name=stack.name,
            logical=logical,
            physical=stack.id if stack_level else physical,
            rtype=rtype,
            ts=ts,
            status=status,
            reason=reason,
            token=op.token if op else (record.token if record else None),
            op_id=record.op_id if record else None,
            real_time=time.time(),
            seq=next(self.seq),
            detailed=detailed,
            hook=hook,
        )
        stack.events.append(event)
        if stack_level:
            stack.status = status
            stack.reason = reason
            stack.detailed_status = detailed
            if op is not None:
                for listener in list(op.listeners):
                    listener(status, reason)
        elif hook is None:  # hook events report the hook, not a change of the resource
            res = stack.resources.get(logical)
            if res is not None:
                res.status = status
                res.reason = reason
                res.ts = ts
                if physical:
                    res.physical = physical
        return event

    # ------------------------------------------------------------------ stacks
    def new_record(self, stack: Stack, op_type: str, token) -> OpRecord:
        return OpRecord(self, stack, op_type, token)

    def new_stack(self, name: str, parent=None, parent_logical=None) -> Stack:
        stack = Stack(self, name, parent, parent_logical)
        self.stacks[stack.id] = stack
        return stack

    def new_child(self, parent: Stack, logical: str) -> Stack:
        cfg = sc.nested_config(parent.scope, logical)
        rng = random.Random()
        child = self.new_stack(f"{parent.name}-{logical}-{sc.rand_suffix(rng)}", parent=parent,
                               parent_logical=logical)
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
                        old=None, change_set=None) -> Operation:
        if kind not in OPERATION_TYPES:  # pragma: no cover - programming error
            raise ValueError(kind)
        op = Operation(self, stack, kind, token, disable_rollback, changes or {}, old, change_set)
        stack.operations.append(op)
        stack.current_op = op
        op.start()
        return op
