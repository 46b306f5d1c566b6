"""WSGI entry point for uWSGI and gunicorn.

gevent must patch the standard library before anything imports socket,
ssl, redis or pymongo, so this happens on the first lines. Set
JOBMASTER_NO_GEVENT=1 to skip it (e.g. for a debugger).
"""
import os

if not os.environ.get("JOBMASTER_NO_GEVENT"):
    from gevent import monkey

    monkey.patch_all()

from app import background, create_app  # noqa: E402

app = application = create_app()
# Webhook deliveries and schedule slots: a greenlet per worker process, here
# (after fork, as uWSGI's lazy-apps and gunicorn load the app per worker).
background.start(app)
