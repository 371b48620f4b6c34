"""Shared harness of the HTTP test doubles (Python standard library only).

A double is a real HTTP server on a free loopback port that follows one
vendor's documented REST API (paths, JSON shapes, paging, errors). It reads a
JSON fixture (the data, the API key, injected faults), prints `PORT <n>` on
stdout once listening, and serves until killed.

Faults, in the fixture's "faults" list, each applying to requests whose path
starts with "path":
  {"path": "/x", "status": 429, "every": 3, "retry_after": "1"}  every 3rd such request
  {"path": "/x", "status": 503, "first": 2}                       the first 2 such requests
GET /__double__/stats returns {"requests": {path: n}, "faults": n};
POST /__double__/fixture replaces the fixture (e.g. to repair a bad record).
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Double:
    """Vendor logic: subclasses implement `route(method, path, query, body, headers)`
    returning (status, json_value_or_text, extra_headers)."""

    def __init__(self, fixture):
        self.fixture = fixture
        self.lock = threading.Lock()
        self.counts = {}
        self.fault_hits = {}
        self.faults_sent = 0

    def authorized(self, headers):
        return True

    def unauthorized(self):
        return 401, {"error": "unauthorized"}, {}

    def fault(self, path):
        with self.lock:
            for i, f in enumerate(self.fixture.get("faults", [])):
                if not path.startswith(f["path"]):
                    continue
                n = self.fault_hits.get(i, 0) + 1
                self.fault_hits[i] = n
                hit = ("every" in f and n % f["every"] == 0) or ("first" in f and n <= f["first"])
                if hit:
                    self.faults_sent += 1
                    headers = {}
                    if "retry_after" in f:
                        headers["Retry-After"] = f["retry_after"]
                    return f["status"], f.get("body", {"error": "injected fault"}), headers
        return None

    def route(self, method, path, query, body, headers):
        raise NotImplementedError


def serve(double_class):
    fixture_path = sys.argv[1]
    with open(fixture_path) as f:
        fixture = json.load(f)
    double = double_class(fixture)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def handle_any(self, method):
            url = urlparse(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if url.path == "/__double__/fixture" and method == "POST":
                with double.lock:
                    double.fixture = json.loads(raw)
                return self.reply(200, {"ok": True}, {})
            if url.path == "/__double__/stats":
                with double.lock:
                    return self.reply(200, {"requests": dict(double.counts), "faults": double.faults_sent}, {})
            with double.lock:
                double.counts[url.path] = double.counts.get(url.path, 0) + 1
            if not double.authorized(self.headers):
                return self.reply(*double.unauthorized())
            fault = double.fault(url.path)
            if fault:
                return self.reply(*fault)
            body = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.reply(400, {"error": "body is not JSON"}, {})
            try:
                status, payload, headers = double.route(method, url.path, query, body, self.headers)
            except Exception as e:  # a bug in the double: say so loudly
                return self.reply(500, {"error": "double failed: %r" % (e,)}, {})
            self.reply(status, payload, headers)

        def reply(self, status, payload, headers):
            headers = dict(headers)
            if headers.pop("X-Raw-Text", None):  # a plain-text body
                data = payload.encode()
                ctype = "text/plain"
            else:
                data = json.dumps(payload).encode()
                ctype = "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()
