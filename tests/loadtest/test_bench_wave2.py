"""The second wave's bench figures become the report's rows and sections:
each row holds exactly when its target is met."""
from loadtest import bench_wave2


def _res(swarm_rate=40000, limit_rate=100000, tail_batches=1.2, peak_mb=50.0, ok=True):
    return {
        "commands": {"limit": ["python", "-c", "..."], "tail": ["python", "-m", "loadtest.tail_bench"],
                     "archive": ["python", "-m", "loadtest.archive_bench"]},
        "swarm": {"summary": {"tasks_per_s": swarm_rate, "total": 1_000_000}},
        "swarm_cpu": {"uwsgi": 10.0, "redis": 3.0, "nginx": 2.0, "load_generator": 5.0},
        "limit": {"tasks": 1_000_000, "procs": 8, "batch": 100, "tasks_per_s": limit_rate,
                  "seconds": 10.0, "redis_cpu_share": 0.5, "redis_cpu_us_per_task": 3.1,
                  "redis_bound_tasks_per_s": 300000, "machine_cpu_us_per_task": 20.0},
        "tail": {"tasks": 100000, "pods": 200, "slow_pods": 4, "slow_factor": 10.0,
                 "batch_size": 10, "task_ms": 20.0,
                 "modes": [{"batching": "fixed", "speculate": False, "ideal_s": 10.0,
                            "median_batch_s": 0.2, "makespan_s": None, "unfinished_tasks": 10,
                            "note": "never completes"},
                           {"batching": "guided", "speculate": True, "ideal_s": 10.0,
                            "median_batch_s": 0.2, "makespan_s": 10.0 + 0.2 * tail_batches,
                            "tail_batches": tail_batches}]},
        "archive": {"runs": [{"archive": True, "tasks": 1_000_000, "pods": 200, "result_bytes": 100,
                              "makespan_s": 30.0, "tasks_per_s": 33333, "redis_peak_mb": peak_mb,
                              "redis_after_mb": 2.0, "completed_to_archived_s": 60.0, "ok": ok},
                             {"archive": False, "tasks": 1_000_000, "pods": 200,
                              "result_bytes": 100, "makespan_s": 20.0, "tasks_per_s": 50000,
                              "redis_peak_mb": 150.0, "redis_after_mb": 150.0, "ok": True}]},
    }


def _holds(res):
    return {name.split(" ")[0]: ok for name, _target, _measured, ok in bench_wave2.rows(res)}


def test_rows_hold_when_the_targets_are_met():
    assert _holds(_res()) == {"6.": True, "7.": True, "8.": True}


def test_rows_miss_when_a_target_is_missed():
    assert _holds(_res(swarm_rate=30000))["8."] is False  # 0.30 < 0.35
    assert _holds(_res(tail_batches=2.5))["7."] is False
    assert _holds(_res(peak_mb=80.0))["6."] is False
    assert _holds(_res(ok=False))["6."] is False  # a task missing in MongoDB


def test_details_name_the_figures_in_order():
    text = "\n".join(bench_wave2.details(_res(), " ".join))
    assert text.index("### 6.") < text.index("### 7.") < text.index("### 8.")
    assert "nx-27017" in text and "never completes" in text
    assert "uwsgi 10.0" in text  # the swarm's CPU per task, by process kind
