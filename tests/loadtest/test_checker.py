"""loadtest.checker finds each kind of violation in a made-up history, and
lets through what the protocol allows (retries, expiry, everysec losses)."""
import json

from loadtest.checker import check


def _lease(lid, tasks, sent, got, expires, kind="lease", path="/api/v1/lease", body="{}"):
    answer = {"status": "ok", "lease": {"id": lid, "expires_at": expires},
              "tasks": [{"id": t, "payload": t} for t in tasks]}
    if kind == "complete":
        answer = {"accepted": len(tasks), "next": answer}
    return {"kind": kind, "path": path, "key": "k", "body": body, "sent": sent, "got": got,
            "status": 200, "retry_after": None, "answer": json.dumps(answer)}


def _complete(lid, tasks, sent, got, status=200, ok=True):
    body = {"results": [{"id": t, "ok": ok, "result": t} for t in tasks]}
    return {"kind": "complete", "path": "/api/v1/leases/%s/complete" % lid, "key": "k",
            "body": json.dumps(body), "sent": sent, "got": got, "status": status,
            "retry_after": None, "answer": json.dumps({"accepted": len(tasks)})}


def _results(ids):
    return [{"id": t, "result": t} for t in ids]


def test_a_clean_history_passes():
    h = [_lease("j.a", [0, 1], 1.0, 1.1, 100.0), _complete("j.a", [0, 1], 2.0, 2.1)]
    report = check(h, _results([0, 1]), 2)
    assert report["ok"], report


def test_a_task_in_two_live_leases_is_found():
    h = [_lease("j.a", [0, 1], 1.0, 1.1, 100.0), _lease("j.b", [1], 2.0, 2.1, 100.0),
         _complete("j.a", [0], 3.0, 3.1), _complete("j.b", [1], 3.0, 3.1)]
    report = check(h, _results([0, 1]), 2)
    assert report["two_leases"] == 1 and not report["ok"]
    assert report["samples"]["two_leases"] == [{"task": 1, "held_by": "j.a", "also": "j.b"}]


def test_a_second_hand_out_after_expiry_or_a_report_is_allowed():
    # j.a expired at 5; j.b handed task 1 out at 6. j.c took task 0 after j.a
    # reported it failed (the report was sent at 3, its answer lost).
    h = [_lease("j.a", [0, 1], 1.0, 1.1, 5.0), _complete("j.a", [0], 3.0, 3.1, status=502, ok=False),
         _lease("j.c", [0], 4.0, 4.1, 100.0), _lease("j.b", [1], 6.0, 6.1, 100.0),
         _complete("j.c", [0], 7.0, 7.1), _complete("j.b", [1], 7.0, 7.1)]
    report = check(h, _results([0, 1]), 2)
    assert report["ok"], report


def test_a_heartbeat_extends_the_hold():
    beat = {"kind": "heartbeat", "path": "/api/v1/leases/j.a/heartbeat", "key": None, "body": "{}",
            "sent": 3.0, "got": 3.1, "status": 200, "retry_after": None,
            "answer": json.dumps({"id": "j.a", "expires_at": 50.0})}
    h = [_lease("j.a", [0], 1.0, 1.1, 5.0), beat, _lease("j.b", [0], 6.0, 6.1, 100.0)]
    assert check(h, _results([0]), 1)["two_leases"] == 1


def test_a_hand_out_after_an_acknowledged_completion_is_found_unless_redis_crashed():
    h = [_lease("j.a", [0], 1.0, 1.1, 100.0), _complete("j.a", [0], 2.0, 2.1),
         _lease("j.b", [0], 3.0, 3.1, 100.0)]
    assert check(h, _results([0]), 1)["after_ack"] == 1
    crash = [{"fault": "kill-redis", "at": 2.5, "until": 2.5}]
    report = check(h, _results([0]), 1, crash)
    assert report["after_ack"] == 0 and report["after_ack_after_redis_crash"] == 1 and report["ok"]


def test_lost_doubled_and_wrong_results_are_found():
    report = check([], [{"id": 0, "result": 0}, {"id": 0, "result": 0}, {"id": 1, "result": 7}], 3)
    assert (report["lost"], report["doubled"], report["wrong_result"]) == (1, 1, 1)
    assert not report["ok"]


def test_only_retryable_errors_pass():
    def answer(status, retry_after=None, kind="lease"):
        return {"kind": kind, "path": "/api/v1/lease", "key": "k", "body": "{}", "sent": 1.0,
                "got": 1.1, "status": status, "retry_after": retry_after, "answer": None}
    fine = [answer(503, "1"), answer(429, "2"), answer(502), answer(504),
            answer("exc:ServerDisconnectedError"), answer(409, kind="heartbeat")]
    assert check(fine, [], 0)["ok"]
    for bad in (answer(500), answer(503), answer(400), answer(409)):
        report = check(fine + [bad], [], 0)
        assert report["bad_errors"] == 1 and not report["ok"], bad
