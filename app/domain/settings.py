"""The optional job settings of docs/contract.md §7–§8, between a job body, the
job's ``meta`` hash (see :mod:`app.store.keys`) and its status document.

``max_dead`` (failure budget), ``retry_backoff``, ``task_timeout``,
``batching``, ``speculate`` and ``webhook`` are stored as meta fields that the
Lua scripts read in ``load_job`` (lib.lua); an absent or empty field is the
default, so jobs made before these settings existed behave as before.
"""
import json
from urllib.parse import urlsplit

from jobmaster import protocol

from ..errors import BadRequest
from .codec import encode


def check_url(url, path):
    """An http(s) URL with a host, or BadRequest naming ``path``."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        ok = False
    if not ok:
        raise BadRequest("%s: must be an http:// or https:// URL with a host" % path)
    return url


def to_meta(body, config):
    """Meta field/value pairs (flat) for a validated job-create body."""
    webhook = body.get("webhook")
    if webhook is not None:
        check_url(webhook["url"], "body.webhook.url")
        webhook = json.dumps({"url": webhook["url"], "secret": webhook.get("secret", "")},
                             separators=(",", ":"))
    has_hook = webhook is not None or bool(config.get("WEBHOOK_URL"))
    max_dead = body.get("max_dead")
    timeout = body.get("task_timeout")
    pairs = [
        "max_dead", "" if max_dead is None else max_dead,
        "backoff_ms", int(round(body.get("retry_backoff", 0) * 1000)),
        "batching", body.get("batching", protocol.BATCHING_FIXED),
        "speculate", 1 if body.get("speculate") else 0,
        "task_timeout", "" if timeout is None else repr(float(timeout)),
        "webhook", webhook or "",
    ]
    if has_hook:
        pairs += ["wh_state", protocol.WEBHOOK_PENDING, "wh_attempts", 0, "wh_error", "",
                  "wh_seq", 1]
    if body.get("schedule"):
        pairs += ["schedule", body["schedule"]]
    if body.get("command") is not None:  # its two shapes: the schema's (docs/contract.md §10)
        pairs += ["command", encode(body["command"], config["MAX_RESULT_BYTES"], "body.command")]
    return pairs


def _number(raw):
    if raw in (None, ""):
        return None
    value = float(raw)
    return int(value) if value == int(value) else value


def from_meta(meta):
    """The optional settings as the status document shows them."""
    hook = meta.get("webhook") or ""
    return {
        "max_dead": None if meta.get("max_dead") in (None, "") else int(meta["max_dead"]),
        "retry_backoff": _number(int(meta.get("backoff_ms") or 0) / 1000.0),
        "task_timeout": _number(meta.get("task_timeout")),
        "batching": meta.get("batching") or protocol.BATCHING_FIXED,
        "speculate": meta.get("speculate") == "1",
        # the URL only: the secret never leaves the server
        "webhook": {"url": json.loads(hook)["url"]} if hook else None,
        # only jobs that have one (docs/contract.md §10)
        **({"command": json.loads(meta["command"])} if meta.get("command") else {}),
    }


def webhook_status(meta):
    """``{"state", "attempts", "last_error"}`` of a job with a webhook, else None."""
    if not meta.get("wh_state"):
        return None
    return {"state": meta["wh_state"], "attempts": int(meta.get("wh_attempts") or 0),
            "last_error": meta.get("wh_error") or None}


def created(backend, job_id, pairs):
    """After a job is made: index what a background loop must look after."""
    fields = dict(zip(pairs[::2], pairs[1::2]))
    if fields.get("wh_state"):
        from . import webhooks

        webhooks.watch(backend, job_id)
