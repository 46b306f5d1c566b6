"""Helpers that start real servers (Redis, uWSGI, nginx) for the tests."""
