"""Combining concurrent calls into one: the lease path's group commit.

A gevent worker holds hundreds of requests at once. When many of them lease
from the same job, each paying its own Redis round trip and script start is
most of what a lease costs (a PING costs Redis as much CPU as leasing a
task). So the first caller for a key runs alone, at once; callers that
arrive while its call is in flight queue up, and when it returns the first
of them runs the whole queue as ONE call on everybody's behalf. Under light
load nothing waits; under heavy load the cost of a call is shared by the
group that built up during the previous one. With a ``gather`` function
(the app passes a bounded wait until the process is idle), a leader first
lets the requests already on their way join, then takes them in.

Works with real threads too, and with no concurrency at all (each call
then runs alone).
"""
from .concurrency import plain_lock, semaphore
from ..errors import Unavailable


class _Call:
    __slots__ = ("args", "done", "result", "error", "group")

    def __init__(self, args):
        self.args = args
        self.result = self.error = self.group = self.done = None

    def queue_behind(self, queue):
        """Join ``queue``; ``done`` is released when answered, or when told to lead."""
        self.done = semaphore(0)
        queue.append(self)


class Combiner:
    """``combiner(key, args)`` → ``run(key, [args, ...])[i]`` for this caller.

    ``run`` must answer one result per args, in order, and must be safe to
    run for any mix of callers (each lease request has its own lease id, so
    it is). At most ``limit`` callers share one call; ``limit`` 1 turns
    combining off.
    """

    def __init__(self, run, limit, gather=None):
        self._run = run
        self._gather = gather
        self._limit = max(1, int(limit))
        self._lock = plain_lock()  # never held across a switch
        self._queues = {}  # key -> callers waiting while a call for key is in flight
        self.calls = 0  # calls made, for tests and metrics

    def __call__(self, key, args):
        call = _Call(args)
        if self._limit == 1:
            return self._single(key, call)
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                self._queues[key] = []
                group = [call]
            else:
                call.queue_behind(queue)
                group = None
        if group is None:
            try:
                call.done.acquire()
            except BaseException:  # killed while waiting (worker shutdown)
                self._abandon(key, call)
                raise
            group = call.group
        if group is not None:  # ours to run (first caller, or handed the queue)
            if self._gather is not None and len(group) < self._limit:
                group = self._top_up(key, group)
            self._lead(key, group)
        if call.error is not None:
            raise call.error
        return call.result

    def _top_up(self, key, group):
        """Let the callers that are about to arrive arrive, then take them in."""
        try:
            self._gather()
        except BaseException:
            self._fail(group[1:])
            self._hand_over(key, group)
            raise
        with self._lock:
            queue = self._queues[key]
            n = self._limit - len(group)
            extra = queue[:n]
            del queue[:n]
        return group + extra

    def _single(self, key, call):
        self.calls += 1
        return self._run(key, [call.args])[0]

    def _lead(self, key, group):
        self.calls += 1
        try:
            results = self._run(key, [c.args for c in group])
            for c, result in zip(group, results):
                c.result = result
        except Exception as err:
            for c in group:
                c.error = err
        except BaseException:
            # This greenlet is being killed (timeout, shutdown): the others
            # must not wait for it, nor inherit its exit.
            self._fail(group[1:])
            raise
        finally:
            self._hand_over(key, group)

    def _abandon(self, key, call):
        """A waiting caller is gone: leave the queue, or pass on the group it
        was just handed, so nobody behind it waits for ever."""
        with self._lock:
            if call.group is None:
                queue = self._queues.get(key)
                if queue is not None and call in queue:
                    queue.remove(call)
                return
        self._fail(call.group[1:])
        self._hand_over(key, call.group)

    @staticmethod
    def _fail(calls):
        for c in calls:
            c.error = Unavailable("the combined Redis call was interrupted; retry")

    def _hand_over(self, key, group):
        """Answer ``group``'s waiting callers; the next queued group gets a leader."""
        with self._lock:
            queue = self._queues[key]
            if queue:
                nxt = queue[:self._limit]
                del queue[:self._limit]
                nxt[0].group = nxt
            else:
                del self._queues[key]
                nxt = None
        for c in group[1:]:
            c.done.release()
        if nxt is not None:
            nxt[0].done.release()
