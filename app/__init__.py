"""jobmaster: hands out the tasks of huge batch jobs to many workers over HTTP.

The package splits into the server (everything but ``app.client``) and the
worker-side client (``app.client``), which must stay importable without
Flask, gevent or redis. That is why the application factory is imported
lazily here rather than at module level.
"""


def create_app(test_config=None):
    """Build the Flask application (see :mod:`app.factory`)."""
    from .factory import create_app as _create_app

    return _create_app(test_config)
