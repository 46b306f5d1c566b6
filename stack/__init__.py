"""Render the production stack's configs and run it (``python -m stack``).

``render.py`` turns settings (from ``JOBMASTER_*`` environment variables)
into nginx, uWSGI/gunicorn and Redis configs plus a list of processes;
``__main__.py`` writes a Procfile from that list and hands it to honcho.
The integration tests (``tests/support/stack.py``) use the same code.
"""
