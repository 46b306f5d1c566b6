"""A loopback HTTP proxy that loses answers on purpose.

    proxy = LossyProxy("127.0.0.1", stack.port, drop=lambda req: req.path.endswith("/lease"))
    ... Client(proxy.url) ...
    proxy.stop()

Every request is forwarded to the upstream and its answer read in full, so
the server has acted on it; when ``drop(request)`` is true the proxy then
closes the client's connection without a byte, as a cut network does after
the work was done; when it is a status (502, 504) the proxy answers that
instead, as nginx does when the instance died after running the script. ``requests`` is a list of every
:class:`Seen` request (method, path, headers, body, dropped) in order.
"""
import http.client
import http.server
import json
import threading

from tests.support.procs import free_port


class Seen:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.dropped = False

    def json(self):
        return json.loads(self.body) if self.body else None


class _Gateway:
    """The answer a gateway makes up for an upstream that died."""

    def __init__(self, status):
        self.status, self.reason = status, "Bad Gateway" if status == 502 else "Gateway Timeout"


class LossyProxy:
    def __init__(self, host, port, drop, timeout=30.0):
        self.upstream = (host, port)
        self.drop = drop
        self.timeout = timeout
        self.requests = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = Seen(self.command, self.path, dict(self.headers), body)
                with proxy._lock:
                    proxy.requests.append(seen)
                    verdict = proxy.drop(seen)
                    seen.dropped = bool(verdict)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=proxy.timeout)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "keep-alive")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                finally:
                    conn.close()
                if seen.dropped and verdict is True:
                    self.close_connection = True
                    return
                if seen.dropped:
                    resp, payload = _Gateway(verdict), b'{"error":"bad_gateway","message":"lost"}'
                    resp.headers = [("Content-Type", "application/json"), ("Retry-After", "1")]
                self.send_response_only(resp.status, resp.reason)
                for k, v in (resp.headers if seen.dropped else resp.getheaders()):
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                         "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def every_nth(n, where, verdict=True):
    """A ``drop`` rule: lose the answer of every n-th request that ``where(seen)``
    accepts (the first of them too), and never two in a row of one call,
    so a retry with the same Idempotency-Key goes through. ``verdict``:
    True drops the connection, a status answers it instead."""
    state = {"count": 0, "last_key": None}

    def drop(seen):
        if not where(seen):
            return False
        key = seen.headers.get("Idempotency-Key")
        if key is not None and key == state["last_key"]:
            return False
        state["count"] += 1
        if (state["count"] - 1) % n == 0:
            state["last_key"] = key
            return verdict
        return False
    return drop
