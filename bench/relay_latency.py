"""Sending rate through a relay across the internet: Tidings beside Postfix's smtp-source.

    .venv/bin/python bench/relay_latency.py [--delays 10,40] [--messages 1000] [--rounds 3]

A loopback proxy (bench/latency_proxy.py) adds the given delay to each direction in front of
one Postfix smtp-sink. Through it, per delay: ``smtp-source -d -s 10`` (ten sessions kept
open across messages, the digest's message size), then ``tidings worker --drain`` at default
settings on an edition of the same number of subscribers (PostgreSQL, a fresh database each
round). Each figure is the median of the rounds. Tidings' rate is printed twice: over the
whole run of the process (start-up included) and between its first and last accepted
message (the steady rate, from the deliveries' ``sent_at``), and the seconds of the run
spent outside that span (processes starting, imports, the first claim, shutting down).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import fresh_database
from latency_proxy import latency_proxy
from smtp_throughput import (
    ensure_postfix_tools,
    free_port,
    prepare_edition,
    sink,
    time_smtp_source,
)
from sqlalchemy import func, select

from tidings.db.engine import open_database
from tidings.db.models import Delivery, DeliveryState

SOURCE_SESSIONS = 10


@dataclass(frozen=True)
class TidingsRun:
    wall_rate: float
    steady_rate: float
    #: Seconds of the run outside the sending: start-up (processes, imports, first claim)
    #: and shut-down.
    outside: float
    summary: str


def smtp_source_rate(port: int, messages: int, size: int) -> float:
    """Messages per second of ``smtp-source -d -s 10`` into ``port``."""
    return messages / time_smtp_source(port, messages, SOURCE_SESSIONS, size, flags=["-d"])


def steady_rate(url: str) -> float:
    """Sent messages per second between the first and the last ``sent_at``."""
    db = open_database(url)
    try:
        with db.session() as session:
            first, last, sent = session.execute(
                select(func.min(Delivery.sent_at), func.max(Delivery.sent_at), func.count()).where(
                    Delivery.state == DeliveryState.sent
                )
            ).one()
    finally:
        db.dispose()
    span = (last - first).total_seconds() if first and last else 0.0
    return (sent - 1) / span if span > 0 else 0.0


def tidings_run(port: int, messages: int) -> tuple[TidingsRun, int]:
    """One round: a fresh database and edition, then ``worker --drain`` at default settings."""
    with tempfile.TemporaryDirectory() as folder, fresh_database() as url:
        env, size = prepare_edition(url, Path(folder), messages)
        worker_env = {**env, "TIDINGS_SMTP_URL": f"smtp://127.0.0.1:{port}"}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "tidings", "worker", "--drain"],
            env=worker_env,
            check=True,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        summary = done.stdout.strip().splitlines()[-1]
        steady = steady_rate(url)
        outside = seconds - (messages - 1) / steady if steady else 0.0
        return TidingsRun(messages / seconds, steady, outside, summary), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delays", default="10,40", help="ms each way, comma-separated")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_postfix_tools()
    delays = [float(d) for d in args.delays.split(",")]
    saved_env = dict(os.environ)
    lines = []
    with sink() as sink_port:
        for delay in delays:
            with latency_proxy(free_port(), ("127.0.0.1", sink_port), delay) as port:
                runs: list[TidingsRun] = []
                sources: list[float] = []
                for _ in range(args.rounds):
                    run, size = tidings_run(port, args.messages)
                    os.environ.clear()
                    os.environ.update(saved_env)
                    runs.append(run)
                    sources.append(smtp_source_rate(port, args.messages, size))
            source = statistics.median(sources)
            wall = statistics.median(r.wall_rate for r in runs)
            steady = statistics.median(r.steady_rate for r in runs)
            outside = statistics.median(r.outside for r in runs)
            lines.append(
                f"{delay:4.0f} ms each way: smtp-source -d -s {SOURCE_SESSIONS} {source:7.1f} msg/s"
                f" | tidings worker --drain {wall:7.1f} msg/s (steady {steady:7.1f})"
                f" | ratio {wall / source:4.2f} (steady {steady / source:4.2f})"
                f" | {outside:4.1f} s outside sending"
            )
            print(lines[-1], f"  [{runs[-1].summary}]", flush=True)
    print(f"\n{args.messages} messages of {size / 1024:.1f} KB, median of {args.rounds} rounds")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
