"""Stack operations: create, update, delete, their automatic rollbacks, and the rollback a user
asks for (CancelUpdateStack) or continues (ContinueUpdateRollback).

An `Operation` is what was started; it goes through one or more OpRecords (OperationIds): the
automatic rollback after a failure gets its own OperationId with the same ClientRequestToken, as
real CloudFormation does (README.md, "Where each behaviour comes from"). Resource work is in
cfnsim_resources; this module sequences it and writes the stack-level events."""

from __future__ import annotations

import random
import time

import cfnsim_events as ev
import cfnsim_resources as res_play
import cfnsim_scenario as sc
import cfnsim_status as st
import cfnsim_template as tpl

STACK_TYPE = tpl.NESTED_STACK_TYPE

# Operation kind -> the OperationType of its first OperationId.
OPERATION_TYPES = {"CREATE": "CREATE_STACK", "UPDATE": "UPDATE_STACK", "DELETE": "DELETE_STACK",
                   "UPDATE_ROLLBACK": "ROLLBACK", "CONTINUE_ROLLBACK": "CONTINUE_ROLLBACK"}

# Reasons real CloudFormation writes (README.md, "Where each behaviour comes from").
CLEANUP_DELETE_FAILED = "Update successful. One or more resources could not be deleted."
VALIDATION_FAILED = ("Validation failed with {n} error(s). Call DescribeEvents to retrieve the full list of "
                     "issues with resource and property details, resolve each error, then retry the operation.")
VALIDATION_ROLLBACK = "Validation failure detected. See the operation's FAILED event for details."
ROLLBACK_BY_USER = st.ROLLBACK_BY_USER
USER_INITIATED = "User Initiated"


def _listing(failed) -> str:
    return ", ".join(failed)


def _failed_reason(groups: list) -> str:
    """ "The following resource(s) failed to create: [A, B]. The following resource(s) failed to
    update: [C]. " The lists name the cancelled resources too; real CloudFormation's order within
    a list is arbitrary (streams 06, 07), ours is the order they failed in."""
    return "".join(f"The following resource(s) failed to {verb}: [{_listing(names)}]. "
                   for verb, names in groups if names)


def _with_rollback_request(reason: str) -> str:
    """CloudFormation appends "Rollback requested by user." to the reason a create failed for."""
    if reason.endswith(" "):
        return reason + ROLLBACK_BY_USER
    if reason.endswith("."):
        return reason + " " + ROLLBACK_BY_USER
    return reason + ". " + ROLLBACK_BY_USER


class Phase:
    """Runs resource actions in dependency order; independent ones in parallel (waves).

    A resource's dependents start when it is done, or earlier when it reports CONFIGURATION_COMPLETE
    (`ready`): CloudFormation's optimistic stabilization starts dependents at that point."""

    def __init__(self, op, items: dict, deps: dict, on_done, stop_on_failure: bool, on_configured=None):
        self.op = op
        self.items = dict(items)
        self.deps = {k: set(deps.get(k, set())) & set(items) for k in items}
        self.on_done = on_done
        self.on_configured = on_configured
        self.stop_on_failure = stop_on_failure
        self.state = {k: "pending" for k in items}
        self.ready: set = set()
        self.tasks: dict = {}
        self.failed: list = []
        self.cancelled_items: list = []  # stopped because another failed ("Resource ... cancelled")
        self.cancelled = False
        self.finished = False
        self.error = None  # a stack-level failure (an unresolvable attribute), no resource failed

    def start(self) -> None:
        self._advance()

    def _usable(self, dep: str) -> bool:
        state = self.state[dep]
        if state == "failed":
            return not self.stop_on_failure
        return state == "done" or (state == "running" and dep in self.ready)

    def _advance(self) -> None:
        if self.finished:
            return
        halted = self.cancelled or self.error is not None or (self.stop_on_failure and self.failed)
        if not halted:
            for logical in sorted(self.items):
                if self.state[logical] != "pending" or not all(self._usable(d) for d in self.deps[logical]):
                    continue
                reason = self.op.resolve_error(logical, self.items[logical])
                if reason:
                    # Nothing more starts; what runs finishes (stream 09 has no *_FAILED at all).
                    self.error = reason
                    break
                self.state[logical] = "running"
                self.tasks[logical] = self.op.run_item(self, logical, self.items[logical])
        self._check_configured()
        if any(s == "running" for s in self.state.values()):
            return
        halted = self.cancelled or self.error is not None or (self.stop_on_failure and self.failed)
        if any(s == "pending" for s in self.state.values()) and not halted:
            return  # cannot happen after cycle validation; keep waiting rather than lie
        self.finished = True
        self.on_done(self.failed)

    def _check_configured(self) -> None:
        if self.on_configured is None or self.failed or self.error or self.cancelled:
            return
        if all(s == "done" or (s == "running" and k in self.ready) for k, s in self.state.items()):
            callback, self.on_configured = self.on_configured, None
            callback()

    def item_ready(self, logical: str) -> None:
        if self.state.get(logical) == "running":
            self.ready.add(logical)
            self._advance()

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
            self.cancelled_items.append(logical)
            if task is not None:
                task.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        self.cancel_running()
        self._advance()


class Operation:
    def __init__(self, sim, stack, kind: str, token, disable_rollback: bool, changes: dict,
                 old: dict | None, change_set):
        self.sim = sim
        self.stack = stack
        self.kind = kind
        self.token = token
        self.disable_rollback = disable_rollback
        self.changes = changes  # logical -> Add | Modify | Remove
        self.old = old  # previous template/params/tags for update rollback
        self.change_set = change_set
        self.records: list = []
        self.record = None
        self.listeners: list = []
        self.group_ts: dict = {}
        self.phase = None
        self.cancel_reason = None
        self.cancel_token = None
        self.user_cancelled = False
        self.done = False
        self.final_status = None
        self.started_real = time.time()
        self.new_template_doc = stack.template
        self.touched: set = set()  # resources this operation acted on (for rollback)
        self.unchanged: set = set()  # resources that failed before anything was changed
        self.rollback_plan = None  # what an update rollback still has to revert and delete
        self.deleting = False  # a DeleteStack took over the create's rollback
        self.begin(OPERATION_TYPES[kind])

    # --------------------------------------------------------------- identity
    def begin(self, op_type: str, ended_with: str = "FAILED") -> None:
        """Start a new OperationId (the operation's first, or its rollback's)."""
        if self.record is not None:
            self.record.close(self.sim, ended_with)
        self.record = self.sim.new_record(self.stack, op_type, self.token)
        self.records.append(self.record)

    @property
    def op_id(self) -> str:
        return self.record.op_id

    @property
    def first_id(self) -> str:
        return self.records[0].op_id

    # --------------------------------------------------------------- helpers
    def settings(self, logical: str, rtype: str) -> dict:
        return sc.resource_settings(self.stack.scope, logical, rtype)

    def rng(self, logical: str, what: str) -> random.Random:
        seed = self.sim.scenario.get("seed", 0)
        return sc.rng_for(seed, self.stack.path, logical, what, self.kind)

    def overhead(self) -> float:
        return sc.pick(sc.scope_get(self.stack.scope, "stack_overhead", 1.0),
                       self.rng(self.stack.name, "overhead"), 1.0)

    def stack_event(self, status: str, reason=None, detailed=None):
        return self.sim.emit(self.stack, self.stack.name, STACK_TYPE, status, reason, op=self,
                             stack_level=True, detailed=detailed)

    def res_event(self, res, status: str, reason=None, physical=None, detailed=None, hook=None,
                  event_id=None) -> None:
        self.sim.emit(self.stack, res.logical, res.rtype, status, reason, physical=physical, op=self,
                      detailed=detailed, hook=hook, event_id=event_id)

    def after(self, seconds: float, fn) -> None:
        self.sim.scheduler.after(seconds, fn)

    def run_phase(self, items: dict, deps: dict, on_done, stop_on_failure: bool, on_configured=None) -> None:
        self.phase = Phase(self, items, deps, on_done, stop_on_failure, on_configured)
        if stop_on_failure and self.cancel_reason:
            self.phase.cancelled = True  # cancelled before the resources started
        self.phase.start()

    def run_item(self, phase: Phase, logical: str, action: str):
        self.touched.add(logical)
        return res_play.run_item(self, phase, logical, action)

    def resolve_error(self, logical: str, action: str):
        """A stack-level failure instead of starting the resource (e.g. Fn::GetAtt of an attribute
        the resource it names does not have): no event for the resource, the reason on the stack."""
        if action not in ("create", "update"):
            return None
        res = self.stack.resources[logical]
        return self.settings(logical, res.rtype).get("fail_resolve")

    def cancel(self, reason: str) -> None:
        """Stop the forward phase (a parent's sibling failed): the stack then rolls back."""
        if self.done or self.cancel_reason:
            return
        self.cancel_reason = reason
        if self.phase is not None and not self.phase.finished and self.phase.stop_on_failure:
            self.phase.cancel()

    def cancel_update(self, token) -> None:
        """CancelUpdateStack: roll the update back. The rollback carries the cancel request's token
        (a console cancel shows the console's token, glassechidna/stackit#26)."""
        self.user_cancelled = True
        self.cancel_token = token
        self.cancel(USER_INITIATED)

    def delete_instead(self, token) -> None:
        """DeleteStack during a create's ROLLBACK_IN_PROGRESS: a new operation (DELETE_STACK, the
        request's token or none) takes over. What the rollback had started finishes under the new
        OperationId, then the rest is deleted; the rollback never ends (real-events/25)."""
        if self.deleting:
            return
        self.deleting = True
        self.token = token
        self.begin("DELETE_STACK", "ROLLBACK_IN_PROGRESS")
        self.stack_event("DELETE_IN_PROGRESS", USER_INITIATED)

    def _deletable(self) -> dict:
        return {k: "delete" for k, r in self.stack.resources.items()
                if r.status is not None and r.status not in ("DELETE_COMPLETE", "DELETE_SKIPPED")}

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

    # --------------------------------------------------------------- flows
    def start(self) -> None:
        stack = self.stack
        if self.kind == "CREATE":
            self.stack_event("CREATE_IN_PROGRESS", USER_INITIATED)
            if self._early_validation():
                return
            items = {k: "create" for k in stack.template["Resources"]}
            deps = tpl.dependencies(stack.template)
            # Resource-level CONFIGURATION_COMPLETE is what real streams show; the stack-level one
            # (API reference: "all of the resources in the stack have reached that event") is opt-in.
            configured = self._stack_configured if sc.scope_get(stack.scope, "detailed_status") == "stack" else None
            self.after(self.overhead(), lambda: self.run_phase(items, deps, self._create_done, True, configured))
        elif self.kind == "UPDATE":
            stack.last_updated = self.sim.scheduler.now()
            self.stack_event("UPDATE_IN_PROGRESS", USER_INITIATED)
            if self._early_validation():
                return
            items = {k: ("create" if a == "Add" else "update") for k, a in self.changes.items() if a != "Remove"}
            deps = tpl.dependencies(stack.template)
            self.after(self.overhead(), lambda: self.run_phase(items, deps, self._update_done, True))
        elif self.kind == "DELETE":
            self.stack_event("DELETE_IN_PROGRESS", USER_INITIATED)
            deps = self._reverse_deps(stack.template)
            self.after(self.overhead(), lambda: self.run_phase(self._deletable(), deps, self._delete_done, False))
        elif self.kind == "UPDATE_ROLLBACK":
            self._update_rollback("Rollback requested by parent stack", new_record=False)
        elif self.kind == "CONTINUE_ROLLBACK":
            self._continue_rollback()

    def _stack_configured(self) -> None:
        self.stack_event("CREATE_IN_PROGRESS", "Eventual consistency check initiated",
                         detailed="CONFIGURATION_COMPLETE")

    def _early_validation(self) -> bool:
        """CloudFormation's pre-deployment validation on CreateStack/UpdateStack: the operation fails
        with VALIDATION_ERROR events (DescribeEvents only) and a stack-level *_FAILED, then its
        rollback (a new OperationId) has nothing to undo."""
        if self.change_set is not None or self.stack.parent is not None:
            return False  # a change set was validated when it was created; nested stacks are not
        errors = [e for e in ev.validation_specs(self.stack.scope, self.stack.template) if e["mode"] == "FAIL"]
        if not errors:
            return False

        def fail():
            self.record.validation_errors = ev.validation_items(self.sim, self.stack, self.record, errors)
            failed = "CREATE_FAILED" if self.kind == "CREATE" else "UPDATE_FAILED"
            reason = VALIDATION_FAILED.format(n=len(errors))
            if self.disable_rollback:
                self.finish(failed, reason, detailed="VALIDATION_FAILED")
                return
            self.stack_event(failed, reason, detailed="VALIDATION_FAILED")
            self.begin("ROLLBACK", failed)
            if self.kind == "CREATE":
                self.stack_event("ROLLBACK_IN_PROGRESS", VALIDATION_ROLLBACK)
                self.after(self.overhead(), lambda: self.finish("ROLLBACK_COMPLETE"))
            else:
                self._restore_previous()
                self.stack_event("UPDATE_ROLLBACK_IN_PROGRESS", VALIDATION_ROLLBACK)
                self.after(self.overhead(), lambda: self.finish("UPDATE_ROLLBACK_COMPLETE"))

        self.after(sc.pick(sc.scope_get(self.stack.scope, "validation_seconds", 3.0), self.rng("", "validation"),
                           3.0), fail)
        return True

    def _create_done(self, failed) -> None:
        error = self.phase.error if self.phase else None
        if not failed and not self.cancel_reason and not error:
            self.after(self.overhead(), lambda: self.finish("CREATE_COMPLETE"))
            return
        if failed:
            reason = _failed_reason([("create", failed + self.phase.cancelled_items)])
        else:
            reason = error or self.cancel_reason
        if self.disable_rollback:
            self.after(self.overhead(), lambda: self.finish("CREATE_FAILED", reason))
            return
        if failed or error:
            reason = _with_rollback_request(reason)
        self.begin("ROLLBACK", "CREATE_FAILED")
        self.stack_event("ROLLBACK_IN_PROGRESS", reason)

        def rolled_back(delete_failed):
            if self.deleting:
                deps = self._reverse_deps(self.stack.template)
                self.after(self.overhead(), lambda: self.run_phase(self._deletable(), deps, self._delete_done, False))
                return
            if delete_failed:
                self.finish("ROLLBACK_FAILED",
                            f"The following resource(s) failed to delete: [{_listing(delete_failed)}]. ")
            else:
                self.finish("ROLLBACK_COMPLETE")

        self.after(self.overhead(), lambda: self.run_phase(self._deletable(), self._reverse_deps(self.stack.template),
                                                           rolled_back, False))

    def _update_done(self, failed) -> None:
        error = self.phase.error if self.phase else None
        if not failed and not self.cancel_reason and not error:
            self.stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
            removed = {k: "cleanup" for k, a in self.changes.items() if a == "Remove"}

            def cleaned(delete_failed):
                # CloudFormation does not fail an update for a resource it could not clean up: it
                # drops it from the stack and says so on UPDATE_COMPLETE.
                for k in removed:
                    self.stack.resources.pop(k, None)
                # A nested stack resource reports UPDATE_COMPLETE again during the cleanup (FINDINGS §5.4).
                for k in sorted(self.touched):
                    res = self.stack.resources.get(k)
                    if res is not None and res.rtype == STACK_TYPE and self.changes.get(k) == "Modify":
                        self.res_event(res, "UPDATE_COMPLETE")
                reason = CLEANUP_DELETE_FAILED if delete_failed else None
                self.after(self.overhead(), lambda: self.finish("UPDATE_COMPLETE", reason))

            deps = self._reverse_deps(self.old["template"] if self.old else None)
            self.after(self.overhead(), lambda: self.run_phase(removed, deps, cleaned, False))
            return
        if failed:
            named = failed + self.phase.cancelled_items
            reason = _failed_reason([("create", [k for k in named if self.changes.get(k) == "Add"]),
                                     ("update", [k for k in named if self.changes.get(k) != "Add"])])
        else:
            reason = error or self.cancel_reason
        if self.disable_rollback and not self.user_cancelled:
            self.after(self.overhead(), lambda: self.finish("UPDATE_FAILED", reason))
            return
        self._update_rollback(reason, new_record=True)

    def _restore_previous(self) -> None:
        if self.old:
            self.stack.template = self.old["template"]
            self.stack.template_body = self.old["body"]
            self.stack.params = self.old["params"]
            self.stack.tags = self.old["tags"]

    def _update_rollback(self, reason: str, new_record: bool) -> None:
        """Revert modified resources, then delete the added ones (cleanup), like CloudFormation."""
        stack = self.stack
        if new_record:
            if self.user_cancelled:
                self.token = self.cancel_token
            self.begin("ROLLBACK", "UPDATE_FAILED")
        self.stack_event("UPDATE_ROLLBACK_IN_PROGRESS", reason)
        self._restore_previous()
        # A child reverted by its parent rolls back everything its completed update touched.
        touched = self.touched if self.kind == "UPDATE" else set(self.changes)
        # A resource whose update was cancelled, or failed before it started, had nothing changed: the
        # rollback only reports UPDATE_COMPLETE for it (real-events/22).
        untouched = set(self.unchanged)
        if self.phase is not None and self.kind == "UPDATE":
            untouched |= set(self.phase.cancelled_items)
        self.rollback_plan = {
            "revert": {k: "unchanged" if k in untouched else "revert" for k, a in self.changes.items()
                       if a == "Modify" and k in touched and k in stack.resources},
            "delete": {k for k, a in self.changes.items() if a == "Add" and k in touched and k in stack.resources},
            "template": self.new_template_doc,
        }
        self._run_rollback_plan(skip=set())

    def _run_rollback_plan(self, skip: set) -> None:
        """Revert what is left to revert, then clean up (delete) what the update added. A revert
        that fails leaves UPDATE_ROLLBACK_FAILED, from which ContinueUpdateRollback picks the plan
        up. A delete that fails in the cleanup is retried, then dropped: UPDATE_ROLLBACK_COMPLETE
        "Update successful. One or more resources could not be deleted." (stream 23)."""
        stack, plan = self.stack, self.rollback_plan
        for logical in sorted(skip):  # ContinueUpdateRollback ResourcesToSkip: marked done, left as is
            plan["revert"].pop(logical, None)
            self.res_event(stack.resources[logical], "UPDATE_COMPLETE")

        def reverted(revert_failed):
            plan["revert"] = {k: plan["revert"][k] for k in revert_failed}
            if revert_failed:
                stack.failed_rollback = self
                self.finish("UPDATE_ROLLBACK_FAILED", _failed_reason([("update", revert_failed)]))
                return
            self.stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")

            def cleaned(delete_failed):
                for k in plan["delete"]:
                    stack.resources.pop(k, None)
                reason = CLEANUP_DELETE_FAILED if delete_failed else None
                self.after(self.overhead(), lambda: self.finish("UPDATE_ROLLBACK_COMPLETE", reason))

            self.after(self.overhead(), lambda: self.run_phase({k: "cleanup" for k in plan["delete"]},
                                                               self._reverse_deps(plan["template"]), cleaned, False))

        deps = self._reverse_deps(stack.template)
        self.after(self.overhead(), lambda: self.run_phase(dict(plan["revert"]), deps, reverted, False))

    def _continue_rollback(self) -> None:
        """ContinueUpdateRollback: a new operation (CONTINUE_ROLLBACK) that finishes the failed
        rollback's plan, skipping `changes` (ResourcesToSkip)."""
        failed_op = self.stack.failed_rollback
        self.stack.failed_rollback = None
        self.rollback_plan = failed_op.rollback_plan
        self.stack_event("UPDATE_ROLLBACK_IN_PROGRESS", USER_INITIATED)
        self._run_rollback_plan(skip=set(self.changes))

    def _delete_done(self, failed) -> None:
        if failed:
            self.finish("DELETE_FAILED", f"The following resource(s) failed to delete: [{_listing(failed)}]. ")
        else:
            self.after(self.overhead(), lambda: self.finish("DELETE_COMPLETE"))

    def finish(self, status: str, reason=None, detailed=None) -> None:
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
        event = self.stack_event(status, reason, detailed)
        self.record.close(self.sim, status)
        stack.terminal_events.append({
            "status": status,
            "reason": reason,
            "operation_id": self.op_id,
            "operation_ids": [r.op_id for r in self.records],
            "timestamp": event.ts,
            "real_time": event.real_time,
        })
        pending, stack.pending = stack.pending, []
        for fn in pending:
            fn()
