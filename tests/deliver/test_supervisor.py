"""``tidings worker --processes N``: N worker processes under one supervisor, which restarts
a child that dies and passes SIGTERM on. Real processes on PostgreSQL into the test SMTP
server; the supervisor's own rules with tiny child programs."""

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.builders import one_off_edition, worker_env
from tests.conftest import Cli
from tests.smtpserver import smtp_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState
from tidings.deliver.heartbeats import alive
from tidings.deliver.supervisor import Backoff, Supervisor, exit_reason, read_stats, stats_json
from tidings.deliver.writebehind import WorkerStats


def _postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several worker processes share a database on PostgreSQL only")


def _states(db: Database) -> dict[DeliveryState, int]:
    with db.session() as session:
        return dict(
            session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )


def _started(log: str) -> dict[int, list[int]]:
    """Each worker's pids, in the order the supervisor started them."""
    pids: dict[int, list[int]] = {}
    for index, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", log):
        pids.setdefault(int(index), []).append(int(pid))
    return pids


def test_two_processes_deliver_an_edition_once_to_every_reader(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    _postgres_only(db)
    addresses = one_off_edition(db, settings, readers=400)
    log = tmp_path / "worker.err"
    with smtp_server() as (handler, port), log.open("wb") as err:
        handler.behaviour.stall_seconds = 0.01  # long enough for both to take a share
        done = subprocess.run(
            [sys.executable, "-m", "tidings", "worker", "--drain", "--processes", "2"],
            env=worker_env(settings, port),
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=300,
        )
        received = Counter(handler.recipients())
    text = log.read_text()
    assert done.returncode == 0, text
    assert set(received) == set(addresses) and max(received.values()) == 1
    assert done.stdout.decode().strip() == (
        "sent 400, deferred 0, failed 0, uncertain 0, released 0"
    )  # the children's figures, added up
    shares = [int(n) for n in re.findall(r"worker \d \(pid \d+\) finished: sent (\d+)", text)]
    assert len(shares) == 2 and sum(shares) == 400 and min(shares) > 0, text
    assert len(_started(text)) == 2
    assert _states(db) == {DeliveryState.sent: 400}


def test_a_child_killed_is_started_again_and_nothing_is_sent_twice(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    _postgres_only(db)
    addresses = one_off_edition(db, settings, readers=400)
    log = tmp_path / "worker.err"
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.02
        env = worker_env(settings, port, TIDINGS_LEASE_SECONDS="5", TIDINGS_AT_MOST_ONCE="true")
        with log.open("wb") as err:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "tidings", "worker", "--processes", "2"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            deadline = time.monotonic() + 60
            while len(handler.recipients()) < 40 and time.monotonic() < deadline:
                time.sleep(0.02)
            victim = _started(log.read_text())[0][0]
            subprocess.run(["kill", "-KILL", str(victim)], check=True)
            while len(_started(log.read_text()).get(0, [])) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            pids = _started(log.read_text())
            assert len(pids[0]) == 2 and pids[0][1] != victim, log.read_text()
            # The rest is sent; the victim's leases run out and become uncertain.
            open_states = {DeliveryState.queued, DeliveryState.sending, DeliveryState.deferred}
            while set(_states(db)) & open_states and time.monotonic() < deadline + 60:
                time.sleep(0.1)
        finally:
            supervisor.send_signal(signal.SIGTERM)
            code = supervisor.wait(timeout=60)
        received = Counter(handler.recipients())
    text = log.read_text()
    assert code == 0, text
    assert f"worker 0 (pid {victim}) ended (signal SIGKILL); starting it again" in text
    states = _states(db)
    assert set(states) <= {DeliveryState.sent, DeliveryState.uncertain}, (states, text)
    assert max(received.values()) == 1  # nothing sent twice
    assert set(received) <= set(addresses)
    # Every delivery recorded as sent was received; only the victim's in-flight ones are
    # uncertain (each received or not: that is why they are uncertain).
    with db.session() as session:
        sent = session.scalar(select(func.count()).where(Delivery.state == DeliveryState.sent))
    assert sent is not None and sent <= len(received)
    assert states.get(DeliveryState.uncertain, 0) >= len(received) - sent


def test_sqlite_refuses_several_processes_in_one_line(
    cli: Cli, db: Database, settings: Settings
) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's refusal")
    result = cli("worker", "--drain", "--processes", "2")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--processes 2 needs PostgreSQL" in lines[0], result.output


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_child_that_keeps_dying_is_restarted_with_a_back_off_then_given_up() -> None:
    backoff = Backoff(first=0.05, most=0.2, settled=60, give_up=4)
    started = time.monotonic()
    result = Supervisor(
        lambda i: _python("raise SystemExit(3)"), 2, drain=True, backoff=backoff
    ).run()
    took = time.monotonic() - started
    assert (
        result.gave_up is not None and "died 4 times in a row (last: exit code 3)" in result.gave_up
    )
    assert result.restarts >= 3  # the one that gave up first was started 4 times
    assert took >= 0.05 + 0.1 + 0.2  # the pauses between its starts: 0.05, 0.1, then 0.2


def test_draining_children_that_finish_are_added_up_and_not_restarted(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    figures = stats_json(WorkerStats(sent=3, failed=1))
    code = f"open({str(starts)!r}, 'a').write('x'); print({figures!r})"
    result = Supervisor(lambda i: _python(code), 3, drain=True).run()
    assert result.gave_up is None and result.restarts == 0
    assert result.stats == WorkerStats(sent=9, failed=3)
    assert starts.read_text() == "xxx"


def test_sigterm_is_passed_on_and_waited_for(tmp_path: Path) -> None:
    """A supervisor process (here: this test's little program) forwards SIGTERM to each
    child, which finishes what it does (writes its file) before exiting."""
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.3), "
        f"open({str(tmp_path)!r} + '/stopped' + sys.argv[1], 'w').write('ok'), sys.exit(0)))\n"
        f"open({str(tmp_path)!r} + '/up' + sys.argv[1], 'w').write('up')\n"
        "while True: time.sleep(0.05)\n"
    )
    script = tmp_path / "child.py"
    script.write_text(child)
    program = (
        "import sys\n"
        "from tidings.deliver.supervisor import Supervisor\n"
        f"argv = lambda i: [sys.executable, {str(script)!r}, str(i)]\n"
        "result = Supervisor(argv, 2, drain=False).run()\n"
        "print('unclean', result.unclean, 'restarts', result.restarts, flush=True)\n"
    )
    proc = subprocess.Popen(_python(program), stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"up{i}").exists() for i in range(2)):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.decode().strip().splitlines()[-1] == "unclean 0 restarts 0"
    assert (tmp_path / "stopped0").read_text() == "ok"
    assert (tmp_path / "stopped1").read_text() == "ok"


def test_the_figures_and_exit_in_words() -> None:
    assert read_stats("some noise\n" + stats_json(WorkerStats(sent=2, uncertain=1))) == (
        WorkerStats(sent=2, uncertain=1)
    )
    assert read_stats("nothing here") is None
    assert exit_reason(-9) == "signal SIGKILL"
    assert exit_reason(2) == "exit code 2"


def test_workers_stop_by_themselves_when_their_supervisor_is_killed(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    _postgres_only(db)
    one_off_edition(db, settings, readers=200)
    log = tmp_path / "worker.err"
    with smtp_server() as (handler, port):
        handler.behaviour.stall_seconds = 0.05
        with log.open("wb") as err:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "tidings", "worker", "--processes", "2"],
                env=worker_env(settings, port),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 60
        while len(alive(db)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = _started(log.read_text())
        children = {pid for pids in started.values() for pid in pids}
        assert {h.pid for h in alive(db)} == children, log.read_text()
        supervisor.kill()
        supervisor.wait(timeout=10)
        while alive(db) and time.monotonic() < deadline + 30:
            time.sleep(0.1)
        text = log.read_text()
    assert alive(db) == [], text  # each stopped cleanly and took its heartbeat away
    assert text.count(f"the supervisor (pid {supervisor.pid}) is gone; stopping") == 2
    states = _states(db)
    assert DeliveryState.sending not in states  # what they held was released
