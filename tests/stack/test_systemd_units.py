"""The systemd units pass ``systemd-analyze verify`` (syntax, known keys,
dependencies, executables), and the install prerequisites are detected.

No systemd runs as PID 1 where the tests run (a container), and a user
instance cannot start without cgroup v2, so the units are verified, not
run: each copied with /opt/jobmaster pointing at this checkout (whose
.venv/bin holds uwsgi and gunicorn), the templates instantiated as web-1.
"""
import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = os.path.join(ROOT, "conf", "systemd")


def _units(tmp_path):
    names = []
    for path in glob.glob(os.path.join(UNITS, "*.service")) + glob.glob(os.path.join(UNITS, "*.target")):
        name = os.path.basename(path).replace("@.", "@web-1.")
        with open(path) as fh:
            text = fh.read().replace("/opt/jobmaster", ROOT)
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    return sorted(names)


def _verify(paths):
    return subprocess.run(["systemd-analyze", "verify", "--man=no"] + paths, capture_output=True,
                          text=True, timeout=120, cwd=os.path.dirname(paths[0]))


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze missing (make deps installs systemd)")


@needs_systemd
def test_every_unit_verifies_cleanly(tmp_path):
    paths = _units(tmp_path)
    assert len(paths) >= 5
    p = _verify(paths)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


@needs_systemd
def test_verify_catches_a_broken_unit(tmp_path):
    """The check above could fail: an unknown key or a missing binary is reported."""
    paths = _units(tmp_path)
    redis = next(p for p in paths if p.endswith("jobmaster-redis.service"))
    with open(redis) as fh:
        text = fh.read()
    with open(redis, "w") as fh:
        fh.write(text.replace("Restart=", "Restrat=").replace("/usr/bin/redis-server",
                                                               "/usr/bin/no-such-redis"))
    p = _verify([redis])
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "Restrat" in out and "no-such-redis" in out


def test_every_service_restarts_on_failure():
    # what `make run` mirrors with stack/keep.py
    for path in glob.glob(os.path.join(UNITS, "*.service")):
        with open(path) as fh:
            assert "\nRestart=on-failure\n" in fh.read(), path


def test_sysdeps_lists_what_compiling_uwsgi_needs(tmp_path):
    """On a machine without gcc, Python.h or ensurepip and a venv without
    uwsgi (uWSGI has no wheel on PyPI), make's sysdeps asks for them."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sh").symlink_to("/bin/sh")
    env = {"PATH": str(fake), "VENV": str(tmp_path / "novenv"), "PYTHON": str(fake / "nopython")}
    p = subprocess.run(["/bin/sh", os.path.join(ROOT, "stack", "sysdeps.sh"), "--list"],
                       capture_output=True, text=True, env=env, timeout=30)
    listed = p.stdout.split()
    for pkg in ("gcc", "libc6-dev", "python3-dev", "python3-venv", "redis-server", "systemd"):
        assert pkg in listed, (pkg, p.stdout, p.stderr)
    # with uwsgi already in the venv, no compiler is asked for
    (tmp_path / "novenv" / "bin").mkdir(parents=True)
    uwsgi = tmp_path / "novenv" / "bin" / "uwsgi"
    uwsgi.write_text("#!/bin/sh\n")
    uwsgi.chmod(0o755)
    p = subprocess.run(["/bin/sh", os.path.join(ROOT, "stack", "sysdeps.sh"), "--list"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert "gcc" not in p.stdout.split() and "python3-dev" not in p.stdout.split()
