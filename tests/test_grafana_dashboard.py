"""The Grafana dashboard shipped in the package queries only metrics Tidings has (so renaming
a metric without the dashboard fails here), and has the panels the operator needs."""

import json
import re
from importlib import resources
from typing import Any

from tidings.metrics import registry_with
from tidings.reports.queuegauge import QueueCollector

#: What each kind of metric is exposed as, besides its own name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def _dashboard() -> dict[str, Any]:
    text = resources.files("tidings").joinpath("ops/grafana_dashboard.json").read_text()
    found = json.loads(text)
    assert isinstance(found, dict)
    return found


def _exposed() -> set[str]:
    """Every series name the metrics of tidings.metrics and the queue gauge expose: the
    registry a front door serves (no database here: the gauge comes back empty)."""
    registry = registry_with(QueueCollector(None))  # type: ignore[arg-type]
    names = set()
    for family in registry.collect():
        if family.name.startswith("tidings_"):
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def _queried(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    """Each panel's title -> the tidings_* names its queries use."""
    return {
        panel["title"]: {
            name
            for target in panel["targets"]
            for name in re.findall(r"\btidings_[a-z_]+\b", target["expr"])
        }
        for panel in dashboard["panels"]
    }


def test_every_metric_the_dashboard_queries_exists() -> None:
    exposed = _exposed()
    assert "tidings_queue_latency_seconds_bucket" in exposed  # the check sees histograms
    for title, names in _queried(_dashboard()).items():
        assert names, f"panel {title!r} queries no Tidings metric"
        assert names <= exposed, f"panel {title!r} queries unknown {sorted(names - exposed)}"


def test_the_dashboard_has_the_panels_an_operator_needs() -> None:
    dashboard = _dashboard()
    titles = {panel["title"] for panel in dashboard["panels"]}
    needed = {"Send rate", "Queue depth", "Queue latency", "Bounce rate", "Worker heartbeats"}
    assert needed <= titles
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"  # chosen on import


def test_a_renamed_metric_would_be_caught() -> None:
    dashboard = _dashboard()
    dashboard["panels"][0]["targets"][0]["expr"] = "rate(tidings_mesages_total[5m])"
    assert not _queried(dashboard)["Send rate"] <= _exposed()
