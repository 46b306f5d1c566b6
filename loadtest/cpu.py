"""CPU accounting for the bench: per process tree, and the machine's busy
and stolen time (/proc)."""
import os

# ---------------------------------------------------------------- CPU accounting

def _descendants(root):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def steal_seconds():
    """CPU time the hypervisor has given this machine's cores to other guests."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (v[7] if len(v) > 7 else 0) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(root_pid):
    """CPU seconds used so far by the stack's processes, by kind, and by the
    whole machine (busy time over all cores)."""
    tick = os.sysconf("SC_CLK_TCK")
    kinds = {}
    for pid in _descendants(root_pid) if root_pid else []:
        try:
            with open("/proc/%d/stat" % pid) as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        # utime + stime, and cutime + cstime: a uWSGI worker recycled
        # (max-requests) during a run would otherwise take its CPU time with
        # it; its master, reaping it, inherits that time instead.
        secs = sum(int(x) for x in f[11:15]) / tick
        kind = ("uwsgi" if "uwsgi" in cmd or "jobmaster-web" in cmd else "gunicorn" if "gunicorn" in cmd
                else "nginx" if "nginx" in cmd else "redis" if "redis-server" in cmd else "other")
        kinds[kind] = kinds.get(kind, 0.0) + secs
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    kinds["machine_busy"] = (sum(v) - v[3] - v[4]) / tick
    kinds["machine_total"] = sum(v) / tick
    # Time the hypervisor gave our cores to someone else: the machine is
    # shared, and this is how much slower it was during a figure.
    kinds["machine_steal"] = steal_seconds()
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    kinds["load_generator"] = ru.ru_utime + ru.ru_stime
    return kinds


def cpu_delta(before, after):
    return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 2) for k in after}
