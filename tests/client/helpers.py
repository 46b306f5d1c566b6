"""Helpers for the client tests: run the CLI like a user, a dropping proxy,
a stub HTTP server."""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

from tests.support.procs import wait_until

BIN = os.path.dirname(sys.executable)
JOBMASTER = os.path.join(BIN, "jobmaster")


def jm_argv(*args):
    """argv for the `jobmaster` console script (or `python -m` without it)."""
    if os.access(JOBMASTER, os.X_OK):
        return [JOBMASTER, *args]
    return [sys.executable, "-m", "jobmaster.cli", *args]


def jm(server, *args, token=None, input=None, timeout=60):
    """Run `jobmaster ARGS` to completion; return the CompletedProcess."""
    from tests.client.conftest import ADMIN_TOKEN

    return subprocess.run(jm_argv(*args), env=server.env(token or ADMIN_TOKEN), input=input,
                          capture_output=True, text=True, timeout=timeout)


def start_worker(server, *args, token=None, stderr_path=None, cwd=None):
    """Start `jobmaster worker run ARGS` in the background (a Popen)."""
    from tests.client.conftest import WORKER_TOKEN

    stderr = open(stderr_path, "w") if stderr_path else subprocess.PIPE
    try:
        return subprocess.Popen(jm_argv("worker", "run", *args),
                                env=server.env(token or WORKER_TOKEN),
                                stdout=subprocess.PIPE, stderr=stderr, cwd=cwd)
    finally:
        if stderr_path:
            stderr.close()


def stop_all(procs):
    """Kill any still-running process (test cleanup), by PID; close its pipes."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        for pipe in (p.stdout, p.stderr):
            if pipe is not None:
                pipe.close()


def job_doc(server, job_id):
    with server.client() as c:
        return c.job(job_id)


def wait_job_state(server, job_id, state, timeout=60):
    return wait_until(lambda: job_doc(server, job_id)["state"] == state, timeout=timeout,
                      interval=0.1, what="job %s %s" % (job_id, state))


class DropProxy:
    """A loopback TCP proxy that, once, forwards a ``complete`` request to
    the server and then closes the client's connection instead of passing
    the answer on: the worker sees a connection dropped *after* the server
    acted on its request."""

    def __init__(self, upstream_port, marker=b"/complete", drops=1):
        self.upstream_port = upstream_port
        self.marker = marker
        self.drops_left = drops
        self.dropped = 0
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self._closing = True
        self.sock.close()

    def _accept(self):
        while not self._closing:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"drop": False}
            threading.Thread(target=self._up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, state),
                             daemon=True).start()

    def _up(self, client, upstream, state):
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if self.marker in data:
                    # Only marked here: the drop is counted when an answer is
                    # really swallowed (a request sent on a connection the
                    # server already closed never gets one).
                    state["drop"] = True
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _shut(upstream)

    def _down(self, upstream, client, state):
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if state["drop"]:
                    with self._lock:
                        swallow = self.drops_left > 0
                        if swallow:
                            self.drops_left -= 1
                            self.dropped += 1
                    if swallow:
                        break  # the server answered; the client never hears it
                client.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client)
            _shut(upstream)


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class StubServer:
    """A tiny HTTP server answering from a script of (status, headers, body)."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.requests.append((self.command, self.path, dict(self.headers), body))
                status, headers, payload = stub.script.pop(0) if stub.script else (
                    500, {}, {"error": "internal", "message": "script exhausted"})
                raw = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
