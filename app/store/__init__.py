"""The Redis layer: every key (``keys``), every atomic operation (``lua/``
and its typed wrapper in ``scripts``), the client and pool (``backend``),
and the per-process combining of lease calls (``combine``).

Nothing above this package builds a key name or reads a script's reply
format.
"""
