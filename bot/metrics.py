"""Prometheus metrics of one server, in a registry of its own (never prometheus-client's global one).

The server wires the hooks: the audit log's `on_append` counts searches by outcome, the face engine's
`on_task_done` times face work, the request handler times acks; the gauges are read when scraped (`render`,
in an I/O thread). Nothing here knows Slack.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # Prometheus' text format
# The closed list of search outcomes (CONTRACTS "Audit"): every one is exported, at 0 until it happens.
OUTCOMES = ("candidates", "no_candidate", "denied", "error", "cancelled", "expired", "review")
# A photo's decode and face analysis takes well under a second; the deadline is [faces] deadline_seconds (30).
FACE_WORK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# Slack gives up on an ack after 3 s.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class Metrics:
    """The metric objects of one server; `render` gives the exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.searches = Counter("frbot_searches", "Search audit entries written by this server, by outcome.",
                                ["outcome"], registry=r)
        for outcome in OUTCOMES:
            self.searches.labels(outcome)
        self.face_work = Histogram("frbot_face_work_seconds", "Each face-engine task (a photo's decode and "
                                   "face analysis), from handing it to the workers to its end, failures and "
                                   "deadlines included.", buckets=FACE_WORK_BUCKETS, registry=r)
        self.ack_latency = Histogram("frbot_ack_latency_seconds", "Time from a verified Slack request "
                                     "arriving to the HTTP response that acks it.", buckets=ACK_BUCKETS, registry=r)
        self.open_requests = Gauge("frbot_open_requests", "Request dialogs not finished (waiting for an "
                                   "answer, finding faces or searching).", registry=r)
        self.outbox_depth = Gauge("frbot_outbox_depth", "Posts queued for Slack (it refused or was unreachable).",
                                  registry=r)
        self.audit_entries = Gauge("frbot_audit_last_seq", "Sequence number of the newest audit entry: entries "
                                   "ever written by anyone (purges do not lower it).", registry=r)

    def watch(self, readers: Mapping[str, Callable[[], float]]) -> None:
        """Read the gauges named in `readers` (open_requests, outbox_depth, audit_entries) when scraped."""
        for name, read in readers.items():
            getattr(self, name).set_function(_safe(name, read))

    def audit_appended(self, entry: Mapping[str, Any]) -> None:
        """The audit log's hook: counts a `search` entry by its outcome."""
        if entry.get("kind") == "search" and entry.get("outcome") in OUTCOMES:
            self.searches.labels(entry["outcome"]).inc()

    def render(self) -> bytes:
        """The exposition (reads the gauges: call it off the event loop)."""
        return generate_latest(self.registry)


def _safe(name: str, read: Callable[[], float]) -> Callable[[], float]:
    """`read`, giving NaN (and a log line) instead of failing the whole scrape."""

    def value() -> float:
        try:
            return float(read())
        except Exception:
            log.exception("metric %s could not be read", name)
            return math.nan

    return value
