"""The operator dashboard: one static page at ``GET /``.

The page itself needs no token (it holds no data); every data call it makes
to ``/api/v1/...`` carries the admin token the operator typed in. The page
loads nothing from outside the server, so it works on an offline machine,
and a strict Content-Security-Policy keeps it that way.
"""
from flask import Blueprint, make_response, render_template

from ..openapi import describe

bp = Blueprint("dashboard", __name__)

#: Only this origin's scripts, styles and API; no inline script, no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@bp.get("/")
@describe("The dashboard (HTML)", ok={"type": "string"}, content="text/html", tag="operations",
          errors=())
def index():
    """The single-page dashboard (HTML shell; data comes from the API)."""
    response = make_response(render_template("index.html"))
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response
