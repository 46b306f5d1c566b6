"""gunicorn settings for one jobmaster instance (the alternative to uWSGI).

Read by ``gunicorn -c conf/gunicorn/gunicorn.conf.py wsgi:application``.
Per-instance values come from the environment, which stack/render.py (or
the systemd unit jobmaster-gunicorn@.service) sets:
JOBMASTER_BIND (e.g. unix:/run/jobmaster/web-1.sock), JOBMASTER_INSTANCE,
JOBMASTER_PIDFILE, JOBMASTER_WORKERS, JOBMASTER_BACKLOG, JOBMASTER_GEVENT_CORES.
"""
import os

instance = os.environ.get("JOBMASTER_INSTANCE", "web-1")
bind = [os.environ.get("JOBMASTER_BIND", "unix:/run/jobmaster/%s.sock" % instance)]
proc_name = "jobmaster-" + instance
pidfile = os.environ.get("JOBMASTER_PIDFILE") or None
# gunicorn >= 25.1 opens a control socket (for gunicornc) at one fixed path
# per user; several instances would fight over it, so each gets its own.
control_socket = os.environ.get("JOBMASTER_CONTROL_SOCKET") or (
    bind[0][5:].rsplit(".", 1)[0] + ".ctl" if bind[0].startswith("unix:") else
    "/run/jobmaster/%s.ctl" % instance)
umask = 0o007  # the socket is for nginx (same user or group) only

# The gevent worker patches the standard library right after fork (and
# wsgi.py patches on its first lines too); the app loads in each worker,
# after fork, so Redis/MongoDB clients are never shared across processes.
worker_class = "gevent"
workers = int(os.environ.get("JOBMASTER_WORKERS", "1"))
worker_connections = int(os.environ.get("JOBMASTER_GEVENT_CORES", "2000"))
preload_app = False

# Kept within net.core.somaxconn by render.py (the default is 2048).
backlog = int(os.environ.get("JOBMASTER_BACKLOG", "2048"))
# nginx keeps idle upstream connections for 60 s (keepalive_timeout in the
# upstream block); gunicorn must keep them longer, or it closes one just as
# nginx reuses it and the request fails with a 502.
keepalive = 75
# A worker whose event loop is stuck this long is replaced (the stall
# watchdog, like uWSGI's harakiri).
timeout = 120
# SIGTERM is a graceful stop: running requests get this long to finish.
graceful_timeout = 30
# Recycle workers now and then, staggered.
max_requests = 100000
max_requests_jitter = 10000

# nginx logs every request as JSON; gunicorn logs only its own events.
accesslog = None
errorlog = "-"
loglevel = "info"
