"""Background work of each server process: finish webhooks and schedules.

Nothing here is needed by any one process: every process of every instance
runs the same loop, the work is claimed in Redis (a lock per webhook
delivery, a guard per schedule slot), so any of them may do it and a crash
only delays it. The loop is a greenlet started by ``wsgi.py`` after the
app is loaded, which with uWSGI's ``lazy-apps`` and gunicorn's default (no
preload) is in each worker after fork: no socket or pool is shared with a
parent. Without gevent (a debugger, tests) nothing starts; tests call the
one-round functions directly.
"""
import logging
import random

log = logging.getLogger(__name__)


def one_round(app, session):
    """Deliver due webhooks and run due schedules once; errors are logged."""
    from .domain import schedules, webhooks

    backend = app.extensions["jobmaster.backend"]
    for name, step in (("webhooks", lambda: webhooks.deliver_due(backend, session)),
                       ("schedules", lambda: schedules.run_due(backend))):
        try:
            with app.app_context():
                step()
        except Exception:  # Redis down, a receiver misbehaving: try again next round
            log.exception("background %s round failed", name)


def _loop(app):
    import gevent
    import requests

    session = requests.Session()
    every = app.config["BACKGROUND_SECONDS"]
    while True:
        one_round(app, session)
        gevent.sleep(every * random.uniform(0.5, 1.5))


def start(app):
    """Start this process's background greenlet (under gevent only)."""
    try:
        from gevent import monkey
    except ImportError:
        return None
    if not monkey.is_module_patched("socket"):
        return None
    import gevent

    return gevent.spawn(_loop, app)
