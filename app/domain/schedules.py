"""Recurring jobs (DESIGN.md §9): see run_due."""


def run_due(backend):
    """Create the jobs of the schedule slots that are due (none yet)."""
    return 0
