"""The simulator driven through boto3, as a deployment monitor would see it.

Run: .venv/bin/python -m unittest discover -s simulator -v"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cfnsim_scenario as sc  # noqa: E402
import cfnsim_template as tpl  # noqa: E402

NO_RETRY = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"})


class Sim:
    """A simulator process on a free port; stopped on exit (and on our death via stdin EOF)."""

    def __init__(self, scenario: dict | None = None, time_scale: float = 300.0, args=()):
        self.scenario_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(scenario or {}, self.scenario_file)
        self.scenario_file.close()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "cfnsim.py"), "--port", "0", "--exit-on-stdin-eof",
             "--time-scale", str(time_scale), "--scenario", self.scenario_file.name, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on 127.0.0.1:"):
            self.close()
            raise RuntimeError(f"unexpected first line {line!r}")
        self.endpoint = "http://" + line.split(" ")[-1]

    def client(self, config=None):
        return boto3.client("cloudformation", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", config=config)

    def admin(self, path: str, body=None, method=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoint + "/_sim/" + path, data=data,
                                     method=method or ("POST" if data is not None else "GET"))
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdin:
            self.proc.stdin.close()
        if self.proc.stdout:
            self.proc.stdout.close()
        os.unlink(self.scenario_file.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_stack(cf, name, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        time.sleep(0.05)
    raise AssertionError(f"{name} still in progress after {timeout}s")


def wait_change_set(cf, cs_id, timeout=10.0):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = cf.describe_change_set(ChangeSetName=cs_id)
        if not seen or seen[-1] != d["Status"]:
            seen.append(d["Status"])
        if d["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return d, seen
        time.sleep(0.01)
    raise AssertionError("change set never finished")


def all_events(cf, name):
    """Every event, oldest first, following NextToken."""
    events, token, pages = [], None, 0
    while True:
        kwargs = {"StackName": name}
        if token:
            kwargs["NextToken"] = token
        page = cf.describe_stack_events(**kwargs)
        pages += 1
        events.extend(page["StackEvents"])
        token = page.get("NextToken")
        if not token:
            return list(reversed(events)), pages


def brief(events):
    return [(e["LogicalResourceId"], e["ResourceStatus"]) for e in events]


TEMPLATE = """
Parameters:
  Env:
    Type: String
    Default: dev
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Role: !GetAtt Role.Arn
      Description: !Sub "fn for ${Env}"
  Bucket:
    Type: AWS::S3::Bucket
Outputs:
  BucketName:
    Value: !Ref Bucket
  FnArn:
    Value: !GetAtt Fn.Arn
"""

FAST = {"seed": 1, "change_set_seconds": 2, "defaults": {"duration": [10, 20]}}


def deploy(cf, name, template=TEMPLATE, token="tok-1", **kwargs):
    r = cf.create_change_set(StackName=name, ChangeSetName="cs-" + token, ChangeSetType="CREATE",
                             TemplateBody=template, Capabilities=["CAPABILITY_IAM"], **kwargs)
    wait_change_set(cf, r["Id"])
    cf.execute_change_set(ChangeSetName=r["Id"], ClientRequestToken=token)
    return r


class TemplateTest(unittest.TestCase):
    def test_yaml_short_tags_and_dependencies(self):
        t = tpl.parse_template(TEMPLATE)
        self.assertEqual(t["Resources"]["Fn"]["Properties"]["Role"], {"Fn::GetAtt": ["Role", "Arn"]})
        deps = tpl.dependencies(t)
        self.assertEqual(deps, {"Role": set(), "Fn": {"Role"}, "Bucket": set()})
        t2 = tpl.parse_template(json.dumps({"Resources": {
            "A": {"Type": "X::Y::Z"},
            "B": {"Type": "X::Y::Z", "DependsOn": "A"},
            "C": {"Type": "X::Y::Z", "Properties": {"P": {"Fn::Sub": "${B.Arn}-${AWS::Region}-${!Literal}"}}},
        }}))
        self.assertEqual(tpl.dependencies(t2), {"A": set(), "B": {"A"}, "C": {"B"}})

    def test_invalid_templates_are_rejected_with_cloudformation_wording(self):
        with self.assertRaisesRegex(tpl.TemplateError, "Unresolved resource dependencies \\[Nope\\]"):
            tpl.parse_template(json.dumps({"Resources": {"A": {"Type": "T::T::T", "DependsOn": "Nope"}}}))
        with self.assertRaisesRegex(tpl.TemplateError, "Circular dependency between resources: \\[A, B\\]"):
            tpl.parse_template(json.dumps({"Resources": {"A": {"Type": "T::T::T", "DependsOn": "B"},
                                                         "B": {"Type": "T::T::T", "DependsOn": "A"}}}))
        with self.assertRaisesRegex(tpl.TemplateError, "At least one Resources member"):
            tpl.parse_template("{}")

    def test_scenario_settings_layering(self):
        scenario = sc.Scenario({"defaults": {"duration": 7}, "types": {"AWS::S3::Bucket": {"duration": 3}},
                                "stacks": {"s": {"resources": {"B": {"fail": "boom"}}}}})
        scope = scenario.root_scope("s")
        self.assertEqual(sc.resource_settings(scope, "B", "AWS::S3::Bucket")["duration"], 3)
        self.assertEqual(sc.failure_reason(sc.resource_settings(scope, "B", "AWS::S3::Bucket"), "create"), "boom")
        self.assertEqual(sc.resource_settings(scope, "X", "AWS::SNS::Topic")["duration"], 7)
        # Built-in type durations apply when the scenario says nothing about a resource.
        self.assertEqual(sc.resource_settings([{}], "Db", "AWS::RDS::DBInstance")["duration"], [360, 600])
        self.assertEqual(sc.rng_for(1, "a").random(), sc.rng_for(1, "a").random())


class CreateTest(unittest.TestCase):
    def test_create_via_change_set_plays_cloudformation_event_sequence(self):
        with Sim({**FAST, "change_set_seconds": 60}) as sim:
            cf = sim.client()
            r = cf.create_change_set(StackName="app", ChangeSetName="cs1", ChangeSetType="CREATE",
                                     TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                                     Parameters=[{"ParameterKey": "Env", "ParameterValue": "prod"}],
                                     Tags=[{"Key": "team", "Value": "a"}])
            review = cf.describe_stacks(StackName="app")["Stacks"][0]
            self.assertEqual(review["StackStatus"], "REVIEW_IN_PROGRESS")
            cs, seen = wait_change_set(cf, r["Id"])
            self.assertEqual(seen[-1], "CREATE_COMPLETE")
            self.assertIn(seen[0], ("CREATE_PENDING", "CREATE_IN_PROGRESS"))
            self.assertEqual(cs["ExecutionStatus"], "AVAILABLE")
            self.assertEqual(sorted((c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"],
                                     c["ResourceChange"]["ResourceType"]) for c in cs["Changes"]),
                             [("Add", "Bucket", "AWS::S3::Bucket"), ("Add", "Fn", "AWS::Lambda::Function"),
                              ("Add", "Role", "AWS::IAM::Role")])
            cf.execute_change_set(ChangeSetName="cs1", StackName="app", ClientRequestToken="tok-1")
            stack = wait_stack(cf, "app")
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE")
            self.assertEqual(stack["Parameters"], [{"ParameterKey": "Env", "ParameterValue": "prod"}])
            self.assertEqual(stack["Tags"], [{"Key": "team", "Value": "a"}])
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
            self.assertTrue(outputs["BucketName"].startswith("app-Bucket-"))
            self.assertTrue(outputs["FnArn"].startswith("arn:aws:lambda:us-east-1:123456789012:app-Fn-"))
            op_id = stack["LastOperations"][0]["OperationId"]
            self.assertEqual(stack["LastOperations"][0]["OperationType"], "CREATE_STACK")
            self.assertEqual(cf.describe_change_set(ChangeSetName=r["Id"])["ExecutionStatus"], "EXECUTE_COMPLETE")

            events, _ = all_events(cf, "app")
            self.assertEqual(brief(events[:2]), [("app", "REVIEW_IN_PROGRESS"), ("app", "CREATE_IN_PROGRESS")])
            self.assertEqual(events[0]["ResourceStatusReason"], "User Initiated")
            self.assertEqual(events[1]["ResourceStatusReason"], "User Initiated")
            self.assertEqual(brief(events[-1:]), [("app", "CREATE_COMPLETE")])
            for logical in ("Role", "Fn", "Bucket"):
                mine = [e for e in events if e["LogicalResourceId"] == logical]
                self.assertEqual([e["ResourceStatus"] for e in mine],
                                 ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE"])
                self.assertNotIn("PhysicalResourceId", mine[0])
                self.assertNotIn("ResourceStatusReason", mine[0])
                self.assertEqual(mine[1]["ResourceStatusReason"], "Resource creation Initiated")
                self.assertTrue(mine[1]["PhysicalResourceId"].startswith(f"app-{logical}-"))
                self.assertEqual(mine[2]["PhysicalResourceId"], mine[1]["PhysicalResourceId"])
            for e in events[1:]:
                self.assertEqual(e["ClientRequestToken"], "tok-1")
                self.assertEqual(e["OperationId"], op_id)
                self.assertEqual(e["StackId"], r["StackId"])
                self.assertEqual(e["StackName"], "app")
            order = brief(events)
            # Fn needs Role (GetAtt): it starts only after Role completes; Bucket runs alongside Role.
            self.assertLess(order.index(("Role", "CREATE_COMPLETE")), order.index(("Fn", "CREATE_IN_PROGRESS")))
            self.assertLess(order.index(("Bucket", "CREATE_IN_PROGRESS")), order.index(("Role", "CREATE_COMPLETE")))
            stamps = [e["Timestamp"] for e in events]
            self.assertEqual(stamps, sorted(stamps))
            self.assertEqual(len({e["EventId"] for e in events}), len(events))

    def test_create_stack_returns_operation_id_and_events_carry_it(self):
        with Sim(FAST) as sim:
            cf = sim.client()
            r = cf.create_stack(StackName="direct", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                                ClientRequestToken="direct-1")
            self.assertTrue(r["OperationId"])
            stack = wait_stack(cf, "direct")
            self.assertEqual(stack["LastOperations"][0]["OperationId"], r["OperationId"])
            events, _ = all_events(cf, "direct")
            self.assertEqual({e["OperationId"] for e in events}, {r["OperationId"]})
            resources = cf.describe_stack_resources(StackName="direct")["StackResources"]
            self.assertEqual(sorted(x["LogicalResourceId"] for x in resources), ["Bucket", "Fn", "Role"])
            self.assertTrue(all(x["ResourceStatus"] == "CREATE_COMPLETE" for x in resources))
            summaries = cf.list_stack_resources(StackName="direct")["StackResourceSummaries"]
            self.assertEqual(len(summaries), 3)
            self.assertIn("Role:", cf.get_template(StackName="direct")["TemplateBody"])
            # Retrying CreateStack with the same token is the same request, not a conflict.
            again = cf.create_stack(StackName="direct", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                                    ClientRequestToken="direct-1")
            self.assertEqual(again["OperationId"], r["OperationId"])

    def test_events_page_with_next_token_and_pages_stay_stable_while_events_arrive(self):
        resources = {f"Q{i}": {"Type": "AWS::SQS::Queue"} for i in range(10)}
        with Sim({**FAST, "events_page_size": 5, "defaults": {"duration": [40, 80]}}, time_scale=40) as sim:
            cf = sim.client()
            cf.create_stack(StackName="many", TemplateBody=json.dumps({"Resources": resources}))
            time.sleep(0.3)
            first = cf.describe_stack_events(StackName="many")
            self.assertEqual(len(first["StackEvents"]), 5)
            self.assertIn("NextToken", first)
            early = list(first["StackEvents"])
            token = first["NextToken"]
            while token:  # the rest of the snapshot, read while the stack keeps moving
                page = cf.describe_stack_events(StackName="many", NextToken=token)
                early.extend(page["StackEvents"])
                token = page.get("NextToken")
            wait_stack(cf, "many")
            events, pages = all_events(cf, "many")
            self.assertEqual(len(events), 2 + 3 * 10)
            self.assertEqual(pages, 7)
            ids = [e["EventId"] for e in events]
            self.assertEqual(len(set(ids)), len(ids))
            # What was read early is exactly the oldest part of the final history: no gap, no repeat.
            self.assertEqual([e["EventId"] for e in reversed(early)], ids[:len(early)])
            stats = sim.admin("stats")
            self.assertGreaterEqual(stats["requests"]["DescribeStackEvents"], pages + 1)


class FailureTest(unittest.TestCase):
    SCENARIO = {**FAST, "resources": {"Fn": {"fail": "Resource handler returned message: \"bad role\""},
                                      "Bucket": {"duration": 200}}}

    def test_failed_create_cancels_others_and_rolls_back(self):
        with Sim(self.SCENARIO) as sim:
            cf = sim.client()
            deploy(cf, "rb")
            stack = wait_stack(cf, "rb")
            self.assertEqual(stack["StackStatus"], "ROLLBACK_COMPLETE")
            events, _ = all_events(cf, "rb")
            order = brief(events)
            fn_failed = events[order.index(("Fn", "CREATE_FAILED"))]
            self.assertEqual(fn_failed["ResourceStatusReason"], 'Resource handler returned message: "bad role"')
            bucket_failed = events[order.index(("Bucket", "CREATE_FAILED"))]
            self.assertEqual(bucket_failed["ResourceStatusReason"], "Resource creation cancelled")
            rollback = events[order.index(("rb", "ROLLBACK_IN_PROGRESS"))]
            # The list names the cancelled resources too (tests/fixtures/real-events/12, 07).
            self.assertEqual(rollback["ResourceStatusReason"],
                             "The following resource(s) failed to create: [Fn, Bucket]. Rollback requested by user.")
            for logical in ("Role", "Fn", "Bucket"):
                self.assertLess(order.index(("rb", "ROLLBACK_IN_PROGRESS")),
                                order.index((logical, "DELETE_IN_PROGRESS")))
                self.assertLess(order.index((logical, "DELETE_IN_PROGRESS")), order.index((logical, "DELETE_COMPLETE")))
            # Reverse dependency order: Fn (which needs Role) is deleted before Role.
            self.assertLess(order.index(("Fn", "DELETE_COMPLETE")), order.index(("Role", "DELETE_IN_PROGRESS")))
            self.assertEqual(order[-1], ("rb", "ROLLBACK_COMPLETE"))
            # The rollback is an operation of its own: new OperationId, same ClientRequestToken.
            forward, rollback_ops = stack["LastOperations"][1], stack["LastOperations"][0]
            self.assertEqual((forward["OperationType"], rollback_ops["OperationType"]), ("CREATE_STACK", "ROLLBACK"))
            turn = order.index(("rb", "ROLLBACK_IN_PROGRESS"))
            self.assertEqual({e["OperationId"] for e in events[1:turn]}, {forward["OperationId"]})
            self.assertEqual({e["OperationId"] for e in events[turn:]}, {rollback_ops["OperationId"]})
            self.assertEqual({e["ClientRequestToken"] for e in events[1:]}, {"tok-1"})
            # DescribeEvents: the forward operation FAILED, the rollback SUCCEEDED.
            ops = [(e["OperationType"], e["OperationStatus"]) for e in cf.describe_events(StackName="rb")[
                "OperationEvents"] if e["EventType"] == "STACK_EVENT"]
            self.assertEqual(ops[:2], [("ROLLBACK", "SUCCEEDED"), ("ROLLBACK", "IN_PROGRESS")])
            self.assertIn(("CREATE_STACK", "FAILED"), ops)
            terminal = {s["name"]: s for s in sim.admin("stacks")["stacks"]}["rb"]["terminal_events"]
            self.assertEqual([(t["status"], t["operation_id"], t["operation_ids"]) for t in terminal],
                             [("ROLLBACK_COMPLETE", rollback_ops["OperationId"],
                               [forward["OperationId"], rollback_ops["OperationId"]])])
            # A ROLLBACK_COMPLETE stack cannot be updated.
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.update_stack(StackName="rb", UsePreviousTemplate=True, Capabilities=["CAPABILITY_IAM"])
            self.assertIn("ROLLBACK_COMPLETE state and can not be updated", str(ctx.exception))

    def test_delete_failure_during_rollback_ends_in_rollback_failed(self):
        scenario = {**self.SCENARIO, "resources": {**self.SCENARIO["resources"],
                                                   "Bucket": {"duration": 5, "fail_delete": "Bucket is not empty"}}}
        with Sim(scenario) as sim:
            cf = sim.client()
            deploy(cf, "rf")
            stack = wait_stack(cf, "rf")
            self.assertEqual(stack["StackStatus"], "ROLLBACK_FAILED")
            self.assertEqual(stack["StackStatusReason"], "The following resource(s) failed to delete: [Bucket]. ")
            events, _ = all_events(cf, "rf")
            failed = [e for e in events if e["ResourceStatus"] == "DELETE_FAILED"]
            self.assertEqual([(e["LogicalResourceId"], e["ResourceStatusReason"]) for e in failed],
                             [("Bucket", "Bucket is not empty")])

    def test_disable_rollback_leaves_create_failed(self):
        with Sim(self.SCENARIO) as sim:
            cf = sim.client()
            cf.create_stack(StackName="nr", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                            DisableRollback=True)
            stack = wait_stack(cf, "nr")
            self.assertEqual(stack["StackStatus"], "CREATE_FAILED")
            self.assertEqual(stack["StackStatusReason"], "The following resource(s) failed to create: [Fn, Bucket]. ")
            events, _ = all_events(cf, "nr")
            self.assertFalse([e for e in events if e["ResourceStatus"].startswith("DELETE")])

    def test_update_and_update_rollback(self):
        with Sim(FAST) as sim:
            cf = sim.client()
            cf.create_stack(StackName="up", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            wait_stack(cf, "up")
            changed = TEMPLATE.replace("fn for ${Env}", "function for ${Env}").replace(
                "  Bucket:\n    Type: AWS::S3::Bucket\n", "  Topic:\n    Type: AWS::SNS::Topic\n").replace(
                "    Value: !Ref Bucket", "    Value: !Ref Topic")
            r = cf.update_stack(StackName="up", TemplateBody=changed, Capabilities=["CAPABILITY_IAM"],
                                ClientRequestToken="upd-1")
            self.assertTrue(r["OperationId"])
            stack = wait_stack(cf, "up")
            self.assertEqual(stack["StackStatus"], "UPDATE_COMPLETE")
            self.assertEqual(stack["LastOperations"][0],
                             {"OperationType": "UPDATE_STACK", "OperationId": r["OperationId"]})
            events, _ = all_events(cf, "up")
            mine = brief([e for e in events if e.get("OperationId") == r["OperationId"]])
            self.assertEqual(mine[0], ("up", "UPDATE_IN_PROGRESS"))
            self.assertEqual(mine[-1], ("up", "UPDATE_COMPLETE"))
            self.assertFalse([x for x in mine[mine.index(("up", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")):]
                              if x[1] not in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE", "UPDATE_COMPLETE",
                                              "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")])
            self.assertLess(mine.index(("Fn", "UPDATE_IN_PROGRESS")), mine.index(("Fn", "UPDATE_COMPLETE")))
            self.assertIn(("Topic", "CREATE_COMPLETE"), mine)
            # The removed bucket is deleted during cleanup; the untouched role has no event.
            self.assertGreater(mine.index(("Bucket", "DELETE_IN_PROGRESS")),
                               mine.index(("up", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")))
            self.assertFalse([x for x in mine if x[0] == "Role"])

            # Now an update that fails: the modified function is reverted, the added queue deleted.
            sim.admin("scenario", {**FAST, "resources": {"Fn": {"fail_update": "Update failed: quota"}}})
            broken = changed.replace("function for", "handler for").replace(
                "Resources:\n", "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Properties: {DelaySeconds: 1}\n")
            r2 = cf.update_stack(StackName="up", TemplateBody=broken, Capabilities=["CAPABILITY_IAM"],
                                 ClientRequestToken="upd-2")
            stack = wait_stack(cf, "up")
            self.assertEqual(stack["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
            # The automatic rollback is an operation of its own: a new OperationId, the same token.
            rollback_op = stack["LastOperations"][0]
            self.assertEqual(rollback_op["OperationType"], "ROLLBACK")
            self.assertEqual(stack["LastOperations"][1],
                             {"OperationType": "UPDATE_STACK", "OperationId": r2["OperationId"]})
            events, _ = all_events(cf, "up")
            mine = [e for e in events if e.get("ClientRequestToken") == "upd-2"]
            seq = brief(mine)
            turn = seq.index(("up", "UPDATE_ROLLBACK_IN_PROGRESS"))
            self.assertEqual({e["OperationId"] for e in mine[:turn]}, {r2["OperationId"]})
            self.assertEqual({e["OperationId"] for e in mine[turn:]}, {rollback_op["OperationId"]})
            self.assertEqual(mine[seq.index(("up", "UPDATE_ROLLBACK_IN_PROGRESS"))]["ResourceStatusReason"],
                             "The following resource(s) failed to update: [Fn]. ")
            self.assertEqual(mine[seq.index(("Fn", "UPDATE_FAILED"))]["ResourceStatusReason"], "Update failed: quota")
            after = seq[seq.index(("up", "UPDATE_ROLLBACK_IN_PROGRESS")):]
            self.assertIn(("Fn", "UPDATE_COMPLETE"), after)
            cleanup = seq.index(("up", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"))
            self.assertGreater(seq.index(("Queue", "DELETE_COMPLETE")), cleanup)
            self.assertEqual(seq[-1], ("up", "UPDATE_ROLLBACK_COMPLETE"))
            self.assertTrue(all(e["ClientRequestToken"] == "upd-2" for e in mine))
            # The stack is back on the previous template.
            self.assertNotIn("Queue", cf.get_template(StackName="up")["TemplateBody"])

    def test_empty_change_set_and_no_op_update(self):
        with Sim(FAST) as sim:
            cf = sim.client()
            deploy(cf, "same")
            wait_stack(cf, "same")
            r = cf.create_change_set(StackName="same", ChangeSetName="again", TemplateBody=TEMPLATE,
                                     Capabilities=["CAPABILITY_IAM"])
            cs, _ = wait_change_set(cf, r["Id"])
            self.assertEqual(cs["Status"], "FAILED")
            self.assertEqual(cs["ExecutionStatus"], "UNAVAILABLE")
            self.assertEqual(cs["StatusReason"], "The submitted information didn't contain changes. "
                                                 "Submit different information to create a change set.")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.execute_change_set(ChangeSetName=r["Id"])
            self.assertEqual(ctx.exception.response["Error"]["Code"], "InvalidChangeSetStatus")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.update_stack(StackName="same", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            self.assertEqual(ctx.exception.response["Error"]["Code"], "ValidationError")
            self.assertEqual(ctx.exception.response["Error"]["Message"], "No updates are to be performed.")
            self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
            # A changed parameter makes the resource using it change.
            r = cf.create_change_set(StackName="same", ChangeSetName="param", TemplateBody=TEMPLATE,
                                     Capabilities=["CAPABILITY_IAM"],
                                     Parameters=[{"ParameterKey": "Env", "ParameterValue": "prod"}])
            cs, _ = wait_change_set(cf, r["Id"])
            self.assertEqual([(c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
                              for c in cs["Changes"]], [("Modify", "Fn")])

    def test_validation_errors_match_cloudformation(self):
        with Sim({**FAST, "change_set_seconds": 600}) as sim:
            cf = sim.client()
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.create_change_set(StackName="caps", ChangeSetName="c", ChangeSetType="CREATE",
                                     TemplateBody=TEMPLATE)
            self.assertEqual(ctx.exception.response["Error"]["Code"], "InsufficientCapabilitiesException")
            self.assertEqual(ctx.exception.response["Error"]["Message"], "Requires capabilities : [CAPABILITY_IAM]")
            r = cf.create_change_set(StackName="early", ChangeSetName="c", ChangeSetType="CREATE",
                                     TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.execute_change_set(ChangeSetName=r["Id"])
            self.assertEqual(ctx.exception.response["Error"]["Code"], "InvalidChangeSetStatus")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.describe_change_set(ChangeSetName="nope", StackName="early")
            self.assertEqual(ctx.exception.response["Error"]["Code"], "ChangeSetNotFound")
            self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.update_stack(StackName="ghost", UsePreviousTemplate=True)
            self.assertEqual(ctx.exception.response["Error"]["Message"], "Stack [ghost] does not exist")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.create_stack(StackName="early", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            self.assertEqual(ctx.exception.response["Error"]["Code"], "AlreadyExistsException")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.create_stack(StackName="bad_name!", TemplateBody=TEMPLATE)
            self.assertEqual(ctx.exception.response["Error"]["Code"], "ValidationError")

    def test_deleted_stack_is_gone_by_name_but_readable_by_arn(self):
        with Sim(FAST) as sim:
            cf = sim.client()
            r = cf.create_stack(StackName="gone", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            wait_stack(cf, "gone")
            cf.delete_stack(StackName="gone")
            stack = wait_stack(cf, r["StackId"])
            self.assertEqual(stack["StackStatus"], "DELETE_COMPLETE")
            self.assertIn("DeletionTime", stack)
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.describe_stacks(StackName="gone")
            self.assertEqual(ctx.exception.response["Error"]["Message"], "Stack with id gone does not exist")
            events, _ = all_events(cf, r["StackId"])
            self.assertEqual(brief(events)[-1], ("gone", "DELETE_COMPLETE"))
            self.assertEqual(cf.describe_stacks()["Stacks"], [])
            cf.delete_stack(StackName="gone")  # deleting a missing stack is not an error


class NestedTest(unittest.TestCase):
    PARENT = json.dumps({
        "Resources": {
            "Network": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "https://s3/x"}},
            "App": {"Type": "AWS::Lambda::Function",
                    "Properties": {"Vpc": {"Fn::GetAtt": ["Network", "Outputs.VpcId"]}}},
        },
        "Outputs": {"VpcId": {"Value": {"Fn::GetAtt": ["Network", "Outputs.VpcId"]}}},
    })
    NESTED = {"template": {"Resources": {"Vpc": {"Type": "AWS::EC2::VPC"},
                                         "Subnet": {"Type": "AWS::EC2::Subnet",
                                                    "Properties": {"VpcId": {"Ref": "Vpc"}}}},
                           "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}}},
              "complete_lag": 30}

    def _stacks(self, sim):
        return {s["name"]: s for s in sim.admin("stacks")["stacks"]}

    def test_nested_complete_comes_before_parent_complete(self):
        with Sim({**FAST, "nested": {"Network": self.NESTED}}) as sim:
            cf = sim.client()
            cf.create_stack(StackName="root", TemplateBody=self.PARENT, ClientRequestToken="root-1")
            stack = wait_stack(cf, "root")
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE")
            events, _ = all_events(cf, "root")
            nested_res = [e for e in events if e["LogicalResourceId"] == "Network"]
            child_arn = nested_res[-1]["PhysicalResourceId"]
            self.assertEqual(nested_res[1]["ResourceStatusReason"], "Resource creation Initiated")
            self.assertEqual(nested_res[1]["PhysicalResourceId"], child_arn)
            child = cf.describe_stacks(StackName=child_arn)["Stacks"][0]
            self.assertEqual(child["ParentId"], stack["StackId"])
            self.assertEqual(child["RootId"], stack["StackId"])
            self.assertTrue(child["StackName"].startswith("root-Network-"))
            self.assertNotIn("ParentId", stack)
            child_events, _ = all_events(cf, child_arn)
            self.assertEqual(brief(child_events)[0], (child["StackName"], "CREATE_IN_PROGRESS"))
            self.assertEqual(child_events[0]["ResourceStatusReason"], "User Initiated")
            self.assertEqual({e["ClientRequestToken"] for e in child_events}, {"root-1"})
            child_done = child_events[-1]
            self.assertEqual(child_done["ResourceStatus"], "CREATE_COMPLETE")
            parent_done = events[-1]
            self.assertEqual(brief([parent_done]), [("root", "CREATE_COMPLETE")])
            # The nested stack finishes first, the parent stays in progress for a while after it.
            self.assertGreaterEqual((parent_done["Timestamp"] - child_done["Timestamp"]).total_seconds(), 30)
            report = self._stacks(sim)
            self.assertLess(report[child["StackName"]]["terminal_events"][0]["real_time"],
                            report["root"]["terminal_events"][0]["real_time"])
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
            self.assertTrue(outputs["VpcId"].startswith(child["StackName"] + "-Vpc-"))
            # A successful update: the nested resource says UPDATE_COMPLETE twice, the second time
            # during the parent's cleanup (tests/fixtures/real-events FINDINGS §5.4, streams 26, 27).
            cf.update_stack(StackName="root", TemplateBody=self.PARENT.replace("s3/x", "s3/y"))
            wait_stack(cf, "root")
            events, _ = all_events(cf, "root")
            seq = brief(events[[e["ResourceStatus"] for e in events].index("UPDATE_IN_PROGRESS"):])
            self.assertEqual([x for x in seq if x[0] == "Network"],
                             [("Network", "UPDATE_IN_PROGRESS"), ("Network", "UPDATE_COMPLETE"),
                              ("Network", "UPDATE_COMPLETE")])
            self.assertLess(seq.index(("root", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")),
                            len(seq) - 1 - seq[::-1].index(("Network", "UPDATE_COMPLETE")))

    def test_nested_failure_propagates_to_parent(self):
        nested = {**self.NESTED, "resources": {"Subnet": {"fail": "Subnet quota exceeded"}}}
        with Sim({**FAST, "nested": {"Network": nested}}) as sim:
            cf = sim.client()
            cf.create_stack(StackName="root", TemplateBody=self.PARENT)
            stack = wait_stack(cf, "root")
            self.assertEqual(stack["StackStatus"], "ROLLBACK_COMPLETE")
            events, _ = all_events(cf, "root")
            failed = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
            self.assertEqual(len(failed), 1)
            child_arn = failed[0]["PhysicalResourceId"]
            # The child's reason without "Rollback requested by user." (tests/fixtures/real-events/12).
            self.assertEqual(
                failed[0]["ResourceStatusReason"],
                f"Embedded stack {child_arn} was not successfully created: "
                "The following resource(s) failed to create: [Subnet]. ")
            child = cf.describe_stacks(StackName=child_arn)["Stacks"][0]
            self.assertEqual(child["StackStatus"], "DELETE_COMPLETE")
            child_events, _ = all_events(cf, child_arn)
            seq = brief(child_events)
            self.assertIn(("Subnet", "CREATE_FAILED"), seq)
            self.assertLess(seq.index((child["StackName"], "ROLLBACK_COMPLETE")),
                            seq.index((child["StackName"], "DELETE_COMPLETE")))


    def test_nested_update_failure_rolls_back_child_and_parent(self):
        nested = {**self.NESTED, "update_changes": ["Subnet"]}
        with Sim({**FAST, "nested": {"Network": nested}}) as sim:
            cf = sim.client()
            cf.create_stack(StackName="root", TemplateBody=self.PARENT)
            wait_stack(cf, "root")
            # The scenario changes between operations; the existing child stack follows it.
            sim.admin("scenario", {**FAST, "nested": {"Network": {
                **nested, "resources": {"Subnet": {"fail_update": "Subnet update broke"}}}}})
            r = cf.update_stack(StackName="root", TemplateBody=self.PARENT.replace("s3/x", "s3/y"),
                                ClientRequestToken="u1")
            stack = wait_stack(cf, "root")
            self.assertEqual(stack["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
            events, _ = all_events(cf, "root")
            mine = [e for e in events if e.get("ClientRequestToken") == "u1"]
            seq = brief(mine)
            failed = mine[seq.index(("Network", "UPDATE_FAILED"))]
            self.assertEqual(failed["OperationId"], r["OperationId"])
            self.assertNotEqual(mine[-1]["OperationId"], r["OperationId"])
            child_arn = failed["PhysicalResourceId"]
            self.assertEqual(failed["ResourceStatusReason"],
                             f"Embedded stack {child_arn} was not successfully updated. Currently in "
                             "UPDATE_ROLLBACK_IN_PROGRESS with reason: The following resource(s) failed to "
                             "update: [Subnet]. ")
            self.assertEqual(seq[-1], ("root", "UPDATE_ROLLBACK_COMPLETE"))
            child_events, _ = all_events(cf, child_arn)
            child = [e for e in child_events if e.get("ClientRequestToken") == "u1"]
            name = child[0]["StackName"]
            child_seq = brief(child)
            self.assertEqual(child_seq[-1], (name, "UPDATE_ROLLBACK_COMPLETE"))
            child_done = child[-1]["Timestamp"]
            self.assertLess(child_done, mine[-1]["Timestamp"])
            self.assertIn(("Subnet", "UPDATE_FAILED"), child_seq)


class TimingTest(unittest.TestCase):
    def test_same_timestamp_group_defeats_clients_that_dedupe_by_timestamp(self):
        scenario = {**FAST, "resources": {"A": {"duration": 10}, "B": {"duration": 30}, "C": {"duration": 50}},
                    "same_timestamp_groups": [["A", "B", "C", "same"]]}
        resources = {k: {"Type": "AWS::SNS::Topic"} for k in "ABC"}
        with Sim(scenario, time_scale=20) as sim:
            cf = sim.client()
            cf.create_stack(StackName="same", TemplateBody=json.dumps({"Resources": resources}))
            by_id, by_time, newest = {}, [], None
            while True:
                page = cf.describe_stack_events(StackName="same")["StackEvents"]
                for e in page:
                    by_id.setdefault(e["EventId"], e)
                fresh = [e for e in page if newest is None or e["Timestamp"] > newest]
                by_time.extend(fresh)
                if fresh:
                    newest = max(e["Timestamp"] for e in fresh)
                if cf.describe_stacks(StackName="same")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE":
                    break
                time.sleep(0.05)
            events, _ = all_events(cf, "same")
            done = [e for e in events if e["ResourceStatus"] == "CREATE_COMPLETE"]
            self.assertEqual(len(done), 4)
            self.assertEqual(len({e["Timestamp"] for e in done}), 1)
            self.assertEqual(len({e["EventId"] for e in done}), 4)
            # B and C complete 20 and 40 simulated seconds after A but carry A's timestamp: a
            # client that keeps "events newer than the last one seen" never sees them.
            self.assertEqual(len(by_id), len(events))
            missed = {e["LogicalResourceId"] for e in events} - {
                e["LogicalResourceId"] for e in by_time if e["ResourceStatus"] == "CREATE_COMPLETE"}
            self.assertTrue({"B", "C"} <= missed, missed)

    def test_timestamp_precision_makes_events_share_a_second(self):
        with Sim({**FAST, "timestamp_precision_ms": 1000}) as sim:
            cf = sim.client()
            cf.create_stack(StackName="sec", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            wait_stack(cf, "sec")
            events, _ = all_events(cf, "sec")
            self.assertTrue(all(e["Timestamp"].microsecond == 0 for e in events))
            self.assertLess(len({e["Timestamp"] for e in events}), len(events))

    def test_time_scale_plays_simulated_minutes_in_real_seconds(self):
        scenario = {"seed": 2, "change_set_seconds": 5,
                    "resources": {"Db": {"duration": 600}, "Cdn": {"duration": 900}}}
        template = json.dumps({"Resources": {"Db": {"Type": "AWS::RDS::DBInstance"},
                                             "Cdn": {"Type": "AWS::CloudFront::Distribution"}}})
        with Sim(scenario, time_scale=600) as sim:
            cf = sim.client()
            started = time.monotonic()
            cf.create_stack(StackName="slow", TemplateBody=template)
            wait_stack(cf, "slow")
            real = time.monotonic() - started
            events, _ = all_events(cf, "slow")
            simulated = (events[-1]["Timestamp"] - events[0]["Timestamp"]).total_seconds()
            self.assertGreaterEqual(simulated, 900)
            self.assertLess(simulated, 960)
            self.assertLess(real, 5)
            db = [e for e in events if e["LogicalResourceId"] == "Db"]
            self.assertAlmostEqual((db[-1]["Timestamp"] - db[0]["Timestamp"]).total_seconds(), 600, delta=15)

    def test_default_durations_follow_resource_types(self):
        template = json.dumps({"Resources": {"Db": {"Type": "AWS::RDS::DBInstance"},
                                             "Fn": {"Type": "AWS::Lambda::Function"}}})
        with Sim({"seed": 5}, time_scale=1000) as sim:
            cf = sim.client()
            cf.create_stack(StackName="typ", TemplateBody=template)
            wait_stack(cf, "typ")
            events, _ = all_events(cf, "typ")

            def took(logical):
                mine = [e for e in events if e["LogicalResourceId"] == logical]
                return (mine[-1]["Timestamp"] - mine[0]["Timestamp"]).total_seconds()

            self.assertTrue(355 <= took("Db") <= 610, took("Db"))
            self.assertTrue(9 <= took("Fn") <= 31, took("Fn"))


class ChaosTest(unittest.TestCase):
    def test_throttling_rate_and_burst(self):
        scenario = {**FAST, "throttle": {"rate": 1.0, "actions": ["DescribeStackEvents"],
                                         "bursts": [{"after": 1, "count": 2, "actions": ["DescribeStacks"]}]}}
        with Sim(scenario) as sim:
            cf = sim.client(NO_RETRY)
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.describe_stack_events(StackName="x")
            err = ctx.exception.response
            self.assertEqual(err["Error"]["Code"], "Throttling")
            self.assertEqual(err["Error"]["Message"], "Rate exceeded")
            self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 400)
            self.assertEqual(cf.describe_stacks()["Stacks"], [])  # request 1 passes
            for _ in range(2):  # requests 2 and 3 are the burst
                with self.assertRaises(botocore.exceptions.ClientError):
                    cf.describe_stacks()
            cf.describe_stacks()
            stats = sim.admin("stats")
            self.assertEqual(stats["throttled"], {"DescribeStackEvents": 1, "DescribeStacks": 2})
            self.assertEqual(stats["requests"]["DescribeStacks"], 4)
            # boto3's own retry handles the burst like real throttling.
            sim.admin("fault?kind=throttle&count=2&action=DescribeStacks", {})
            self.assertEqual(sim.client().describe_stacks()["Stacks"], [])

    def test_max_per_second_throttles_fast_pollers_only(self):
        with Sim({"throttle": {"max_per_second": 3, "actions": ["DescribeStacks"]}}) as sim:
            cf = sim.client(NO_RETRY)
            outcomes = []
            for _ in range(6):
                try:
                    cf.describe_stacks()
                    outcomes.append("ok")
                except botocore.exceptions.ClientError as e:
                    outcomes.append(e.response["Error"]["Code"])
            self.assertEqual(outcomes[:3], ["ok"] * 3)
            self.assertIn("Throttling", outcomes[3:])
            time.sleep(1.1)
            cf.describe_stacks()  # a patient poller is not throttled
            self.assertEqual(sim.admin("stats")["throttled"]["DescribeStacks"], outcomes.count("Throttling"))

    def test_faults_500_hang_and_applied_before_failure(self):
        with Sim(FAST) as sim:
            cf = sim.client(NO_RETRY)
            sim.admin("fault", {"kind": "error", "count": 2, "actions": ["DescribeStacks"]})
            for _ in range(2):
                with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                    cf.describe_stacks()
                self.assertEqual(ctx.exception.response["Error"]["Code"], "InternalFailure")
                self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
            cf.describe_stacks()
            sim.admin("fault", {"kind": "hang", "seconds": 2, "count": 1, "actions": ["DescribeStacks"]})
            slow = sim.client(botocore.config.Config(read_timeout=0.5, retries={"total_max_attempts": 1}))
            with self.assertRaises(botocore.exceptions.ReadTimeoutError):
                slow.describe_stacks()
            # `when: after`: the stack is created although the caller saw a 500.
            sim.admin("fault", {"kind": "error", "count": 1, "when": "after", "actions": ["CreateStack"]})
            with self.assertRaises(botocore.exceptions.ClientError):
                cf.create_stack(StackName="applied", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            self.assertEqual(cf.describe_stacks(StackName="applied")["Stacks"][0]["StackName"], "applied")
            self.assertEqual(sim.admin("stats")["faulted"]["DescribeStacks"], 3)


class AdminTest(unittest.TestCase):
    def test_update_started_elsewhere_is_visible_to_a_monitor(self):
        with Sim(FAST) as sim:
            cf = sim.client()
            cf.create_stack(StackName="piped", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            wait_stack(cf, "piped")
            started = sim.admin("start?stack=piped&touch=Fn&token=codepipeline-1", {})
            stack = cf.describe_stacks(StackName="piped")["Stacks"][0]
            self.assertEqual(stack["StackStatus"], "UPDATE_IN_PROGRESS")
            self.assertEqual(stack["LastOperations"][0]["OperationId"], started["OperationId"])
            stack = wait_stack(cf, "piped")
            self.assertEqual(stack["StackStatus"], "UPDATE_COMPLETE")
            events, _ = all_events(cf, "piped")
            mine = [e for e in events if e.get("OperationId") == started["OperationId"]]
            self.assertEqual({e["ClientRequestToken"] for e in mine}, {"codepipeline-1"})
            self.assertEqual({e["LogicalResourceId"] for e in mine}, {"piped", "Fn"})
            report = {s["name"]: s for s in sim.admin("stacks")["stacks"]}["piped"]
            self.assertEqual([t["status"] for t in report["terminal_events"]], ["CREATE_COMPLETE", "UPDATE_COMPLETE"])
            sim.admin("reset", {})
            self.assertEqual(cf.describe_stacks()["Stacks"], [])
            self.assertEqual(sim.admin("stats")["total"], 1)

    def test_process_exits_on_sigterm_and_on_stdin_eof(self):
        sim = Sim()
        try:
            sim.proc.stdin.close()
            self.assertEqual(sim.proc.wait(5), 0)
        finally:
            sim.close()
        sim = Sim()
        try:
            sim.proc.send_signal(signal.SIGTERM)
            self.assertEqual(sim.proc.wait(5), 0)
        finally:
            sim.close()


def xml_of(sim, action: str, **params) -> str:
    """The raw awsQuery response body, to check what goes on the wire (boto3 hides formats)."""
    body = "&".join([f"Action={action}", "Version=2010-05-15"] + [f"{k}={v}" for k, v in params.items()])
    req = urllib.request.Request(sim.endpoint + "/", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def operation_events(cf, **kwargs):
    """Every DescribeEvents OperationEvent, newest first, following NextToken."""
    events, token = [], None
    while True:
        page = cf.describe_events(**kwargs, **({"NextToken": token} if token else {}))
        events.extend(page.get("OperationEvents", []))
        token = page.get("NextToken")
        if not token:
            return events


CHAIN = json.dumps({"Resources": {
    "Instance": {"Type": "AWS::EC2::Instance"},
    "Address": {"Type": "AWS::EC2::EIP", "Properties": {"Ip": {"Fn::GetAtt": ["Instance", "PublicIp"]}}},
}})


class FidelityTest(unittest.TestCase):
    """Behaviours of real CloudFormation the first version of the simulator did not have
    (README.md, "Where each behaviour comes from")."""

    def test_detailed_status_configuration_complete_and_eventual_consistency_check(self):
        template = json.dumps({"Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket"},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"B": {"Ref": "Bucket"}}}}})
        with Sim({**FAST, "detailed_status": "stack", "defaults": {"duration": 20}}) as sim:
            cf = sim.client()
            cf.create_stack(StackName="dt", TemplateBody=template)
            wait_stack(cf, "dt")
            events, _ = all_events(cf, "dt")
            seq = [(e["LogicalResourceId"], e["ResourceStatus"], e.get("DetailedStatus")) for e in events]
            for logical in ("Bucket", "Fn"):
                mine = [e for e in events if e["LogicalResourceId"] == logical]
                self.assertEqual([(e["ResourceStatus"], e.get("DetailedStatus"), e.get("ResourceStatusReason"))
                                  for e in mine],
                                 [("CREATE_IN_PROGRESS", None, None),
                                  ("CREATE_IN_PROGRESS", None, "Resource creation Initiated"),
                                  ("CREATE_IN_PROGRESS", "CONFIGURATION_COMPLETE",
                                   "Eventual consistency check initiated"),
                                  ("CREATE_COMPLETE", None, None)])
            # Optimistic stabilization: Fn (which needs Bucket) starts at Bucket's CONFIGURATION_COMPLETE.
            self.assertLess(seq.index(("Fn", "CREATE_IN_PROGRESS", None)), seq.index(("Bucket", "CREATE_COMPLETE", None)))
            stack_level = [x for x in seq if x[0] == "dt"]
            self.assertEqual(stack_level, [("dt", "CREATE_IN_PROGRESS", None),
                                           ("dt", "CREATE_IN_PROGRESS", "CONFIGURATION_COMPLETE"),
                                           ("dt", "CREATE_COMPLETE", None)])
            # The stack-level check comes once every resource is configured, before the last completes.
            self.assertLess(seq.index(("Fn", "CREATE_IN_PROGRESS", "CONFIGURATION_COMPLETE")),
                            seq.index(("dt", "CREATE_IN_PROGRESS", "CONFIGURATION_COMPLETE")))
            self.assertLess(seq.index(("dt", "CREATE_IN_PROGRESS", "CONFIGURATION_COMPLETE")),
                            seq.index(("Fn", "CREATE_COMPLETE", None)))
            # `true`: the resource-level events only, as every real stream in tests/fixtures/real-events.
            sim.admin("scenario", {**FAST, "detailed_status": True, "defaults": {"duration": 20}})
            cf.create_stack(StackName="dt2", TemplateBody=template)
            wait_stack(cf, "dt2")
            events, _ = all_events(cf, "dt2")
            self.assertEqual([e.get("DetailedStatus") for e in events if e["LogicalResourceId"] == "dt2"], [None] * 2)
            self.assertEqual(len([e for e in events if e.get("DetailedStatus") == "CONFIGURATION_COMPLETE"]), 2)

    def test_failure_whose_only_reason_is_on_the_root_rollback_event(self):
        scenario = {**FAST, "resources": {"Address": {"fail_resolve": "Attribute 'PublicIp' does not exist"}}}
        with Sim(scenario) as sim:
            cf = sim.client()
            cf.create_stack(StackName="attr", TemplateBody=CHAIN, ClientRequestToken="attr-1")
            stack = wait_stack(cf, "attr")
            self.assertEqual(stack["StackStatus"], "ROLLBACK_COMPLETE")
            events, _ = all_events(cf, "attr")
            self.assertFalse([e for e in events if e["ResourceStatus"].endswith("_FAILED")])
            self.assertFalse([e for e in events if e["LogicalResourceId"] == "Address"])
            rollback = [e for e in events if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS"]
            self.assertEqual([e["ResourceStatusReason"] for e in rollback],
                             ["Attribute 'PublicIp' does not exist. Rollback requested by user."])
            self.assertEqual(brief(events)[-4:], [("attr", "ROLLBACK_IN_PROGRESS"), ("Instance", "DELETE_IN_PROGRESS"),
                                                  ("Instance", "DELETE_COMPLETE"), ("attr", "ROLLBACK_COMPLETE")])
            # An update fails the same way: the reason on UPDATE_ROLLBACK_IN_PROGRESS only.
            cf.delete_stack(StackName="attr")
            sim.admin("scenario", FAST)
            cf.create_stack(StackName="attr2", TemplateBody=CHAIN)
            wait_stack(cf, "attr2")
            sim.admin("scenario", scenario)
            cf.update_stack(StackName="attr2", TemplateBody=CHAIN.replace("AWS::EC2::EIP\"", "AWS::EC2::EIP\", "
                                                                           "\"Metadata\": {\"v\": 2}"))
            stack = wait_stack(cf, "attr2")
            self.assertEqual((stack["StackStatus"]), "UPDATE_ROLLBACK_COMPLETE")
            events, _ = all_events(cf, "attr2")
            self.assertEqual([e["ResourceStatusReason"] for e in events
                              if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"],
                             ["Attribute 'PublicIp' does not exist"])
            self.assertFalse([e for e in events if e["ResourceStatus"].endswith("_FAILED")])
            # `fail_before_start`: the resource fails with no *_IN_PROGRESS of its own (real-events/22).
            reason = "Unable to retrieve Arn attribute for AWS::IAM::Role"
            sim.admin("scenario", {**FAST, "resources": {"Address": {"fail_before_start": reason}}})
            cf.update_stack(StackName="attr2", TemplateBody=CHAIN.replace("AWS::EC2::EIP\"", "AWS::EC2::EIP\", "
                                                                           "\"Metadata\": {\"v\": 3}"))
            wait_stack(cf, "attr2")
            events, _ = all_events(cf, "attr2")
            starts = [i for i, x in enumerate(brief(events)) if x == ("attr2", "UPDATE_IN_PROGRESS")]
            mine = events[starts[-1]:]
            self.assertEqual([(e["ResourceStatus"], e.get("ResourceStatusReason")) for e in mine
                              if e["LogicalResourceId"] == "Address"], [("UPDATE_FAILED", reason), ("UPDATE_COMPLETE", None)])
            self.assertEqual([e["ResourceStatusReason"] for e in mine if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"],
                             ["The following resource(s) failed to update: [Address]. "])

    def test_hook_failure_fails_the_resource_with_the_hook_events(self):
        hook = {"type": "Private::Guard::S3SecurityGuardHook", "fail": "Bucket versioning is not enabled."}
        scenario = {**FAST, "resources": {"Bucket": {"hook": hook}, "Fn": {"hook": {"type": "Private::Lambda::Ok"}}}}
        with Sim(scenario) as sim:
            cf = sim.client()
            cf.create_stack(StackName="hk", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            stack = wait_stack(cf, "hk")
            self.assertEqual(stack["StackStatus"], "ROLLBACK_COMPLETE")
            events, _ = all_events(cf, "hk")
            bucket = [e for e in events if e["LogicalResourceId"] == "Bucket"]
            self.assertEqual([(e["ResourceStatus"], e.get("HookStatus"), e.get("HookStatusReason"),
                               e.get("ResourceStatusReason")) for e in bucket],
                             [("CREATE_IN_PROGRESS", None, None, None),
                              ("CREATE_IN_PROGRESS", "HOOK_IN_PROGRESS", "Invoking hook", None),
                              ("CREATE_IN_PROGRESS", "HOOK_COMPLETE_FAILED",
                               "Hook failed with message: Bucket versioning is not enabled.", None),
                              ("CREATE_FAILED", None, None,
                               "The following hook(s) failed: [Private::Guard::S3SecurityGuardHook]"),
                              ("DELETE_COMPLETE", None, None, None)])  # never created: nothing to delete
            self.assertTrue(all(e["PhysicalResourceId"] == "" for e in bucket[:4]))
            hook_events = [e for e in bucket if e.get("HookType")]
            self.assertEqual({(e["HookType"], e["HookInvocationPoint"], e["HookFailureMode"]) for e in hook_events},
                             {("Private::Guard::S3SecurityGuardHook", "PRE_PROVISION", "FAIL")})
            self.assertEqual(len({e["HookInvocationId"] for e in hook_events}), 1)
            rollback = [e for e in events if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS"][0]
            self.assertEqual(rollback["ResourceStatusReason"],  # Role was running: cancelled, listed too
                             "The following resource(s) failed to create: [Bucket, Role]. Rollback requested by user.")
            types = [(e["EventType"], e.get("LogicalResourceId")) for e in operation_events(cf, StackName="hk")]
            self.assertIn(("HOOK_INVOCATION_ERROR", "Bucket"), types)
            self.assertIn(("PROVISIONING_ERROR", "Bucket"), types)
            failed = operation_events(cf, StackName="hk", Filters={"FailedEvents": True})
            self.assertTrue(failed)
            self.assertTrue(all(e["EventType"] in ("HOOK_INVOCATION_ERROR", "PROVISIONING_ERROR") for e in failed))

    def test_cleanup_delete_failure_keeps_update_complete_and_retain_skips_deletes(self):
        template = json.dumps({"Resources": {
            "Old": {"Type": "AWS::SQS::Queue"},
            "Kept": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"},
            "Topic": {"Type": "AWS::SNS::Topic"}}})
        with Sim({**FAST, "resources": {"Old": {"fail_delete": "Queue is in use", "delete_retry_seconds": 10}}}) as sim:
            cf = sim.client()
            cf.create_stack(StackName="cl", TemplateBody=template)
            wait_stack(cf, "cl")
            without_old = json.loads(template)
            del without_old["Resources"]["Old"]
            cf.update_stack(StackName="cl", TemplateBody=json.dumps(without_old))
            stack = wait_stack(cf, "cl")
            self.assertEqual(stack["StackStatus"], "UPDATE_COMPLETE")
            self.assertEqual(stack["StackStatusReason"], "Update successful. One or more resources could not be deleted.")
            events, _ = all_events(cf, "cl")
            # Three attempts, then the resource is dropped from the stack (tests/fixtures/real-events/23).
            self.assertEqual([(e["ResourceStatus"], e.get("ResourceStatusReason")) for e in events
                              if e["LogicalResourceId"] == "Old"][-6:],
                             [("DELETE_IN_PROGRESS", None), ("DELETE_FAILED", "Queue is in use")] * 3)
            self.assertNotIn("Old", [r["LogicalResourceId"] for r in
                                     cf.list_stack_resources(StackName="cl")["StackResourceSummaries"]])
            cf.delete_stack(StackName="cl")
            stack = wait_stack(cf, stack["StackId"])
            self.assertEqual(stack["StackStatus"], "DELETE_COMPLETE")
            events, _ = all_events(cf, stack["StackId"])
            self.assertEqual([e["ResourceStatus"] for e in events if e["LogicalResourceId"] == "Kept"][-1:],
                             ["DELETE_SKIPPED"])
            self.assertNotIn(("Kept", "DELETE_IN_PROGRESS"), brief(events))

    def test_delete_failure_in_update_rollback_cleanup_still_completes_the_rollback(self):
        scenario = {**FAST, "resources": {"Fn": {"fail_update": "quota"},
                                          "Queue": {"fail_delete": "Access denied", "delete_retry_seconds": 30}}}
        with Sim(scenario) as sim:
            cf = sim.client()
            cf.create_stack(StackName="rc", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            wait_stack(cf, "rc")
            added = TEMPLATE.replace("fn for", "handler for").replace(
                "Resources:\n", "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n")
            cf.update_stack(StackName="rc", TemplateBody=added, Capabilities=["CAPABILITY_IAM"])
            stack = wait_stack(cf, "rc")
            # tests/fixtures/real-events/23: three DELETE_FAILED, then UPDATE_ROLLBACK_COMPLETE.
            self.assertEqual((stack["StackStatus"], stack["StackStatusReason"]),
                             ("UPDATE_ROLLBACK_COMPLETE", "Update successful. One or more resources could not be deleted."))
            events, _ = all_events(cf, "rc")
            cleanup = brief(events)[brief(events).index(("rc", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")):]
            self.assertEqual([x for x in cleanup if x[0] == "Queue"],
                             [("Queue", "DELETE_IN_PROGRESS"), ("Queue", "DELETE_FAILED")] * 3)

    def test_whole_second_timestamps_on_the_wire(self):
        # Stack "ms" keeps the default (milliseconds) through a per-stack setting.
        with Sim({**FAST, "timestamp_fractions": False, "stacks": {"ms": {"timestamp_fractions": True}}}) as sim:
            cf = sim.client()
            for name in ("ws", "ms"):
                cf.create_stack(StackName=name, TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            wait_stack(cf, "ws")
            stamps = re.findall(r"<Timestamp>([^<]*)</Timestamp>", xml_of(sim, "DescribeStackEvents", StackName="ws"))
            self.assertTrue(stamps)
            self.assertTrue(all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in stamps), stamps)
            stamps = re.findall(r"<Timestamp>([^<]*)</Timestamp>", xml_of(sim, "DescribeStackEvents", StackName="ms"))
            self.assertTrue(all(re.fullmatch(r".*T\d\d:\d\d:\d\d\.\d{3}Z", t) for t in stamps), stamps)


class ChangeSetFailureTest(unittest.TestCase):
    NAME_CONFLICT = {"logical": "Bucket", "name": "NAME_CONFLICT_VALIDATION",
                     "reason": "Resource of type 'AWS::S3::Bucket' with identifier 'my-bucket' already exists."}

    def test_early_validation_fails_the_change_set_and_describe_events_has_the_errors(self):
        warn = {"logical": "Topic", "name": "BUCKET_EMPTINESS_VALIDATION", "mode": "WARN", "reason": "not empty"}
        scenario = {**FAST, "change_set_seconds": 1, "early_validation": [self.NAME_CONFLICT, warn]}
        template = json.dumps({"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"},
                                             "Topic": {"Type": "AWS::SNS::Topic"}}})
        with Sim(scenario) as sim:
            cf = sim.client()
            r = cf.create_change_set(StackName="ev", ChangeSetName="cs", ChangeSetType="CREATE", TemplateBody=template)
            cs, _ = wait_change_set(cf, r["Id"])
            self.assertEqual(cs["Status"], "FAILED")
            self.assertEqual(cs["ExecutionStatus"], "UNAVAILABLE")
            self.assertEqual(cs["StatusReason"],
                             "The following hook(s)/validation failed: [AWS::EarlyValidation::ResourceExistenceCheck]. "
                             "To troubleshoot Early Validation errors, use the DescribeEvents API for detailed "
                             "failure information.")
            self.assertEqual(cf.describe_stacks(StackName="ev")["Stacks"][0]["StackStatus"], "REVIEW_IN_PROGRESS")
            by_arn = operation_events(cf, ChangeSetName=r["Id"])
            by_name = operation_events(cf, ChangeSetName="cs", StackName="ev")
            self.assertEqual(by_arn, by_name)
            errors = [e for e in by_arn if e["EventType"] == "VALIDATION_ERROR"]
            self.assertEqual(sorted((e["LogicalResourceId"], e["ValidationName"], e["ValidationFailureMode"],
                                     e["ValidationStatus"], e["ValidationPath"], e["ResourceType"]) for e in errors),
                             [("Bucket", "NAME_CONFLICT_VALIDATION", "FAIL", "FAILED", "/Resources/Bucket",
                               "AWS::S3::Bucket"),
                              ("Topic", "BUCKET_EMPTINESS_VALIDATION", "WARN", "FAILED", "/Resources/Topic",
                               "AWS::SNS::Topic")])
            conflict = [e for e in errors if e["LogicalResourceId"] == "Bucket"][0]
            self.assertEqual(conflict["ValidationStatusReason"], self.NAME_CONFLICT["reason"])
            self.assertEqual((conflict["OperationType"], conflict["StackId"], conflict["PhysicalResourceId"]),
                             ("CREATE_CHANGESET", r["StackId"], ""))
            ops = [(e["OperationType"], e["OperationStatus"]) for e in by_arn if e["EventType"] == "STACK_EVENT"]
            self.assertEqual(ops, [("CREATE_CHANGESET", "FAILED"), ("CREATE_CHANGESET", "IN_PROGRESS")])
            self.assertEqual(len(operation_events(cf, ChangeSetName=r["Id"], Filters={"FailedEvents": True})), 2)
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.describe_events(ChangeSetName="cs")  # a name without its stack
            self.assertEqual(ctx.exception.response["Error"]["Message"],
                             "One of ChangeSetName, OperationId or StackName must be specified")
            # WARN only: the change set is created, the warning is still in DescribeEvents.
            sim.admin("scenario", {**scenario, "early_validation": [warn]})
            r = cf.create_change_set(StackName="ev2", ChangeSetName="cs", ChangeSetType="CREATE", TemplateBody=template)
            cs, _ = wait_change_set(cf, r["Id"])
            self.assertEqual(cs["Status"], "CREATE_COMPLETE")
            self.assertEqual([e["ValidationName"] for e in operation_events(cf, ChangeSetName=r["Id"])
                              if e["EventType"] == "VALIDATION_ERROR"], ["BUCKET_EMPTINESS_VALIDATION"])

    def test_change_set_creation_failure_with_a_reason(self):
        reason = "Template error: instance of Fn::GetAtt references undefined resource Nope"
        with Sim({**FAST, "change_set_failure": reason}) as sim:
            cf = sim.client()
            r = cf.create_change_set(StackName="cf", ChangeSetName="cs", ChangeSetType="CREATE", TemplateBody=TEMPLATE,
                                     Capabilities=["CAPABILITY_IAM"])
            cs, _ = wait_change_set(cf, r["Id"])
            self.assertEqual((cs["Status"], cs["StatusReason"], cs["ExecutionStatus"]), ("FAILED", reason, "UNAVAILABLE"))
            self.assertNotIn("Changes", cs)

    def test_create_stack_early_validation_fails_then_rolls_back_under_a_new_operation(self):
        with Sim({**FAST, "early_validation": [self.NAME_CONFLICT]}) as sim:
            cf = sim.client()
            r = cf.create_stack(StackName="pv", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                                ClientRequestToken="pv-1")
            stack = wait_stack(cf, "pv")
            self.assertEqual(stack["StackStatus"], "ROLLBACK_COMPLETE")
            events, _ = all_events(cf, "pv")
            self.assertEqual([(e["ResourceStatus"], e.get("ResourceStatusReason"), e.get("DetailedStatus"))
                              for e in events],
                             [("CREATE_IN_PROGRESS", "User Initiated", None),
                              ("CREATE_FAILED", "Validation failed with 1 error(s). Call DescribeEvents to retrieve "
                               "the full list of issues with resource and property details, resolve each error, then "
                               "retry the operation.", "VALIDATION_FAILED"),
                              ("ROLLBACK_IN_PROGRESS", "Validation failure detected. See the operation's FAILED event "
                               "for details.", None),
                              ("ROLLBACK_COMPLETE", None, None)])
            self.assertEqual([e["OperationId"] for e in events][:2], [r["OperationId"]] * 2)
            self.assertNotEqual(events[2]["OperationId"], r["OperationId"])
            errors = [e for e in operation_events(cf, OperationId=r["OperationId"]) if e["EventType"] == "VALIDATION_ERROR"]
            self.assertEqual([(e["OperationType"], e["ValidationName"]) for e in errors],
                             [("CREATE_STACK", "NAME_CONFLICT_VALIDATION")])
            types = [e["EventType"] for e in operation_events(cf, StackName="pv", Filters={"FailedEvents": True})]
            self.assertEqual(sorted(types), ["PROVISIONING_ERROR", "VALIDATION_ERROR"])


class UserRollbackTest(unittest.TestCase):
    def test_cancel_update_stack_rolls_back_under_its_own_operation(self):
        with Sim(FAST, time_scale=200) as sim:
            cf = sim.client(NO_RETRY)
            cf.create_stack(StackName="cx", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.cancel_update_stack(StackName="cx")  # CREATE_IN_PROGRESS: not an update
            self.assertEqual(ctx.exception.response["Error"]["Code"], "ValidationError")
            self.assertEqual(ctx.exception.response["Error"]["Message"],
                             "CancelUpdateStack cannot be called from current stack status")
            wait_stack(cf, "cx")
            sim.admin("scenario", {**FAST, "defaults": {"duration": 100}})
            r = cf.update_stack(StackName="cx", TemplateBody=TEMPLATE.replace("fn for", "handler for"),
                                Capabilities=["CAPABILITY_IAM"], ClientRequestToken="upd-x")
            time.sleep(0.15)  # 30 simulated seconds into Fn's 100-second update
            cf.cancel_update_stack(StackName="cx", ClientRequestToken="cancel-x")
            # A retry of the same request (its token) is accepted; another cancel is not.
            cf.cancel_update_stack(StackName="cx", ClientRequestToken="cancel-x")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.cancel_update_stack(StackName="cx", ClientRequestToken="cancel-y")
            self.assertEqual(ctx.exception.response["Error"]["Message"],
                             "CancelUpdateStack cannot be called from current stack status")
            stack = wait_stack(cf, "cx")
            self.assertEqual(stack["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
            self.assertEqual([o["OperationType"] for o in stack["LastOperations"][:2]], ["ROLLBACK", "UPDATE_STACK"])
            events, _ = all_events(cf, "cx")
            start = brief(events).index(("cx", "UPDATE_IN_PROGRESS"))
            mine = events[start:]
            self.assertIn(("Fn", "UPDATE_FAILED", "Resource update cancelled"),
                          [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason")) for e in mine])
            rollback = [e for e in mine if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"][0]
            self.assertEqual(rollback["ResourceStatusReason"], "User Initiated")
            # Fn's cancelled update changed nothing: the rollback only reports it (real-events/22).
            after = brief(mine[mine.index(rollback):])
            self.assertIn(("Fn", "UPDATE_COMPLETE"), after)
            self.assertNotIn(("Fn", "UPDATE_IN_PROGRESS"), after)
            self.assertEqual(rollback["OperationId"], stack["LastOperations"][0]["OperationId"])
            self.assertNotEqual(rollback["OperationId"], r["OperationId"])
            self.assertEqual(rollback["ClientRequestToken"], "cancel-x")

    def test_update_rollback_failed_then_continue_update_rollback_skipping_the_resource(self):
        with Sim({**FAST, "resources": {"Fn": {"fail_update": "quota"}, "Bucket": {"fail_rollback": "bucket locked"}}},
                 time_scale=200) as sim:
            cf = sim.client(NO_RETRY)
            cf.create_stack(StackName="cr", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"])
            wait_stack(cf, "cr")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.continue_update_rollback(StackName="cr")
            self.assertEqual(ctx.exception.response["Error"]["Message"],
                             "ContinueUpdateRollback cannot be called from current stack status")
            changed = TEMPLATE.replace("fn for", "handler for").replace(
                "  Bucket:\n    Type: AWS::S3::Bucket\n", "  Bucket:\n    Type: AWS::S3::Bucket\n    Properties: {X: 1}\n")
            cf.update_stack(StackName="cr", TemplateBody=changed, Capabilities=["CAPABILITY_IAM"])
            stack = wait_stack(cf, "cr")
            self.assertEqual(stack["StackStatus"], "UPDATE_ROLLBACK_FAILED")
            self.assertEqual(stack["StackStatusReason"], "The following resource(s) failed to update: [Bucket]. ")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.update_stack(StackName="cr", UsePreviousTemplate=True, Capabilities=["CAPABILITY_IAM"])
            self.assertIn("UPDATE_ROLLBACK_FAILED state and can not be updated", ctx.exception.response["Error"]["Message"])
            with self.assertRaises(botocore.exceptions.ClientError):
                cf.continue_update_rollback(StackName="cr", ResourcesToSkip=["Role"])  # not failed
            cf.continue_update_rollback(StackName="cr", ResourcesToSkip=["Bucket"], ClientRequestToken="cont-1")
            stack = wait_stack(cf, "cr")
            self.assertEqual(stack["StackStatus"], "UPDATE_ROLLBACK_COMPLETE")
            self.assertEqual([o["OperationType"] for o in stack["LastOperations"][:3]],
                             ["CONTINUE_ROLLBACK", "ROLLBACK", "UPDATE_STACK"])
            events, _ = all_events(cf, "cr")
            cont = [e for e in events if e.get("ClientRequestToken") == "cont-1"]
            self.assertEqual(brief(cont)[0], ("cr", "UPDATE_ROLLBACK_IN_PROGRESS"))
            self.assertIn(("Bucket", "UPDATE_COMPLETE"), brief(cont))
            self.assertEqual(brief(cont)[-1], ("cr", "UPDATE_ROLLBACK_COMPLETE"))
            self.assertEqual({e["OperationId"] for e in cont}, {stack["LastOperations"][0]["OperationId"]})


class DeleteDuringRollbackTest(unittest.TestCase):
    def test_delete_stack_during_a_create_rollback_takes_over(self):
        scenario = {**FAST, "resources": {"Fn": {"fail": "bad role"},
                                          "Bucket": {"duration": 5, "delete_duration": 300}}}
        with Sim(scenario) as sim:
            cf = sim.client()
            r = cf.create_stack(StackName="dr", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                                ClientRequestToken="dr-1")
            deadline = time.monotonic() + 10
            while cf.describe_stacks(StackName="dr")["Stacks"][0]["StackStatus"] != "ROLLBACK_IN_PROGRESS":
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
            time.sleep(0.1)  # the rollback has started deleting the bucket (300 simulated seconds)
            cf.delete_stack(StackName="dr")
            stack = wait_stack(cf, r["StackId"])
            self.assertEqual(stack["StackStatus"], "DELETE_COMPLETE")
            events, _ = all_events(cf, r["StackId"])
            seq = brief(events)
            self.assertNotIn(("dr", "ROLLBACK_COMPLETE"), seq)  # the rollback never ends
            delete = events[seq.index(("dr", "DELETE_IN_PROGRESS"))]
            rollback = events[seq.index(("dr", "ROLLBACK_IN_PROGRESS"))]
            self.assertNotIn("ClientRequestToken", delete)
            self.assertNotEqual(delete["OperationId"], rollback["OperationId"])
            bucket = [e for e in events if e["LogicalResourceId"] == "Bucket"]
            # Started by the rollback, finished under the DeleteStack's OperationId (real-events/25).
            self.assertEqual([(e["ResourceStatus"], e["OperationId"]) for e in bucket[-2:]],
                             [("DELETE_IN_PROGRESS", rollback["OperationId"]), ("DELETE_COMPLETE", delete["OperationId"])])
            self.assertEqual([o["OperationType"] for o in stack["LastOperations"]], ["DELETE_STACK", "ROLLBACK", "CREATE_STACK"])


class DescribeEventsTest(unittest.TestCase):
    def test_pages_operation_filter_and_the_switch_that_turns_it_off(self):
        with Sim({**FAST, "describe_events_page_size": 4}) as sim:
            cf = sim.client(NO_RETRY)
            r = cf.create_stack(StackName="de", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                                ClientRequestToken="de-1")
            wait_stack(cf, "de")
            first = cf.describe_events(StackName="de")
            self.assertEqual(len(first["OperationEvents"]), 4)
            every = operation_events(cf, StackName="de")
            self.assertEqual(len(every), 2 + 2 + 3 * 3)  # operation start/end, stack events, resources
            self.assertEqual(every[0]["OperationStatus"], "SUCCEEDED")
            self.assertEqual(every[-1]["OperationStatus"], "IN_PROGRESS")
            self.assertEqual((every[0]["StartTime"], every[0]["OperationType"]), (every[-1]["StartTime"], "CREATE_STACK"))
            self.assertIn("EndTime", every[0])
            progress = [e for e in every if e["EventType"] == "PROGRESS"]
            self.assertEqual(len(progress), 2 + 3 * 3)
            self.assertTrue(all("StackName" not in e and e["OperationId"] == r["OperationId"] for e in progress))
            self.assertEqual(every, operation_events(cf, OperationId=r["OperationId"]))
            self.assertEqual(cf.describe_events(OperationId="nope")["OperationEvents"], [])
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.describe_events()
            self.assertEqual(ctx.exception.response["Error"]["Code"], "ValidationError")
            sim.admin("scenario", {**FAST, "describe_events": False})
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.describe_events(StackName="de")
            self.assertEqual(ctx.exception.response["Error"]["Code"], "InvalidAction")


REAL = os.path.join(HERE, "..", "tests", "fixtures", "real-events")


def real_stream(name: str) -> str:
    return os.path.join(REAL, name)


def stack_xml_timestamps(sim, stack: str) -> list:
    """Every event's Timestamp as written on the wire, newest first, across pages."""
    stamps, token = [], None
    while True:
        body = xml_of(sim, "DescribeStackEvents", StackName=stack,
                      **({"NextToken": urllib.parse.quote(token)} if token else {}))
        stamps += re.findall(r"<Timestamp>([^<]*)</Timestamp>", body)
        token = (re.findall(r"<NextToken>([^<]*)</NextToken>", body) or [None])[0]
        if not token:
            return stamps


class ReplayTest(unittest.TestCase):
    """Recorded streams served with their timing compressed (cfnsim_replay)."""

    def test_real_update_rollback_stream_plays_after_its_history(self):
        path = real_stream("22-opid-create-then-update-rollback.json")
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)["StackEvents"]
        with Sim() as sim:
            cf = sim.client()
            loaded = sim.admin("replay", {"file": path, "scale": 20, "start": "trigger"})
            self.assertEqual([o["status"] for o in loaded["operations"]], ["CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"])
            # Before the trigger: the history (the change set's REVIEW and the create), settled.
            stack = cf.describe_stacks(StackName="multi-tenant-pharmacy-api")["Stacks"][0]
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE")
            self.assertEqual([o["OperationType"] for o in stack["LastOperations"]], ["CREATE_STACK"])
            events, _ = all_events(cf, "multi-tenant-pharmacy-api")
            self.assertEqual(len(events), loaded["history"])
            started = time.time()
            sim.admin("replay/start", {})
            seen = []
            while not seen or seen[-1] != "UPDATE_ROLLBACK_COMPLETE":
                status = cf.describe_stacks(StackName=stack["StackId"])["Stacks"][0]["StackStatus"]
                if not seen or seen[-1] != status:
                    seen.append(status)
                self.assertLess(time.time() - started, 10)
                time.sleep(0.02)
            self.assertEqual(seen, ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
                                    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"])
            stack = cf.describe_stacks(StackName="multi-tenant-pharmacy-api")["Stacks"][0]
            # The rollback's own OperationId, the update's, the create's: newest first.
            self.assertEqual([(o["OperationType"], o["OperationId"][:6]) for o in stack["LastOperations"]],
                             [("ROLLBACK", "0a0b88"), ("UPDATE_STACK", "3faecf"), ("CREATE_STACK", "a5e8bc")])
            events, _ = all_events(cf, "multi-tenant-pharmacy-api")
            self.assertEqual([e["EventId"] for e in events], [e["EventId"] for e in reversed(recorded)])
            # Timestamps exactly as recorded, not shifted to now.
            self.assertEqual(set(stack_xml_timestamps(sim, "multi-tenant-pharmacy-api")),
                             {e["Timestamp"].replace("+00:00", "Z") for e in recorded})
            report = {s["name"]: s for s in sim.admin("stacks")["stacks"]}["multi-tenant-pharmacy-api"]
            terminal = report["terminal_events"][-1]
            self.assertEqual((terminal["status"], terminal["operation_id"][:6]), ("UPDATE_ROLLBACK_COMPLETE", "0a0b88"))
            # Revealed after the recorded 10.6 s / 20, and noticed by our polling soon after.
            self.assertAlmostEqual(terminal["real_time"] - started, 10.608 / 20, delta=0.3)
            self.assertGreaterEqual(terminal["first_served_real_time"], terminal["real_time"])
            ops = [(e["OperationType"], e["OperationStatus"]) for e in cf.describe_events(
                StackName="multi-tenant-pharmacy-api")["OperationEvents"] if e["EventType"] == "STACK_EVENT"]
            self.assertEqual(ops[:4], [("ROLLBACK", "SUCCEEDED"), ("ROLLBACK", "IN_PROGRESS"),
                                       ("UPDATE_STACK", "FAILED"), ("UPDATE_STACK", "IN_PROGRESS")])
            stats = sim.admin("stats")
            self.assertGreater(stats["requests"]["DescribeStacks"], 4)

    def test_operation_already_running_and_long_gaps_capped(self):
        path = real_stream("09-root-reason-only-attribute-publicip.json")
        with Sim() as sim:
            cf = sim.client()
            # 6 recorded minutes: every gap capped at 4 ms.
            loaded = sim.admin("replay", {"file": path, "scale": 1, "max_gap": 0.004, "reveal_first": 20})
            self.assertLess(loaded["play_seconds"], 178 * 0.004 + 0.001)
            stack = cf.describe_stacks(StackName="DevEnvStack")["Stacks"][0]
            self.assertIn(stack["StackStatus"], ("CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS"))
            self.assertGreaterEqual(len(all_events(cf, "DevEnvStack")[0]), 21)  # REVIEW + the first 20
            stack = wait_stack(cf, "DevEnvStack", timeout=5)
            self.assertEqual(stack["StackStatus"], "ROLLBACK_COMPLETE")
            events, _ = all_events(cf, "DevEnvStack")
            rollback = [e for e in events if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS"]
            self.assertEqual([e["ResourceStatusReason"] for e in rollback],
                             ["Attribute 'PublicIp' does not exist. Rollback requested by user."])
            self.assertFalse([e for e in events if e["ResourceStatus"].endswith("_FAILED")])

    def test_operation_by_index_and_by_event_id_pages_and_duration(self):
        path = real_stream("26-multi-op-nested-capabilities-608-events.json")
        with Sim() as sim:
            cf = sim.client()
            loaded = sim.admin("replay", {"file": path, "operation": 10, "duration": 0.1, "page_size": 50,
                                          "start": "trigger"})
            self.assertEqual(len(loaded["operations"]), 45)
            self.assertEqual(loaded["start_index"], loaded["operations"][10]["position"])
            events, pages = all_events(cf, "smart-device-api-stack")
            self.assertEqual(len(events), loaded["history"])
            self.assertGreater(pages, 1)
            sim.admin("replay/start", {})
            time.sleep(0.25)
            self.assertTrue(sim.admin("replay")["done"])
            events, _ = all_events(cf, "smart-device-api-stack")
            self.assertEqual(len(events), 608)
            stamps = stack_xml_timestamps(sim, "smart-device-api-stack")
            self.assertIn("2025-07-05T04:55:10Z", stamps)  # a whole-second timestamp stays one
            # By EventId: the same operation.
            chosen = loaded["operations"][10]["event_id"]
            again = sim.admin("replay", {"file": path, "event_id": chosen, "start": "trigger"})
            self.assertEqual(again["start_index"], loaded["start_index"])

    def test_several_stacks_shared_timestamps_deleted_stack_and_unknown_children(self):
        root = "arn:aws:cloudformation:us-east-1:123456789012:stack/app/11111111-aaaa"
        child = "arn:aws:cloudformation:us-east-1:123456789012:stack/app-Net-ABC/22222222-bbbb"

        def event(stack_id, name, logical, status, ts, rtype="AWS::CloudFormation::Stack", physical=None, op="op-1"):
            return {"StackId": stack_id, "EventId": f"{logical}-{status}-{ts}", "StackName": name,
                    "LogicalResourceId": logical, "PhysicalResourceId": physical or stack_id, "ResourceType": rtype,
                    "Timestamp": ts, "ResourceStatus": status, "OperationId": op}

        stream = [  # chronological here; the file is newest first
            event(root, "app", "app", "CREATE_IN_PROGRESS", "2025-01-01T10:00:00Z"),
            event(root, "app", "Net", "CREATE_IN_PROGRESS", "2025-01-01T10:00:01.5+00:00"),
            event(root, "app", "Net", "CREATE_IN_PROGRESS", "2025-01-01T10:00:02.000Z", physical=child),
            event(child, "app-Net-ABC", "app-Net-ABC", "CREATE_IN_PROGRESS", "2025-01-01T10:00:02.100Z", op="op-c"),
            event(child, "app-Net-ABC", "Vpc", "CREATE_COMPLETE", "2025-01-01T10:00:30Z", "AWS::EC2::VPC", "vpc-1", "op-c"),
            event(child, "app-Net-ABC", "app-Net-ABC", "CREATE_COMPLETE", "2025-01-01T10:00:30Z", op="op-c"),
            event(root, "app", "Net", "CREATE_COMPLETE", "2025-01-01T10:00:30Z", physical=child),
            event(root, "app", "app", "CREATE_COMPLETE", "2025-01-01T10:01:00Z"),
            event(root, "app", "app", "DELETE_IN_PROGRESS", "2025-01-01T11:00:00Z", op="op-2"),
            event(root, "app", "Other", "DELETE_COMPLETE", "2025-01-01T11:00:05Z", "AWS::CloudFormation::Stack",
                  "arn:aws:cloudformation:us-east-1:123456789012:stack/not-recorded/3333", "op-2"),
            event(root, "app", "app", "DELETE_COMPLETE", "2025-01-01T11:00:10Z", op="op-2"),
        ]
        with Sim() as sim:
            cf = sim.client(NO_RETRY)
            loaded = sim.admin("replay", {"events": {"StackEvents": list(reversed(stream))}, "operation": 0,
                                          "scale": 100, "max_gap": 0.2, "start": "trigger"})
            self.assertEqual(loaded["root"]["name"], "app")
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:  # nothing revealed yet
                cf.describe_stacks(StackName="app")
            self.assertEqual(ctx.exception.response["Error"]["Message"], "Stack with id app does not exist")
            sim.admin("replay/start", {})
            counts = set()
            while not sim.admin("replay")["done"]:
                counts.add(sim.admin("replay")["revealed"])
            # The three 10:00:30 events are revealed together: never 5 or 6 of the 11.
            self.assertFalse(counts & {5, 6}, counts)
            child_stack = cf.describe_stacks(StackName=child)["Stacks"][0]
            self.assertEqual((child_stack["StackStatus"], child_stack["ParentId"], child_stack["RootId"]),
                             ("CREATE_COMPLETE", root, root))
            self.assertEqual(brief(all_events(cf, "app-Net-ABC")[0]),
                             [("app-Net-ABC", "CREATE_IN_PROGRESS"), ("Vpc", "CREATE_COMPLETE"),
                              ("app-Net-ABC", "CREATE_COMPLETE")])
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:  # named, but not recorded
                cf.describe_stack_events(StackName="arn:aws:cloudformation:us-east-1:123456789012:stack/not-recorded/3333")
            self.assertIn("does not exist", ctx.exception.response["Error"]["Message"])
            with self.assertRaises(botocore.exceptions.ClientError):  # deleted: found by ARN only
                cf.describe_stacks(StackName="app")
            gone = cf.describe_stacks(StackName=root)["Stacks"][0]
            self.assertEqual(gone["StackStatus"], "DELETE_COMPLETE")
            self.assertEqual(gone["CreationTime"].isoformat(), "2025-01-01T10:00:00+00:00")
            self.assertEqual(stack_xml_timestamps(sim, root)[-2:], ["2025-01-01T10:00:01.5Z", "2025-01-01T10:00:00Z"])

    def test_every_corpus_stream_plays_to_its_manifest_status(self):
        import cfnsim_replay  # in-process: no server needed to play a stream to its end
        with open(os.path.join(REAL, "manifest.json"), encoding="utf-8") as f:
            manifest = {m["file"]: m for m in json.load(f)}
        for name, entry in sorted(manifest.items()):
            with self.subTest(name), open(os.path.join(REAL, name), encoding="utf-8") as f:
                doc = json.load(f)
                api = cfnsim_replay.ReplayApi(cfnsim_replay.Replay(doc, {"operation": 0, "scale": 1e12}))
                time.sleep(0.001)
                root = api.replay.root.id
                stack = api.do_DescribeStacks({"StackName": root})["Stacks"][0]
                final = entry["operations"][-1]["final_status"]
                if final is not None:
                    self.assertEqual(stack["StackStatus"], final)
                events, params = [], {"StackName": root}
                while True:
                    page = api.do_DescribeStackEvents(params)
                    events += page["StackEvents"]
                    if not page["NextToken"]:
                        break
                    params = {"StackName": root, "NextToken": page["NextToken"]}
                self.assertEqual([e["EventId"] for e in events], [e["EventId"] for e in doc["StackEvents"]])

    def test_cli_flag_plays_the_aws_documentation_sample(self):
        sample = real_stream("02-docs-userguide-s3-create-complete.json")
        with Sim(args=["--replay", sample, "--replay-options", json.dumps({"scale": 100})]) as sim:
            cf = sim.client()
            stack = wait_stack(cf, "myteststack", timeout=5)
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE")
            events, _ = all_events(cf, "myteststack")
            self.assertEqual(brief(events)[0], ("myteststack", "CREATE_IN_PROGRESS"))
            self.assertEqual(events[1]["ResourceProperties"], '{"AccessControl":"PublicRead"}')
            self.assertEqual([r["LogicalResourceId"] for r in
                              cf.list_stack_resources(StackName="myteststack")["StackResourceSummaries"]], ["S3Bucket"])
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.create_stack(StackName="other", TemplateBody=TEMPLATE)
            self.assertIn("replay", ctx.exception.response["Error"]["Message"])
            sim.admin("reset", {})  # back to the simulation
            self.assertEqual(cf.describe_stacks()["Stacks"], [])


if __name__ == "__main__":
    unittest.main()


class ChangeSetDetailTest(unittest.TestCase):
    """DescribeChangeSet's Changes in detail (cfnsim_changeset.py)."""

    BEFORE = json.dumps({
        "Parameters": {"Env": {"Type": "String"}},
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Delete",
                      "Properties": {"TableName": {"Fn::Sub": "orders-${Env}"}, "BillingMode": "PAY_PER_REQUEST"}},
            "Fn": {"Type": "AWS::Lambda::Function",
                   "Properties": {"Environment": {"Variables": {"TABLE": {"Ref": "Table"}}}, "Timeout": 3}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}},
            "Old": {"Type": "AWS::S3::Bucket"},
        },
    })
    AFTER = json.dumps({
        "Parameters": {"Env": {"Type": "String"}},
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain",
                      "Properties": {"TableName": {"Fn::Sub": "orders-${Env}"}, "BillingMode": "PAY_PER_REQUEST"}},
            "Fn": {"Type": "AWS::Lambda::Function",
                   "Properties": {"Environment": {"Variables": {"TABLE": {"Ref": "Table"}}}, "Timeout": 3}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}},
            "Added": {"Type": "AWS::SNS::Topic"},
        },
    })

    def _update(self, cf, name, body, env, **kwargs):
        r = cf.create_change_set(StackName=name, ChangeSetName="plan", TemplateBody=body,
                                 Parameters=[{"ParameterKey": "Env", "ParameterValue": env}], **kwargs)
        d, _ = wait_change_set(cf, r["Id"])
        return r, d

    def _by_logical(self, d):
        return {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in d["Changes"]}

    def test_replacement_details_causes_and_property_values(self):
        with Sim(FAST) as sim:
            cf = sim.client()
            deploy(cf, "detail", template=self.BEFORE, Parameters=[{"ParameterKey": "Env", "ParameterValue": "dev"}])
            wait_stack(cf, "detail")
            r, _ = self._update(cf, "detail", self.AFTER, "prod")
            d = cf.describe_change_set(ChangeSetName=r["Id"], IncludePropertyValues=True)
            changes = self._by_logical(d)
            self.assertEqual({k: v["Action"] for k, v in changes.items()},
                             {"Table": "Modify", "Fn": "Modify", "Queue": "Modify", "Old": "Remove", "Added": "Add"})
            table = changes["Table"]
            # TableName requires replacement (aws-resource-dynamodb-table.html); its value changed
            # through the parameter Env.
            self.assertEqual(table["Replacement"], "True")
            self.assertEqual(table["Scope"], ["Properties", "DeletionPolicy"])
            name_change = [x for x in table["Details"] if x["Target"].get("Name") == "TableName"][0]
            self.assertEqual(name_change["ChangeSource"], "ParameterReference")
            self.assertEqual(name_change["CausingEntity"], "Env")
            self.assertEqual(name_change["Target"]["RequiresRecreation"], "Always")
            self.assertEqual(name_change["Target"]["Path"], "/Properties/TableName")
            self.assertEqual((name_change["Target"]["BeforeValue"], name_change["Target"]["AfterValue"]),
                             ("orders-dev", "orders-prod"))
            policy = [x for x in table["Details"] if x["Target"]["Attribute"] == "DeletionPolicy"][0]
            self.assertEqual((policy["Target"]["BeforeValue"], policy["Target"]["AfterValue"]), ("Delete", "Retain"))
            self.assertEqual(json.loads(table["BeforeContext"])["DeletionPolicy"], "Delete")
            self.assertEqual(json.loads(table["AfterContext"])["DeletionPolicy"], "Retain")
            # The function refers to the replaced table: a Dynamic change caused by the reference.
            fn = changes["Fn"]
            self.assertEqual(fn["Replacement"], "False")
            self.assertEqual([(x["Evaluation"], x["ChangeSource"], x["CausingEntity"]) for x in fn["Details"]],
                             [("Dynamic", "ResourceReference", "Table")])
            queue = changes["Queue"]
            self.assertEqual(queue["Replacement"], "False")
            self.assertEqual(queue["Details"][0]["ChangeSource"], "DirectModification")
            self.assertNotIn("CausingEntity", queue["Details"][0])
            self.assertEqual((queue["Details"][0]["Target"]["BeforeValue"], queue["Details"][0]["Target"]["AfterValue"]),
                             ("30", "60"))
            self.assertTrue(changes["Old"]["PhysicalResourceId"])
            self.assertIn("BeforeContext", changes["Old"])
            self.assertNotIn("PhysicalResourceId", changes["Added"])
            self.assertNotIn("BeforeContext", changes["Added"])
            # Without IncludePropertyValues: the same changes, no values, no contexts.
            plain = self._by_logical(cf.describe_change_set(ChangeSetName=r["Id"]))
            self.assertNotIn("BeforeContext", plain["Table"])
            self.assertNotIn("BeforeValue", plain["Queue"]["Details"][0]["Target"])
            self.assertEqual(plain["Table"]["Replacement"], "True")

    def test_changes_page_with_next_token(self):
        resources = {f"Q{i:03d}": {"Type": "AWS::SQS::Queue"} for i in range(7)}
        with Sim({**FAST, "change_set_page_size": 3}) as sim:
            cf = sim.client()
            r = cf.create_change_set(StackName="paged", ChangeSetName="cs", ChangeSetType="CREATE",
                                     TemplateBody=json.dumps({"Resources": resources}))
            wait_change_set(cf, r["Id"])
            seen, token, pages = [], None, 0
            while True:
                page = cf.describe_change_set(ChangeSetName=r["Id"], **({"NextToken": token} if token else {}))
                pages += 1
                seen.extend(c["ResourceChange"]["LogicalResourceId"] for c in page["Changes"])
                token = page.get("NextToken")
                if not token:
                    break
            self.assertEqual((pages, seen), (3, sorted(resources)))

    def test_nested_change_sets(self):
        parent = json.dumps({"Resources": {
            "Data": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "https://s3/x"}},
            "Topic": {"Type": "AWS::SNS::Topic"}}})
        nested = {"template": {"Resources": {"Table": {"Type": "AWS::DynamoDB::Table",
                                                       "Properties": {"TableName": "a"}}}},
                  "next_template": {"Resources": {"Table": {"Type": "AWS::DynamoDB::Table",
                                                            "Properties": {"TableName": "b"}}}}}
        with Sim({**FAST, "nested": {"Data": nested}}) as sim:
            cf = sim.client()
            cf.create_stack(StackName="root", TemplateBody=parent)
            wait_stack(cf, "root")
            r = cf.create_change_set(StackName="root", ChangeSetName="plan", IncludeNestedStacks=True,
                                     TemplateBody=parent.replace("https://s3/x", "https://s3/y"))
            root, _ = wait_change_set(cf, r["Id"])
            self.assertTrue(root["IncludeNestedStacks"])
            self.assertNotIn("ParentChangeSetId", root)
            stack_change = self._by_logical(root)["Data"]
            self.assertEqual(stack_change["ResourceType"], "AWS::CloudFormation::Stack")
            self.assertEqual(stack_change["Details"][0]["Target"]["Name"], "TemplateURL")
            child = cf.describe_change_set(ChangeSetName=stack_change["ChangeSetId"], IncludePropertyValues=True)
            self.assertEqual(child["Status"], "CREATE_COMPLETE")
            self.assertEqual((child["ParentChangeSetId"], child["RootChangeSetId"]), (r["Id"], r["Id"]))
            self.assertTrue(child["StackName"].startswith("root-Data-"))
            table = self._by_logical(child)["Table"]
            self.assertEqual(table["Replacement"], "True")
            self.assertEqual((table["Details"][0]["Target"]["BeforeValue"], table["Details"][0]["Target"]["AfterValue"]),
                             ("a", "b"))
            cf.delete_change_set(ChangeSetName=r["Id"])
            with self.assertRaises(botocore.exceptions.ClientError):
                cf.describe_change_set(ChangeSetName=stack_change["ChangeSetId"])

    def test_failed_change_sets_say_why(self):
        with Sim(FAST) as sim:
            cf = sim.client()
            deploy(cf, "same", template=self.BEFORE, Parameters=[{"ParameterKey": "Env", "ParameterValue": "dev"}])
            wait_stack(cf, "same")
            r, d = self._update(cf, "same", self.BEFORE, "dev")
            self.assertEqual((d["Status"], d["ExecutionStatus"]), ("FAILED", "UNAVAILABLE"))
            self.assertEqual(d["StatusReason"], "The submitted information didn't contain changes. "
                                                "Submit different information to create a change set.")
            self.assertNotIn("Changes", d)
            with self.assertRaises(botocore.exceptions.ClientError) as ctx:
                cf.create_change_set(StackName="same", ChangeSetName="broken", TemplateBody="{not: [json")
            self.assertEqual(ctx.exception.response["Error"]["Code"], "ValidationError")
