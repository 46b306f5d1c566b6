"""HTTP blueprints: ``jobs`` (admin), ``workers`` (lease protocol), ``ops``."""
