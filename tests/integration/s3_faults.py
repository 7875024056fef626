"""A fault-injecting HTTP proxy in front of the real local S3 server.

``S3FaultProxy`` forwards every request to the upstream S3 endpoint, except a seeded random share
of them: those are answered ``503 SlowDown`` (S3's throttling reply) or have their connection
dropped without an answer. Whether the n-th request for a method and path fails is drawn from
``random.Random(f"{seed}:{method}:{path}:{n}")``, so the same seed fails the same attempts however
the workers' requests interleave; every outcome is counted, so a test can say how hostile the
network really was.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>s3-fault-proxy</RequestId></Error>"
)
# Hop-by-hop headers are the proxy's own business, not the upstream's.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
_OWN = {"content-length", "date", "server"}  # written by the proxy itself


@dataclass
class S3FaultProxy:
    """A threaded proxy to upstream; a share fault_rate of requests fails; a context manager."""

    upstream: str
    fault_rate: float = 0.3
    seed: int = 6
    counts: Counter[str] = field(default_factory=Counter)
    _seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint to give clients instead of the upstream."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def decide(self, method: str, path: str) -> str:
        """What to do with this attempt at method + path: forward, slowdown or drop; counted."""
        with self._lock:
            attempt = self._seen[method, path]
            self._seen[method, path] += 1
            draw = random.Random(f"{self.seed}:{method}:{path}:{attempt}").random()
            if draw >= self.fault_rate:
                outcome = "forward"
            else:
                outcome = "slowdown" if draw < self.fault_rate / 2 else "drop"
            self.counts[outcome] += 1
            return outcome

    @property
    def faults(self) -> int:
        """Requests answered with 503 SlowDown or a dropped connection."""
        return self.counts["slowdown"] + self.counts["drop"]

    @property
    def requests(self) -> int:
        """Every request the proxy has seen."""
        return sum(self.counts[name] for name in ("forward", "slowdown", "drop"))

    def __enter__(self) -> S3FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(proxy: S3FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self._body()
            outcome = proxy.decide(self.command, self.path)
            if outcome == "drop":
                self.close_connection = True  # close the socket with no answer at all
                return
            if outcome == "slowdown":
                self._answer(503, {"Content-Type": "application/xml"}, SLOW_DOWN)
                return
            status, headers, payload = self._forward(body)
            self._answer(status, headers, payload)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers["Content-Length"] = str(len(body))
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                reply = connection.getresponse()
                payload = reply.read()
                kept = {k: v for k, v in reply.getheaders() if k.lower() not in _HOP}
                return reply.status, kept, payload
            finally:
                connection.close()

        def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in _OWN:
                    self.send_header(name, value)
            if self.command == "HEAD":  # a HEAD answer states the length of the body not sent
                length = [v for k, v in headers.items() if k.lower() == "content-length"]
                self.send_header("Content-Length", length[0] if length else "0")
            else:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass  # thousands of requests: the counts say what happened

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

    return Handler
