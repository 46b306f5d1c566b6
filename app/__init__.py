"""jobmaster's server: hands out the tasks of huge batch jobs over HTTP.

Three layers, one package each, each importing only the ones below it:

- :mod:`app.web` — Flask blueprints, auth, validation, OpenAPI, errors as JSON;
- :mod:`app.domain` — jobs, leases and results over the scripts;
- :mod:`app.store` — Redis: keys, Lua scripts and their wrappers, the pool.

Beside them: ``factory`` (the application factory), ``config`` (every
setting), ``errors`` (the exception tree), ``metrics`` (Prometheus). The
worker side is a separate distribution, ``jobmaster-client`` (``client/``,
import name ``jobmaster``); its wire constants (``jobmaster.protocol``) are
the server's too.
"""


def create_app(test_config=None):
    """Build the Flask application (see :mod:`app.factory`)."""
    from .factory import create_app as _create_app

    return _create_app(test_config)
