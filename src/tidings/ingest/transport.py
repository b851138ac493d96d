"""The network under a feed fetch: one deadline for the whole fetch, a cancel flag, and only
allowed addresses.

httpx's timeouts count per read, so a server that drips one byte every few seconds is never cut
off. Here every blocking step (DNS, connect, TLS handshake, each read) waits in short slices
and gives up when the fetch's deadline passes or its cancel flag is set (a shutdown). The
host is resolved once, each address checked (:mod:`tidings.catalog.feedguard`), and the socket
connects to that very address; TLS (SNI, certificate) and the Host header keep the name.
"""

import errno
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import httpcore
import httpx

from tidings.catalog.feedguard import (
    SLICE_SECONDS,
    AddressRule,
    IPAddress,
    allowed_addresses,
    resolve,
)

T = TypeVar("T")


class FetchCancelled(Exception):
    """The fetch was stopped from outside (the process is shutting down); not the feed's fault."""


class FetchClock:
    """The deadline of one fetch, ``seconds`` from its start, and the flag that cancels it."""

    def __init__(self, seconds: float, cancel: threading.Event | None = None) -> None:
        self.seconds = seconds
        self.cancel = cancel or threading.Event()
        self.ends_at = time.monotonic() + seconds

    def limit(self, timeout: float | None) -> float:
        """The monotonic time a step may wait until: its own timeout or the deadline."""
        if timeout is None:
            return self.ends_at
        return min(self.ends_at, time.monotonic() + timeout)

    def check(self) -> None:
        """Raise :class:`FetchCancelled` once the cancel flag is set."""
        if self.cancel.is_set():
            raise FetchCancelled("the fetch was cancelled")

    def expired_message(self) -> str:
        return f"no complete answer within {self.seconds:g} s (the whole fetch's deadline)"


def _sliced(
    clock: FetchClock,
    sock: socket.socket,
    step: Callable[[], T],
    timeout: float | None,
    on_timeout: type[Exception],
    on_error: type[Exception],
) -> T:
    """Run a blocking socket ``step`` in short waits until it is done, the deadline passes,
    or the fetch is cancelled. A timed-out recv or handshake can simply be tried again."""
    until = clock.limit(timeout)
    while True:
        clock.check()
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise on_timeout(clock.expired_message())
        sock.settimeout(min(SLICE_SECONDS, remaining))
        try:
            return step()
        except (TimeoutError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            continue
        except OSError as exc:
            raise on_error(str(exc) or type(exc).__name__) from exc


class GuardedStream(httpcore.NetworkStream):
    """A connected socket (plain or TLS) whose every wait obeys the fetch's clock."""

    def __init__(self, sock: socket.socket, clock: FetchClock) -> None:
        self._sock = sock
        self._clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _sliced(
            self._clock,
            self._sock,
            lambda: self._sock.recv(max_bytes),
            timeout,
            httpcore.ReadTimeout,
            httpcore.ReadError,
        )

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send a request (small: a few headers); a partial sendall cannot be retried, so it
        runs once, bounded by the time left."""
        if not buffer:
            return
        self._clock.check()
        remaining = self._clock.limit(timeout) - time.monotonic()
        if remaining <= 0:
            raise httpcore.WriteTimeout(self._clock.expired_message())
        self._sock.settimeout(remaining)
        try:
            self._sock.sendall(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(self._clock.expired_message()) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """TLS on the checked connection; SNI and the certificate check use the host name."""
        try:
            tls = ssl_context.wrap_socket(
                self._sock, server_hostname=server_hostname, do_handshake_on_connect=False
            )
        except OSError as exc:
            self._sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        try:
            _sliced(
                self._clock,
                tls,
                tls.do_handshake,
                timeout,
                httpcore.ConnectTimeout,
                httpcore.ConnectError,
            )
        except BaseException:
            tls.close()
            raise
        return GuardedStream(tls, self._clock)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object" and isinstance(self._sock, ssl.SSLSocket):
            return self._sock  # it answers selected_alpn_protocol() like the SSLObject
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _readable_now(self._sock)
        return None


def _readable_now(sock: socket.socket) -> bool:
    """True if an idle kept-alive connection has data or EOF waiting (so it is stale)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _connect(
    address: IPAddress, port: int, clock: FetchClock, timeout: float | None
) -> socket.socket:
    """A TCP connection to exactly ``address``, waiting in slices (cancellable)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        error = sock.connect_ex((str(address), port))
        if error not in (0, *_IN_PROGRESS):
            raise httpcore.ConnectError(f"cannot connect: {_strerror(error)}")
        until = clock.limit(timeout)
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        while not poller.poll(int(min(SLICE_SECONDS, max(until - time.monotonic(), 0)) * 1000)):
            clock.check()
            if time.monotonic() >= until:
                raise httpcore.ConnectTimeout(clock.expired_message())
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise httpcore.ConnectError(f"cannot connect: {_strerror(error)}")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


def _strerror(error: int) -> str:
    return os.strerror(error)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network for one fetch: resolve once, check, connect to that address."""

    def __init__(self, clock: FetchClock, rule: AddressRule) -> None:
        self._clock = clock
        self._rule = rule

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        clock = self._clock
        clock.check()
        try:
            found = resolve(host, port, until=clock.limit(timeout), cancelled=clock.cancel.is_set)
        except TimeoutError as exc:
            clock.check()
            raise httpcore.ConnectTimeout(clock.expired_message()) from exc
        failure: Exception | None = None
        for address in allowed_addresses(host, found, self._rule):
            try:
                return GuardedStream(_connect(address, port, clock, timeout), clock)
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("feeds are fetched over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(self._clock.ends_at - time.monotonic(), 0)))


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool that uses :class:`GuardedBackend`.

    httpcore's exceptions pass through unchanged (the fetch maps them to feed errors), so
    :class:`~tidings.catalog.feedguard.AddressRefused` and :class:`FetchCancelled` keep their type.
    """

    def __init__(self, backend: GuardedBackend, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=backend, max_connections=2
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
