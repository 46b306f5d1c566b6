"""The worker side installs on its own: `pip install ./client` into a fresh
venv gives `import jobmaster` and the `jobmaster` command, with neither Flask,
gevent nor redis, and without a top-level `app` package."""
import os
import subprocess
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_client_distribution_installs_alone(tmp_path):
    env_dir = tmp_path / "pod"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", os.path.join(ROOT, "client")],
                   check=True, capture_output=True, timeout=300, cwd=str(tmp_path))
    probe = ("import importlib.util as u, jobmaster, jobmaster.cli\n"
             "print(sorted(m for m in ('flask', 'gevent', 'redis', 'app') if u.find_spec(m)))\n"
             "print(jobmaster.__file__)\n")
    out = subprocess.run([py, "-c", probe], check=True, capture_output=True, text=True,
                         cwd=str(tmp_path)).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1].startswith(str(env_dir))  # installed, not read from the clone
    helped = subprocess.run([str(env_dir / "bin" / "jobmaster"), "--help"], check=True,
                            capture_output=True, text=True)
    assert "job" in helped.stdout and "worker" in helped.stdout
