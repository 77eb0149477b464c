"""The leader's monthly draw of sampled audits, end to end (on the files and on PostgreSQL): a real search, a
server whose clock is on the 1st of the next month draws once (seed and population recorded, auditors from the
list and a Slack user group), and a restart does not draw again."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from bot.oversight import review, samples
from bot.slack.flow.sampling import draw_samples

from .conftest import OFFICER, bot_settings

TZ = "America/Los_Angeles"  # the test bot's configured timezone (Settings' default)
AUDITOR, AUDITOR2, GROUPED = "UAUDITA", "UAUDITB", "UAUDITG"
AUDITOR_GROUP = "SAUDITORS"


def draws_in(harness) -> list[dict]:
    return [e for e in harness.audit_log().entries() if e.get("kind") == "sample_draw"]


async def until_drawn(harness, count: int) -> list[dict]:
    async with asyncio.timeout(20):
        while len(found := draws_in(harness)) < count:
            await asyncio.sleep(0.05)
    return found


def first_of_next_month(now: datetime) -> datetime:
    """10:00 local on the 1st of the month after `now`'s (local), in UTC."""
    local = now.astimezone(review.zone(TZ))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, 10, tzinfo=review.zone(TZ)).astimezone(UTC)


async def test_a_server_on_the_1st_draws_last_months_sample_once_and_a_restart_does_not_draw_again(harness, slack):
    assert bot_settings(harness.data_dir).timezone == TZ
    slack.add_user(AUDITOR, "auditor.a", display_name="Auditor A")
    slack.add_user(AUDITOR2, "auditor.b", display_name="Auditor B")
    slack.add_user(GROUPED, "auditor.g", display_name="Auditor G")
    slack.add_usergroup(AUDITOR_GROUP, [GROUPED, AUDITOR])  # AUDITOR is listed too: assigned once
    settings = bot_settings(harness.data_dir)
    settings = dataclasses.replace(settings, oversight=dataclasses.replace(
        settings.oversight, auditors=(AUDITOR, AUDITOR2), auditor_groups=(AUDITOR_GROUP,)))

    # This month: one real search through Slack, and eleven more searches that ran (seeded), one that was refused.
    await harness.start(settings=settings)
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"))
    await harness.answer_all(upload)
    await harness.done(upload)
    [real] = harness.audit(request_id=harness.audit()[0]["request_id"])
    assert real["outcome"] in samples.RAN and real["requester"]["id"] == OFFICER
    log = harness.audit_log()
    for i in range(11):
        log.append("search", outcome="no_candidate", request_id=f"FR-SEEDED{i:02d}", requester={"id": "U9", "name": "N"})
    log.append("search", outcome="denied", request_id="FR-REFUSED01", requester={"id": "U9", "name": "N"})
    assert draws_in(harness) == []  # last month had no search: nothing was drawn at this start
    await harness.bot.stop()

    on_the_1st = first_of_next_month(datetime.fromisoformat(real["ts"]))
    bot = await harness.start(settings=settings, clock=lambda: on_the_1st)
    [drawn] = await until_drawn(harness, 1)
    month = review.previous_month(on_the_1st, TZ)
    population = sorted([real["request_id"], *(f"FR-SEEDED{i:02d}" for i in range(11))])
    assert (drawn["month"], drawn["population"], drawn["n"]) == (month, 12, 10)  # max(10, ceil(5 % of 12))
    assert drawn["population_sha256"] == samples.population_sha256(population)
    assert drawn["request_ids"] == samples.draw(population, drawn["seed"], 10)  # reproducible from its seed
    assert samples.recheck(list(harness.audit_log().entries()), drawn).ok
    assert [a["auditor"]["id"] for a in drawn["assignments"]] == [AUDITOR, AUDITOR2, GROUPED] * 3 + [AUDITOR]
    assert drawn["assignments"][0]["auditor"]["name"] == "Auditor A"
    assert await draw_samples(bot.rt) is None  # the daily run on the same day: drawn already
    await bot.stop()

    await harness.start(settings=settings, clock=lambda: on_the_1st)  # a restart on the same day
    await harness.idle()
    assert await draw_samples(harness.rt) is None
    assert len(draws_in(harness)) == 1
