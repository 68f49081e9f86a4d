"""awsQuery wire format: form-encoded requests in, XML responses out.

Element names follow botocore's cloudformation 2010-05-15 model: lists are wrapped in
`<member>` elements, results sit in `<{Action}Result>` as the first child of
`<{Action}Response>` (the Rust SDK checks that order)."""

from __future__ import annotations

import datetime
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


class Ts(float):
    """A timestamp (epoch seconds) serialised as ISO 8601, UTC: with milliseconds, or as `text`
    when given (whole seconds, or a replayed event's timestamp written as it was recorded)."""

    text = None

    def __new__(cls, value: float, text: str | None = None):
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


def iso(ts: float, fractions: bool = True) -> str:
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    if not fractions:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def element(name: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, Ts):
        text = value.text or iso(value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, list):
        return f"<{name}>" + "".join(element("member", v) for v in value) + f"</{name}>"
    elif isinstance(value, dict):
        return f"<{name}>" + "".join(element(k, v) for k, v in value.items()) + f"</{name}>"
    else:
        text = escape(str(value))
    return f"<{name}>{text}</{name}>"


def response(action: str, result, request_id: str) -> str:
    """`result` None: the operation has no output shape (DeleteStack): no Result element."""
    inner = "" if result is None else element(f"{action}Result", result) if result else f"<{action}Result/>"
    return (f'<{action}Response xmlns="{NAMESPACE}">{inner}'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            f"</{action}Response>")


def error(code: str, message: str, request_id: str, sender: bool = True) -> str:
    kind = "Sender" if sender else "Receiver"
    return (f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")


def parse_form(body: str) -> dict:
    """Flat `Key=value` pairs (awsQuery never repeats a key)."""
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def member_list(params: dict, prefix: str) -> list:
    """`Prefix.member.N[.Field]` -> [value or {Field: value}] in N order."""
    items: dict = {}
    head = prefix + ".member."
    for key, value in params.items():
        if not key.startswith(head):
            continue
        index, _, field = key[len(head):].partition(".")
        if not index.isdigit():
            continue
        n = int(index)
        if field:
            slot = items.setdefault(n, {})
            if isinstance(slot, dict):
                slot[field] = value
        else:
            items[n] = value
    return [items[n] for n in sorted(items)]
