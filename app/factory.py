"""The application factory: config, resources, blueprints, error handler."""
import logging

from flask import Flask

from . import config, metrics
from .domain import archive
from .store import backend as store
from .web import auth, early_lease, errors, requestid, schemas


def create_app(test_config=None):
    app = Flask(__name__, static_folder="web/dashboard/static", template_folder="web/dashboard")
    app.config.update(config.load(test_config))
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    # Compact, unsorted JSON: responses are read by programs, and sorting
    # costs time on every lease.
    app.json.compact = True
    app.json.sort_keys = False
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    errors.register(app)
    requestid.init_app(app)
    auth.init_app(app)
    store.init_app(app)
    archive.init_app(app, app.extensions["jobmaster.backend"])
    metrics.init_app(app)
    schemas.init_app(app)
    early_lease.init_app(app)

    from .web.api import (console, dashboard, files, fleet, jobs, ops, schedules, tokens,
                          workers)
    app.register_blueprint(ops.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(schedules.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(fleet.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(workers.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(dashboard.bp)

    from .sweep import sweep_command
    app.cli.add_command(sweep_command)
    return app
