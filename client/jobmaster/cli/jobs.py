"""`jobmaster job ...`: create, watch and manage jobs (admin token)."""
import datetime
import hashlib
import json
import os
import sys
import time

import click

from .. import protocol

from . import CONTEXT, JOB_RETRY_SECONDS, _Group, cli, log, pass_settings


@cli.group(cls=_Group, context_settings=CONTEXT)
@pass_settings
def job(settings):
    """Create, inspect and control jobs (admin token).

    An unreachable master fails these within about 5 seconds (set
    --retry-seconds to wait longer); `worker` commands keep retrying.
    """
    if not settings.retry_given:
        settings.retry_seconds = JOB_RETRY_SECONDS



def _read_items(fh):
    """Items from a JSON array or NDJSON (one JSON value per line)."""
    text = fh.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    stripped = text.strip()
    if not stripped:
        raise click.UsageError("--items: the input is empty")
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, list):
            return value
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError as err:
            raise click.UsageError("--items: line %d is not JSON: %s" % (number, err))
    return items


@job.command("create", context_settings=CONTEXT)
@click.argument("name")
@click.option("--range", "range_", nargs=2, type=int, metavar="START STOP",
              help="Tasks with payloads START..STOP-1.")
@click.option("--items", type=click.File("r"), metavar="FILE|-",
              help="Tasks from a JSON array or NDJSON file (- for stdin), one task per item.")
@click.option("--params", type=click.File("r"), metavar="FILE",
              help="A JSON object handed to every worker with each lease.")
@click.option("--batch-size", type=click.IntRange(1),
              help="Tasks per lease (server default %d)." % protocol.DEFAULT_BATCH_SIZE)
@click.option("--lease-seconds", type=click.IntRange(min=1),
              help="Lease length before unreported tasks go back (server default %d)."
              % protocol.DEFAULT_LEASE_SECONDS)
@click.option("--max-attempts", type=click.IntRange(min=1),
              help="Attempts before a task is dead (server default %d)."
              % protocol.DEFAULT_MAX_ATTEMPTS)
@click.option("--priority", type=int, help="Higher runs first (server default 0).")
@click.option("--max-dead", type=click.IntRange(min=0),
              help="Failure budget: the job fails when more tasks than this are dead "
                   "(server default: no limit).")
@click.option("--retry-backoff", type=click.FloatRange(0, 3600), metavar="SECONDS",
              help="A failed task waits SECONDS * 2^(attempt-1) (at most an hour) before it "
                   "is handed out again (server default 0).")
@click.option("--task-timeout", type=click.FloatRange(min=0.001), metavar="SECONDS",
              help="Workers stop a task running longer and report it failed with error "
                   "\"timeout\".")
@click.option("--batching", type=click.Choice(protocol.BATCHINGS),
              help="fixed: the ask or the batch size; guided: leases shrink as the job nears "
                   "its end (server default fixed).")
@click.option("--speculate/--no-speculate", default=None,
              help="Hand workers that would wait backup copies of straggling tasks.")
@click.option("--webhook-url", metavar="URL",
              help="POST a signed job.finished event here when the job finishes.")
@click.option("--webhook-secret", envvar="JOBMASTER_WEBHOOK_SECRET", metavar="SECRET",
              help="HMAC-SHA256 key of the webhook's signature [env JOBMASTER_WEBHOOK_SECRET].")
@click.option("--command", "command", metavar="CMD",
              help="What launched workers run per task: a string for sh -c, or a JSON argv "
                   "list; {} is the payload.")
@pass_settings
def job_create(settings, name, range_, items, params, batch_size, lease_seconds,
               max_attempts, priority, max_dead, retry_backoff, task_timeout, batching,
               speculate, webhook_url, webhook_secret, command):
    """Create job NAME and print its id (alone, on stdout).

    \b
      ID=$(jobmaster job create sims --range 0 2000)
      jobmaster job create rooms --items rooms.ndjson --params build.json --batch-size 5
      seq 10 | jobmaster job create squares --items -
    """
    if (range_ is None) == (items is None):
        raise click.UsageError("give exactly one of --range START STOP or --items FILE")
    if range_ is not None and range_[1] < range_[0]:
        raise click.UsageError("--range: STOP must not be below START")
    params_value = None
    if params is not None:
        try:
            params_value = json.load(params)
        except ValueError as err:
            raise click.UsageError("--params: not JSON: %s" % err)
        if not isinstance(params_value, dict):
            raise click.UsageError("--params: must hold a JSON object")
    if command is not None and command.lstrip().startswith("["):
        try:
            command = json.loads(command)
        except ValueError as err:
            raise click.UsageError("--command: not a JSON list: %s" % err)
    status = settings.client.create_job(
        name, range=range_, items=_read_items(items) if items is not None else None,
        params=params_value, batch_size=batch_size, lease_seconds=lease_seconds,
        max_attempts=max_attempts, priority=priority, max_dead=max_dead,
        retry_backoff=retry_backoff, task_timeout=task_timeout, batching=batching,
        speculate=speculate, webhook=_webhook(webhook_url, webhook_secret), command=command)
    click.echo(status["id"])


def _webhook(url, secret):
    if url is None:
        if secret is not None and os.environ.get("JOBMASTER_WEBHOOK_SECRET") != secret:
            raise click.UsageError("--webhook-secret needs --webhook-url")
        return None
    return {"url": url, "secret": secret or ""}


def _when(epoch):
    if not epoch:
        return "-"
    return datetime.datetime.fromtimestamp(float(epoch)).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds):
    if seconds is None:
        return "-"
    seconds = int(round(float(seconds)))
    return str(datetime.timedelta(seconds=max(0, seconds)))


@job.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the raw status documents (NDJSON).")
@pass_settings
def job_list(settings, as_json):
    """List jobs, newest first."""
    jobs = settings.client.jobs()
    if as_json:
        for doc in jobs:
            click.echo(json.dumps(doc, separators=(",", ":")))
        return
    rows = [("ID", "NAME", "STATE", "DONE", "DEAD", "LEASED", "TOTAL", "CREATED")]
    for doc in jobs:
        c = doc.get("counts", {})
        rows.append((str(doc.get("id")), str(doc.get("name")), str(doc.get("state")),
                     str(c.get("done", 0)), str(c.get("dead", 0)), str(c.get("leased", 0)),
                     str(c.get("total", 0)), _when(doc.get("created_at"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


def _progress_line(doc, width=30):
    c = doc.get("counts", {})
    total = int(c.get("total") or 0)
    finished = int(c.get("done") or 0) + int(c.get("dead") or 0)
    fraction = finished / total if total else 1.0
    filled = int(round(width * fraction))
    rate = doc.get("rate")
    return ("[%s%s] %5.1f%%  %d/%d done  %d dead  %d leased  %d pending  %s/s  ETA %s  %s" % (
        "#" * filled, "." * (width - filled), 100 * fraction, int(c.get("done") or 0), total,
        int(c.get("dead") or 0), int(c.get("leased") or 0), int(c.get("pending") or 0),
        "%.1f" % float(rate) if rate is not None else "-",
        _duration(doc.get("eta_seconds")), doc.get("state")))


@job.command("status", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID")
@click.option("--watch", is_flag=True,
              help="Show a live progress bar until the job is completed or cancelled.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status document.")
@pass_settings
def job_status(settings, job_id, watch, interval, as_json):
    """Show job ID's state and progress (done/dead/leased, rate, ETA)."""
    client = settings.client
    if not watch:
        doc = client.job(job_id)
        if as_json:
            click.echo(json.dumps(doc, indent=2))
            return
        s = doc.get("settings", {})
        outcome = " (%s)" % doc["outcome"] if doc.get("outcome") else ""
        click.echo("%s  %s  %s%s" % (doc.get("id"), doc.get("name"), doc.get("state"), outcome))
        click.echo(_progress_line(doc))
        click.echo("created %s  finished %s  batch_size %s  lease_seconds %s  "
                   "max_attempts %s  priority %s  sealed %s" % (
                       _when(doc.get("created_at")), _when(doc.get("finished_at")),
                       s.get("batch_size"), s.get("lease_seconds"), s.get("max_attempts"),
                       s.get("priority"), doc.get("sealed")))
        extra = ["%s %s" % (k, s[k]) for k in ("max_dead", "retry_backoff", "task_timeout",
                                               "batching", "speculate") if s.get(k)]
        if doc.get("webhook"):
            hook = doc["webhook"]
            extra.append("webhook %s (%d attempts%s)" % (
                hook["state"], hook["attempts"],
                ", last error: %s" % hook["last_error"] if hook.get("last_error") else ""))
        if doc.get("schedule"):
            extra.append("schedule %s" % doc["schedule"])
        if extra:
            click.echo("  ".join(extra))
        return
    tty = sys.stdout.isatty()
    last = None
    while True:
        doc = client.job(job_id)
        line = json.dumps(doc, separators=(",", ":")) if as_json else _progress_line(doc)
        if tty and not as_json:
            click.echo("\r\x1b[2K" + line, nl=False)
        elif line != last:
            click.echo(line)
        last = line
        if doc.get("state") in protocol.JOB_FINAL_STATES:
            if tty and not as_json:
                click.echo()
            return
        time.sleep(interval)


def _simple_action(name, method, doc):
    @job.command(name, context_settings=CONTEXT, help=doc)
    @click.argument("job_id", metavar="ID")
    @pass_settings
    def action(settings, job_id):
        getattr(settings.client, method)(job_id)
        click.echo("%s %s" % (job_id, {"delete": "deleted", "pause": "paused",
                                       "resume": "resumed", "cancel": "cancelled"}[name]))
    return action


_simple_action("pause", "pause", "Stop handing out job ID's tasks (leases already out go on).")
_simple_action("resume", "resume", "Hand out paused job ID's tasks again.")
_simple_action("cancel", "cancel", "Cancel job ID for good: nothing more is handed out.")
_simple_action("delete", "delete", "Delete job ID and everything stored about it.")


@job.command("results", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write to FILE instead of stdout.")
@click.option("--after", type=click.IntRange(min=-1), metavar="TASK",
              help="Only tasks with a higher id (pages through a large job).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many lines.")
@click.option("--failed", is_flag=True,
              help="The tasks that failed for good (dead) instead, with their last error.")
@pass_settings
def job_results(settings, job_id, output, after, limit, failed):
    """Stream job ID's results as NDJSON in task-id order, one line per done
    task (each once, archived or not, also while the job runs):
    {"id", "attempt", "worker", "ok", "result" or "error", "finished_at"}."""
    if after is None and limit is None and not failed:
        lines = settings.client.iter_results(job_id)
    else:
        lines = settings.client.iter_results_page(job_id, after, limit, False if failed else None)
    if output:
        tmp = output + ".part"
        count = 0
        with open(tmp, "wb") as fh:
            for line in lines:
                fh.write(line + b"\n")
                count += 1
        os.replace(tmp, output)
        log.info("%d results written to %s", count, output)
        return
    out = sys.stdout.buffer
    for line in lines:
        out.write(line + b"\n")
    out.flush()


@job.command("dead", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID")
@click.option("--retry", is_flag=True, help="Put every dead task back to pending.")
@pass_settings
def job_dead(settings, job_id, retry):
    """List job ID's dead tasks (NDJSON), or with --retry give them another chance."""
    if retry:
        answer = settings.client.retry_dead(job_id)
        click.echo(json.dumps(answer, separators=(",", ":")))
        return
    answer = settings.client.dead(job_id)
    entries = answer.get("dead", []) if isinstance(answer, dict) else answer
    for entry in entries or []:
        click.echo(json.dumps(entry, separators=(",", ":")))


@job.command("attempts", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID")
@click.option("--task", type=click.IntRange(min=0), help="Only this task's attempts.")
@pass_settings
def job_attempts(settings, job_id, task):
    """Every failed or expired attempt of job ID (NDJSON; needs the archive)."""
    for entry in settings.client.attempts(job_id, task):
        click.echo(json.dumps(entry, separators=(",", ":")))


@job.command("files", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID")
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Where to write file NAME [default: NAME in this directory; - for stdout].")
@pass_settings
def job_files(settings, job_id, name, output):
    """List job ID's files (NDJSON: name, size, sha256, uploaded_by, at), or
    download file NAME, checking its sha256."""
    client = settings.client
    if name is None:
        for entry in client.files(job_id):
            click.echo(json.dumps(entry, separators=(",", ":")))
        return
    if output == "-":
        client.download_file(job_id, name, sys.stdout.buffer)
        return
    output = output or name
    tmp = output + ".part"
    digest = hashlib.sha256()

    class _Hashing:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            digest.update(data)
            self.fh.write(data)

    with open(tmp, "wb") as fh:
        want = client.download_file(job_id, name, _Hashing(fh))
    if want and digest.hexdigest() != want:
        os.unlink(tmp)
        raise click.ClickException("%s: sha256 %s, the server holds %s" % (
            name, digest.hexdigest(), want))
    os.replace(tmp, output)
    log.info("%s written to %s (sha256 %s)", name, output, digest.hexdigest())


@job.command("workers", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID")
@pass_settings
def job_workers(settings, job_id):
    """Per-worker statistics of job ID (JSON)."""
    click.echo(json.dumps(settings.client.workers(job_id), indent=2))


@job.command("token", context_settings=CONTEXT)
@click.argument("job_id", metavar="ID")
@click.option("--ttl", "ttl_seconds", type=click.FloatRange(min=1,
              max=protocol.MAX_TOKEN_TTL_SECONDS), metavar="SECONDS",
              help="Lifetime [default: %d s, a week]." % protocol.DEFAULT_TOKEN_TTL_SECONDS)
@click.option("--revoke", is_flag=True, help="Revoke every token of job ID instead.")
@click.option("--json", "as_json", is_flag=True, help="Print {token, job, expires_at}.")
@pass_settings
def job_token(settings, job_id, ttl_seconds, revoke, as_json):
    """Print a worker token valid for job ID only (alone, on stdout).

    \b
    It may lease, heartbeat, complete, release and upload files for this job
    and nothing else; the master keeps only its SHA-256. For a pod:
      kubectl create secret generic jobmaster-job --from-literal=token="$(jobmaster job token $ID)"
    """
    if revoke:
        click.echo(json.dumps(settings.client.revoke_tokens(job_id), separators=(",", ":")))
        return
    answer = settings.client.job_token(job_id, ttl_seconds)
    click.echo(json.dumps(answer, separators=(",", ":")) if as_json else answer["token"])


# ---------------------------------------------------------------- worker ...
