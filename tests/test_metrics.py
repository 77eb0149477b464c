"""bot.metrics without a server: a registry per instance, the audit hook, gauges read when scraped."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import OUTCOMES, Metrics
from bot.store.audit_log import AuditLog

KEY = {"BOT_AUDIT_KEY": "metrics-test-key-0123456789"}


def _values(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    text = metrics.render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_prometheus_metrics_each_server_has_its_own_registry():
    one, two = Metrics(), Metrics()  # a second server in the same process does not clash
    one.searches.labels("denied").inc()
    assert _values(one)[("frbot_searches_total", (("outcome", "denied"),))] == 1
    assert _values(two)[("frbot_searches_total", (("outcome", "denied"),))] == 0


def test_prometheus_metrics_count_search_entries_by_outcome_through_the_audit_hook(data_dir):
    metrics = Metrics()
    log = AuditLog.open(data_dir, KEY)
    log.on_append = metrics.audit_appended
    log.append("search", outcome="no_candidate", request_id="FR-1")
    log.append("search", outcome="denied", request_id="FR-2")
    log.append("audit_access", actor={"id": "u"}, action="query", query={})  # not a search
    values = _values(metrics)
    counts = {o: values[("frbot_searches_total", (("outcome", o),))] for o in OUTCOMES}
    assert counts == {**dict.fromkeys(OUTCOMES, 0.0), "no_candidate": 1.0, "denied": 1.0}


def test_prometheus_metrics_audit_last_seq_reads_the_tail_and_survives_a_purge(data_dir):
    now = datetime.now(UTC)
    log = AuditLog.open(data_dir, KEY, clock=lambda: now)
    assert log.last_seq() == 0  # no log yet
    for i in range(3):
        log.append("search", outcome="error", request_id=f"FR-{i}")
    assert log.last_seq() == 3
    log.purge_before(now + timedelta(seconds=1), actor="test")  # removes all three, appends the purge entry
    assert log.last_seq() == 4
    metrics = Metrics()
    metrics.watch({"audit_entries": log.last_seq})
    assert _values(metrics)[("frbot_audit_last_seq", ())] == 4


def test_prometheus_metrics_a_gauge_that_cannot_be_read_does_not_fail_the_scrape(caplog):
    metrics = Metrics()

    def broken() -> float:
        raise OSError("store closed")

    metrics.watch({"open_requests": broken, "outbox_depth": lambda: 2})
    values = _values(metrics)
    assert values[("frbot_outbox_depth", ())] == 2
    assert values[("frbot_open_requests", ())] != values[("frbot_open_requests", ())]  # NaN
    assert "open_requests could not be read" in caplog.text
