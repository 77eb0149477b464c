"""End to end: GET /metrics (bot.metrics) after real searches through the harness, and who may read it."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import OUTCOMES

from .conftest import OFFICER2

OBAMA = "people/obama/obama3.jpg"


async def _scrape(harness, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of the bot's /metrics."""
    async with harness.http.get(f"{harness.bot.local_base}/metrics", headers=headers or {}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _searches(samples: dict, outcome: str) -> float:
    return samples[("frbot_searches_total", (("outcome", outcome),))]


async def test_prometheus_metrics_after_a_search_count_its_outcome_face_work_and_ack_latency(harness):
    await harness.start()
    before = await _scrape(harness)
    assert all(_searches(before, o) == 0 for o in OUTCOMES)  # the closed list, each exported from the start
    assert before[("frbot_face_work_seconds_count", ())] == 0

    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card("offered")
    during = await _scrape(harness)
    assert during[("frbot_open_requests", ())] == 1  # the offer waits for the officer
    await harness.answer_all(upload)
    await harness.wait_kind("result")
    await harness.done(upload)
    [entry] = harness.audit()

    after = await _scrape(harness)
    assert _searches(after, entry["outcome"]) == 1
    assert sum(_searches(after, o) for o in OUTCOMES) == 1
    assert after[("frbot_face_work_seconds_count", ())] >= 1 and after[("frbot_face_work_seconds_sum", ())] > 0
    assert after[("frbot_ack_latency_seconds_count", ())] >= 5  # the upload and four replies, each acked
    assert after[("frbot_open_requests", ())] == 0
    assert after[("frbot_outbox_depth", ())] == 0
    newest = max(e["seq"] for e in harness.audit_log().entries())
    assert after[("frbot_audit_last_seq", ())] == newest >= entry["seq"]


async def test_prometheus_metrics_count_a_refusal_as_denied(harness):
    await harness.start(gallery=False)
    await harness.upload(("p.jpg", b"\xff\xd8"), user=OFFICER2, text="<@UBOT>")  # not a requester, asking
    await harness.slack.wait_for("chat.postEphemeral", ok=True)
    await harness.idle()
    samples = await _scrape(harness)
    assert _searches(samples, "denied") == 1 and _searches(samples, "candidates") == 0
    assert samples[("frbot_face_work_seconds_count", ())] == 0  # a refused photo is never read


async def test_prometheus_metrics_are_served_on_the_local_port_only(harness):
    await harness.start(gallery=False)
    assert ("frbot_outbox_depth", ()) in await _scrape(harness)
    assert harness.bot.local_base != harness.bot.base
    async with harness.http.get(f"{harness.bot.base}/metrics") as resp:
        assert resp.status == 404 and "frbot_" not in await resp.text()
