"""A webhook receiver on loopback: records every POST, answers each with the
next status from ``statuses`` (then 200). Started and stopped by tests."""
import http.server
import threading


class Receiver:
    def __init__(self, statuses=(), delay=0.0):
        self.statuses = list(statuses)
        self.delay = delay  # seconds before each answer (a slow receiver)
        self.release = threading.Event()
        self.calls = []  # (path, headers dict, body bytes)
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    owner.calls.append((self.path, dict(self.headers), body))
                    status = owner.statuses.pop(0) if owner.statuses else 200
                if owner.delay:
                    owner.release.wait(owner.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        return False
