"""The database stopped for 30 s under a running server (issue 17 item 5; CONTRACTS ### 11 and 13): the officer is
told once, directly, that the search is delayed; every input sent meanwhile is kept in the spool and applied in
order once the database is back; nothing is lost, the server never stops, and the search runs once."""
from __future__ import annotations

import asyncio
import time

import pytest

from bot import wording

from .conftest import JUSTIFICATION, block_texts, payload

pytestmark = pytest.mark.parametrize("store_kind", ["postgresql"])

OBAMA = "people/obama/obama3.jpg"
OUTAGE_S = 30


async def test_the_database_stopped_for_30_s_loses_no_input_and_tells_the_officer_once(harness, slack, pg_control):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA), text="26-012345")
    await harness.wait_card("purpose")
    await harness.reply(upload, "1")
    await harness.wait_card("justification")

    pg_control.stop()
    stopped = time.monotonic()
    await harness.reply(upload, JUSTIFICATION)  # acked at once, though nothing can be saved
    delayed = await harness.wait_kind("database_delayed", timeout=30)
    assert block_texts(delayed.params) == [wording.DATABASE_DELAYED]
    await harness.reply(upload, "I attest")  # a second input while the database is away: kept too, told once
    await asyncio.sleep(3)
    assert len(harness.thread(upload, "database_delayed")) == 1
    async with harness.http.get(f"{harness.bot.local_base}/healthz") as resp:  # up, and says what is wrong
        assert resp.status == 503 and (await resp.json())["database"] == "unreachable"
    assert harness.thread(upload, "result") == []

    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    pg_control.start()
    result = await harness.wait_kind("result", timeout=60)  # both inputs applied, in order: the search ran
    await harness.done(upload)
    [entry] = harness.audit(request_id=payload(result)["request_id"])
    assert entry["justification"] == JUSTIFICATION and entry["attestation"]["attested"] is True
    assert entry["outcome"] == "candidates" and harness.verify_audit()
    assert len(harness.thread(upload, "result")) == 1 and len(harness.thread(upload, "database_delayed")) == 1
    assert await harness.rt.io(harness.rt.spool.pending) == []  # nothing left waiting
    assert (await harness.healthz())["ok"] is True
