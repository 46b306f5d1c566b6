"""The web layer: HTTP in, JSON out.

Blueprints (``api/``), bearer tokens (``auth``), request ids, request
schemas and their validator, the OpenAPI document built from both, the one
JSON error handler, and the early lease (a WSGI middleware on the hottest
route). It calls the domain (:mod:`app.domain`) and never builds a Redis key.
"""
