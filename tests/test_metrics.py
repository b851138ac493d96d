"""Prometheus metrics, scraped from real processes: a worker and the scheduler on
--metrics-port, and the web face's /metrics (loopback or the token only)."""

import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.builders import one_off_edition, worker_env
from tests.feedserver import Reply, feed_server
from tests.inbound.bounces import dsn, sent_edition
from tests.ingest.feeds import item, rss
from tests.smtpserver import free_port, smtp_server
from tests.webserver import web_server
from tidings.catalog.newsletters import add_feed
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import SendLimitScope
from tidings.ingest.service import poll_sources
from tidings.metrics import LIMIT_SCOPES
from tidings.web.health import METRICS_REFUSED

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _scrape_until(
    url: str, ready: Callable[[Samples], bool], log: Path, proc: subprocess.Popen[bytes]
) -> Samples:
    """Scrape ``url`` until ``ready`` holds (the process may still be starting: on a busy
    machine a Python process can take tens of seconds to import everything)."""
    deadline = time.monotonic() + 90
    samples: Samples = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            response = httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = _samples(response.text)
        if ready(samples):
            return samples
        time.sleep(0.1)
    raise AssertionError(f"not ready: {samples}\n{log.read_text()}")


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()


def test_a_worker_process_counts_its_messages_and_send_times(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    addresses = one_off_edition(db, settings, readers=6)
    port = free_port()
    log = tmp_path / "worker.log"
    with smtp_server() as (handler, smtp_port):
        handler.behaviour.rcpt_replies[addresses[0]] = "550 5.1.1 No such user here"
        worker = _start(
            ["worker", "--processes", "1", "--metrics-port", str(port)],
            worker_env(settings, smtp_port),
            log,
        )
        try:
            samples = _scrape_until(
                f"http://127.0.0.1:{port}/metrics",
                # Latency is observed once the results are committed, a moment after.
                lambda s: (
                    _value(s, "tidings_messages_total", result="sent") == 5
                    and _value(s, "tidings_queue_latency_seconds_count") == 5
                ),
                log,
                worker,
            )
        finally:
            _stop(worker, log)
    assert _value(samples, "tidings_messages_total", result="failed") == 1
    assert _value(samples, "tidings_smtp_send_seconds_count") == 6  # the refusal was timed too
    total = _value(samples, "tidings_smtp_send_seconds_sum")
    assert total is not None and 0 < total < 30
    assert _value(samples, "tidings_queue_latency_seconds_count") == 5  # sent ones only
    waited = _value(samples, "tidings_queue_latency_seconds_sum")
    assert waited is not None and waited > 0  # queued before the worker even started
    beat = _value(samples, "tidings_worker_heartbeat_timestamp_seconds")
    assert beat is not None and abs(beat - time.time()) < 30
    assert len(handler.recipients()) == 5


def _two_free_ports() -> int:
    """A port free for listening whose next port is free too."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


def test_worker_processes_serve_their_metrics_on_consecutive_ports(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("several worker processes share a database on PostgreSQL only")
    one_off_edition(db, settings, readers=6)
    port = _two_free_ports()
    log = tmp_path / "worker.log"
    with smtp_server() as (handler, smtp_port):
        worker = _start(
            ["worker", "--processes", "2", "--metrics-port", str(port)],
            worker_env(settings, smtp_port),
            log,
        )
        try:
            sent = [0.0, 0.0]
            deadline = time.monotonic() + 120
            while sum(sent) < 6 and time.monotonic() < deadline:
                for i in range(2):  # each child answers on its own port, port + i
                    found = _scrape_until(
                        f"http://127.0.0.1:{port + i}/metrics", lambda s: True, log, worker
                    )
                    sent[i] = _value(found, "tidings_messages_total", result="sent") or 0
                time.sleep(0.1)
        finally:
            _stop(worker, log)
    assert sum(sent) == 6, log.read_text()
    assert len(handler.recipients()) == 6


def test_the_scheduler_serves_its_feed_polls_and_the_queue(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    one_off_edition(db, settings, readers=3)  # edition 1: three deliveries queued, no worker
    port = free_port()
    log = tmp_path / "scheduler.log"
    with feed_server() as feeds, smtp_server() as (_, smtp_port):
        feeds.routes["/rss"] = Reply(200, rss([item(1), item(2)]))
        add_feed(db, "daily", feeds.url("/rss"), allow_private=True)
        env = worker_env(
            settings,
            smtp_port,
            TIDINGS_FEED_ALLOW_PRIVATE="true",
            TIDINGS_SCHEDULE_GRACE_HOURS="0",  # no slot of today's is composed meanwhile
        )
        scheduler = _start(["scheduler", "--metrics-port", str(port)], env, log)
        try:
            samples = _scrape_until(
                f"http://127.0.0.1:{port}/",
                lambda s: _value(s, "tidings_feed_polls_total", result="ok") == 1,
                log,
                scheduler,
            )
        finally:
            _stop(scheduler, log)
    assert _value(samples, "tidings_deliveries_queued", edition="1", newsletter="daily") == 3
    assert _value(samples, "tidings_feed_polls_total", result="error") in (None, 0)
    assert _value(samples, "tidings_feed_poll_seconds_count", result="ok") == 1
    took = _value(samples, "tidings_feed_poll_seconds_sum", result="ok")
    assert took is not None and took > 0
    for outcome in ("created", "skipped", "failed", "existing"):
        assert _value(samples, "tidings_scheduler_slots_total", outcome=outcome) is not None


def test_the_inbound_listener_counts_bounces_by_kind(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    ana, _ = sent_edition(db, settings)
    port, metrics = free_port(), free_port()
    log = tmp_path / "inbound.log"
    listener = _start(
        ["inbound", "serve", "--port", str(port), "--metrics-port", str(metrics)],
        worker_env(settings, free_port()),
        log,
    )
    try:
        url = f"http://127.0.0.1:{metrics}/metrics"
        before = _scrape_until(url, lambda s: True, log, listener)
        assert _value(before, "tidings_feedback_total", kind="hard_bounce") == 0
        deadline = time.monotonic() + 30
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
                    client.sendmail("", [ana.return_path], dsn(ana.return_path, ana.email))
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        after = _scrape_until(
            url,
            lambda s: _value(s, "tidings_feedback_total", kind="hard_bounce") == 1,
            log,
            listener,
        )
    finally:
        _stop(listener, log)
    for kind in ("soft_bounce", "policy", "complaint"):
        assert _value(after, "tidings_feedback_total", kind=kind) == 0


@pytest.fixture
def polled(db: Database, settings: Settings) -> Iterator[None]:
    """A newsletter whose feed was polled once in this process, and an edition queued."""
    one_off_edition(db, settings, readers=2)
    with feed_server() as feeds:
        feeds.routes["/rss"] = Reply(200, rss([item(1)]))
        feeds.routes["/gone"] = Reply(404, b"not here")
        add_feed(db, "daily", feeds.url("/rss"), allow_private=True)
        add_feed(db, "daily", feeds.url("/gone"), allow_private=True)
        yield


def test_the_web_face_serves_metrics_to_loopback_and_the_token_only(
    db: Database, settings: Settings, polled: None
) -> None:
    token = "metrics-token-0123456789abcdef"
    allowing = settings.model_copy(
        update={"metrics_token": SecretStr(token), "trusted_proxies": "127.0.0.1/32"}
    )
    with web_server(allowing, db) as base:
        before = _samples(httpx.get(f"{base}/metrics").text)
        poll_sources(db, settings.model_copy(update={"feed_allow_private": True}), "daily")
        local = httpx.get(f"{base}/metrics")
        assert local.status_code == 200
        assert local.headers["cache-control"] == "no-store"
        after = _samples(local.text)
        assert _value(after, "tidings_deliveries_queued", edition="1", newsletter="daily") == 2
        for result in ("ok", "error"):
            was = _value(before, "tidings_feed_polls_total", result=result) or 0
            assert _value(after, "tidings_feed_polls_total", result=result) == was + 1

        outside = {"X-Forwarded-For": "203.0.113.9"}  # through the (trusted) proxy
        refused = httpx.get(f"{base}/metrics", headers=outside)
        assert (refused.status_code, refused.text) == (403, METRICS_REFUSED)
        wrong = {**outside, "Authorization": "Bearer not-the-token"}
        assert httpx.get(f"{base}/metrics", headers=wrong).status_code == 403
        good = {**outside, "Authorization": f"Bearer {token}"}
        with_token = httpx.get(f"{base}/metrics", headers=good)
        assert with_token.status_code == 200 and "tidings_deliveries_queued" in with_token.text


def test_without_a_token_a_proxied_request_is_refused_even_from_loopback(
    db: Database, settings: Settings
) -> None:
    with web_server(settings, db) as base:  # no trusted proxies: the peer is loopback
        assert httpx.get(f"{base}/metrics").status_code == 200
        forwarded = httpx.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.status_code == 403
        bearer = httpx.get(
            f"{base}/metrics",
            headers={"Forwarded": "for=203.0.113.9", "Authorization": "Bearer anything"},
        )
        assert bearer.status_code == 403  # no token is set: no token opens it


def test_an_empty_token_setting_opens_nothing(db: Database, settings: Settings) -> None:
    empty = settings.model_copy(update={"metrics_token": SecretStr("")})
    with web_server(empty, db) as base:
        for header in ("Bearer", "bearer"):
            proxied = {"X-Forwarded-For": "203.0.113.9", "Authorization": header}
            assert httpx.get(f"{base}/metrics", headers=proxied).status_code == 403


def test_the_limit_counters_know_every_scope_a_limit_has() -> None:
    """metrics sits below the database models, so it spells the scopes itself: they must
    stay the limits' own (a new scope would otherwise have no series until first counted)."""
    assert sorted(LIMIT_SCOPES) == sorted(scope.value for scope in SendLimitScope)
