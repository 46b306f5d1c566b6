"""A Jepsen-style checker over a swarm's recorded history (loadtest.chaos).

The history is every request a pod made, as :meth:`loadtest.swarm.Swarm._record`
writes it: kind, path, body, wall-clock send and answer times, status, the
Retry-After header and the answer. With the job's final results and the
nemesis's log of faults, :func:`check` looks for:

``lost``
    tasks without a result when the job ended (it must complete);
``doubled``
    a task with more than one result line, or a result that is not the
    payload its pod computed (a result recorded from the wrong task);
``two_leases``
    a task handed out in lease B while lease A surely held it: B's request
    went out after A's answer arrived and B's answer came back before A's
    hold ended (A's expiry, extended by heartbeats whose answer arrived, or
    the sending of a report on that task, whichever came first);
``after_ack``
    a hand-out of a task whose success had been acknowledged (a 200 answer
    to a complete carrying it) before the hand-out's request was sent;
``bad_errors``
    answers that are neither 200, a 503/429 with Retry-After, a 502/504
    from the gateway (the answer was lost on the way: the call is retried
    with its Idempotency-Key), nor a 409 to a heartbeat of an expired lease.

Every check is sound given one clock: the pods and Redis (``expires_at``
comes from Redis's TIME) run on the same machine. A violation whose first
event lies within ``FSYNC_WINDOW`` seconds before a ``kill -9`` of Redis is
reported apart (``*_after_redis_crash``): with ``appendfsync everysec`` Redis
may forget its last second of writes, so a lease or completion it
acknowledged can be undone and the task run again (never lost, never stored
twice). Everything else is a bug.
"""
import collections
import json
import re

#: Seconds of acknowledged writes a crashed Redis may forget (everysec: the
#: fsync runs each second, and Redis documents up to two seconds at worst).
FSYNC_WINDOW = 2.0
#: Slack for comparing a client's clock reading with Redis's expires_at.
SLACK = 0.05
_LEASE_IN_PATH = re.compile(r"/leases/([^/]+)/(complete|heartbeat|release)$")


class Handout:
    __slots__ = ("lease", "tasks", "sent", "got", "expires")

    def __init__(self, lease, tasks, sent, got, expires):
        self.lease, self.tasks, self.sent, self.got, self.expires = lease, tasks, sent, got, expires


def _json(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _handout(answer, rec):
    if isinstance(answer, dict) and answer.get("status") == "ok":
        lease = answer["lease"]
        return Handout(lease["id"], [t["id"] for t in answer.get("tasks", [])],
                       rec["sent"], rec["got"], float(lease["expires_at"]))
    return None


def _error_class(rec):
    status = rec["status"]
    if isinstance(status, str):
        return "transport"
    if status in (502, 504):
        return "gateway"
    if status in (503, 429):
        return "retry_after" if rec.get("retry_after") else "bad"
    if status == 409 and rec["kind"] == "heartbeat":
        return "lease_lost"
    return "bad"


def parse(history):
    """(handouts, acks {task: first ack time}, reports {(lease, task): first
    send time}, extensions {lease: latest acknowledged expiry}, error counts
    by "class:kind:status", the bad answers)."""
    handouts, acks, reports, ext = [], {}, {}, {}
    errors, bad = collections.Counter(), []
    for rec in history:
        m = _LEASE_IN_PATH.search(rec["path"])
        if rec["kind"] == "complete" and m:
            # a report ends its lease's hold on a task from its first sending,
            # whether or not its answer arrived
            for r in (_json(rec["body"]) or {}).get("results", []):
                k = (m.group(1), r["id"])
                reports[k] = min(reports.get(k, rec["sent"]), rec["sent"])
        if rec["status"] != 200:
            cls = _error_class(rec)
            errors["%s:%s:%s" % (cls, rec["kind"], rec["status"])] += 1
            if cls == "bad":
                bad.append({k: rec[k] for k in ("kind", "path", "status", "retry_after")})
            continue
        answer = _json(rec["answer"])
        if rec["kind"] == "lease":
            h = _handout(answer, rec)
            if h:
                handouts.append(h)
        elif rec["kind"] == "heartbeat" and m and isinstance(answer, dict):
            ext[m.group(1)] = max(ext.get(m.group(1), 0.0), float(answer.get("expires_at") or 0))
        elif rec["kind"] == "complete" and m:
            for r in (_json(rec["body"]) or {}).get("results", []):
                if r.get("ok"):
                    acks[r["id"]] = min(acks.get(r["id"], rec["got"]), rec["got"])
            h = _handout((answer or {}).get("next"), rec)
            if h:
                handouts.append(h)
    return handouts, acks, reports, ext, errors, bad


def _near_crash(t, crashes):
    return any(k - FSYNC_WINDOW <= t <= k for k in crashes)


def check(history, results, total, faults=(), payload_of=lambda t: t):
    """The report: counts per check, samples of violations, and ``ok``.

    ``results``: the job's result lines, decoded; ``faults``: the nemesis's
    events (dicts with ``fault`` and ``at``, wall clock)."""
    crashes = [f["at"] for f in faults if f["fault"] == "kill-redis"]
    handouts, acks, reports, ext, errors, bad = parse(history)

    ids = [r["id"] for r in results]
    counts = collections.Counter(ids)
    doubled = sorted(t for t, n in counts.items() if n > 1)
    wrong = sorted(r["id"] for r in results if r.get("result") != payload_of(r["id"]))
    lost = sorted(set(range(total)) - set(counts))

    by_task = collections.defaultdict(list)
    for h in handouts:
        for t in h.tasks:
            by_task[t].append(h)
    two, two_crash, after, after_crash = [], [], [], []
    for t, hs in by_task.items():
        hs.sort(key=lambda h: h.sent)
        for i, a in enumerate(hs):
            end = min(max(a.expires, ext.get(a.lease, 0.0)) - SLACK,
                      reports.get((a.lease, t), float("inf")))
            for b in hs[i + 1:]:
                if b.lease != a.lease and b.sent > a.got and b.got < end:
                    (two_crash if _near_crash(a.got, crashes) else two).append(
                        {"task": t, "held_by": a.lease, "also": b.lease})
        ack = acks.get(t)
        if ack is not None:
            for b in hs:
                if b.sent > ack:
                    (after_crash if _near_crash(ack, crashes) else after).append(
                        {"task": t, "acked_at": ack, "handed_out_at": b.sent})
    report = {
        "requests": len(history), "handouts": len(handouts), "tasks_handed_out": len(by_task),
        "lost": len(lost), "doubled": len(doubled), "wrong_result": len(wrong),
        "two_leases": len(two), "after_ack": len(after),
        "two_leases_after_redis_crash": len(two_crash),
        "after_ack_after_redis_crash": len(after_crash),
        "errors": dict(errors), "bad_errors": len(bad),
        "samples": {"lost": lost[:10], "doubled": doubled[:10], "wrong": wrong[:10],
                    "two_leases": two[:5], "after_ack": after[:5], "bad_errors": bad[:5]},
    }
    report["ok"] = not (lost or doubled or wrong or two or after or bad)
    return report
