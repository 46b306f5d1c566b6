"""Launching a job's worker fleet (docs/contract.md §10): ``POST/GET/DELETE /jobs/<id>/fleet``.

A launch starts ``workers`` copies of ``jobmaster worker run --job <id>``,
each running the job's ``command`` per task, through the configured
launcher (``JOBMASTER_LAUNCHER``):

- ``local`` (:mod:`.fleet_local`): processes on the host of the instance
  that took the POST;
- ``kubernetes`` (:mod:`.fleet_k8s`): a Kubernetes Job.

What was launched is recorded beside the job in Redis (``fleet`` hash, one
record per launch, written by ``fleet.lua``), so any instance can answer
GET; local processes can only be signalled from their own host, which a
DELETE elsewhere says (and which a record names).

A dry run (``"dry_run": true``, or ``GET .../fleet?dry_run=1``) answers what
a launcher would start, whatever launcher is configured, and starts nothing.
"""
import json
import secrets
import time

from jobmaster import protocol

from ..errors import BadRequest, Conflict, NotConfigured, NotFound
from ..config import SETTINGS, split_tokens
from . import fleet_local

LAUNCHERS = ("local", "kubernetes")
#: FLEET_MAX_WORKERS as shipped (what the OpenAPI document's query states).
DEFAULT_MAX_WORKERS = dict((name, default) for name, default, *_ in SETTINGS)["FLEET_MAX_WORKERS"]
FINISHED = protocol.JOB_FINAL_STATES
#: What a dry run shows instead of the token (it is never shown or logged).
TOKEN_PLACEHOLDER = "<the worker token, set at launch>"


def worker_token(backend, job_id):
    """The bearer token launched workers of ``job_id`` use, or None when
    auth is open. The one place to switch to per-job tokens (§9): today the
    first configured worker token."""
    config = backend.config
    workers = split_tokens(config["WORKER_TOKENS"])
    if workers:
        return workers[0]
    if split_tokens(config["ADMIN_TOKENS"]):
        raise NotConfigured("launched workers need a token: set JOBMASTER_WORKER_TOKENS")
    return None


def _module(name):
    if name == "local":
        return fleet_local
    from . import fleet_k8s  # the Kubernetes client is large: imported when asked for

    return fleet_k8s


def _options(backend, body, base_url):
    """Validated launch options from a FLEET_REQUEST body (or dry-run query)."""
    config = backend.config
    n = body["workers"]  # at most FLEET_MAX_WORKERS: the schema says so
    url = (config["FLEET_URL"] or base_url).rstrip("/")
    return {"workers": n, "url": url, "concurrency": body.get("concurrency", 1),
            "image": body.get("image") or config["WORKER_IMAGE"],
            "namespace": config["K8S_NAMESPACE"]}


def _launcher_for(backend, body):
    configured = backend.config["LAUNCHER"]
    if configured and configured not in LAUNCHERS:
        raise NotConfigured("JOBMASTER_LAUNCHER=%r is not a launcher (%s)"
                            % (configured, ", ".join(LAUNCHERS)))
    wanted = body.get("launcher")
    if body.get("dry_run"):
        name = wanted or configured or "kubernetes"
    else:
        if not configured:
            raise NotConfigured("no fleet launcher is configured on this server: set "
                                "JOBMASTER_LAUNCHER=local or kubernetes (a dry run still "
                                "shows what either would start)")
        if wanted and wanted != configured:
            raise BadRequest("body.launcher: this server launches with %r" % configured)
        name = configured
    return name


def _job_state(backend, job_id):
    from .jobs import status  # jobs imports nothing from here; keeps the import one-way

    return status(backend, job_id)


def launch(backend, job_id, body, base_url):
    """Start (or, dry run, describe) a fleet; the answer of POST .../fleet."""
    doc = _job_state(backend, job_id)
    name = _launcher_for(backend, body)
    opts = _options(backend, body, base_url)
    launcher = _module(name)
    ref = secrets.token_hex(4)
    if body.get("dry_run"):
        return {"launcher": name, "dry_run": True, "launched": 0, "ref": None,
                "manifest": launcher.plan(job_id, ref, opts, TOKEN_PLACEHOLDER, doc)}
    if doc["state"] in FINISHED:
        raise Conflict("the job is %s: there is nothing for workers to do" % doc["state"])
    record = launcher.launch(backend.config, job_id, ref, opts, worker_token(backend, job_id), doc)
    record.update(launcher=name, ref=ref, workers=opts["workers"], launched_at=time.time())
    try:
        saved = backend.ops.fleet_save(job_id, ref, json.dumps(record))
    except NotFound:  # deleted while we launched: undo
        launcher.stop(record)
        raise
    if saved.status != "ok":  # finished while we launched: undo
        launcher.stop(record)
        raise Conflict("the job is %s: there is nothing for workers to do" % saved.state)
    return {"launcher": name, "launched": opts["workers"], "ref": ref,
            "workers": record.get("names", [])}


def records(backend, job_id):
    raw = backend.redis.hgetall(backend.keys.job_key(job_id, "fleet"))
    return sorted((json.loads(v) for v in raw.values()), key=lambda r: r["launched_at"])


def show(backend, job_id):
    """GET .../fleet: every launch, with what is running now."""
    _job_state(backend, job_id)
    launches = [_module(r["launcher"]).describe(r) for r in records(backend, job_id)]
    return {"job": job_id, "launcher": backend.config["LAUNCHER"] or None,
            "launched": sum(r["workers"] for r in launches),
            "running": sum(r.get("running") or 0 for r in launches),
            "launches": launches}


def stop(backend, job_id):
    """DELETE .../fleet: stop every launch this instance can reach, forget it."""
    _job_state(backend, job_id)
    launches = records(backend, job_id)
    if not launches:  # nothing launched, or already stopped: nothing to stop
        raise Conflict("job %s has no fleet to stop (none launched, or it was stopped)"
                       % job_id)
    stopped, elsewhere = 0, []
    for record in launches:
        launcher = _module(record["launcher"])
        if not launcher.reachable(record):
            elsewhere.append(record)
            continue
        stopped += launcher.stop(record)
        backend.ops.fleet_drop(job_id, record["ref"])
    if elsewhere:
        raise Conflict("stopped %d; %d launch(es) run on another host (%s): send the DELETE "
                       "to an instance there" % (stopped, len(elsewhere), ", ".join(
                           sorted({r.get("host", "?") for r in elsewhere}))))
    return {"job": job_id, "stopped": stopped}
