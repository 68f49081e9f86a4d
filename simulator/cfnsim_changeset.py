"""What DescribeChangeSet says about each resource change: Action, Replacement, Scope and
Details (Target, Evaluation, ChangeSource, CausingEntity), with IncludePropertyValues the
BeforeValue/AfterValue of each property and the resource's BeforeContext/AfterContext.

Shapes: API_ResourceChange, API_ResourceChangeDetail and API_ResourceTargetDefinition of the
CloudFormation API reference (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/
API_ResourceChange.html, .../API_ResourceChangeDetail.html, .../API_ResourceTargetDefinition.html):

- Target.Attribute is Properties, Metadata, CreationPolicy, UpdatePolicy, DeletionPolicy,
  UpdateReplacePolicy or Tags; Name the property (Properties only); RequiresRecreation Never,
  Always or Conditionally (Properties only); Path `/Properties/Name`; AttributeChangeType
  Add/Remove/Modify; BeforeValue/AfterValue only with IncludePropertyValues.
- ChangeSource DirectModification (the template text changed; no CausingEntity),
  ParameterReference (a `Ref` to a parameter whose value changed; CausingEntity the parameter),
  ResourceReference / ResourceAttribute (`Ref` / `Fn::GetAtt` of a resource that is replaced,
  CausingEntity `Res` / `Res.Attr`, Evaluation Dynamic: its new value is only known when it runs),
  Automatic (an AWS::CloudFormation::Stack resource, whose template may have changed).
- Replacement: True when a property that requires recreation changes statically, Conditional
  when it may (Conditionally, or Always with a Dynamic evaluation), else False (the
  "Replacement" member of API_ResourceChange).

Which properties require replacement is the per-property "Update requires: Replacement" of the
CloudFormation template reference, for the types the tests use (REPLACEMENT below). A property
not listed is updated in place (Never), so a type the table does not know is never replaced:
add its replacing properties from its reference page when a test needs it.
"""

from __future__ import annotations

import json

import cfnsim_template as tpl

# Properties whose change is "Update requires: Replacement" in the template reference
# (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-<service>-<type>.html).
REPLACEMENT = {
    # aws-resource-dynamodb-table.html: TableName, KeySchema, LocalSecondaryIndexes.
    "AWS::DynamoDB::Table": {"TableName": "Always", "KeySchema": "Always", "LocalSecondaryIndexes": "Always"},
    # aws-resource-s3-bucket.html: BucketName, ObjectLockEnabled.
    "AWS::S3::Bucket": {"BucketName": "Always", "ObjectLockEnabled": "Always"},
    # aws-resource-rds-dbinstance.html: DBInstanceIdentifier, Engine, DBName, MasterUsername,
    # KmsKeyId, CharacterSetName.
    "AWS::RDS::DBInstance": {"DBInstanceIdentifier": "Always", "Engine": "Always", "DBName": "Always",
                             "MasterUsername": "Always", "KmsKeyId": "Always", "CharacterSetName": "Always"},
    # aws-resource-rds-dbcluster.html: DBClusterIdentifier, DatabaseName, MasterUsername, KmsKeyId.
    "AWS::RDS::DBCluster": {"DBClusterIdentifier": "Always", "DatabaseName": "Always",
                            "MasterUsername": "Always", "KmsKeyId": "Always"},
    # aws-resource-logs-loggroup.html: LogGroupName.
    "AWS::Logs::LogGroup": {"LogGroupName": "Always"},
    # aws-resource-sqs-queue.html: QueueName, FifoQueue.
    "AWS::SQS::Queue": {"QueueName": "Always", "FifoQueue": "Always"},
    # aws-resource-lambda-function.html: FunctionName.
    "AWS::Lambda::Function": {"FunctionName": "Always"},
    # aws-resource-iam-role.html: RoleName, Path.
    "AWS::IAM::Role": {"RoleName": "Always", "Path": "Always"},
    # aws-resource-ec2-securitygroup.html: GroupName, GroupDescription, VpcId.
    "AWS::EC2::SecurityGroup": {"GroupName": "Always", "GroupDescription": "Always", "VpcId": "Always"},
    # aws-resource-efs-filesystem.html: PerformanceMode, Encrypted, KmsKeyId.
    "AWS::EFS::FileSystem": {"PerformanceMode": "Always", "Encrypted": "Always", "KmsKeyId": "Always"},
    # aws-resource-cognito-userpool.html: UsernameAttributes, AliasAttributes.
    "AWS::Cognito::UserPool": {"UsernameAttributes": "Always", "AliasAttributes": "Always"},
}

# Resource attributes a change set reports in Scope besides Properties and Tags
# (API_ResourceChange: Scope).
ATTRIBUTES = ("Metadata", "CreationPolicy", "UpdatePolicy", "DeletionPolicy", "UpdateReplacePolicy")

NESTED_STACK = "AWS::CloudFormation::Stack"


def requires_recreation(rtype: str, prop: str) -> str:
    return REPLACEMENT.get(rtype, {}).get(prop, "Never")


def _text(value) -> str:
    """A value as DescribeChangeSet gives it: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _resolve(node, params: dict):
    """Intrinsics that use only parameters (`Ref`, `Fn::Sub`, `Fn::Join`, ...) evaluated to
    their value (what IncludePropertyValues shows); those that refer to resources are left as
    they are written (their value is only known when it runs)."""
    if isinstance(node, dict):
        if len(node) == 1 and next(iter(node)) in ("Ref", "Fn::Sub", "Fn::Join", "Fn::Select"):
            refs = set()
            tpl._walk_refs(node, refs)
            if refs <= set(params):
                return tpl.resolve_value(node, {"params": params})
        return {k: _resolve(v, params) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, params) for v in node]
    return node


def _context(res: dict, params: dict) -> str:
    """BeforeContext / AfterContext: the resource's properties and attributes as JSON text."""
    ctx = {"Properties": _resolve(res.get("Properties") or {}, params)}
    for attr in ATTRIBUTES:
        if attr in res:
            ctx[attr] = res[attr]
    return json.dumps(ctx, sort_keys=True)


def _refs_to(node, names: set) -> list:
    """[(ChangeSource, CausingEntity)] for each Ref / Fn::GetAtt / Fn::Sub of a name in `names`."""
    found = []

    def walk(n):
        if isinstance(n, dict):
            if len(n) == 1:
                (k, v), = n.items()
                if k == "Ref" and isinstance(v, str) and v in names:
                    found.append(("ResourceReference", v))
                    return
                if k == "Fn::GetAtt":
                    logical, attr = (v.partition(".")[0], v.partition(".")[2]) if isinstance(v, str) else (
                        v[0], v[1] if len(v) > 1 else "")
                    if logical in names:
                        found.append(("ResourceAttribute", f"{logical}.{attr}"))
                        return
                if k == "Fn::Sub":
                    refs = set()
                    tpl._walk_refs(n, refs)  # ${X} and ${X.Attr} of a Sub
                    found.extend(("ResourceReference", r) for r in sorted(refs & names))
                    return
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(node)
    return found


def _param_refs(node, changed: set) -> list:
    refs = set()
    tpl._walk_refs(node, refs)
    return sorted(refs & changed)


def _target(attribute: str, name, recreation, change_type: str, before, after, values: bool) -> dict:
    target = {"Attribute": attribute, "Name": name, "RequiresRecreation": recreation,
              "Path": f"/{attribute}/{name}" if name else f"/{attribute}",
              "AttributeChangeType": change_type}
    if values:
        target["BeforeValue"] = None if before is None else _text(before)
        target["AfterValue"] = None if after is None else _text(after)
    return target


def _modify_details(rtype: str, old: dict, new: dict, old_params: dict, new_params: dict,
                    tags_changed: bool, replaced: set, values: bool) -> list:
    changed_params = {k for k in set(old_params) | set(new_params) if old_params.get(k) != new_params.get(k)}
    details = []
    old_props, new_props = old.get("Properties") or {}, new.get("Properties") or {}
    for prop in sorted(set(old_props) | set(new_props)):
        before, after = old_props.get(prop), new_props.get(prop)
        change_type = "Add" if prop not in old_props else "Remove" if prop not in new_props else "Modify"
        recreation = requires_recreation(rtype, prop)
        rb, ra = _resolve(before, old_params), _resolve(after, new_params)
        target = _target("Properties", prop, recreation, change_type, rb, ra, values)
        if json.dumps(before, sort_keys=True) != json.dumps(after, sort_keys=True):
            details.append({"Target": target, "Evaluation": "Static", "ChangeSource": "DirectModification"})
            continue
        for param in _param_refs(after, changed_params):
            details.append({"Target": target, "Evaluation": "Static", "ChangeSource": "ParameterReference",
                            "CausingEntity": param})
        for source, entity in _refs_to(after, replaced):
            # The value is the new physical id or attribute of a resource being replaced: known
            # only when it runs (Evaluation Dynamic, API_ResourceChangeDetail).
            dyn = dict(target)
            if values:
                dyn["AfterValue"] = None
            details.append({"Target": dyn, "Evaluation": "Dynamic", "ChangeSource": source,
                            "CausingEntity": entity})
    for attr in ATTRIBUTES:
        if json.dumps(old.get(attr), sort_keys=True) != json.dumps(new.get(attr), sort_keys=True):
            change_type = "Add" if attr not in old else "Remove" if attr not in new else "Modify"
            details.append({"Target": _target(attr, None, None, change_type, old.get(attr), new.get(attr), values),
                            "Evaluation": "Static", "ChangeSource": "DirectModification"})
    if tags_changed:
        details.append({"Target": _target("Tags", None, "Never", "Modify", None, None, False),
                        "Evaluation": "Static", "ChangeSource": "DirectModification"})
    return details


def _replacement(details: list) -> str:
    props = [d for d in details if d["Target"]["Attribute"] == "Properties"]
    if any(d["Target"]["RequiresRecreation"] == "Always" and d["Evaluation"] == "Static" for d in props):
        return "True"
    if any(d["Target"]["RequiresRecreation"] == "Conditionally"
           or (d["Target"]["RequiresRecreation"] == "Always" and d["Evaluation"] == "Dynamic") for d in props):
        return "Conditional"
    return "False"


def _scope(details: list) -> list:
    seen = []
    for d in details:
        attr = d["Target"]["Attribute"]
        if attr not in seen:
            seen.append(attr)
    return seen


def resource_changes(changes: list, old: dict | None, new: dict, old_params: dict, new_params: dict,
                     tags_changed: bool, physical: dict, values: bool) -> list:
    """One ResourceChange per (action, logical, type) of `changes` (cfnsim_template.compute_changes),
    in the same order, then a Modify for each unchanged resource that refers to a replaced one (its
    reference gets a new value: API_ResourceChangeDetail, Evaluation Dynamic). `physical`: logical
    id → physical id of the stack's resources."""
    old_res = (old or {}).get("Resources") or {}
    new_res = new.get("Resources") or {}
    changes = list(changes)
    out = {}
    replaced = set()
    # Replacements first: a resource that refers to a replaced one changes dynamically, and may
    # itself be replaced (a replacing property that refers to it), so repeat until nothing moves.
    for _ in range(len(new_res) + 1):
        before = set(replaced)
        listed = {logical for _, logical, _ in changes}
        for logical, res in new_res.items():
            if logical in old_res and logical not in listed and _refs_to(res.get("Properties") or {}, replaced):
                changes.append(("Modify", logical, res.get("Type", "")))
        for action, logical, rtype in changes:
            if action != "Modify":
                continue
            details = _modify_details(rtype, old_res.get(logical, {}), new_res.get(logical, {}), old_params,
                                      new_params, tags_changed, replaced - {logical}, values)
            out[logical] = details
            if _replacement(details) in ("True", "Conditional"):
                replaced.add(logical)
        if replaced == before:
            break
    result = []
    for action, logical, rtype in changes:
        rc = {"PolicyAction": None, "Action": action, "LogicalResourceId": logical,
              "PhysicalResourceId": physical.get(logical) if action != "Add" else None,
              "ResourceType": rtype}
        if action == "Modify":
            details = out.get(logical) or []
            if rtype == NESTED_STACK and not details:
                # An unchanged nested stack resource is still updated: its template may have changed.
                details = [{"Target": {"Attribute": "Properties", "RequiresRecreation": "Never"},
                            "Evaluation": "Static", "ChangeSource": "Automatic"}]
            rc["Replacement"] = _replacement(details)
            rc["Scope"] = _scope(details) or ["Properties"]
            rc["Details"] = details
        else:
            rc["Scope"] = []
            rc["Details"] = []
        if values:
            if action in ("Modify", "Remove") and logical in old_res:
                rc["BeforeContext"] = _context(old_res[logical], old_params)
            if action in ("Modify", "Add") and logical in new_res:
                rc["AfterContext"] = _context(new_res[logical], new_params)
        result.append(rc)
    return result


def as_tuples(details: list) -> list:
    """[(action, logical, type)] of resource_changes' result, the form the operations play."""
    return [(rc["Action"], rc["LogicalResourceId"], rc["ResourceType"]) for rc in details]
