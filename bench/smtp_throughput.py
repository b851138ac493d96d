"""Sending rate of one Tidings worker against Postfix's own load generator, same sink.

    .venv/bin/python bench/smtp_throughput.py [--messages 20000] [--sessions 10]

Both send into one Postfix smtp-sink on loopback: first smtp-source (10 sessions, the same
message size as the digest), then an edition of the same number of subscribers through
`tidings worker --drain` with a pool of the same number of connections, on PostgreSQL.
Installs postfix from Debian's packages when smtp-sink is missing.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from common import fresh_database

from tidings.audience.imports.importer import import_subscribers
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import load_settings
from tidings.db.engine import open_database
from tidings.db.migrate import upgrade
from tidings.db.models import Edition, Newsletter
from tidings.mail.edition import edition_mail
from tidings.sample.loader import demo_settings, load_sample


def ensure_postfix_tools() -> None:
    if shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],
        input=b"postfix postfix/main_mailer_type select No configuration\n",
        check=True,
    )
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postfix"], check=True, env=env)


def tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def sink() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [tool("smtp-sink"), "-u", "root", f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def prepare_edition(url: str, folder: Path, messages: int) -> tuple[dict[str, str], int]:
    """A sample newsletter with ``messages`` subscribers and one queued edition."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        {
            "TIDINGS_DATABASE_URL": url,
            "TIDINGS_DATA_DIR": str(folder / "data"),
            "TIDINGS_SECRET_KEY": "bench-" + "k" * 40,
            "TIDINGS_SMTP_URL": "smtp://x",
            "TIDINGS_ALLOW_INSECURE_LINKS": "true",  # a loopback sink, not readers
        }
    )
    os.environ.update(env)
    settings = load_settings()
    db = open_database(url)
    upgrade(db.engine)
    # also queues the 8-subscriber demo edition, sent first
    load_sample(db, demo_settings(settings))
    people = folder / "people.csv"
    people.write_text(
        "email,name\n"
        + "".join(f"reader{i}@example{i % 50}.ge,Reader {i}\n" for i in range(messages - 8))
    )
    import_subscribers(db, "messenger", people, confirmed=True, batch_size=50_000)
    with db.session() as session:
        newsletter_id = session.query(Newsletter.id).scalar()
        session.query(Edition).filter(Edition.newsletter_id == newsletter_id).delete()
        session.commit()
    result = send_one_off(db, settings, "messenger", OneOff(article_ids=list(range(1, 13))))
    with db.session() as session:
        edition = session.get_one(Edition, result.edition_id)
        newsletter = session.get_one(Newsletter, edition.newsletter_id)
        size = len(
            edition_mail(settings, edition, newsletter).message_for(
                1, "reader1@example1.ge", "Reader 1", "<x@y>"
            )
        )
    db.dispose()
    assert result.deliveries == messages, result
    return env, size


def time_smtp_source(
    port: int, messages: int, sessions: int, size: int, flags: Sequence[str] = ()
) -> float:
    """Seconds Postfix's smtp-source takes to send ``messages`` into ``port`` (``flags``:
    more of its options, such as -d for a disconnect after each message)."""
    started = time.perf_counter()
    subprocess.run(
        [
            tool("smtp-source"),
            *flags,
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-l",
            str(size),
            "-f",
            "digest@messenger.example.ge",
            "-t",
            "reader@example.ge",
            f"127.0.0.1:{port}",
        ],
        check=True,
    )
    return time.perf_counter() - started


def time_tidings(
    port: int, env: dict[str, str], sessions: int, processes: int = 1
) -> tuple[float, str]:
    worker_env = {
        **env,
        "TIDINGS_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "TIDINGS_SMTP_POOL_SIZE": str(sessions),
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tidings", "worker", "--drain", "--processes", str(processes)],
        env=worker_env,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes (tidings worker --processes)"
    )
    args = parser.parse_args()
    ensure_postfix_tools()
    with tempfile.TemporaryDirectory() as folder, fresh_database() as url:
        env, size = prepare_edition(url, Path(folder), args.messages)
        with sink() as port:
            source_s = time_smtp_source(port, args.messages, args.sessions, size)
            tidings_s, summary = time_tidings(port, env, args.sessions, args.processes)
    source_rate = args.messages / source_s
    tidings_rate = args.messages / tidings_s
    print(f"{args.messages} messages of {size / 1024:.1f} KB, {args.sessions} sessions/connections")
    print(f"smtp-source   : {source_s:6.2f} s  {source_rate:8.0f} msg/s")
    print(
        f"tidings worker: {tidings_s:6.2f} s  {tidings_rate:8.0f} msg/s  ({summary}; "
        f"--processes {args.processes})"
    )
    print(f"ratio         : tidings reaches {tidings_rate / source_rate:.0%} of smtp-source's rate")


if __name__ == "__main__":
    main()
