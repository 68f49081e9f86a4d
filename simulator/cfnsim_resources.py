"""Resource playback: what one resource's create, update, revert or delete writes, and when.
Nested stacks (AWS::CloudFormation::Stack) play a child stack and follow it.

The event sequences follow real streams; README.md "Where each behaviour comes from" cites them:
hooks (HOOK_IN_PROGRESS "Invoking hook", HOOK_COMPLETE_FAILED, then "The following hook(s)
failed: [TYPE]"), CONFIGURATION_COMPLETE "Eventual consistency check initiated", DELETE_SKIPPED
for retained resources, DELETE_COMPLETE alone for a resource that never got a physical id."""

from __future__ import annotations

import uuid

import cfnsim_scenario as sc
import cfnsim_status as st
import cfnsim_template as tpl

STACK_TYPE = tpl.NESTED_STACK_TYPE
CONSISTENCY_CHECK = "Eventual consistency check initiated"


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

    @property
    def live(self) -> bool:
        return not (self.cancelled or self.resolved)


def _deletion_policy(op, logical: str) -> str | None:
    for template in (op.stack.template, (op.old or {}).get("template")):
        decl = ((template or {}).get("Resources") or {}).get(logical)
        if isinstance(decl, dict) and decl.get("DeletionPolicy"):
            return decl["DeletionPolicy"]
    return None


def _hook_fields(spec: dict, status: str, reason: str, invocation: str) -> dict:
    return {"HookType": spec.get("type", "Private::Guard::Hook"), "HookStatus": status,
            "HookStatusReason": reason, "HookInvocationPoint": "PRE_PROVISION", "HookInvocationId": invocation,
            "HookFailureMode": spec.get("mode", "FAIL")}


def _configuration_point(op, settings: dict):
    """When (fraction of its duration) the resource reports CONFIGURATION_COMPLETE, or None."""
    if not sc.scope_get(op.stack.scope, "detailed_status", False):
        return None
    fraction = settings.get("configuration_complete", 0.7)
    if fraction is False or fraction is None:
        return None
    return min(max(float(fraction), 0.0), 1.0)


def run_item(op, phase, logical: str, action: str) -> Task:
    res = op.stack.resources[logical]
    if res.rtype == STACK_TYPE:
        return run_nested(op, phase, res, action)
    settings = op.settings(logical, res.rtype)
    rng = op.rng(logical, action)
    task = Task()
    duration_key = {"create": "duration", "update": "update_duration", "revert": "update_duration",
                    "unchanged": "update_duration", "delete": "delete_duration", "cleanup": "delete_duration"}[action]
    base = sc.pick(settings.get("duration"), rng, 5.0)
    duration = sc.pick(settings.get(duration_key), rng, base * 0.5 if duration_key == "delete_duration" else base) \
        if duration_key != "duration" else base

    def finish(ok_status, fail_status, fail_reason, physical=None):
        if task.cancelled:
            return
        task.resolved = True
        if fail_reason:
            op.res_event(res, fail_status, fail_reason, physical=physical)
            phase.item_done(logical, False)
        else:
            op.res_event(res, ok_status, physical=physical)
            phase.item_done(logical, True)

    def provision(in_progress: str, ok: str, failed: str, fail_reason, initiated_delay=None):
        """The provisioning itself, after any hook: Initiated, CONFIGURATION_COMPLETE, the end."""
        if initiated_delay is not None:
            def initiated_event():
                if task.live:
                    physical = f"{op.stack.name}-{logical}-{sc.rand_suffix(rng)}"
                    op.res_event(res, in_progress, "Resource creation Initiated", physical=physical)

            op.after(initiated_delay, initiated_event)
        # Real streams show CONFIGURATION_COMPLETE on resource creates only (FINDINGS §4).
        point = _configuration_point(op, settings) if initiated_delay is not None else None
        if point is not None and not fail_reason:
            def configured():
                if task.live:
                    op.res_event(res, in_progress, CONSISTENCY_CHECK, detailed="CONFIGURATION_COMPLETE")
                    phase.item_ready(logical)

            op.after(max(duration * point, initiated_delay or 0.0), configured)
        op.after(duration, lambda: finish(ok, failed, fail_reason))

    def with_hook(in_progress: str, failed: str, then) -> None:
        """Run the resource's Hook (if the scenario gives one) before `then` provisions it."""
        spec = settings.get("hook")
        if not isinstance(spec, dict):
            then()
            return
        invocation = str(uuid.uuid4())
        seconds = sc.pick(spec.get("seconds", [0.5, 1.0]), rng, 0.7)
        physical = res.physical or ""  # a resource not created yet shows an empty physical id

        def invoke():
            if task.live:
                op.res_event(res, in_progress, physical=physical,
                             hook=_hook_fields(spec, "HOOK_IN_PROGRESS", "Invoking hook", invocation))

        def result():
            if not task.live:
                return
            message = spec.get("fail")
            if not message:
                op.res_event(res, in_progress, physical=physical, hook=_hook_fields(
                    spec, "HOOK_COMPLETE_SUCCEEDED", "Hook succeeded with message: Successful validation", invocation))
                then()
                return
            op.res_event(res, in_progress, physical=physical, hook=_hook_fields(
                spec, "HOOK_COMPLETE_FAILED", f"Hook failed with message: {message}", invocation))
            if spec.get("mode", "FAIL") == "FAIL":
                finish(None, failed, f"The following hook(s) failed: [{spec.get('type', 'Private::Guard::Hook')}]",
                       physical=physical)
            else:  # WARN: the hook's failure is reported and provisioning goes on
                then()

        op.after(seconds * 0.1, invoke)
        op.after(seconds, result)

    early = settings.get("fail_before_start")
    if early and action in ("create", "update"):
        # Failed while its properties were resolved: *_FAILED with no *_IN_PROGRESS first
        # (real-events/22, "Unable to retrieve Arn attribute ...").
        failed = "CREATE_FAILED" if action == "create" else "UPDATE_FAILED"
        op.unchanged.add(logical)
        op.after(0, lambda: finish(None, failed, early))
        return task
    if action == "create":
        fail = sc.failure_reason(settings, "create")
        initiated = min(sc.pick(settings.get("initiated_delay", sc.scope_get(
            op.stack.scope, "initiated_delay", [0.2, 1.0])), rng, 0.5), duration)
        op.res_event(res, "CREATE_IN_PROGRESS", physical="" if settings.get("hook") else None)
        task.on_cancel = lambda: op.res_event(res, "CREATE_FAILED", "Resource creation cancelled")
        with_hook("CREATE_IN_PROGRESS", "CREATE_FAILED",
                  lambda: provision("CREATE_IN_PROGRESS", "CREATE_COMPLETE", "CREATE_FAILED", fail, initiated))
    elif action in ("update", "revert"):
        fail = sc.failure_reason(settings, "update" if action == "update" else "rollback")
        op.res_event(res, "UPDATE_IN_PROGRESS", physical=res.physical)
        task.on_cancel = lambda: op.res_event(res, "UPDATE_FAILED", "Resource update cancelled")
        if action == "update":
            with_hook("UPDATE_IN_PROGRESS", "UPDATE_FAILED",
                      lambda: provision("UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_FAILED", fail))
        else:
            op.after(duration, lambda: finish("UPDATE_COMPLETE", "UPDATE_FAILED", fail))
    elif action == "unchanged":  # its update was cancelled: the rollback only reports it (stream 22)
        op.after(0, lambda: finish("UPDATE_COMPLETE", None, None))
    elif action in ("delete", "cleanup"):
        policy = _deletion_policy(op, logical)
        if policy == "Retain" or (policy == "RetainExceptOnCreate" and op.kind != "CREATE"):
            # Even a resource that was never created is skipped, with an empty physical id (real-events/18).
            op.after(0, lambda: finish("DELETE_SKIPPED", None, None, physical=res.physical or ""))
        elif not res.physical:  # never created (cancelled or refused by a hook): nothing to delete
            op.after(0, lambda: finish("DELETE_COMPLETE", None, None))
        else:
            _delete(op, task, res, settings, rng, duration, finish, retries=action == "cleanup")
    return task


def _delete(op, task, res, settings: dict, rng, duration: float, finish, retries: bool) -> None:
    """A delete; in a cleanup phase a failed one is tried again `delete_attempts` times in all,
    `delete_retry_seconds` apart (three attempts about three minutes apart in stream 23)."""
    fail = sc.failure_reason(settings, "delete")
    attempts = int(settings.get("delete_attempts", 3)) if retries else 1
    gap = sc.pick(settings.get("delete_retry_seconds", 180), rng, 180.0)

    def attempt(number: int) -> None:
        op.res_event(res, "DELETE_IN_PROGRESS", physical=res.physical)

        def done():
            if task.cancelled:
                return
            if fail and number < attempts:
                op.res_event(res, "DELETE_FAILED", fail)
                op.after(gap, lambda: attempt(number + 1))
            else:
                finish("DELETE_COMPLETE", "DELETE_FAILED", fail)

        op.after(duration, done)

    attempt(1)


def run_nested(op, phase, res, action: str) -> Task:
    """An AWS::CloudFormation::Stack resource: play a child stack and follow it."""
    action = {"cleanup": "delete", "unchanged": "revert"}.get(action, action)
    sim = op.sim
    cfg = sc.nested_config(op.stack.scope, res.logical)
    rng = op.rng(res.logical, action)
    lag = sc.pick(cfg.get("complete_lag", sc.scope_get(op.stack.scope, "nested_complete_lag", [3, 10])),
                  rng, 5.0)
    task = Task()

    def resolve(ok: bool, status: str, reason=None, delay: float = 0.0):
        if task.cancelled or task.resolved:
            return
        task.resolved = True

        def emit():
            op.res_event(res, status, reason, physical=res.physical)
            phase.item_done(res.logical, ok)

        if delay > 0:
            op.after(delay, emit)
        else:
            emit()

    if action == "create":
        op.res_event(res, "CREATE_IN_PROGRESS")
        child = sim.new_child(op.stack, res.logical)
        res.child = child

        def on_child(status, reason):
            if status == "CREATE_COMPLETE":
                resolve(True, "CREATE_COMPLETE", delay=lag)
            elif status in st.FAILURE_ENTRY:
                # The child's failure without " Rollback requested by user." (stream 12).
                cause = (reason or status).removesuffix(st.ROLLBACK_BY_USER)
                resolve(False, "CREATE_FAILED", f"Embedded stack {child.id} was not successfully created: {cause}")

        child_op = sim.start_operation(child, "CREATE", token=op.token, disable_rollback=op.disable_rollback)
        child_op.listeners.append(on_child)

        def cancel():
            op.res_event(res, "CREATE_FAILED", "Resource creation cancelled")
            child_op.cancel("Resource creation cancelled")

        task.on_cancel = cancel

        def initiated():
            if not task.cancelled:
                op.res_event(res, "CREATE_IN_PROGRESS", "Resource creation Initiated", physical=child.id)

        op.after(min(0.5, lag), initiated)
    elif action == "update":
        child = res.child
        op.res_event(res, "UPDATE_IN_PROGRESS", physical=res.physical)
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
            elif status in st.FAILURE_ENTRY:
                resolve(False, "UPDATE_FAILED",
                        f"Embedded stack {child.id} was not successfully updated. Currently in {status} "
                        f"with reason: {reason or status}")

        def go():
            child_op = sim.start_operation(child, "UPDATE", token=op.token, disable_rollback=op.disable_rollback,
                                           changes=changes, old=old)
            child_op.listeners.append(on_child)
            task.on_cancel = lambda: (op.res_event(res, "UPDATE_FAILED", "Resource update cancelled"),
                                      child_op.cancel("Resource update cancelled"))

        child.when_idle(go)
    elif action == "revert":
        child = res.child
        op.res_event(res, "UPDATE_IN_PROGRESS", physical=res.physical)

        def revert():
            last = child.operations[-1] if child.operations else None
            if child.status in ("UPDATE_COMPLETE",) and last is not None and last.kind == "UPDATE":
                child_op = sim.start_operation(child, "UPDATE_ROLLBACK", token=op.token, changes=last.changes,
                                               old=last.old)
                child_op.listeners.append(lambda status, reason: (
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
        op.res_event(res, "DELETE_IN_PROGRESS", physical=res.physical)

        def delete():
            if child.deleted:
                resolve(True, "DELETE_COMPLETE", delay=0.5)
                return
            child_op = sim.start_operation(child, "DELETE", token=op.token)
            child_op.listeners.append(lambda status, reason: (
                resolve(True, "DELETE_COMPLETE", delay=min(lag, 2.0)) if status == "DELETE_COMPLETE" else
                resolve(False, "DELETE_FAILED",
                        f"Embedded stack {child.id} was not successfully deleted: {reason}")
                if status == "DELETE_FAILED" else None))

        if child is None:
            resolve(True, "DELETE_COMPLETE", delay=0.5)
        else:
            child.when_idle(delete)
    return task
