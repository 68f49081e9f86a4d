"""Scenario settings: how long each resource takes, what fails, what nested stacks hold.

A scenario is a JSON document (see README.md). Lookups go through a *scope*: the list of
config layers from the outermost (the whole scenario) to the innermost (the stack, or the
nested stack being played), so a nested stack inherits defaults and can override them."""

from __future__ import annotations

import hashlib
import random
import string

# Typical create times in seconds (reference/peers.md and common experience). Used when a
# scenario says nothing about a resource; a scenario overrides any of them.
DEFAULT_DURATIONS = {
    "AWS::CloudFront::Distribution": [300, 1200],
    "AWS::RDS::DBInstance": [360, 600],
    "AWS::RDS::DBCluster": [300, 600],
    "AWS::ElastiCache::ReplicationGroup": [360, 540],
    "AWS::EKS::Cluster": [480, 600],
    "AWS::EC2::NatGateway": [90, 120],
    "AWS::ElasticLoadBalancingV2::LoadBalancer": [90, 180],
    "AWS::ECS::Service": [60, 300],
    "AWS::Lambda::Function": [10, 30],
    "AWS::IAM::Role": [10, 20],
    "AWS::IAM::Policy": [10, 20],
    "AWS::IAM::ManagedPolicy": [10, 20],
    "AWS::IAM::InstanceProfile": [60, 120],
    "AWS::S3::Bucket": [2, 25],
    "AWS::SQS::Queue": [2, 30],
    "AWS::SNS::Topic": [2, 10],
    "AWS::DynamoDB::Table": [10, 30],
    "AWS::EC2::VPC": [5, 15],
    "AWS::EC2::Subnet": [5, 10],
    "AWS::EC2::SecurityGroup": [5, 10],
    "AWS::EC2::InternetGateway": [5, 15],
    "AWS::Logs::LogGroup": [1, 3],
    "AWS::CloudFormation::WaitConditionHandle": [1, 1],
    "AWS::SSM::Parameter": [1, 3],
}
FALLBACK_DURATION = [3, 15]

# Keys a resource setting may hold; merged layer by layer, inner layers win.
RESOURCE_KEYS = (
    "duration", "update_duration", "delete_duration", "fail", "fail_create", "fail_update",
    "fail_delete", "fail_rollback", "fail_resolve", "hook", "configuration_complete", "complete_lag",
    "initiated_delay", "force_update", "delete_attempts", "delete_retry_seconds", "fail_before_start",
)


class Scenario:
    def __init__(self, doc: dict | None = None):
        self.doc = doc or {}

    def get(self, key, default=None):
        return self.doc.get(key, default)

    def root_scope(self, stack_name: str) -> list:
        """Layers for a top-level stack: the scenario, then stacks[name] if present."""
        scope = [self.doc]
        per_stack = (self.doc.get("stacks") or {}).get(stack_name)
        if isinstance(per_stack, dict):
            scope.append(per_stack)
        return scope


def rand_suffix(rng: random.Random, n: int = 12) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


def timestamp_precision_ms(scope: list) -> int:
    """Whole-second timestamps (`timestamp_fractions: false`) are rounded down to the second."""
    if scope_get(scope, "timestamp_fractions", True) is False:
        return 1000
    return int(scope_get(scope, "timestamp_precision_ms", 1) or 1)


def scope_get(scope: list, key, default=None):
    """The innermost layer's value for a stack-wide setting."""
    for layer in reversed(scope):
        if key in layer:
            return layer[key]
    return default


def resource_settings(scope: list, logical: str, rtype: str) -> dict:
    merged = {}
    base = DEFAULT_DURATIONS.get(rtype)
    if base is not None:
        merged["duration"] = base
    for layer in scope:
        defaults = layer.get("defaults")
        if isinstance(defaults, dict):
            merged.update({k: v for k, v in defaults.items() if k in RESOURCE_KEYS})
    if "duration" not in merged:
        merged["duration"] = FALLBACK_DURATION
    for layer in scope:
        by_type = (layer.get("types") or {}).get(rtype)
        if isinstance(by_type, dict):
            merged.update(by_type)
    for layer in scope:
        by_logical = (layer.get("resources") or {}).get(logical)
        if isinstance(by_logical, dict):
            merged.update(by_logical)
    return merged


def nested_config(scope: list, logical: str) -> dict:
    """The config layer for the nested stack created by resource `logical`."""
    for layer in reversed(scope):
        nested = (layer.get("nested") or {}).get(logical)
        if isinstance(nested, dict):
            return nested
    return {}


def pick(value, rng: random.Random, default: float = 0.0) -> float:
    """A duration: a number, or [min, max] drawn with the seeded generator."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
        return rng.uniform(min(low, high), max(low, high))
    return default


def rng_for(seed, *parts) -> random.Random:
    """A generator that depends only on the seed and the names, so a scenario replays the
    same durations whatever order the threads run in."""
    text = ":".join(str(p) for p in (seed, *parts))
    return random.Random(int(hashlib.sha256(text.encode()).hexdigest()[:16], 16))


def failure_reason(settings: dict, phase: str) -> str | None:
    """The failure reason for phase create/update/delete/rollback (reverting an update), or None
    when it succeeds. `fail` covers create and update only."""
    value = settings.get(f"fail_{phase}")
    if value is None and phase in ("create", "update"):
        value = settings.get("fail")
    if value is None or value is False:
        return None
    if value is True:
        what = {"create": "create", "update": "update", "delete": "delete", "rollback": "roll back"}[phase]
        return (f'Resource handler returned message: "Simulated failure to {what} resource" '
                "(HandlerErrorCode: GeneralServiceException)")
    return str(value)
