#!/usr/bin/env python3
"""A CloudFormation scenario simulator speaking the query API (awsQuery, 2010-05-15).

    .venv/bin/python simulator/cfnsim.py --port 0 [--scenario FILE] [--time-scale X]
        [--replay STREAM.json [--replay-options JSON]]
        [--exit-on-stdin-eof] [--region us-east-1] [--verbose]

Prints `listening on 127.0.0.1:PORT` as its first stdout line. Point an SDK at it with
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_CLOUDFORMATION). Admin endpoints live under /_sim/
(see README.md)."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cfnsim_replay as replay_mod  # noqa: E402
import cfnsim_scenario as sc  # noqa: E402
import cfnsim_template as tpl  # noqa: E402
import cfnsim_xml as wire  # noqa: E402
from cfnsim_api import Api  # noqa: E402
from cfnsim_engine import ApiError, Sim  # noqa: E402
from cfnsim_xml import iso  # noqa: E402


class Rule:
    """A fault or throttling rule: fires on matching requests number after+1 .. after+count."""

    def __init__(self, doc: dict):
        self.kind = doc.get("kind", "error")  # error | hang | throttle
        self.after = int(doc.get("after", 0))
        self.count = int(doc.get("count", 1))
        self.actions = doc.get("actions") or ([doc["action"]] if doc.get("action") else None)
        self.seconds = float(doc.get("seconds", 5))
        self.status = int(doc.get("status", 500))
        self.code = doc.get("code", "InternalFailure")
        self.message = doc.get("message", "We encountered an internal error. Please try again.")
        self.when = doc.get("when", "before")  # before | after: is the request applied?
        self.seen = 0

    def matches(self, action: str) -> bool:
        return self.actions is None or action in self.actions

    def fire(self, action: str) -> bool:
        if not self.matches(action):
            return False
        self.seen += 1
        return self.after < self.seen <= self.after + self.count

    def as_dict(self) -> dict:
        return {"kind": self.kind, "after": self.after, "count": self.count, "actions": self.actions,
                "seconds": self.seconds, "seen": self.seen, "when": self.when}


class Chaos:
    """Throttling and fault injection, from the scenario and from /_sim/fault."""

    def __init__(self, scenario: sc.Scenario):
        self.lock = threading.Lock()
        self.load(scenario)

    def load(self, scenario: sc.Scenario) -> None:
        with self.lock:
            throttle = scenario.get("throttle") or {}
            self.rate = float(throttle.get("rate", 0))
            self.rate_actions = throttle.get("actions")
            self.max_per_second = float(throttle.get("max_per_second", 0))
            self.rng = random.Random(throttle.get("seed", scenario.get("seed", 0)))
            self.window: list = []
            self.rules = [Rule({**b, "kind": "throttle"}) for b in throttle.get("bursts", [])]
            self.rules += [Rule(f) for f in scenario.get("faults", [])]

    def add(self, doc: dict) -> Rule:
        rule = Rule(doc)
        with self.lock:
            self.rules.append(rule)
        return rule

    def decide(self, action: str):
        """None, or the Rule to apply to this request."""
        with self.lock:
            for rule in self.rules:
                if rule.fire(action):
                    return rule
            applies = self.rate_actions is None or action in self.rate_actions
            if applies and self.rate > 0 and self.rng.random() < self.rate:
                return Rule({"kind": "throttle"})
            if applies and self.max_per_second > 0:
                now = time.monotonic()
                self.window = [t for t in self.window if now - t < 1.0]
                if len(self.window) >= self.max_per_second:
                    return Rule({"kind": "throttle"})
                self.window.append(now)
        return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: dict = {}
            self.throttled: dict = {}
            self.faulted: dict = {}
            self.errors: dict = {}

    def bump(self, table: dict, action: str) -> None:
        with self.lock:
            table[action] = table.get(action, 0) + 1

    def as_dict(self) -> dict:
        with self.lock:
            return {"requests": dict(self.requests), "throttled": dict(self.throttled),
                    "faulted": dict(self.faulted), "errors": dict(self.errors),
                    "total": sum(self.requests.values())}


class Server:
    def __init__(self, scenario: sc.Scenario, time_scale: float, region: str, verbose: bool):
        self.sim = Sim(scenario, time_scale, region)
        self.api = Api(self.sim)
        self.chaos = Chaos(scenario)
        self.stats = Stats()
        self.verbose = verbose
        self.replay = None  # a recorded stream being played (cfnsim_replay); None: the simulation
        self.replay_api = None

    def load_replay(self, body: dict) -> dict:
        replay = replay_mod.load(body)
        with self.sim.lock:
            self.replay, self.replay_api = replay, replay_mod.ReplayApi(replay)
            return replay.status()

    def replay_status(self, start: bool = False) -> dict:
        with self.sim.lock:
            if self.replay is None:
                raise ApiError("NoReplay", "no recording is being replayed (POST /_sim/replay first)", 404)
            if start:
                self.replay.trigger()
            return self.replay.status()

    def set_scenario(self, doc: dict) -> None:
        scenario = sc.Scenario(doc)
        with self.sim.lock:
            self.sim.scenario = scenario  # stacks compute their settings from it on use
        self.chaos.load(scenario)

    # -------------------------------------------------------------- admin
    def stacks_report(self) -> list:
        with self.sim.lock:
            if self.replay is not None:
                return self.replay.stacks_report()
            out = []
            for s in self.sim.stacks.values():
                out.append({
                    "name": s.name, "id": s.id, "status": s.status, "reason": s.reason,
                    "parent_id": s.parent.id if s.parent else None, "root_id": s.root.id,
                    "events": len(s.events),
                    "terminal_events": [{**t, "timestamp": iso(t["timestamp"])} for t in s.terminal_events],
                    # What was started; `operation_id` is its first OperationId, `operation_ids`
                    # every one it went through (an automatic rollback has its own).
                    "operations": [{"operation_id": op.first_id, "type": op.records[0].op_type, "token": op.token,
                                    "operation_ids": [{"operation_id": r.op_id, "type": r.op_type,
                                                       "status": r.status} for r in op.records],
                                    "started_real_time": op.started_real, "final_status": op.final_status}
                                   for op in s.operations],
                })
            return out

    def start_elsewhere(self, query: dict, body: dict) -> dict:
        """Start an operation as if another deployer (CodePipeline, a console user) did."""
        name = query.get("stack", "")
        operation = query.get("operation", "update")
        token = query.get("token") or f"sim-elsewhere-{uuid.uuid4()}"
        if isinstance(body.get("scenario"), dict):
            self.set_scenario(body["scenario"])
        with self.sim.lock:
            stack = self.sim.find_stack(name)
            params = {"StackName": name, "ClientRequestToken": token}
            template = body.get("template")
            if template is not None:
                params["TemplateBody"] = template if isinstance(template, str) else json.dumps(template)
            for i, (k, v) in enumerate((body.get("parameters") or {}).items(), start=1):
                params[f"Parameters.member.{i}.ParameterKey"] = k
                params[f"Parameters.member.{i}.ParameterValue"] = str(v)
            for i, cap in enumerate(["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"], start=1):
                params[f"Capabilities.member.{i}"] = cap
            if operation == "create":
                return self.api.do_CreateStack(params)
            if operation == "delete":
                self.api.do_DeleteStack(params)
                return {"StackId": stack.id if stack else None}
            if stack is None:
                raise ApiError("ValidationError", f"Stack [{name}] does not exist")
            if template is None:
                params["UsePreviousTemplate"] = "true"
                # Same template: touch the chosen resources (default all) so there is an update.
                touch = [t for t in query.get("touch", "").split(",") if t]
                if stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
                    raise ApiError("ValidationError",
                                   f"Stack:{stack.id} is in {stack.status} state and can not be updated.")
                old = self.api._snapshot(stack)
                names = touch or list(stack.template["Resources"])
                changes = {n: "Modify" for n in names if n in stack.template["Resources"]}
                op = self.sim.start_operation(stack, "UPDATE", token=token, changes=changes, old=old)
                return {"StackId": stack.id, "OperationId": op.first_id}
            return self.api.do_UpdateStack(params)


def make_handler(server: Server):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle on, keep-alive clients wait for a
        # delayed ACK (~40 ms) on every request.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # quiet unless asked: tests read our stdout/stderr
            if server.verbose:
                sys.stderr.write("cfnsim: " + (fmt % args) + "\n")

        def _send(self, status: int, body: str, content_type: str, request_id: str | None = None):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if request_id:
                self.send_header("x-amzn-RequestId", request_id)
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, doc) -> None:
            self._send(status, json.dumps(doc, indent=1, default=str), "application/json")

        def _body(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length).decode("utf-8", "replace") if length else ""

        def do_GET(self):
            url = urlparse(self.path)
            if url.path.startswith("/_sim/"):
                return self._admin(url, "")
            return self._api(dict((k, v[-1]) for k, v in parse_qs(url.query).items()))

        def do_POST(self):
            url = urlparse(self.path)
            body = self._body()
            if url.path.startswith("/_sim/"):
                return self._admin(url, body)
            return self._api(wire.parse_form(body))

        # ---------------------------------------------------------- query API
        def _api(self, params: dict):
            request_id = str(uuid.uuid4())
            action = params.get("Action", "")
            server.stats.bump(server.stats.requests, action)
            rule = server.chaos.decide(action)
            if rule is not None and rule.kind == "throttle":
                server.stats.bump(server.stats.throttled, action)
                return self._send(400, wire.error("Throttling", "Rate exceeded", request_id), "text/xml", request_id)
            if rule is not None and rule.kind == "hang":
                server.stats.bump(server.stats.faulted, action)
                time.sleep(rule.seconds)
                rule = None
            if rule is not None and rule.when == "before":
                server.stats.bump(server.stats.faulted, action)
                return self._send(rule.status, wire.error(rule.code, rule.message, request_id, sender=False),
                                  "text/xml", request_id)
            try:
                with server.sim.lock:
                    result = (server.replay_api or server.api).call(action, params)
                body, status = wire.response(action, result, request_id), 200
            except ApiError as e:
                server.stats.bump(server.stats.errors, action)
                body, status = wire.error(e.code, e.message, request_id, e.sender), e.status
            if rule is not None:  # when == "after": the request took effect, the client sees a failure
                server.stats.bump(server.stats.faulted, action)
                body, status = wire.error(rule.code, rule.message, request_id, sender=False), rule.status
            self._send(status, body, "text/xml", request_id)

        # ---------------------------------------------------------- admin
        def _admin(self, url, raw_body: str):
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            route = url.path[len("/_sim/"):].strip("/")
            try:
                body = json.loads(raw_body) if raw_body.strip() else {}
            except json.JSONDecodeError as e:
                return self._json(400, {"error": f"body is not JSON: {e}"})
            try:
                if route == "health":
                    return self._json(200, {"ok": True})
                if route == "stats":
                    return self._json(200, server.stats.as_dict())
                if route == "stacks":
                    return self._json(200, {"stacks": server.stacks_report()})
                if route == "clock":
                    return self._json(200, {"sim_now": iso(server.sim.clock.sim_now()), "real_now": time.time(),
                                            "time_scale": server.sim.clock.scale})
                if route == "fault":
                    doc = {**body, **query}
                    if "action" in doc and "actions" not in doc:
                        doc["actions"] = doc.pop("action").split(",")
                    rule = server.chaos.add(doc)
                    return self._json(200, {"rule": rule.as_dict()})
                if route == "reset":
                    server.stats.reset()
                    if query.get("what", "all") == "all":
                        with server.sim.lock:
                            server.sim.reset()
                            server.replay = server.replay_api = None
                        server.chaos.load(server.sim.scenario)
                    return self._json(200, {"ok": True})
                if route == "scenario":
                    if self.command == "POST":
                        server.set_scenario(body)
                    return self._json(200, {"scenario": server.sim.scenario.doc})
                if route == "start":
                    return self._json(200, server.start_elsewhere(query, body))
                if route == "replay":
                    if self.command == "POST":
                        return self._json(200, server.load_replay({**body, **query}))
                    return self._json(200, server.replay_status())
                if route == "replay/start":
                    return self._json(200, server.replay_status(start=True))
                return self._json(404, {"error": f"unknown admin route {route}"})
            except ApiError as e:
                return self._json(e.status, {"error": e.code, "message": e.message})
            except (ValueError, KeyError, OSError, tpl.TemplateError) as e:
                return self._json(400, {"error": str(e)})

    return Handler


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--scenario", help="scenario JSON file")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="simulated seconds per real second (60: a 20-minute deploy in 20 s)")
    parser.add_argument("--replay", metavar="STREAM.json",
                        help="serve this recorded describe-stack-events stream instead of simulating")
    parser.add_argument("--replay-options", default="{}", metavar="JSON",
                        help='replay options, e.g. \'{"scale": 60, "max_gap": 2, "start": "trigger"}\'')
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin closes, so a test process that dies leaves no orphan")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    doc = {}
    if args.scenario:
        with open(args.scenario, encoding="utf-8") as f:
            doc = json.load(f)
    server = Server(sc.Scenario(doc), args.time_scale, args.region, args.verbose)
    if args.replay:
        server.load_replay({**json.loads(args.replay_options), "file": args.replay})
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(server))
    httpd.daemon_threads = True
    stop = threading.Event()

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.exit_on_stdin_eof:
        def watch_stdin():
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read holds the
            # buffer's lock and makes the interpreter abort at shutdown.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            stop.set()
        threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()

    # A short poll interval: shutdown() waits for the serving loop's next poll, and tests stop
    # a simulator per test case.
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="http",
                     daemon=True).start()
    print(f"listening on 127.0.0.1:{httpd.server_address[1]}", flush=True)
    while not stop.wait(0.05):
        pass
    httpd.shutdown()
    httpd.server_close()
    server.sim.scheduler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
