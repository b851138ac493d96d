"""How long the set-based fan-out of one edition takes for N subscribers on PostgreSQL,
against the fan-out before migration 0017 (foreign keys checked per row) and before 0018 (a
row lock per reader, the variant's foreign key) in the same run.

    .venv/bin/python bench/fanout.py [--subscribers 1000000] [--rounds 3]

Each round composes and fans out a one-off edition three times on the same database and
rows: as before 0017 (the baseline: the schema of migration 0016, with deliveries' edition
and subscriber foreign keys, and the fan-out module of its commit, read from git), as before
0018 (set-based triggers, a FOR KEY SHARE lock on each reader, the variant's foreign key),
and at head (one advisory lock for the readers, the variant checked per statement); the
ledger is emptied before each. Beside them, a plain INSERT ... SELECT of the same rows
into an unindexed table with no constraints: the floor for writing that many rows. Wall
time and the PostgreSQL backend's own CPU time (read from /proc, so other work on a shared
machine weighs less) are printed as medians of the rounds, with their ratios.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, fresh_database, module_at
from sqlalchemy import event, text

sys.path.insert(0, str(ROOT))
import tidings.compose.service
from tests.builders import articles
from tidings.audience.imports.importer import import_subscribers
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import load_settings
from tidings.db.engine import Database, open_database
from tidings.db.migrate import downgrade, upgrade
from tidings.db.types import utcnow

FANOUT = "src/tidings/deliver/ledger/fanout.py"
#: Each earlier schema, with the last commit whose fan-out ran on it.
BEFORE = {"0016": "f2ada4b", "0017": "8492425"}


def fan_out_before(commit: str) -> Any:
    """``fan_out`` as it was at ``commit``, loaded from git (a baseline's code)."""
    return module_at(commit, FANOUT, f"fanout_{commit}").fan_out


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds a local PostgreSQL backend has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(db: Database, pids: set[int], work: Callable[[], Any]) -> tuple[float, float]:
    """Wall seconds of ``work`` and the CPU seconds of the backends it used."""
    before = {pid: backend_cpu(pid) for pid in pids}
    started = time.perf_counter()
    work()
    wall = time.perf_counter() - started
    cpu = sum(backend_cpu(pid) - before.get(pid, 0.0) for pid in pids)
    return wall, cpu


def empty_ledger(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("TRUNCATE deliveries CASCADE"))
        connection.execute(text("DROP TABLE IF EXISTS plain"))
        connection.execute(text("CREATE TABLE plain (a int, b int, c text)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, fresh_database() as url:
        os.environ.update(
            {
                "TIDINGS_DATABASE_URL": url,
                "TIDINGS_DATA_DIR": folder,
                "TIDINGS_SECRET_KEY": "bench-" + "k" * 40,
            }
        )
        settings = load_settings()
        db = open_database(url)
        pids: set[int] = set()
        event.listen(
            db.engine,
            "checkout",
            lambda dbapi, record, proxy: pids.add(dbapi.info.backend_pid),
        )
        upgrade(db.engine)
        create_newsletter(db, NewsletterSpec(slug="bench", name="Bench", sender="b@example.org"))
        people = Path(folder) / "people.csv"
        people.write_text(
            "email\n" + "".join(f"r{i}@example{i % 100}.ge\n" for i in range(args.subscribers))
        )
        import_subscribers(db, "bench", people, confirmed=True, batch_size=100_000)
        ids = articles(db, "bench", 3, utcnow())
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))

        def fan_out() -> None:
            result = send_one_off(db, settings, "bench", OneOff(article_ids=ids))
            assert result.deliveries == args.subscribers

        def plain() -> None:
            with db.engine.begin() as connection:
                connection.execute(
                    text("INSERT INTO plain SELECT 1, subscriber_id, 'queued' FROM subscriptions")
                )

        runs: dict[str, list[tuple[float, float]]] = {
            "0016": [],
            "0017": [],
            "head": [],
            "plain": [],
        }
        head_fan_out = tidings.compose.service.fan_out
        old = {schema: fan_out_before(commit) for schema, commit in BEFORE.items()}
        for _ in range(args.rounds):
            downgrade(db.engine, min(BEFORE))
            for schema, old_fan_out in old.items():
                upgrade(db.engine, schema)
                empty_ledger(db)
                tidings.compose.service.fan_out = old_fan_out
                runs[schema].append(timed(db, pids, fan_out))
            tidings.compose.service.fan_out = head_fan_out
            upgrade(db.engine)
            empty_ledger(db)
            runs["head"].append(timed(db, pids, fan_out))
            runs["plain"].append(timed(db, pids, plain))
        db.dispose()
    wall = {name: statistics.median(w for w, _ in times) for name, times in runs.items()}
    cpu = {name: statistics.median(c for _, c in times) for name, times in runs.items()}
    print(f"{args.subscribers} subscribers, median of {args.rounds} rounds (wall / backend CPU)")
    labels = {
        "0016": "compose + fan-out, before 0017 (baseline)",
        "0017": "compose + fan-out, before 0018          ",
        "head": "compose + fan-out, head                 ",
        "plain": "plain INSERT ... SELECT, no indexes     ",
    }
    for name, label in labels.items():
        print(f"{label}: {wall[name]:6.2f} s / {cpu[name]:6.2f} s")
    for schema in BEFORE:
        print(
            f"head vs {schema}   : {wall[schema] / wall['head']:.2f}x faster wall, "
            f"{cpu[schema] / cpu['head']:.2f}x CPU"
        )
    print(f"head vs the floor: {wall['head'] / wall['plain']:.1f}x wall")


if __name__ == "__main__":
    main()
