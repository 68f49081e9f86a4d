"""CloudFormation template handling for the simulator: parsing (JSON or YAML with short
tags), dependency extraction, change computation between two deployments, and output
resolution. Pure functions, no I/O, no clock."""

from __future__ import annotations

import json
import re

try:  # YAML is optional: JSON templates work without pyyaml.
    import yaml
except ImportError:  # pragma: no cover - exercised only on a bare interpreter
    yaml = None

PSEUDO_PARAMETERS = {
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
}

NESTED_STACK_TYPE = "AWS::CloudFormation::Stack"


class TemplateError(Exception):
    """The template is invalid; the message is what CloudFormation says (ValidationError)."""


def _yaml_loader():
    """A SafeLoader that turns CloudFormation short tags (!Ref, !GetAtt, !Sub...) into their
    long JSON form, so the rest of the simulator only sees one representation."""

    class CfnLoader(yaml.SafeLoader):
        pass

    def construct(loader, tag_suffix, node):
        name = tag_suffix
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if name == "Ref":
            return {"Ref": value}
        if name == "GetAtt" and isinstance(value, str):
            logical, _, attr = value.partition(".")
            return {"Fn::GetAtt": [logical, attr]}
        if name == "Condition":
            return {"Condition": value}
        return {"Fn::" + name: value}

    CfnLoader.add_multi_constructor("!", construct)
    return CfnLoader


def parse_template(body: str) -> dict:
    """Parse a template body; raise TemplateError with CloudFormation's wording."""
    if body is None or not body.strip():
        raise TemplateError("Either Template URL or Template Body must be specified.")
    text = body.strip()
    doc = None
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise TemplateError(f"Template format error: JSON not well-formed. ({e})") from e
    else:
        if yaml is None:
            raise TemplateError("Template format error: YAML support needs pyyaml")
        try:
            doc = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as e:
            raise TemplateError(f"Template format error: YAML not well-formed. ({e})") from e
    if not isinstance(doc, dict):
        raise TemplateError("Template format error: unsupported structure.")
    resources = doc.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError("Template format error: At least one Resources member must be defined.")
    for logical, res in resources.items():
        if not isinstance(res, dict) or not isinstance(res.get("Type"), str):
            raise TemplateError(
                f"Template format error: [/Resources/{logical}] Every Resources object must "
                "contain a Type member."
            )
    validate_references(doc)
    return doc


def _walk_refs(node, out: set, params_too: bool = True):
    """Collect every logical name that `node` references through Ref, Fn::GetAtt, Fn::Sub."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                out.add(value)
            elif key == "Fn::GetAtt":
                if isinstance(value, list) and value and isinstance(value[0], str):
                    out.add(value[0])
                elif isinstance(value, str):
                    out.add(value.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) and value else value
                local = set()
                if isinstance(value, list) and len(value) > 1 and isinstance(value[1], dict):
                    local = set(value[1].keys())
                    _walk_refs(value[1], out, params_too)
                if isinstance(text, str):
                    for var in re.findall(r"\$\{([^}!]+)\}", text):
                        name = var.split(".", 1)[0].strip()
                        if name not in local:
                            out.add(name)
            else:
                _walk_refs(value, out, params_too)
    elif isinstance(node, list):
        for item in node:
            _walk_refs(item, out, params_too)


def references(node) -> set:
    out: set = set()
    _walk_refs(node, out)
    return out


def depends_on(resource: dict) -> list:
    value = resource.get("DependsOn")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)]


def dependencies(template: dict) -> dict:
    """logical id -> set of logical ids of resources it needs complete first."""
    resources = template["Resources"]
    deps = {}
    for logical, res in resources.items():
        names = set(depends_on(res))
        body = {k: v for k, v in res.items() if k not in ("DependsOn", "Type")}
        names |= references(body)
        deps[logical] = {n for n in names if n in resources and n != logical}
    return deps


def validate_references(template: dict) -> None:
    resources = template["Resources"]
    params = set((template.get("Parameters") or {}).keys())
    unresolved = set()
    for res in resources.values():
        for d in depends_on(res):
            if d not in resources:
                unresolved.add(d)
        body = {k: v for k, v in res.items() if k not in ("DependsOn", "Type")}
        for name in references(body):
            if name not in resources and name not in params and name not in PSEUDO_PARAMETERS:
                unresolved.add(name)
    if unresolved:
        raise TemplateError(
            "Template format error: Unresolved resource dependencies "
            f"[{', '.join(sorted(unresolved))}] in the Resources block of the template"
        )
    # Circular dependencies: CloudFormation rejects them before anything runs.
    deps = dependencies(template)
    state: dict = {}

    def visit(node, path):
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = path[path.index(node):]
            raise TemplateError(
                f"Circular dependency between resources: [{', '.join(sorted(set(cycle)))}]"
            )
        state[node] = 1
        for d in sorted(deps[node]):
            visit(d, path + [d])
        state[node] = 2

    for logical in sorted(resources):
        visit(logical, [logical])


def resolve_parameters(template: dict, given: list, previous: dict | None) -> dict:
    """Merge template Parameters defaults, given ParameterKey/Value pairs and UsePreviousValue."""
    declared = template.get("Parameters") or {}
    given_keys = [p["ParameterKey"] for p in given if p.get("ParameterKey")]
    unknown = [k for k in given_keys if k not in declared]
    if unknown:
        raise TemplateError(f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    values = {}
    for key, decl in declared.items():
        if isinstance(decl, dict) and "Default" in decl:
            values[key] = str(decl["Default"])
    for p in given:
        key = p.get("ParameterKey")
        if not key:
            continue
        if str(p.get("UsePreviousValue", "")).lower() == "true":
            if previous is None or key not in previous:
                raise TemplateError(f"Parameters: [{key}] must have values")
            values[key] = previous[key]
        elif p.get("ParameterValue") is not None:
            values[key] = p["ParameterValue"]
    missing = [k for k in declared if k not in values]
    if missing:
        raise TemplateError(f"Parameters: [{', '.join(missing)}] must have values")
    return values


def required_capabilities(template: dict) -> list:
    """What CloudFormation demands in Capabilities for this template."""
    needs = []
    for res in template["Resources"].values():
        rtype = res.get("Type", "")
        if rtype.startswith("AWS::IAM::"):
            props = res.get("Properties") or {}
            named = any(k in props for k in ("RoleName", "UserName", "GroupName", "ManagedPolicyName"))
            cap = "CAPABILITY_NAMED_IAM" if named else "CAPABILITY_IAM"
            if cap not in needs:
                needs.append(cap)
    if template.get("Transform"):
        needs.append("CAPABILITY_AUTO_EXPAND")
    return needs


def compute_changes(old: dict | None, new: dict, old_params: dict, new_params: dict,
                    tags_changed: bool = False, force: set | None = None) -> list:
    """[(action, logical, type)] with action Add / Modify / Remove, like a change set."""
    force = force or set()
    new_res = new["Resources"]
    old_res = (old or {}).get("Resources") or {}
    changed_params = {k for k in set(old_params) | set(new_params) if old_params.get(k) != new_params.get(k)}
    changes = []
    # A resource changes when its definition changes or when a value it refers to changes
    # (a parameter, or an upstream resource that is replaced is not modelled).
    for logical, res in new_res.items():
        if logical not in old_res:
            changes.append(("Add", logical, res["Type"]))
            continue
        before = old_res[logical]
        differs = json.dumps(before, sort_keys=True) != json.dumps(res, sort_keys=True)
        uses_changed = bool(references(res) & changed_params)
        if differs or uses_changed or tags_changed or logical in force:
            changes.append(("Modify", logical, res["Type"]))
    for logical, res in old_res.items():
        if logical not in new_res:
            changes.append(("Remove", logical, res["Type"]))
    return changes


def _arn_for(rtype: str, physical: str, region: str, account: str) -> str:
    service = rtype.split("::")[1].lower() if rtype.count("::") >= 2 else "service"
    return f"arn:aws:{service}:{region}:{account}:{physical}"


def resolve_value(node, ctx: dict):
    """Evaluate an Outputs Value with the simulated physical ids. ctx: params, physical,
    types, pseudo. Unknown intrinsics become their JSON text (good enough for a simulator)."""
    if isinstance(node, str):
        return node
    if isinstance(node, (int, float, bool)):
        return str(node).lower() if isinstance(node, bool) else str(node)
    if isinstance(node, list):
        return ",".join(resolve_value(v, ctx) for v in node)
    if isinstance(node, dict) and len(node) == 1:
        (key, value), = node.items()
        if key == "Ref":
            return _lookup(value, None, ctx)
        if key == "Fn::GetAtt":
            if isinstance(value, str):
                logical, _, attr = value.partition(".")
            else:
                logical, attr = value[0], value[1] if len(value) > 1 else ""
            return _lookup(logical, attr, ctx)
        if key == "Fn::Sub":
            text = value[0] if isinstance(value, list) else value
            local = {}
            if isinstance(value, list) and len(value) > 1 and isinstance(value[1], dict):
                local = {k: resolve_value(v, ctx) for k, v in value[1].items()}

            def sub(m):
                var = m.group(1)
                if var.startswith("!"):
                    return "${" + var[1:] + "}"
                if var in local:
                    return local[var]
                name, _, attr = var.partition(".")
                return _lookup(name, attr or None, ctx)

            return re.sub(r"\$\{([^}]+)\}", sub, text if isinstance(text, str) else "")
        if key == "Fn::Join" and isinstance(value, list) and len(value) == 2:
            sep, items = value
            if isinstance(items, list):
                return str(sep).join(resolve_value(v, ctx) for v in items)
        if key == "Fn::Select" and isinstance(value, list) and len(value) == 2:
            items = value[1]
            if isinstance(items, list):
                try:
                    return resolve_value(items[int(value[0])], ctx)
                except (ValueError, IndexError):
                    pass
    return json.dumps(node, sort_keys=True)


def _lookup(name: str, attr, ctx: dict) -> str:
    pseudo = ctx.get("pseudo", {})
    if name in pseudo:
        return pseudo[name]
    if attr is None and name in ctx.get("params", {}):
        return ctx["params"][name]
    physical = ctx.get("physical", {}).get(name)
    if physical is None:
        return f"<{name}>"
    if attr is None:
        return physical
    if attr == "Arn":
        return _arn_for(ctx.get("types", {}).get(name, ""), physical, pseudo.get("AWS::Region", "us-east-1"),
                        pseudo.get("AWS::AccountId", "123456789012"))
    if attr.startswith("Outputs."):
        return ctx.get("nested_outputs", {}).get(name, {}).get(attr[len("Outputs."):], f"{physical}.{attr}")
    return f"{physical}.{attr}"
