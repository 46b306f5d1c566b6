"""HTTP blueprints: ``jobs`` (admin), ``workers`` (lease protocol), ``schedules`` (admin), ``ops``."""
