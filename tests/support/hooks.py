"""A result hook for the tests (JOBMASTER_RESULT_HOOK=tests.support.hooks:record)."""

#: Batches it was called with, and how many calls should still fail.
CALLS = []
FAILS = [0]


def record(docs):
    if FAILS[0] > 0:
        FAILS[0] -= 1
        raise RuntimeError("the hook's downstream is down")
    CALLS.append(docs)
