"""A real HTTP server on loopback that serves feeds for the ingestion tests.

Routes are set per test: a path maps to a :class:`Reply` (status, headers, body), or to a
callable that makes one from the request headers (for conditional GET and edits). A reply can
be slow: late (``delay_seconds`` before the headers) or a slow drip (one byte of the body
every ``drip_seconds``), as a hostile or overloaded server would be.
"""

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase

CHUNK = 64 * 1024
#: A bound on how long a held reply waits for its test to let it go, not a pause.
HOLD_LIMIT_S = 30.0


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Send this many bytes of zeros after ``body`` without a Content-Length (a huge body).
    stream_bytes: int = 0
    #: Wait this long before answering at all.
    delay_seconds: float = 0.0
    #: Send the body one byte at a time, this long apart (headers go out at once).
    drip_seconds: float = 0.0
    #: Answer only once this is set (at most :data:`HOLD_LIMIT_S`): a feed that is slow for
    #: exactly as long as a test needs, with no clock in the test.
    held_until: threading.Event | None = None


Route = Reply | Callable[[dict[str, str]], Reply]


class FeedServer:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def url(self, path: str) -> str:
        scheme = "https" if isinstance(self._server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])


def _drip(wfile: BufferedIOBase, body: bytes, seconds: float) -> None:
    try:
        for byte in body:
            wfile.write(bytes([byte]))
            wfile.flush()
            time.sleep(seconds)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up, as it should


@contextmanager
def feed_server(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[FeedServer]:
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
            time.sleep(reply.delay_seconds)
            if reply.held_until is not None:
                reply.held_until.wait(HOLD_LIMIT_S)
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
            if reply.drip_seconds:
                _drip(self.wfile, reply.body, reply.drip_seconds)
                return
            with suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                self.wfile.write(reply.body)

    httpd = ThreadingHTTPServer((host, 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    holder.append(FeedServer(httpd))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
