"""A real DNS server (dnslib) on loopback for the tests: serves a dict of records over UDP and
TCP on one free port, answers NXDOMAIN for a name it does not know (and an empty answer for a
known name without that type), and records every question it was asked.

    with dns_server({"example.org": [("TXT", "v=spf1 ip4:127.0.0.1 -all")]}) as names:
        settings = names.settings(settings)  # TIDINGS_DNS_NAMESERVERS points at it

Values: TXT is the whole string (split into 255-byte pieces on the wire, as zone files do),
MX is ``"10 mail.example.org"`` (or a host alone, preference 10), A and AAAA an address,
CNAME a name (served when CNAME is asked; not chased). ``names.records`` may be
changed while the server runs.
"""

import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import DNSLogger, DNSServer

from tidings.config import Settings

Records = Mapping[str, Sequence[tuple[str, str]]]

#: The longest character-string a TXT record may hold (RFC 1035, 3.3).
TXT_PIECE = 255


def _name(value: str) -> str:
    return value.rstrip(".").lower()


def txt_pieces(value: str) -> list[bytes]:
    """``value`` in pieces of at most 255 bytes, as a zone file's quoted strings."""
    data = value.encode()
    return [data[start : start + TXT_PIECE] for start in range(0, len(data), TXT_PIECE)] or [b""]


def _rdata(kind: str, value: str) -> Any:
    if kind == "TXT":
        return TXT(txt_pieces(value))
    if kind == "MX":
        preference, _, host = value.partition(" ") if " " in value else ("10", "", value)
        return MX(host, int(preference))
    if kind == "A":
        return A(value)
    if kind == "AAAA":
        return AAAA(value)
    if kind == "CNAME":
        return CNAME(value)
    raise ValueError(f"the test DNS server does not serve {kind} records")


@dataclass
class DnsServer:
    """What a test sees of the running server."""

    port: int
    records: dict[str, list[tuple[str, str]]]
    questions: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        """``host:port``, the form TIDINGS_DNS_NAMESERVERS takes."""
        return f"127.0.0.1:{self.port}"

    def settings(self, settings: Settings) -> Settings:
        """``settings`` with TIDINGS_DNS_NAMESERVERS set to this server."""
        return settings.model_copy(update={"dns_nameservers": self.address})

    def env(self) -> dict[str, str]:
        """The environment variable for a subprocess (a CLI test)."""
        return {"TIDINGS_DNS_NAMESERVERS": self.address}

    def asked(self, name: str) -> list[str]:
        """The record types asked for ``name``, in order."""
        with self.lock:
            return [kind for asked, kind in self.questions if asked == _name(name)]


class _Resolver:
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = _name(str(request.q.qname))
        kind = QTYPE[request.q.qtype]
        with self.server.lock:
            self.server.questions.append((name, kind))
            known = [
                record
                for key, values in self.server.records.items()
                if _name(key) == name
                for record in values
            ]
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for record_kind, value in known:
            if record_kind == kind:
                rtype = getattr(QTYPE, record_kind)
                reply.add_answer(
                    RR(request.q.qname, rtype, rdata=_rdata(record_kind, value), ttl=60)
                )
        return reply


def _quiet() -> DNSLogger:
    return DNSLogger(log="-recv,-send,-request,-reply,-truncated,-data,-error", prefix=False)


def _servers(resolver: _Resolver) -> tuple[DNSServer, DNSServer, int]:
    """A UDP and a TCP server on the same free port (tried again if TCP's is taken)."""
    for _ in range(20):
        udp = DNSServer(resolver, address="127.0.0.1", port=0, logger=_quiet())
        port = int(udp.server.server_address[1])
        try:
            tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=_quiet())
        except OSError:
            udp.server.server_close()
            continue
        return udp, tcp, port
    raise RuntimeError("no free port for both UDP and TCP")


@contextmanager
def dns_server(records: Records | None = None) -> Iterator[DnsServer]:
    """Serve ``records`` on loopback for the ``with`` block."""
    state = DnsServer(
        port=0, records={name: list(values) for name, values in (records or {}).items()}
    )
    udp, tcp, state.port = _servers(_Resolver(state))
    udp.start_thread()
    tcp.start_thread()
    try:
        yield state
    finally:
        for server in (udp, tcp):
            server.stop()
            server.server.server_close()


def unused_dns_port() -> int:
    """A loopback UDP port where nothing answers (a name server that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
