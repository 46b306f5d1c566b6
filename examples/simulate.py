#!/usr/bin/env python3
"""An example "simulation" worker built on the jobmaster client library.

Each task is one game room: the payload is the room number (a range job) or
a JSON object with a "room" field (an items job). The job's params say which
build to simulate and how many rounds to play. The result is a small summary
of the game; the master keeps it and `jobmaster job results ID` streams it.

Run it like this (the URL and token may also come from --url/--token):

    export JOBMASTER_URL=http://master:8080 JOBMASTER_TOKEN=<worker token>
    ID=$(jobmaster job create weekly --range 0 1000000 --params build.json)
    python examples/simulate.py --job "$ID"

SIGTERM (a pod being stopped) lets the current room finish, reports it and
releases the rest of the batch at once; `--on-term abandon` gives the current
room back too, without waiting for it.
"""
import argparse
import hashlib
import logging
import random
import sys
import time

try:
    from jobmaster import Client, Worker
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(
        __import__("os").path.abspath(__file__))))
    from jobmaster import Client, Worker


def simulate(room, build="dev", rounds=100, players=4, pace=0.0):
    """Play one room: a deterministic game given (build, room); return its summary."""
    seed = int.from_bytes(hashlib.sha256(("%s/%s" % (build, room)).encode()).digest()[:8], "big")
    rng = random.Random(seed)
    scores = [0] * players
    for _ in range(rounds):
        scores[rng.randrange(players)] += rng.randint(1, 6)
        if pace:
            time.sleep(pace)  # stands in for real CPU work
    winner = max(range(players), key=lambda p: (scores[p], -p))
    return {"room": room, "build": build, "winner": winner, "scores": scores}


def run_room(task):
    """The per-task handler: read the payload and params, return the result."""
    payload = task.payload
    room = payload.get("room") if isinstance(payload, dict) else payload
    params = task.params or {}
    return simulate(room, build=params.get("build", "dev"), rounds=int(params.get("rounds", 100)),
                    players=int(params.get("players", 4)), pace=float(params.get("pace", 0.0)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="master URL (default $JOBMASTER_URL)")
    parser.add_argument("--token", help="worker token (default $JOBMASTER_TOKEN)")
    parser.add_argument("--job", help="only this job (default: any running job)")
    parser.add_argument("--name", help="worker name (default host:pid)")
    parser.add_argument("--max-tasks", type=int, help="rooms per lease (default: the job's)")
    parser.add_argument("--on-term", choices=("finish", "abandon"), default="finish")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="simulate: %(levelname)s: %(message)s")

    worker = Worker(Client(args.url, args.token), job=args.job, name=args.name,
                    max_tasks=args.max_tasks, handle_signals=True, on_term=args.on_term)
    worker.run(run_room)
    logging.info("%(ok)d rooms done, %(failed)d failed, %(released)d released", worker.stats)
    if worker.signalled:
        return 128 + worker.signalled
    return 0 if worker.finished else 1


if __name__ == "__main__":
    sys.exit(main())
