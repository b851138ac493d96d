"""What aiosmtplib's DATA preparation costs per digest, against the rest of a message's way out.

    .venv/bin/python bench/data_prep.py [--sizes 26 45] [--sends 3000] [--sessions 10]

aiosmtplib 5.1.3 runs two regular-expression passes over every message it sends with DATA
(``aiosmtplib.protocol``: line endings to CRLF, then a second "." on each line that starts
with one), though the messages Tidings builds are CRLF-only already. For digests of about 26
and 45 KB this prints, as medians of the same run (CPU time of this process throughout, so
that other work on a shared machine does not count):

- the message build (``EditionMail.message_for``: personal values, links, MIME bytes);
- aiosmtplib's two passes, called through its own functions;
- the same preparation done with byte counts and ``bytes.replace`` (identical output, checked
  here on the digests and on awkward inputs): the saving an upstream fast path would bring;
- this process's CPU time per message sent through our transport (10 connections) into
  Postfix's smtp-sink, the passes included, and the passes' share of build plus send.

Installs postfix from Debian's packages when smtp-sink is missing (see smtp_throughput.py).
"""

import argparse
import asyncio
import time
from collections.abc import Callable

from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from common import median_seconds
from personalise import mail_for, sample
from smtp_throughput import ensure_postfix_tools, sink

from tidings.config import Settings, SmtpTarget
from tidings.mail.edition import EditionMail
from tidings.mail.transport import SmtpConnection

SENDER = "digest@messenger.example.ge"


def edition_of_size(kilobytes: int) -> tuple[EditionMail, bytes]:
    """A digest of the sample articles (repeated as needed), about ``kilobytes`` per message."""
    settings = Settings(secret_key="bench-secret-key-" + "x" * 32)
    newsletter, articles = sample()
    pool = articles[:1]
    while True:
        mail = mail_for(settings, newsletter, pool)
        message = mail.message_for(1, "reader1@example.ge", "Reader 1", "<m1@x>")
        if len(message) >= kilobytes * 1024:
            return mail, message
        pool.append(articles[len(pool) % len(articles)])


def aiosmtplib_prepare(message: bytes) -> bytes:
    """What ``SMTPProtocol.execute_data_command`` does to a message before writing it."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


def counted_prepare(message: bytes) -> bytes:
    """The same bytes, with a fast path for a message whose line endings are all CRLF: three
    ``count`` scans decide, and ``bytes.replace`` doubles the leading dots (a line starts at
    the beginning or after "\\n", just as the MULTILINE "^" of the regex does)."""
    pairs = message.count(b"\r\n")
    if message.count(b"\n") != pairs or message.count(b"\r") != pairs:
        message = normalize_message_line_endings(message)
    elif not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\n.", b"\n..") + b".\r\n"


AWKWARD = [
    b"",
    b".",
    b"..\r\n.\r\n",
    b"a\nb\rc\r\n.d\n\r.e\r\r\n",
    b"line\r\n.dot\r\n..two\r\nend",
    b"\r\n.\r\n",
    b"no ending",
    b"\n\n.\n",
]


def check_same(messages: list[bytes]) -> None:
    for message in [*messages, *AWKWARD]:
        if counted_prepare(message) != aiosmtplib_prepare(message):
            raise SystemExit(f"counted_prepare differs on {message[:40]!r}")


async def send_cpu_seconds(port: int, message: bytes, sends: int, sessions: int) -> float:
    """This process's CPU seconds per message sent through ``sessions`` connections."""
    target = SmtpTarget("127.0.0.1", port, "none", None, None)
    connections = [SmtpConnection(target, 10.0) for _ in range(sessions)]
    for connection in connections:
        await connection.open()
    left = iter(range(sends))

    async def keep_sending(connection: SmtpConnection) -> None:
        for index in left:
            await connection.send(SENDER, f"reader{index}@example.ge", message)

    started = time.process_time()
    await asyncio.gather(*(keep_sending(c) for c in connections))
    spent = time.process_time() - started
    await asyncio.gather(*(c.close() for c in connections))
    return spent / sends


def cpu_seconds(work: Callable[[], object]) -> float:
    """CPU seconds per call, the median of 9 rounds of 200: CPU time, not wall time, so that
    other work on a shared machine does not count."""
    return median_seconds(work, 9, number=200, clock=time.process_time)


def report(kilobytes: int, sends: int, sessions: int) -> None:
    """Measure and print the figures of one digest size."""
    mail, message = edition_of_size(kilobytes)
    check_same([message])
    counter = iter(range(10**9))

    def build() -> bytes:
        i = next(counter)
        return mail.message_for(i, f"reader{i}@example.ge", f"Reader {i}", f"<m{i}@x>")

    build_s = cpu_seconds(build)
    passes_s = cpu_seconds(lambda: aiosmtplib_prepare(message))
    counted_s = cpu_seconds(lambda: counted_prepare(message))
    with sink() as port:
        send_s = asyncio.run(send_cpu_seconds(port, message, sends, sessions))
    per_message = build_s + send_s
    saved = passes_s - counted_s
    lines = message.count(b"\r\n")
    print(f"digest of {len(message) / 1024:.1f} KB ({lines} lines)")
    print(f"  build (message_for)           : {build_s * 1e6:7.1f} us")
    print(f"  aiosmtplib's two passes       : {passes_s * 1e6:7.1f} us")
    print(
        f"  counted fast path (same bytes): {counted_s * 1e6:7.1f} us "
        f"({passes_s / counted_s:.1f}x less)"
    )
    print(
        f"  send, CPU of this process     : {send_s * 1e6:7.1f} us per message "
        f"({sends} sends, {sessions} connections, passes included)"
    )
    print(
        f"  passes' share of build + send : {passes_s / per_message:.0%} of "
        f"{per_message * 1e6:.0f} us; a fast path saves {saved * 1e6:.0f} us "
        f"({saved / per_message:.0%}), skipping the passes {passes_s * 1e6:.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[26, 45], help="KB")
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    ensure_postfix_tools()
    for kilobytes in args.sizes:
        report(kilobytes, args.sends, args.sessions)


if __name__ == "__main__":
    main()
