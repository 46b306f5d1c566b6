"""The ``jobmaster`` command: drive jobs and run workers from a terminal.

Configured by ``--url``/``--token`` or ``$JOBMASTER_URL``/``$JOBMASTER_TOKEN``.
Errors are one line on stderr and a non-zero exit status (``-v`` shows
tracebacks of unexpected ones). See ``docs/client.md``.
"""
import datetime
import hashlib
import importlib
import inspect
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import click

from . import protocol
from . import errors
from .command import (DEFAULT_TAIL, CommandAbandoned, CommandFailed, CommandRunner,
                      CommandTimedOut, JobCommandRunner, NoCommand, process_alive)
from .session import DEFAULT_RETRY_SECONDS, Client
from .worker import TaskTimeout, Worker, WorkerStopped, default_worker_name, format_exception

log = logging.getLogger("jobmaster.cli")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _UsageLine(click.ClickException):
    """A usage error shown as one line (exit status 2), pointing at --help."""

    exit_code = 2

    def __init__(self, err):
        where = err.ctx.command_path if err.ctx is not None else "jobmaster"
        super().__init__("%s (see '%s --help')" % (err.format_message(), where))


#: How long an interactive `job` command retries an unreachable master
#: (unless --retry-seconds says otherwise): a person is waiting. Workers keep
#: the long default, to ride out a master's restart.
JOB_RETRY_SECONDS = 5.0
#: `worker run`'s exit status when tasks it ran died (used up their attempts).
EXIT_DEAD = 3


def api_message(err):
    """One line for an API error; a 401 says where the token goes."""
    message = "%s (HTTP %s %s)" % (err.message, err.status, err.code)
    if err.status == 401:
        message += "; give a token with --token or JOBMASTER_TOKEN"
    return message


class _Group(click.Group):
    """A group that turns client and usage errors into one line on stderr."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            raise _UsageLine(err) from None
        except errors.APIError as err:
            raise click.ClickException(api_message(err))
        except errors.ClientError as err:
            raise click.ClickException(str(err))
        except BrokenPipeError:
            # `jobmaster job results X | head`: the reader left; not an error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as err:  # a bug: say so in one line, traceback only with -v
            if ctx.find_root().params.get("verbose"):
                raise
            raise click.ClickException("unexpected %s: %s (run with -v for the traceback)"
                                       % (type(err).__name__, err))


class Settings:
    """What the top-level options configure; passed to every command."""

    def __init__(self, url, token, retry_seconds):
        self.url = url
        self.token = token
        self.retry_seconds = retry_seconds
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = Client(self.url, self.token, retry_seconds=self.retry_seconds)
        return self._client


pass_settings = click.make_pass_decorator(Settings)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.option("--url", envvar=protocol.ENV_URL, default=protocol.DEFAULT_URL,
              show_default=True, show_envvar=True, help="Base URL of the jobmaster master.")
@click.option("--token", envvar=protocol.ENV_TOKEN, show_envvar=True,
              help="Bearer token (admin for `job`, worker or admin for `worker`).")
@click.option("--retry-seconds", type=click.FloatRange(min=0), default=DEFAULT_RETRY_SECONDS,
              show_default=True,
              help="How long one request keeps retrying while the master is unreachable or busy.")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv: debug).")
@click.version_option(package_name="jobmaster", prog_name="jobmaster")
@click.pass_context
def cli(ctx, url, token, retry_seconds, verbose):
    """Drive jobmaster jobs and run workers.

    \b
      ID=$(jobmaster job create sims --range 0 1000000 --params build.json)
      jobmaster worker run --job "$ID" -- ./simulate --room {}
      jobmaster job status "$ID" --watch
      jobmaster job results "$ID" -o results.ndjson
    """
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="jobmaster: %(levelname)s: %(message)s",
                        stream=sys.stderr)
    ctx.obj = Settings(url, token, retry_seconds)
    ctx.obj.retry_given = (ctx.get_parameter_source("retry_seconds")
                           != click.core.ParameterSource.DEFAULT)


# ------------------------------------------------------------------- job ...

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

@cli.group(cls=_Group, context_settings=CONTEXT)
def worker():
    """Run tasks (worker token)."""


def _load_callable(spec):
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.UsageError("--call wants package.module:function, got %r" % spec)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise click.UsageError("--call: cannot import %s: %s: %s"
                               % (module_name, type(err).__name__, err))
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise click.UsageError("--call: %s has no attribute %r" % (module_name, attr))
    if not callable(fn):
        raise click.UsageError("--call: %s is not callable" % spec)
    return fn


def _call_handler(fn):
    """Adapt ``fn(payload[, params=...][, task=...])`` to a Worker handler."""
    try:
        sig = inspect.signature(fn)
        names = set(sig.parameters)
        var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    except (TypeError, ValueError):
        names, var_kw = set(), False

    def handler(task):
        kwargs = {}
        if var_kw or "params" in names:
            kwargs["params"] = task.params
        if var_kw or "task" in names:
            kwargs["task"] = task
        result = fn(task.payload, **kwargs)
        try:
            json.dumps(result)
        except (TypeError, ValueError) as err:
            raise TypeError("the result is not JSON-serialisable: %s" % err) from None
        return result

    return handler


class _Slot(threading.Thread):
    """One concurrent worker loop (its own leases) inside `worker run`."""

    def __init__(self, index, worker, handler, runner, wake):
        super().__init__(name="slot-%d" % index, daemon=True)
        self.worker = worker
        self.handler = handler
        self.runner = runner
        self.wake = wake
        self.error = None

    def run(self):
        try:
            self.worker.run(self._handle)
        except errors.ClientError as err:
            self.error = err
        except Exception as err:  # noqa: BLE001 - reported by the main thread
            self.error = err
        finally:
            self.wake.set()

    def _handle(self, task):
        try:
            return self.handler(task)
        except CommandAbandoned:
            raise WorkerStopped()
        except CommandTimedOut:
            raise TaskTimeout() from None  # reported as "error": "timeout"
        except NoCommand as err:  # the worker cannot run this job: stop, release
            self.error = err
            raise WorkerStopped()
        except CommandFailed as err:
            if self.worker.abandoned:
                raise WorkerStopped()
            raise RuntimeError(str(err)) from None


@worker.command("run", context_settings=dict(CONTEXT, ignore_unknown_options=True))
@click.option("--job", "job_id", metavar="ID", help="Only this job (default: any running job).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Tasks run at the same time (each slot holds its own lease).")
@click.option("--name", default=None, help="Worker name shown by the master [default: host:pid].")
@click.option("--max-tasks", type=click.IntRange(1),
              help="Tasks per lease [default: the job's batch size].")
@click.option("--call", "call_spec", metavar="MODULE:FUNCTION",
              help="Call a Python function per task instead of a command.")
@click.option("--timeout", type=click.FloatRange(min=0.001),
              help="Kill a command running longer than this many seconds (the task fails with "
                   "error \"timeout\"); the job's task_timeout applies too, the shorter wins.")
@click.option("--tail", type=click.IntRange(min=1), default=DEFAULT_TAIL, show_default=True,
              help="Bytes of stdout (result) and stderr (error) kept per task.")
@click.option("--on-term", type=click.Choice(["finish", "kill"]), default="finish",
              show_default=True,
              help="On SIGTERM/SIGINT: let running tasks finish and report them, or kill them. "
                   "A second signal always kills.")
@click.option("--pid-file", type=click.Path(dir_okay=False), help="Write our PID here.")
@click.option("--upload", "uploads", multiple=True, type=click.Path(dir_okay=False),
              metavar="PATH", help="When done, store this file with the job (--job, or each "
              "job it ran tasks of) under its base name; repeatable. Needs the archive.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_settings
def worker_run(settings, job_id, concurrency, name, max_tasks, call_spec, timeout, tail,
               on_term, pid_file, uploads, command):
    """Run tasks until the job (or, without --job, every job) is done.

    \b
    With a command, once per task:
      jobmaster worker run --job ID -- ./simulate --room {}
    `{}` in any argument becomes the payload (a string as is, anything else as
    JSON); with no `{}`, the payload's JSON goes to the command's stdin.
    Exit status 0: the task is ok, the tail of stdout (trailing newlines
    removed) is its result. Otherwise the task failed with the tail of stderr.
    The command gets JOBMASTER_JOB, JOBMASTER_TASK_ID, JOBMASTER_ATTEMPT,
    JOBMASTER_LEASE, JOBMASTER_PARAMS(_FILE) in its environment.

    \b
    With neither a command nor --call, the job's own `command` setting (sent
    with every lease: an argv list, or a string run by sh -c) runs per task,
    as a launched fleet does (POST /jobs/ID/fleet).

    \b
    With --call package.module:function, per task:
      function(payload)                      its return value is the result,
      function(payload, params=..., task=...) if it declares those names;
    an exception fails the task with its message.

    \b
    SIGTERM or SIGINT: take no new task; running tasks finish and are reported
    (--on-term finish) or are killed and released (--on-term kill, or a second
    signal); every unfinished task is released at once for other workers.
    On exit it says on stderr what it did (ok, failed, dead, released, leases).
    Exit status: 0 when the master said done, 3 when tasks it ran died (used
    up their attempts), 128+signal after a signal, 1 on an error.
    """
    # Signals first: a SIGTERM from now on is a request to drain, never a crash.
    signals = []
    wake = threading.Event()

    def on_signal(signum, frame):
        signals.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    command = list(command)
    if command and command[0] == "--":
        command = command[1:]
    if command and call_spec:
        raise click.UsageError("give a command after -- or --call MODULE:FUNCTION (not both)")
    if command and shutil.which(command[0]) is None:
        raise click.UsageError("command not found: %s" % command[0])
    fn = _load_callable(call_spec) if call_spec else None

    name = name or default_worker_name()
    workdir = tempfile.mkdtemp(prefix="jobmaster-worker-")
    if pid_file:
        with open(pid_file, "w") as fh:
            fh.write("%d\n" % os.getpid())
    slots = []
    try:
        for index in range(concurrency):
            if command:
                runner = CommandRunner(command, workdir, timeout=timeout, tail=tail, slot=index)
            elif fn is None:  # neither: the job's own command, from its leases
                runner = JobCommandRunner(workdir, timeout=timeout, tail=tail, slot=index)
            else:
                runner = None
            handler = runner if runner is not None else _call_handler(fn)
            # a command's runner enforces the job's task_timeout itself (it
            # kills the process group); a --call function is left to Worker
            w = Worker(settings.client, job=job_id, name=name, max_tasks=max_tasks,
                       heartbeat=True, handle_signals=False, task_timeouts=runner is None)
            slots.append(_Slot(index, w, handler, runner, wake))
        for slot in slots:
            slot.start()
        status = _supervise(slots, signals, wake, on_term, name)
        if uploads and status in (0, EXIT_DEAD):  # the work is over, dead tasks or not
            targets = {job_id} if job_id else set().union(*(s.worker.jobs_seen for s in slots))
            status = _upload(settings.client, sorted(targets), uploads) or status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(workdir, ignore_errors=True)
        if pid_file:
            try:
                os.unlink(pid_file)
            except OSError:
                pass
    sys.exit(status)


def _upload(client, job_ids, paths):
    """Store each file with each job (the seed's pods uploaded their stats
    files when they finished). Returns the exit status."""
    status = 0
    for job_id in job_ids:
        for path in paths:
            try:
                doc = client.upload_file(job_id, path)
            except (OSError, errors.ClientError) as err:
                click.echo("Error: uploading %s to job %s: %s" % (path, job_id, err), err=True)
                status = 1
                continue
            log.info("uploaded %s to job %s (%d bytes, sha256 %s)", doc["name"], job_id,
                     doc["size"], doc["sha256"])
    return status


def _supervise(slots, signals, wake, on_term, name):
    """Wait for the slots; act on signals; return the exit status.

    The signal handler only appends to ``signals`` (nothing that takes a lock
    is safe in a handler), so this loop polls it every 0.2 s.
    """
    acted = 0  # signals handled so far
    killing = False
    while any(slot.is_alive() for slot in slots):
        wake.wait(0.2)
        wake.clear()
        if len(signals) > acted:
            acted = len(signals)
            if acted == 1 and on_term == "finish":
                log.warning("signal %d: finishing running tasks, releasing the rest",
                            signals[-1])
                for slot in slots:
                    slot.worker.stop()
            elif not killing:
                killing = True
                log.warning("signal %d: killing running tasks and releasing them", signals[-1])
                for slot in slots:
                    slot.worker.stop(abandon=True)  # release first, then kill
                for slot in slots:
                    if slot.runner is not None:
                        slot.runner.kill()
                if any(slot.runner is None for slot in slots):
                    break  # Python calls cannot be killed; their leases are released
        if any(slot.error is not None for slot in slots):
            for slot in slots:
                slot.worker.stop()
    for slot in slots:
        if not (killing and slot.runner is None):
            slot.join(30.0)
    errors_seen = [slot.error for slot in slots if slot.error is not None]
    stats = {}
    for slot in slots:
        for key, value in slot.worker.stats.items():
            stats[key] = stats.get(key, 0) + value
    # Always said, on stderr: what this worker did, whatever ended it.
    click.echo("jobmaster: worker %s: %d ok, %d failed (%d dead), %d released, %d leases"
               % (name, stats.get("ok", 0), stats.get("failed", 0), stats.get("dead", 0),
                  stats.get("released", 0), stats.get("batches", 0)), err=True)
    if errors_seen:
        err = errors_seen[0]
        if isinstance(err, errors.APIError):
            message = api_message(err)
        elif isinstance(err, errors.ClientError):
            message = str(err)
        else:
            message = format_exception(err).splitlines()[0]
        click.echo("Error: %s" % message, err=True)
        return 1
    if signals:
        return 128 + signals[0]
    if stats.get("dead"):
        return EXIT_DEAD
    return 0 if all(slot.worker.finished for slot in slots) else 1


@worker.command("release", context_settings=CONTEXT)
@click.argument("lease_ids", nargs=-1, required=True, metavar="LEASE...")
@pass_settings
def worker_release(settings, lease_ids):
    """Give every unfinished task of each LEASE back to pending now."""
    for lease_id in lease_ids:
        answer = settings.client.release(lease_id)
        click.echo("%s released %s" % (lease_id, (answer or {}).get("released", 0)))


@worker.command("stop", context_settings=CONTEXT)
@click.option("--pid", type=int, help="PID of the `worker run` process (1 in a container).")
@click.option("--pid-file", type=click.Path(exists=True, dir_okay=False),
              help="Read the PID from the file `worker run --pid-file` wrote.")
@click.option("--timeout", type=click.FloatRange(min=0), default=25.0, show_default=True,
              help="Seconds to wait for it to report, release and exit.")
def worker_stop(pid, pid_file, timeout):
    """SIGTERM a running `worker run` and wait until it has released its leases and exited.

    Meant for a Kubernetes preStop hook: `jobmaster worker stop --pid 1`.
    """
    if (pid is None) == (pid_file is None):
        raise click.UsageError("give --pid or --pid-file")
    if pid_file:
        with open(pid_file) as fh:
            pid = int(fh.read().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.1)
    raise click.ClickException("process %d still running after %gs" % (pid, timeout))


def main():
    """Entry point of the ``jobmaster`` console script."""
    cli(prog_name="jobmaster")


if __name__ == "__main__":
    main()
