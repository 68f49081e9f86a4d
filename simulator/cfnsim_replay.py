"""Replay: serve a recorded `describe-stack-events` stream (AWS CLI JSON, newest first) as if
CloudFormation were writing it now, with the gaps between events compressed.

The events before the chosen operation are history (visible at once); the operation's events and
everything after them in the file are revealed in their recorded chronological order, each after
its recorded gap divided by `scale` (and capped at `max_gap` real seconds). Events that share a
timestamp appear together. Timestamps are served as recorded: a client must never compare them
with its own clock. The stacks' state (DescribeStacks) is derived from the revealed events."""

from __future__ import annotations

import bisect
import datetime
import json
import re
import time
import uuid

import cfnsim_events as ev
import cfnsim_status as st
from cfnsim_engine import ApiError, validation

STACK_TYPE = "AWS::CloudFormation::Stack"
TIMESTAMP_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$")
HOOK_KEYS = ("HookType", "HookStatus", "HookStatusReason", "HookInvocationPoint", "HookInvocationId",
             "HookFailureMode")
# Stack-level statuses that mean "the stack was last updated then".
UPDATE_MARKS = {"UPDATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"}


def parse_timestamp(text: str) -> tuple:
    """(epoch seconds, the instant in UTC written as recorded: same fraction digits, `Z`).
    Accepts `2017-10-31T18:04:07.219Z`, `2025-10-08T20:03:02.446000+00:00`, whole seconds, and a
    missing zone (UTC)."""
    m = TIMESTAMP_RE.match(str(text).strip())
    if not m:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    day, clock, fraction, zone = m.groups()
    fraction = (fraction or "")[:9]
    base = datetime.datetime.strptime(f"{day}T{clock}", "%Y-%m-%dT%H:%M:%S")
    offset = datetime.timedelta(0)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    utc = (base - offset).replace(tzinfo=datetime.timezone.utc)
    epoch = utc.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)
    text_utc = utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"
    return epoch, text_utc


class ReplayEvent:
    """A recorded event, with the attribute names the simulation's events have."""

    def __init__(self, raw: dict, index: int):
        self.raw = raw
        self.index = index  # position in the file (0 = newest)
        self.event_id = raw.get("EventId") or str(uuid.uuid4())
        self.stack_id = raw.get("StackId", "")
        self.stack_name = raw.get("StackName", "")
        self.logical = raw.get("LogicalResourceId", "")
        self.physical = raw.get("PhysicalResourceId")
        self.rtype = raw.get("ResourceType", "")
        self.ts, self.ts_text = parse_timestamp(raw["Timestamp"])
        self.status = raw.get("ResourceStatus")
        self.reason = raw.get("ResourceStatusReason")
        self.token = raw.get("ClientRequestToken")
        self.op_id = raw.get("OperationId")
        self.detailed = raw.get("DetailedStatus")
        self.hook = {k: raw[k] for k in HOOK_KEYS if k in raw} or None
        self.properties = raw.get("ResourceProperties")
        self.seq = 0  # chronological position, set once the stream is ordered

    @property
    def stack_level(self) -> bool:
        return self.rtype == STACK_TYPE and self.logical == self.stack_name


class ReplayRecord:
    """An operation as DescribeEvents shows it, derived from the recorded events carrying its id."""

    def __init__(self, stack, op_id: str, events: list, later_op: bool):
        self.stack = stack
        self.op_id = op_id
        self.validation_errors: list = []
        self.start, self.seq_start = events[0].ts, events[0].seq - 0.5
        stack_level = [e for e in events if e.stack_level and not e.detailed]
        self.op_type = st.OPERATION_TYPE_BY_START.get(stack_level[0].status) if stack_level else None
        last = stack_level[-1].status if stack_level else None
        if last in st.TERMINAL or later_op:
            self.end, self.seq_end = events[-1].ts, events[-1].seq + 0.5
            self.final_status = last if last in st.TERMINAL else "FAILED"
        else:
            self.end = self.seq_end = self.final_status = None
        self.start_event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{op_id}/start"))
        self.end_event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{op_id}/end"))

    @property
    def status(self) -> str:
        return st.operation_status(self.final_status)


class ReplayStack:
    def __init__(self, stack_id: str, name: str):
        self.id = stack_id
        self.name = name
        self.events: list = []  # chronological
        self.parent_id = None
        self.root_id = None


def load_stream(doc) -> list:
    """The events of an AWS CLI `{"StackEvents": [...]}` document (or a bare list)."""
    raw = doc.get("StackEvents") if isinstance(doc, dict) else doc
    if not isinstance(raw, list) or not raw:
        raise ValueError("a replay needs {\"StackEvents\": [...]} with at least one event")
    return [ReplayEvent(e, i) for i, e in enumerate(raw)]


class Replay:
    """One recorded stream being played. Options (README.md "Replay"): operation, event_id, scale,
    duration, max_gap, start ("now" | "trigger"), reveal_first, page_size, root, outputs."""

    def __init__(self, doc, options: dict | None = None, source: str | None = None):
        opts = dict(options or {})
        self.source = source
        self.page_size = int(opts.get("page_size", 100))
        self.outputs = opts.get("outputs")
        events = load_stream(doc)
        # Chronological: by time; within a stack and a timestamp, the file's order reversed.
        self.timeline = sorted(events, key=lambda e: (e.ts, -e.index))
        for seq, e in enumerate(self.timeline):
            e.seq = seq
        self.stacks: dict = {}
        for e in self.timeline:
            if e.stack_id not in self.stacks:
                self.stacks[e.stack_id] = ReplayStack(e.stack_id, e.stack_name)
            self.stacks[e.stack_id].events.append(e)
        self._link_nested()
        self.root = self._pick_root(opts.get("root"))
        self.starts = self._operation_starts()
        self.start = self._start_index(opts)
        play = self.timeline[self.start:]
        self.first_k = min(int(opts.get("reveal_first", 0)), len(play))
        self.offsets = self._offsets(play, opts)
        self.t0_mono = self.t0_wall = None
        # Keyed by timeline position: real streams repeat EventIds (a hook's two events, real-events/28).
        self.revealed_at: dict = {e.seq: time.time() for e in play[:self.first_k]}  # wall clock
        self.first_served: dict = {}  # wall-clock time a response first included the event
        if opts.get("start", "now") == "now":
            self.trigger()

    # ------------------------------------------------------------------ loading
    def _link_nested(self) -> None:
        for stack in self.stacks.values():
            for e in stack.events:
                child = self.stacks.get(e.physical or "")
                if e.rtype == STACK_TYPE and child is not None and child is not stack:
                    child.parent_id = stack.id

    def _pick_root(self, wanted):
        roots = [s for s in self.stacks.values() if s.parent_id is None]
        if wanted:
            roots = [s for s in self.stacks.values() if wanted in (s.id, s.name)]
            if not roots:
                raise ValueError(f"root {wanted!r} is not a stack in the recording")
        root = max(roots, key=lambda s: len(s.events))
        for stack in self.stacks.values():
            top = stack
            while top.parent_id is not None:
                top = self.stacks[top.parent_id]
            stack.root_id = top.id
        return root

    def _operation_starts(self) -> list:
        """Timeline positions of the root's operation starts: a user-started status after a settled
        (or no) state. A DetailedStatus event repeats a status without starting anything."""
        starts, previous = [], None
        for e in self.root.events:
            if not e.stack_level or e.detailed:
                continue
            settled = previous is None or previous in st.TERMINAL or previous == "REVIEW_IN_PROGRESS"
            if e.status in st.USER_STARTS and settled:
                starts.append(e.seq)
            previous = e.status
        return starts

    def _start_index(self, opts: dict) -> int:
        if opts.get("event_id"):
            for i, e in enumerate(self.timeline):
                if e.event_id == opts["event_id"]:
                    return i
            raise ValueError(f"event {opts['event_id']!r} is not in the recording")
        if not self.starts:
            return 0  # the file holds no operation start (truncated): play all of it
        index = int(opts.get("operation", -1))
        try:
            return self.starts[index]
        except IndexError:
            raise ValueError(f"operation {index} out of range: the recording has {len(self.starts)}") from None

    @staticmethod
    def _offsets(play: list, opts: dict) -> list:
        """Real seconds from the reveal's start to each event's reveal: recorded gaps / scale,
        each capped at max_gap. `duration` sets the scale so the whole play lasts that long."""
        gaps = [0.0] + [max(0.0, b.ts - a.ts) for a, b in zip(play, play[1:])]
        cap = float(opts["max_gap"]) if opts.get("max_gap") is not None else None
        if opts.get("duration") is not None:
            span = sum(min(g, cap) if cap else g for g in gaps)  # recorded seconds, capped alike
            scale = span / float(opts["duration"]) if float(opts["duration"]) > 0 and span > 0 else 1.0
        else:
            scale = float(opts.get("scale", 1.0)) or 1.0
        offsets, total = [], 0.0
        for gap in gaps:
            step = gap / scale
            total += min(step, cap) if cap is not None else step
            offsets.append(total)
        return offsets

    # ------------------------------------------------------------------ time
    def trigger(self) -> None:
        if self.t0_mono is None:
            self.t0_mono = time.monotonic()
            self.t0_wall = time.time()

    def visible_count(self) -> int:
        count = self.start + self.first_k
        if self.t0_mono is None or count >= len(self.timeline):
            return count
        base = self.offsets[self.first_k - 1] if self.first_k else 0.0
        elapsed = time.monotonic() - self.t0_mono
        # offsets are non-decreasing: everything due by now is visible, equal ones together
        due = bisect.bisect_right(self.offsets, base + elapsed, lo=self.first_k)
        visible = self.start + due
        for e in self.timeline[count:visible]:
            self.revealed_at.setdefault(e.seq, self.t0_wall + self.offsets[e.seq - self.start] - base)
        return visible

    def done(self) -> bool:
        return self.visible_count() >= len(self.timeline)

    def revealed(self, stack) -> list:
        limit = self.visible_count()
        return [e for e in stack.events if e.seq < limit]

    def served(self, events) -> None:
        now = time.time()
        for e in events:
            self.first_served.setdefault(e.seq, now)

    # ------------------------------------------------------------------ reports
    def status(self) -> dict:
        visible = self.visible_count()
        return {
            "source": self.source,
            "root": {"name": self.root.name, "id": self.root.id},
            "operations": [{"index": n, "position": i, "event_id": self.timeline[i].event_id,
                            "status": self.timeline[i].status, "timestamp": self.timeline[i].ts_text,
                            "operation_id": self.timeline[i].op_id} for n, i in enumerate(self.starts)],
            "start_index": self.start,
            "started": self.t0_wall,
            "events": len(self.timeline),
            "history": self.start,
            "revealed": visible,
            "done": visible >= len(self.timeline),
            "play_seconds": (self.offsets[-1] - (self.offsets[self.first_k - 1] if self.first_k else 0.0))
            if self.offsets else 0.0,
        }

    def stacks_report(self) -> list:
        out = []
        for stack in self.stacks.values():
            shown = self.revealed(stack)
            state = self._state(stack, shown)
            terminal = [e for e in shown if e.stack_level and e.status in st.TERMINAL and e.seq >= self.start]
            out.append({
                "name": stack.name, "id": stack.id, "status": state["status"], "reason": state["reason"],
                "parent_id": stack.parent_id, "root_id": stack.root_id, "events": len(shown),
                "terminal_events": [{
                    "status": e.status, "reason": e.reason, "operation_id": e.op_id, "timestamp": e.ts_text,
                    "real_time": self.revealed_at.get(e.seq),
                    "first_served_real_time": self.first_served.get(e.seq),
                } for e in terminal],
            })
        return out

    # ------------------------------------------------------------------ derived state
    def _state(self, stack, shown: list) -> dict:
        levels = [e for e in shown if e.stack_level]
        newest = levels[-1] if levels else None
        if newest is None:
            # A recording truncated mid-operation: guess from its oldest resource event's verb.
            verb = (shown[0].status or "UPDATE").split("_")[0] if shown else None
            guess = {"CREATE": "CREATE_IN_PROGRESS", "DELETE": "DELETE_IN_PROGRESS"}.get(verb, "UPDATE_IN_PROGRESS")
            return {"status": guess if shown else None, "reason": None, "detailed": None}
        return {"status": newest.status, "reason": newest.reason, "detailed": newest.detailed}

    def find(self, name_or_id: str):
        """The stack a name or ARN means, if it exists at this point of the replay."""
        for stack in self.stacks.values():
            if name_or_id not in (stack.id, stack.name):
                continue
            shown = self.revealed(stack)
            if not shown:
                continue
            deleted = self._state(stack, shown)["status"] == "DELETE_COMPLETE"
            if deleted and name_or_id != stack.id:
                continue  # a deleted stack is found by its ARN only
            return stack, shown
        return None, []

    def records(self, stack, shown: list) -> list:
        order = []
        by_op: dict = {}
        for e in shown:
            if e.op_id:
                if e.op_id not in by_op:
                    order.append(e.op_id)
                by_op.setdefault(e.op_id, []).append(e)
        return [ReplayRecord(stack, op_id, by_op[op_id], later_op=n + 1 < len(order))
                for n, op_id in enumerate(order)]


class ReplayApi:
    """The read actions a monitor uses, answered from the replay."""

    def __init__(self, replay: Replay):
        self.replay = replay

    def call(self, action: str, params: dict):
        handler = getattr(self, "do_" + action, None)
        if handler is None:
            raise validation(f"cfnsim replay: {action} is not served while a recording is replayed")
        return handler(params)

    def _stack(self, name: str, message: str):
        stack, shown = self.replay.find(name)
        if stack is None:
            raise validation(message)
        return stack, shown

    def _stack_dict(self, stack, shown: list) -> dict:
        replay = self.replay
        state = replay._state(stack, shown)
        levels = [e for e in shown if e.stack_level and not e.detailed]
        # The stack's first CREATE/REVIEW event; a recording truncated before it: its oldest event.
        created = next((e for e in stack.events if e.stack_level and e.status in ("CREATE_IN_PROGRESS",
                                                                                  "REVIEW_IN_PROGRESS")),
                       stack.events[0])
        updated = [e for e in levels if e.status in UPDATE_MARKS]
        deleted = [e for e in levels if e.status == "DELETE_COMPLETE"]
        ops = []
        for record in reversed(replay.records(stack, shown)):
            entry = {"OperationId": record.op_id}
            if record.op_type:
                entry["OperationType"] = record.op_type
            ops.append(entry)
        outputs = replay.outputs if stack is replay.root else None
        if isinstance(outputs, dict):
            outputs = [{"OutputKey": k, "OutputValue": str(v)} for k, v in outputs.items()]
        return {
            "StackId": stack.id,
            "StackName": stack.name,
            "CreationTime": ev.timestamp(created.ts, text=created.ts_text),
            "DeletionTime": ev.timestamp(deleted[-1].ts, text=deleted[-1].ts_text) if deleted else None,
            "LastUpdatedTime": ev.timestamp(updated[-1].ts, text=updated[-1].ts_text) if updated else None,
            "RollbackConfiguration": {},
            "StackStatus": state["status"],
            "StackStatusReason": state["reason"],
            "DisableRollback": False,
            "Outputs": outputs or None,
            "ParentId": stack.parent_id,
            "RootId": stack.root_id if stack.parent_id else None,
            "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
            "DetailedStatus": state["detailed"],
            "LastOperations": ops[:5] or None,
        }

    def do_DescribeStacks(self, params: dict):
        name = params.get("StackName")
        if name:
            stack, shown = self._stack(name, f"Stack with id {name} does not exist")
            self.replay.served([e for e in shown if e.stack_level][-1:])
            return {"Stacks": [self._stack_dict(stack, shown)]}
        stacks = []
        for stack in self.replay.stacks.values():
            found, shown = self.replay.find(stack.name)
            if found is stack:
                stacks.append(self._stack_dict(stack, shown))
        return {"Stacks": stacks}

    def do_DescribeStackEvents(self, params: dict):
        name = params.get("StackName", "")
        stack, shown = self._stack(name, f"Stack [{name}] does not exist")
        try:
            page, token = ev.newest_first_page(shown, params.get("NextToken"), self.replay.page_size, stack.id)
        except ev.TokenError as e:
            raise validation(str(e)) from e
        self.replay.served(page)
        return {"StackEvents": [ev.stack_event_item(e) for e in page], "NextToken": token}

    def do_DescribeEvents(self, params: dict):
        stack_name, cs_name, op_id = (params.get(k) for k in ("StackName", "ChangeSetName", "OperationId"))
        if not (stack_name or cs_name or op_id):
            raise validation("One of ChangeSetName, OperationId or StackName must be specified")
        if cs_name:
            raise ApiError("ChangeSetNotFound", f"ChangeSet [{cs_name}] does not exist", 404)
        if stack_name:
            stack, shown = self._stack(stack_name, f"Stack [{stack_name}] does not exist")
        else:
            stack, shown = next(((s, self.replay.revealed(s)) for s in self.replay.stacks.values()
                                 if any(e.op_id == op_id for e in self.replay.revealed(s))), (None, []))
            if stack is None:
                return {"OperationEvents": []}
        failed_only = str(params.get("Filters.FailedEvents", "")).lower() == "true"
        items = ev.operation_events(shown, self.replay.records(stack, shown), {op_id} if op_id else None,
                                    failed_only)
        key = f"{stack.id}|{op_id or ''}|{failed_only}"
        try:
            page, token = ev.newest_first_page(items, params.get("NextToken"), self.replay.page_size, key)
        except ev.TokenError as e:
            raise validation(str(e)) from e
        return {"OperationEvents": page, "NextToken": token}

    def _resources(self, name: str):
        stack, shown = self._stack(name, f"Stack with id {name} does not exist")
        latest: dict = {}
        for e in shown:
            if not e.stack_level and not e.hook:
                latest[e.logical] = e
        return stack, [e for e in latest.values() if e.status != "DELETE_COMPLETE"]

    def do_ListStackResources(self, params: dict):
        _, items = self._resources(params.get("StackName", ""))
        return {"StackResourceSummaries": [{
            "LogicalResourceId": e.logical, "PhysicalResourceId": e.physical, "ResourceType": e.rtype,
            "LastUpdatedTimestamp": ev.timestamp(e.ts, text=e.ts_text), "ResourceStatus": e.status,
            "ResourceStatusReason": e.reason, "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
        } for e in items]}

    def do_DescribeStackResources(self, params: dict):
        stack, items = self._resources(params.get("StackName", ""))
        return {"StackResources": [{
            "StackName": stack.name, "StackId": stack.id, "LogicalResourceId": e.logical,
            "PhysicalResourceId": e.physical, "ResourceType": e.rtype,
            "Timestamp": ev.timestamp(e.ts, text=e.ts_text), "ResourceStatus": e.status,
            "ResourceStatusReason": e.reason, "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
        } for e in items]}


def load(body: dict) -> Replay:
    """A Replay from an admin request body / CLI options: `file` (a path) or `events` (the
    document itself), plus the options Replay takes."""
    options = {k: v for k, v in body.items() if k not in ("file", "events")}
    if body.get("events") is not None:
        return Replay(body["events"], options, source="inline")
    path = body.get("file")
    if not path:
        raise ValueError("a replay needs `file` (a path) or `events` (the describe-stack-events document)")
    with open(path, encoding="utf-8") as f:
        return Replay(json.load(f), options, source=path)
