"""The ``jobmaster`` command: drive jobs and run workers from a terminal.

Configured by ``--url``/``--token`` or ``$JOBMASTER_URL``/``$JOBMASTER_TOKEN``.
Errors are one line on stderr and a non-zero exit status (``-v`` shows
tracebacks of unexpected ones). See ``docs/client.md``.
"""
import logging
import os
import sys

import click

from .. import protocol
from .. import errors
from ..session import DEFAULT_RETRY_SECONDS, Client


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


def main():
    """Entry point of the ``jobmaster`` console script."""
    cli(prog_name="jobmaster")


# The command groups register themselves on `cli` when imported.
from . import jobs, workers  # noqa: E402,F401
