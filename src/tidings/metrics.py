"""The Prometheus metrics every Tidings process keeps, in one place.

They live on the ground floor so that any room (the worker in ``deliver``, the feed poll in
``ingest``) can count without importing upwards. They are process-wide, as Prometheus
counters are meant to be: each process (web, worker, scheduler, ``tidings run``) exposes its
own, and Prometheus adds them up across processes. Figures read from the database at scrape
time (the queue) are collectors of their own (see ``reports/queuegauge``), registered by the
front door that serves them.
"""

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import REGISTRY, Collector

#: Prometheus's text format, as ``/metrics`` and ``--metrics-port`` serve it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MESSAGES = Counter(
    "tidings_messages",
    "Messages a worker finished, by result (sent, deferred, failed, uncertain, released).",
    ["result"],
)
SMTP_SEND_SECONDS = Histogram(
    "tidings_smtp_send_seconds",
    "Time to hand one message to the SMTP relay (from MAIL FROM to the reply after DATA).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
HEARTBEAT_TIME = Gauge(
    "tidings_worker_heartbeat_timestamp_seconds",
    "When this process's worker last wrote its heartbeat (Unix time).",
)
RATE_LIMIT_WAITS = Counter(
    "tidings_rate_limit_waits",
    "Messages held back by a shared sending rate (waited for their time, or a domain's job "
    "sent back to the queue), by the limit's scope (relay, domain).",
    ["scope"],
)
SLOW_DOWNS = Counter(
    "tidings_slow_downs",
    "'Slow down' replies (421, 4.7.x) heard, by the scope they speak for (relay, domain); "
    "each is counted, though a rate is lowered at most once per few seconds.",
    ["scope"],
)
#: The scopes the limit counters count, so every series exists from the start: the values
#: of ``tidings.db.models.SendLimitScope`` (a floor above this one; a test holds them equal).
LIMIT_SCOPES = ("relay", "domain")
for _scope in LIMIT_SCOPES:
    RATE_LIMIT_WAITS.labels(_scope)
    SLOW_DOWNS.labels(_scope)
FEED_POLLS = Counter(
    "tidings_feed_polls",
    "Feed polls by result (ok, not_modified, error).",
    ["result"],
)
FEED_POLL_SECONDS = Histogram(
    "tidings_feed_poll_seconds",
    "Time one feed poll took (fetch, parse and store), by result.",
    ["result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
QUEUE_LATENCY_SECONDS = Histogram(
    "tidings_queue_latency_seconds",
    "From a delivery's due time to its message being accepted by the relay.",
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0),
)
FEEDBACK = Counter(
    "tidings_feedback",
    "Mail that came back and was recorded: bounces and complaints, by kind.",
    ["kind"],
)
SCHEDULER_SLOTS = Counter(
    "tidings_scheduler_slots",
    "Scheduled slots the scheduler handled, by outcome (created, skipped, failed, existing).",
    ["outcome"],
)
#: The outcomes :data:`SCHEDULER_SLOTS` counts, so every series exists from the start.
SLOT_OUTCOMES = ("created", "skipped", "failed", "existing")
for _outcome in SLOT_OUTCOMES:
    SCHEDULER_SLOTS.labels(_outcome)


class _Forward(Collector):
    """Everything a registry collects, inside another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()

    def describe(self) -> Iterable[Metric]:
        return []  # the forwarded registry checks its own names


def registry_with(*collectors: Collector) -> CollectorRegistry:
    """A registry of this process's metrics plus ``collectors`` (the queue, say): one per
    app or metrics server, so two apps in one process never register a collector twice."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(REGISTRY))
    for collector in collectors:
        registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in Prometheus's text format."""
    return generate_latest(registry)


def serve_metrics(port: int, host: str, registry: CollectorRegistry) -> Callable[[], None]:
    """Serve ``registry`` over HTTP at ``host:port`` (any path) in a thread of its own, for
    processes without a web face (a worker, the scheduler); returns a function that stops it.
    An address in use is an OSError, for the front door to report."""
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
