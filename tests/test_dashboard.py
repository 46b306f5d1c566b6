"""The dashboard page at ``/`` and its static files."""
import os
import re

import pytest

STATIC = os.path.join(os.path.dirname(__file__), os.pardir, "app", "web", "dashboard", "static")


@pytest.fixture
def dash_app(app):
    # The lead registers the blueprint in the factory; register it here only
    # if that has not happened yet, so the test runs either way.
    if "dashboard" not in app.blueprints:
        from app.web.api import dashboard

        app.register_blueprint(dashboard.bp)
    return app


@pytest.fixture
def dash(dash_app):
    return dash_app.test_client()


def test_index_is_html_referencing_static_assets(dash):
    resp = dash.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "/static/dashboard.js" in html
    assert "/static/dashboard.css" in html
    # Offline-safe: nothing is loaded from another origin.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp


def test_index_needs_no_token(dash_app):
    from app.web.auth import TokenSet

    # Run with tokens configured: the page itself still loads without one.
    dash_app.extensions["jobmaster.tokens"] = TokenSet(["secret-admin"], ["secret-worker"])
    resp = dash_app.test_client().get("/")
    assert resp.status_code == 200
    assert "/static/dashboard.js" in resp.get_data(as_text=True)


@pytest.mark.parametrize("name,mimetype", [
    ("dashboard.js", ("application/javascript", "text/javascript")),
    ("dashboard.css", ("text/css",)),
])
def test_static_files_are_served(dash, name, mimetype):
    resp = dash.get("/static/" + name)
    assert resp.status_code == 200
    assert resp.mimetype in mimetype
    assert len(resp.get_data()) > 1000
    resp.close()


def _js():
    """Every script the page loads (dashboard.js, chart.js, console.js)."""
    out = []
    for name in sorted(os.listdir(STATIC)):
        if name.endswith(".js"):
            with open(os.path.join(STATIC, name), encoding="utf-8") as f:
                out.append(f.read())
    assert len(out) >= 3
    return "\n".join(out)


def test_js_never_parses_data_as_html():
    js = _js()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function"):
        assert sink not in js, "a dashboard script uses %s" % sink


def test_js_loads_nothing_from_outside():
    js = _js()
    assert not re.search(r"https?://", js)
    assert "sessionStorage" in js and "localStorage" not in js
    assert "Bearer " in js
