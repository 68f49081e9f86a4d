"""CloudFormation actions: validate a request like CloudFormation does, change the simulation,
and return the result structure (serialised by cfnsim_xml). Runs under Sim.lock."""

from __future__ import annotations

import json
import re
import types
import uuid

import cfnsim_changeset as csd
import cfnsim_events as ev
import cfnsim_scenario as sc
import cfnsim_template as tpl
from cfnsim_engine import ACCOUNT, STACK_TYPE, UPDATABLE, ApiError, ChangeSet, validation
from cfnsim_xml import Ts, member_list

NAME_RE = re.compile(r"^[a-zA-Z][-a-zA-Z0-9]{0,127}$")
IN_PROGRESS_SUFFIX = "_IN_PROGRESS"


def _bool(params: dict, key: str) -> bool:
    return str(params.get(key, "")).lower() == "true"


def _tags(params: dict) -> list | None:
    if not any(k.startswith("Tags.") for k in params):
        return None
    return [(t.get("Key", ""), t.get("Value", "")) for t in member_list(params, "Tags") if isinstance(t, dict)]


def _check_name(name: str, field: str) -> None:
    if not name or not NAME_RE.match(name):
        raise validation(
            f"1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*")


def _page(items: list, params: dict, size: int, key: str) -> tuple:
    try:
        return ev.newest_first_page(items, params.get("NextToken"), size, key)
    except ev.TokenError as e:
        raise validation(str(e)) from e


def _without_values(rc: dict) -> dict:
    """A ResourceChange without IncludePropertyValues: no contexts, no Before/AfterValue."""
    out = {k: v for k, v in rc.items() if k not in ("BeforeContext", "AfterContext")}
    out["Details"] = [{**d, "Target": {k: v for k, v in d["Target"].items() if k not in ("BeforeValue", "AfterValue")}}
                      for d in rc.get("Details") or []]
    return out


def _invalid_action(action: str) -> ApiError:
    return ApiError("InvalidAction", f"Could not find operation {action} for version 2010-05-15", 400)


class Api:
    def __init__(self, sim):
        self.sim = sim

    def call(self, action: str, params: dict):
        handler = getattr(self, "do_" + action, None)
        if handler is None:
            raise _invalid_action(action)
        return handler(params)

    # ---------------------------------------------------------------- helpers
    def _stack_or_error(self, name: str, message: str):
        stack = self.sim.find_stack(name)
        if stack is None:
            raise validation(message)
        return stack

    def _template_from(self, params: dict, stack, allow_previous: bool):
        if allow_previous and _bool(params, "UsePreviousTemplate"):
            if stack is None or stack.template is None:
                raise validation("UsePreviousTemplate is not allowed for a stack without a template")
            return stack.template, stack.template_body
        if params.get("TemplateURL") and not params.get("TemplateBody"):
            raise validation("TemplateURL is not supported by the simulator: pass TemplateBody")
        body = params.get("TemplateBody")
        try:
            return tpl.parse_template(body), body
        except tpl.TemplateError as e:
            raise validation(str(e)) from e

    def _params_from(self, params: dict, template: dict, previous):
        try:
            return tpl.resolve_parameters(template, member_list(params, "Parameters"), previous)
        except tpl.TemplateError as e:
            raise validation(str(e)) from e

    def _check_capabilities(self, scope, template: dict, given: list) -> None:
        if not sc.scope_get(scope, "check_capabilities", True):
            return
        needed = tpl.required_capabilities(template)
        missing = [c for c in needed if c not in given
                   and not (c == "CAPABILITY_IAM" and "CAPABILITY_NAMED_IAM" in given)]
        if missing:
            raise ApiError("InsufficientCapabilitiesException", f"Requires capabilities : [{missing[0]}]")

    def _not_updatable(self, stack):
        return validation(f"Stack:{stack.id} is in {stack.status} state and can not be updated.")

    def _changes(self, stack, template, new_params, tags, force_all=False):
        scope = stack.scope
        force = set(sc.scope_get(scope, "update_changes", []) or [])
        tags_changed = tags is not None and tags != stack.tags
        changes = tpl.compute_changes(stack.template, template, stack.params, new_params, tags_changed, force)
        mode = sc.scope_get(scope, "empty_change_set", "auto")
        if mode is True:
            return []
        if (mode is False or force_all) and not changes:
            changes = [("Modify", k, r["Type"]) for k, r in template["Resources"].items()]
        return changes

    def _snapshot(self, stack) -> dict:
        return {"template": stack.template, "body": stack.template_body, "params": stack.params,
                "tags": stack.tags}

    def _apply(self, stack, template, body, new_params, params, tags):
        stack.set_template(template, body, new_params)
        if tags is not None:
            stack.tags = tags
        caps = member_list(params, "Capabilities")
        if caps:
            stack.capabilities = caps
        if params.get("RoleARN"):
            stack.role_arn = params["RoleARN"]

    # ---------------------------------------------------------------- change sets
    def do_CreateChangeSet(self, params: dict):
        sim = self.sim
        stack_name = params.get("StackName", "")
        cs_name = params.get("ChangeSetName", "")
        _check_name(cs_name, "changeSetName")
        cs_type = params.get("ChangeSetType", "UPDATE")
        token = params.get("ClientToken")
        stack = sim.find_stack(stack_name)
        if token and stack is not None:
            for cs in sim.change_sets.values():
                if cs.stack is stack and cs.client_token == token and cs.name == cs_name:
                    return {"Id": cs.id, "StackId": stack.id}
        if cs_type == "CREATE":
            if not stack_name.startswith("arn:"):
                _check_name(stack_name, "stackName")
            if stack is not None and stack.status != "REVIEW_IN_PROGRESS":
                raise validation(
                    f"Stack [{stack.name}] already exists and cannot be created again with the changeSet [{cs_name}].")
        elif cs_type == "UPDATE":
            if stack is None:
                raise validation(f"Stack [{stack_name}] does not exist")
            if stack.status not in UPDATABLE:
                raise self._not_updatable(stack)
        else:
            raise validation(f"ChangeSetType {cs_type} is not supported by the simulator")
        if stack is not None and any(cs.stack is stack and cs.name == cs_name for cs in sim.change_sets.values()):
            raise ApiError("AlreadyExistsException", f"ChangeSet [{cs_name}] already exists")
        scope = stack.scope if stack is not None else sim.scenario.root_scope(stack_name)
        template, body = self._template_from(params, stack, cs_type == "UPDATE")
        previous = stack.params if (stack is not None and cs_type == "UPDATE") else None
        new_params = self._params_from(params, template, previous)
        caps = member_list(params, "Capabilities")
        self._check_capabilities(scope, template, caps)
        tags = _tags(params)

        if cs_type == "CREATE":
            changes = [("Add", k, r["Type"]) for k, r in template["Resources"].items()]
            new_stack = stack is None
            if new_stack:
                stack = sim.new_stack(stack_name)
            details = csd.resource_changes(changes, None, template, {}, new_params, False, {}, True)
        else:
            new_stack = False
            changes = self._changes(stack, template, new_params, tags)
            details = csd.resource_changes(changes, stack.template, template, stack.params, new_params,
                                           tags is not None and tags != stack.tags,
                                           {k: r.physical for k, r in stack.resources.items()}, True)
            changes = csd.as_tuples(details)
        # Creating a change set is an operation of its own (DescribeEvents OperationType CREATE_CHANGESET),
        # but the REVIEW_IN_PROGRESS event carries no OperationId (streams 22-24).
        record = sim.new_record(stack, "CREATE_CHANGESET", None)
        if new_stack:
            sim.emit(stack, stack.name, STACK_TYPE, "REVIEW_IN_PROGRESS", "User Initiated", stack_level=True)

        cs = ChangeSet(
            id=f"arn:aws:cloudformation:{sim.region}:{ACCOUNT}:changeSet/{cs_name}/{uuid.uuid4()}",
            name=cs_name, stack=stack, type=cs_type, template=template, body=body, params=new_params,
            raw_params=params, tags=tags, capabilities=caps, description=params.get("Description"),
            status="CREATE_PENDING", reason=None, exec_status="UNAVAILABLE",
            creation_time=sim.scheduler.now(), changes=changes, client_token=token, exec_token=None,
            record=record, details=details, include_nested=_bool(params, "IncludeNestedStacks"),
            parent_id=None, root_id=None, children=[],
        )
        sim.change_sets[cs.id] = cs
        if cs.include_nested:
            self._nested_change_sets(cs, cs, stack, scope, tags is not None and tags != stack.tags)
        rng = sc.rng_for(sim.scenario.get("seed", 0), stack.path, cs_name, "changeset")
        total = sc.pick(sc.scope_get(scope, "change_set_seconds", [2, 5]), rng, 3.0)

        def in_progress():
            if cs.status == "CREATE_PENDING":
                cs.status = "CREATE_IN_PROGRESS"

        def complete():
            if cs.status != "CREATE_IN_PROGRESS":
                return
            specs = ev.validation_specs(scope, template)
            record.validation_errors = ev.validation_items(sim, stack, record, specs)
            failure = sc.scope_get(scope, "change_set_failure") or ev.change_set_failure(specs)
            if not cs.changes and not failure:
                failure = ("The submitted information didn't contain changes. Submit different information "
                           "to create a change set.")
            if failure:
                cs.status, cs.exec_status, cs.reason = "FAILED", "UNAVAILABLE", failure
                record.close(sim, "FAILED")
            else:
                cs.status, cs.exec_status = "CREATE_COMPLETE", "AVAILABLE"
                record.close(sim, "CREATE_COMPLETE")
            # Nested change sets are created with their root and end as it does.
            for child in self._descendants(cs):
                child.status, child.exec_status, child.reason = cs.status, cs.exec_status, None

        sim.scheduler.after(total * 0.2, in_progress)
        sim.scheduler.after(total, complete)
        return {"Id": cs.id, "StackId": stack.id}

    def _descendants(self, cs) -> list:
        out = []
        for child in cs.children:
            out.append(child)
            out.extend(self._descendants(child))
        return out

    def _nested_change_sets(self, parent_cs, root_cs, stack, scope, tags_changed: bool) -> None:
        """IncludeNestedStacks: a change set for each nested stack the parent adds or modifies
        (API_CreateChangeSet IncludeNestedStacks; API_DescribeChangeSet ParentChangeSetId,
        RootChangeSetId; the AWS::CloudFormation::Stack change's ChangeSetId). A modified nested
        stack's resources change as its update would play them (`update_changes`, else all), or
        as the scenario's `next_template` for it says."""
        sim = self.sim
        for rc in parent_cs.details:
            if rc["ResourceType"] != csd.NESTED_STACK or rc["Action"] not in ("Add", "Modify"):
                continue
            logical = rc["LogicalResourceId"]
            cfg = sc.nested_config(scope, logical)
            child_scope = scope + [cfg]
            existing = stack.resources.get(logical) if stack is not None else None
            child_stack = existing.child if existing is not None else None
            suffix = sc.rand_suffix(sc.rng_for(sim.scenario.get("seed", 0), parent_cs.id, logical))
            if rc["Action"] == "Modify" and child_stack is not None and child_stack.template is not None:
                old = child_stack.template
                new = tpl.parse_template(json.dumps(cfg["next_template"])) if cfg.get("next_template") else old
                force = cfg.get("update_changes")
                if force is None and not cfg.get("next_template"):
                    force = list(old["Resources"])
                changes = tpl.compute_changes(old, new, child_stack.params, child_stack.params, tags_changed,
                                              set(force or []))
                details = csd.resource_changes(changes, old, new, child_stack.params, child_stack.params,
                                               tags_changed,
                                               {k: r.physical for k, r in child_stack.resources.items()}, True)
                changes = csd.as_tuples(details)
                owner = child_stack
            else:
                new = tpl.parse_template(json.dumps(cfg.get("template") or {
                    "Resources": {"Resource": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}))
                changes = [("Add", k, r["Type"]) for k, r in new["Resources"].items()]
                details = csd.resource_changes(changes, None, new, {}, {}, False, {}, True)
                name = f"{parent_cs.stack.name}-{logical}-{suffix}"
                # The nested stack does not exist until the root change set runs.
                owner = types.SimpleNamespace(
                    id=f"arn:aws:cloudformation:{sim.region}:{ACCOUNT}:stack/{name}/{uuid.uuid4()}",
                    name=name, resources={})
            cs_name = f"{root_cs.name}-{logical}-{suffix}"
            child = ChangeSet(
                id=f"arn:aws:cloudformation:{sim.region}:{ACCOUNT}:changeSet/{cs_name}/{uuid.uuid4()}",
                name=cs_name, stack=owner, type=parent_cs.type, template=new, body=json.dumps(new), params={},
                raw_params={}, tags=parent_cs.tags, capabilities=parent_cs.capabilities, description=None,
                status="CREATE_PENDING", reason=None, exec_status="UNAVAILABLE",
                creation_time=parent_cs.creation_time, changes=changes, client_token=None, exec_token=None,
                record=parent_cs.record, details=details, include_nested=True, parent_id=parent_cs.id,
                root_id=root_cs.id, children=[],
            )
            sim.change_sets[child.id] = child
            parent_cs.children.append(child)
            rc["ChangeSetId"] = child.id
            self._nested_change_sets(child, root_cs, child_stack, child_scope, tags_changed)

    def _change_set_dict(self, cs, params: dict) -> dict:
        result = {
            "ChangeSetName": cs.name,
            "ChangeSetId": cs.id,
            "StackId": cs.stack.id,
            "StackName": cs.stack.name,
            "Description": cs.description,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in cs.params.items()] or None,
            "CreationTime": Ts(cs.creation_time),
            "ExecutionStatus": cs.exec_status,
            "Status": cs.status,
            "StatusReason": cs.reason,
            "Capabilities": cs.capabilities or None,
            "Tags": [{"Key": k, "Value": v} for k, v in (cs.tags or [])] or None,
            "IncludeNestedStacks": cs.include_nested,
            "ParentChangeSetId": cs.parent_id,
            "RootChangeSetId": cs.root_id,
        }
        if cs.status == "CREATE_COMPLETE":
            values = _bool(params, "IncludePropertyValues")
            changes = [{"Type": "Resource", "ResourceChange": _without_values(rc) if not values else rc}
                       for rc in cs.details]
            # Changes come in pages (API_DescribeChangeSet NextToken: "If the output exceeds 1 MB");
            # the scenario's `change_set_page_size` pages them by count.
            size = sc.scope_get(cs.stack.scope if hasattr(cs.stack, "scope") else [], "change_set_page_size")
            start = 0
            if params.get("NextToken"):
                try:
                    start = int(params["NextToken"].removeprefix("changes-"))
                except ValueError as e:
                    raise validation("Invalid NextToken") from e
            if size:
                end = start + int(size)
                result["Changes"] = changes[start:end]
                result["NextToken"] = f"changes-{end}" if end < len(changes) else None
            else:
                result["Changes"] = changes
        return result

    def do_DescribeChangeSet(self, params: dict):
        cs = self.sim.find_change_set(params.get("ChangeSetName", ""), params.get("StackName"))
        return self._change_set_dict(cs, params)

    def do_ExecuteChangeSet(self, params: dict):
        sim = self.sim
        cs = sim.find_change_set(params.get("ChangeSetName", ""), params.get("StackName"))
        token = params.get("ClientRequestToken")
        if token and cs.exec_token == token:
            return {}  # a retry of an accepted request: CloudFormation answers success again
        if cs.exec_status != "AVAILABLE":
            if cs.status != "CREATE_COMPLETE":
                raise ApiError("InvalidChangeSetStatus",
                               f"ChangeSet [{cs.id}] cannot be executed in its current status of [{cs.status}]")
            raise ApiError("InvalidChangeSetStatus",
                           f"ChangeSet [{cs.id}] cannot be executed in its current execution status of "
                           f"[{cs.exec_status}]")
        stack = cs.stack
        disable_rollback = _bool(params, "DisableRollback")
        if cs.type == "CREATE":
            if stack.status != "REVIEW_IN_PROGRESS":
                raise self._not_updatable(stack)
            self._apply(stack, cs.template, cs.body, cs.params, cs.raw_params, cs.tags)
            kind, old, changes = "CREATE", None, {}
        else:
            if stack.status not in UPDATABLE:
                raise self._not_updatable(stack)
            old = self._snapshot(stack)
            self._apply(stack, cs.template, cs.body, cs.params, cs.raw_params, cs.tags)
            kind, changes = "UPDATE", {logical: action for action, logical, _ in cs.changes}
        stack.disable_rollback = disable_rollback
        stack.change_set_id = cs.id
        cs.exec_status = "EXECUTE_IN_PROGRESS"
        cs.exec_token = token
        for other in sim.change_sets.values():
            if other is not cs and other.stack is stack and other.exec_status == "AVAILABLE":
                other.exec_status = "OBSOLETE"
        sim.start_operation(stack, kind, token=token, disable_rollback=disable_rollback, changes=changes, old=old,
                            change_set=cs)
        return {}

    def do_DeleteChangeSet(self, params: dict):
        cs = self.sim.find_change_set(params.get("ChangeSetName", ""), params.get("StackName"))
        if cs.exec_status == "EXECUTE_IN_PROGRESS":
            raise ApiError("InvalidChangeSetStatus",
                           f"Cannot delete ChangeSet [{cs.id}] while it is in status {cs.exec_status}")
        # Deleting a root change set deletes its nested change sets.
        for child in self._descendants(cs):
            self.sim.change_sets.pop(child.id, None)
        del self.sim.change_sets[cs.id]
        return {}

    # ---------------------------------------------------------------- stacks
    def do_CreateStack(self, params: dict):
        sim = self.sim
        name = params.get("StackName", "")
        _check_name(name, "stackName")
        token = params.get("ClientRequestToken")
        existing = sim.find_stack(name)
        if existing is not None:
            first = existing.operations[0] if existing.operations else None
            if token and first is not None and first.kind == "CREATE" and first.token == token:
                return {"StackId": existing.id, "OperationId": first.first_id}
            raise ApiError("AlreadyExistsException", f"Stack [{name}] already exists")
        scope = sim.scenario.root_scope(name)
        template, body = self._template_from(params, None, False)
        new_params = self._params_from(params, template, None)
        self._check_capabilities(scope, template, member_list(params, "Capabilities"))
        stack = sim.new_stack(name)
        self._apply(stack, template, body, new_params, params, _tags(params) or [])
        disable_rollback = _bool(params, "DisableRollback") or params.get("OnFailure") == "DO_NOTHING"
        stack.disable_rollback = disable_rollback
        op = sim.start_operation(stack, "CREATE", token=token, disable_rollback=disable_rollback)
        return {"StackId": stack.id, "OperationId": op.first_id}

    def do_UpdateStack(self, params: dict):
        sim = self.sim
        name = params.get("StackName", "")
        stack = self._stack_or_error(name, f"Stack [{name}] does not exist")
        token = params.get("ClientRequestToken")
        last = stack.operations[-1] if stack.operations else None
        if token and last is not None and last.kind == "UPDATE" and last.token == token:
            return {"StackId": stack.id, "OperationId": last.first_id}
        if stack.status not in UPDATABLE:
            raise self._not_updatable(stack)
        template, body = self._template_from(params, stack, True)
        new_params = self._params_from(params, template, stack.params)
        self._check_capabilities(stack.scope, template, member_list(params, "Capabilities"))
        tags = _tags(params)
        changes = self._changes(stack, template, new_params, tags)
        if not changes:
            raise validation("No updates are to be performed.")
        old = self._snapshot(stack)
        self._apply(stack, template, body, new_params, params, tags)
        disable_rollback = _bool(params, "DisableRollback")
        stack.disable_rollback = disable_rollback
        op = sim.start_operation(stack, "UPDATE", token=token, disable_rollback=disable_rollback,
                                 changes={logical: action for action, logical, _ in changes}, old=old)
        return {"StackId": stack.id, "OperationId": op.first_id}

    def do_DeleteStack(self, params: dict):
        sim = self.sim
        stack = sim.find_stack(params.get("StackName", ""))
        if stack is None or stack.deleted or stack.status == "DELETE_IN_PROGRESS":
            return None  # DeleteStack is idempotent: a missing stack is not an error
        if stack.status == "ROLLBACK_IN_PROGRESS" and stack.current_op is not None:
            stack.current_op.delete_instead(params.get("ClientRequestToken"))
            return None
        if stack.status.endswith(IN_PROGRESS_SUFFIX) and stack.status != "REVIEW_IN_PROGRESS":
            raise validation(f"Stack [{stack.name}] cannot be deleted while in status {stack.status}")
        sim.start_operation(stack, "DELETE", token=params.get("ClientRequestToken"))
        return None

    def do_CancelUpdateStack(self, params: dict):
        """Only in UPDATE_IN_PROGRESS ("You can cancel only stacks that are in the UPDATE_IN_PROGRESS
        state"); a retry with the same ClientRequestToken is the same request and succeeds again
        ("You might retry CancelUpdateStack requests to ensure that CloudFormation successfully
        received them"), https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CancelUpdateStack.html."""
        name = params.get("StackName", "")
        stack = self._stack_or_error(name, f"Stack [{name}] does not exist")
        token = params.get("ClientRequestToken")
        op = stack.current_op
        if op is not None and op.user_cancelled:
            if token and op.cancel_token == token:
                return None
            raise validation("CancelUpdateStack cannot be called from current stack status")
        if stack.status != "UPDATE_IN_PROGRESS" or op is None:
            raise validation("CancelUpdateStack cannot be called from current stack status")
        op.cancel_update(token)
        return None

    def do_ContinueUpdateRollback(self, params: dict):
        name = params.get("StackName", "")
        stack = self._stack_or_error(name, f"Stack [{name}] does not exist")
        if stack.status != "UPDATE_ROLLBACK_FAILED" or stack.failed_rollback is None:
            raise validation("ContinueUpdateRollback cannot be called from current stack status")
        skip = member_list(params, "ResourcesToSkip")
        for logical in skip:
            res = stack.resources.get(logical)
            if res is None or res.status != "UPDATE_FAILED":
                raise validation(f"Resource [{logical}] is not in a failed state and cannot be skipped")
        self.sim.start_operation(stack, "CONTINUE_ROLLBACK", token=params.get("ClientRequestToken"),
                                 changes={logical: "Skip" for logical in skip})
        return {}

    def _stack_dict(self, stack) -> dict:
        # Change set creations are operations too, but a stack's LastOperations are what ran on it.
        ops = [{"OperationType": r.op_type, "OperationId": r.op_id} for r in reversed(stack.records)
               if r.op_type != "CREATE_CHANGESET"]
        return {
            "StackId": stack.id,
            "StackName": stack.name,
            "ChangeSetId": stack.change_set_id,
            "Description": stack.description,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in stack.params.items()] or None,
            "CreationTime": Ts(stack.creation_time),
            "DeletionTime": Ts(stack.deletion_time) if stack.deletion_time else None,
            "LastUpdatedTime": Ts(stack.last_updated) if stack.last_updated else None,
            "RollbackConfiguration": {},
            "StackStatus": stack.status,
            "StackStatusReason": stack.reason,
            "DisableRollback": stack.disable_rollback,
            "NotificationARNs": None,
            "Capabilities": stack.capabilities or None,
            "Outputs": stack.outputs or None,
            "RoleARN": stack.role_arn,
            "Tags": [{"Key": k, "Value": v} for k, v in stack.tags] or None,
            "EnableTerminationProtection": False,
            "ParentId": stack.parent.id if stack.parent else None,
            "RootId": stack.root.id if stack.parent else None,
            "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
            "DetailedStatus": stack.detailed_status,
            "LastOperations": ops[:5] or None,
        }

    def do_DescribeStacks(self, params: dict):
        name = params.get("StackName")
        if name:
            stack = self._stack_or_error(name, f"Stack with id {name} does not exist")
            stacks = [stack]
        else:
            stacks = [s for s in self.sim.stacks.values() if not s.deleted]
        return {"Stacks": [self._stack_dict(s) for s in stacks]}

    def do_DescribeStackEvents(self, params: dict):
        name = params.get("StackName", "")
        stack = self._stack_or_error(name, f"Stack [{name}] does not exist")
        size = int(sc.scope_get(stack.scope, "events_page_size", 100) or 100)
        fractions = sc.scope_get(stack.scope, "timestamp_fractions", True) is not False
        page, token = _page(stack.events, params, size, stack.id)
        return {"StackEvents": [ev.stack_event_item(e, fractions) for e in page], "NextToken": token}

    def do_DescribeEvents(self, params: dict):
        """Events grouped by operation: of a stack, of one operation, or of a change set's creation."""
        sim = self.sim
        if sim.scenario.get("describe_events", True) is False:
            raise _invalid_action("DescribeEvents")  # a region or endpoint without it: clients fall back
        stack_name, cs_name, op_id = (params.get(k) for k in ("StackName", "ChangeSetName", "OperationId"))
        if not (stack_name or cs_name or op_id) or (cs_name and not cs_name.startswith("arn:") and not stack_name):
            # Real CloudFormation says this too for a change set named without its stack
            # (aws-cloudformation/cloudformation-cli#1116).
            raise validation("One of ChangeSetName, OperationId or StackName must be specified")
        if cs_name:
            record = sim.find_change_set(cs_name, stack_name).record
            stack, wanted = record.stack, {record.op_id}
        elif op_id and not stack_name:
            record = sim.records.get(op_id)
            if record is None:
                return {"OperationEvents": []}
            stack, wanted = record.stack, {op_id}
        else:
            stack = self._stack_or_error(stack_name, f"Stack [{stack_name}] does not exist")
            wanted = {op_id} if op_id else None
        failed_only = str(params.get("Filters.FailedEvents", "")).lower() == "true"
        fractions = sc.scope_get(stack.scope, "timestamp_fractions", True) is not False
        items = ev.operation_events(stack.events, stack.records, wanted, failed_only, fractions)
        size = int(sc.scope_get(stack.scope, "describe_events_page_size", 100) or 100)
        key = f"{stack.id}|{','.join(sorted(wanted or []))}|{failed_only}"
        page, token = _page(items, params, size, key)
        return {"OperationEvents": page, "NextToken": token}

    def _resources(self, params: dict):
        name = params.get("StackName")
        physical = params.get("PhysicalResourceId")
        if name:
            stack = self._stack_or_error(name, f"Stack with id {name} does not exist")
        elif physical:
            stack = next((s for s in self.sim.stacks.values() for r in s.resources.values()
                          if r.physical == physical), None)
            if stack is None:
                raise validation(f"Stack for {physical} does not exist")
        else:
            raise validation("Either StackName or PhysicalResourceId must be specified.")
        wanted = params.get("LogicalResourceId")
        items = [r for r in stack.resources.values() if r.status is not None and (not wanted or r.logical == wanted)]
        return stack, items

    def do_DescribeStackResources(self, params: dict):
        stack, items = self._resources(params)
        return {"StackResources": [{
            "StackName": stack.name, "StackId": stack.id, "LogicalResourceId": r.logical,
            "PhysicalResourceId": r.physical, "ResourceType": r.rtype, "Timestamp": Ts(r.ts),
            "ResourceStatus": r.status, "ResourceStatusReason": r.reason,
            "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
        } for r in items]}

    def do_ListStackResources(self, params: dict):
        stack, items = self._resources({"StackName": params.get("StackName", "")})
        return {"StackResourceSummaries": [{
            "LogicalResourceId": r.logical, "PhysicalResourceId": r.physical, "ResourceType": r.rtype,
            "LastUpdatedTimestamp": Ts(r.ts), "ResourceStatus": r.status, "ResourceStatusReason": r.reason,
            "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
        } for r in items]}

    def do_GetTemplate(self, params: dict):
        if params.get("ChangeSetName"):
            cs = self.sim.find_change_set(params["ChangeSetName"], params.get("StackName"))
            body = cs.body
        else:
            name = params.get("StackName", "")
            stack = self._stack_or_error(name, f"Stack with id {name} does not exist")
            body = stack.template_body
        return {"TemplateBody": body, "StagesAvailable": ["Original", "Processed"]}

    def do_ValidateTemplate(self, params: dict):
        template, _ = self._template_from(params, None, False)
        declared = template.get("Parameters") or {}
        caps = tpl.required_capabilities(template)
        return {
            "Parameters": [{
                "ParameterKey": k,
                "DefaultValue": str(v["Default"]) if isinstance(v, dict) and "Default" in v else None,
                "NoEcho": bool(isinstance(v, dict) and str(v.get("NoEcho", "")).lower() == "true"),
                "Description": v.get("Description") if isinstance(v, dict) else None,
            } for k, v in declared.items()] or None,
            "Description": template.get("Description"),
            "Capabilities": caps or None,
            "CapabilitiesReason": "The following resource(s) require capabilities: "
                                  f"[{', '.join(sorted({r['Type'] for r in template['Resources'].values() if r['Type'].startswith('AWS::IAM::')}))}]"
            if caps else None,
        }
