"""A real HTTP server on loopback that serves feeds for the ingestion tests.

Routes are set per test: a path maps to a :class:`Reply` (status, headers, body), or to a
callable that makes one from the request headers (for conditional GET and edits).
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Send this many bytes of zeros after ``body`` without a Content-Length (a huge body).
    stream_bytes: int = 0


Route = Reply | Callable[[dict[str, str]], Reply]


class FeedServer:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"


@contextmanager
def feed_server() -> Iterator[FeedServer]:
    holder: list[FeedServer] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server = holder[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append((self.path, headers))
            route = server.routes.get(self.path, Reply(404, b"not found"))
            reply = route(headers) if callable(route) else route
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.stream_bytes:
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(reply.body)
                    sent = 0
                    zeros = b"0" * CHUNK
                    while sent < reply.stream_bytes:
                        self.wfile.write(zeros)
                        sent += CHUNK
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading at its cap, as it should
                return
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    holder.append(FeedServer(httpd))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
