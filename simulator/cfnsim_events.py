"""Event shapes: DescribeStackEvents' StackEvent, DescribeEvents' OperationEvent, early-validation
errors, and the paging both actions share. Works on the generated simulation's Event/OpRecord
and on a replay's recorded events alike (same attribute names).

DescribeEvents shapes follow botocore's model (OperationEvent) and a real answer captured from
AWS (README.md "Where each behaviour comes from"): an operation shows as a STACK_EVENT when it
starts (OperationStatus IN_PROGRESS, StartTime) and another when it ends (SUCCEEDED/FAILED,
StartTime, EndTime); stack events become PROGRESS, PROVISIONING_ERROR (a *_FAILED status) or
HOOK_INVOCATION_ERROR items without StackName; VALIDATION_ERROR items carry the Validation*
fields and the OperationType."""

from __future__ import annotations

import base64
import json
import uuid

import cfnsim_scenario as sc
import cfnsim_status as st
from cfnsim_xml import Ts, iso

# ValidationName -> the name CloudFormation puts in a failed change set's StatusReason.
VALIDATION_HOOKS = {
    "NAME_CONFLICT_VALIDATION": "AWS::EarlyValidation::ResourceExistenceCheck",
    "PROPERTY_VALIDATION": "AWS::EarlyValidation::PropertyValidation",
}
CHANGE_SET_VALIDATION_FAILED = ("The following hook(s)/validation failed: [{names}]. To troubleshoot Early "
                                "Validation errors, use the DescribeEvents API for detailed failure information.")


class TokenError(ValueError):
    """A NextToken this server did not issue for this listing."""


def page_token(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def read_token(token: str) -> dict:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError) as e:
        raise TokenError("Invalid NextToken") from e


def newest_first_page(items: list, next_token, size: int, key: str) -> tuple:
    """One page of `items` (oldest first), newest first, and the token for the rest. The token
    holds a position counted from the OLDEST item, so items appended while a client pages do not
    shift the pages it has not read yet."""
    end = len(items)
    if next_token:
        data = read_token(next_token)
        if data.get("s") != key:
            raise TokenError("Invalid NextToken")
        end = min(int(data.get("i", 0)), len(items))
    start = max(0, end - size)
    page = list(reversed(items[start:end]))
    return page, (page_token({"s": key, "i": start}) if start > 0 else None)


def timestamp(value: float, fractions: bool = True, text: str | None = None) -> Ts:
    return Ts(value, text or (None if fractions else iso(value, False)))


def stack_event_item(e, fractions: bool = True) -> dict:
    """DescribeStackEvents' StackEvent."""
    item = {
        "StackId": e.stack_id,
        "EventId": e.event_id,
        "StackName": e.stack_name,
        "OperationId": e.op_id,
        "LogicalResourceId": e.logical,
        "PhysicalResourceId": e.physical,
        "ResourceType": e.rtype,
        "Timestamp": timestamp(e.ts, fractions, getattr(e, "ts_text", None)),
        "ResourceStatus": e.status,
        "ResourceStatusReason": e.reason,
        "ResourceProperties": getattr(e, "properties", None),  # replayed events carry it
        "ClientRequestToken": e.token,
    }
    item.update(e.hook or {})
    item["DetailedStatus"] = e.detailed
    return item


def progress_item(e, fractions: bool = True) -> dict:
    """DescribeEvents' OperationEvent for a stack event."""
    hook = dict(e.hook or {})
    hook.pop("HookInvocationId", None)  # not a member of OperationEvent
    item = {
        "EventId": e.event_id,
        "StackId": e.stack_id,
        "OperationId": e.op_id,
        "EventType": st.event_type(e.status, hook.get("HookStatus")),
        "LogicalResourceId": e.logical,
        "PhysicalResourceId": e.physical,
        "ResourceType": e.rtype,
        "Timestamp": timestamp(e.ts, fractions, getattr(e, "ts_text", None)),
        "ResourceStatus": e.status,
        "ResourceStatusReason": e.reason,
        "ClientRequestToken": e.token,
    }
    item.update(hook)
    item["DetailedStatus"] = e.detailed
    return item


def record_items(record) -> list:
    """(seq, OperationEvent) for an operation's start and, once it ended, its end."""
    start = {"EventId": record.start_event_id, "StackId": record.stack.id, "OperationId": record.op_id,
             "OperationType": record.op_type, "OperationStatus": "IN_PROGRESS", "EventType": "STACK_EVENT",
             "Timestamp": Ts(record.start), "StartTime": Ts(record.start)}
    items = [(record.seq_start, start)]
    if record.end is not None:
        items.append((record.seq_end, {
            **start, "EventId": record.end_event_id, "OperationStatus": record.status,
            "Timestamp": Ts(record.end), "EndTime": Ts(record.end)}))
    return items + list(record.validation_errors)


def operation_events(events: list, records: list, op_ids: set | None, failed_only: bool,
                     fractions: bool = True) -> list:
    """Every OperationEvent of `records` (and of `events` carrying their ids), oldest first."""
    wanted = op_ids if op_ids is not None else {r.op_id for r in records}
    items = [(e.seq, progress_item(e, fractions)) for e in events if e.op_id in wanted]
    for record in records:
        if record.op_id in wanted:
            items.extend(record_items(record))
    items.sort(key=lambda pair: pair[0])
    out = [item for _, item in items]
    if failed_only:
        out = [item for item in out if item["EventType"] in st.ERROR_EVENT_TYPES]
    return out


# ------------------------------------------------------------------ early validation
def validation_specs(scope: list, template: dict | None) -> list:
    """The scenario's `early_validation` errors, completed with CloudFormation's defaults."""
    specs = []
    resources = (template or {}).get("Resources") or {}
    for raw in sc.scope_get(scope, "early_validation", []) or []:
        logical = raw.get("logical", "")
        rtype = raw.get("type") or (resources.get(logical) or {}).get("Type", "AWS::CloudFormation::Stack")
        name = raw.get("name", "NAME_CONFLICT_VALIDATION")
        specs.append({
            "logical": logical,
            "type": rtype,
            "name": name,
            "hook": raw.get("hook") or VALIDATION_HOOKS.get(name) or "AWS::EarlyValidation::" + "".join(
                part.title() for part in name.replace("_VALIDATION", "").split("_")),
            "reason": raw.get("reason") or f"Resource of type '{rtype}' with identifier '{logical}' already exists.",
            "path": raw.get("path", f"/Resources/{logical}"),
            "mode": raw.get("mode", "FAIL"),
            "status": raw.get("status", "FAILED"),
        })
    return specs


def validation_items(sim, stack, record, specs: list) -> list:
    """(seq, VALIDATION_ERROR OperationEvent) for each spec, stamped now."""
    now = Ts(sim.scheduler.now())
    return [(next(sim.seq), {
        "EventId": str(uuid.uuid4()), "StackId": stack.id, "OperationId": record.op_id,
        "OperationType": record.op_type, "EventType": "VALIDATION_ERROR", "LogicalResourceId": spec["logical"],
        "PhysicalResourceId": "", "ResourceType": spec["type"], "Timestamp": now,
        "ValidationFailureMode": spec["mode"], "ValidationName": spec["name"], "ValidationStatus": spec["status"],
        "ValidationStatusReason": spec["reason"], "ValidationPath": spec["path"],
    }) for spec in specs]


def change_set_failure(specs: list) -> str | None:
    """The StatusReason of a change set that failed early validation, or None when it passes
    (WARN-mode errors are reported but do not fail the change set)."""
    names = []
    for spec in specs:
        if spec["mode"] == "FAIL" and spec["hook"] not in names:
            names.append(spec["hook"])
    return CHANGE_SET_VALIDATION_FAILED.format(names=", ".join(names)) if names else None
