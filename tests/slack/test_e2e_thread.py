"""End to end: the officer's thread stays short (posts counted as CONTRACTS defines them: chat.postMessage into
the request thread; updates, ephemerals and file uploads' own messages do not count), the form with its inline
errors, and the message shortcut."""
from __future__ import annotations

import re

from bot import wording

from .conftest import CASE, JUSTIFICATION, OFFICER, OFFICER2, block_texts, payload

OBAMA = "people/obama/obama3.jpg"
EXCLUDED = (wording.ATTESTATION, wording.result_caveat(True), wording.result_caveat(False), wording.CAVEAT_SHORT,
            wording.CAVEAT)


def thread_posts(slack, upload) -> list:
    """The bot's chat.postMessage calls into the request thread (what the targets count)."""
    return [c for c in slack.call_log("chat.postMessage")
            if c.ok and c.params.get("channel") == upload["channel"] and c.params.get("thread_ts") == upload["ts"]]


def words_shown(slack, upload) -> int:
    """Words over the final blocks of the thread's posts, the caveat and the attestation text left out."""
    total = 0
    for message in slack.messages(CASE, thread_ts=upload["ts"]):
        if not message.get("metadata"):
            continue  # a file upload's own message
        for text in block_texts(message):
            for excluded in EXCLUDED:
                text = text.replace(excluded, " ")
            total += len(re.findall(r"[\w’'.-]+", text))
    return total


async def test_every_answer_in_the_upload_and_one_candidate_is_three_posts_of_few_words(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA), text=f"26-012345 purpose: 1 justification: {JUSTIFICATION}")
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    result = await harness.wait_kind("result")
    await harness.done(upload)
    assert payload(result)["candidate_count"] == 1
    assert [payload(c)["kind"] for c in thread_posts(slack, upload)] == ["card", "result", "contact_sheet"]
    assert words_shown(slack, upload) <= 180, words_shown(slack, upload)


async def test_step_by_step_with_one_typo_in_the_call_number_is_at_most_six_posts(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card("offered")
    await harness.reply(upload, "26-01234")  # a digit short: said in one line
    await harness.wait_kind("invalid", step="call_number")
    await harness.reply(upload, "26-012345")
    await harness.wait_card("purpose")
    await harness.reply(upload, "1")
    await harness.wait_card("justification")
    await harness.reply(upload, JUSTIFICATION)
    await harness.wait_card("attestation")
    await harness.reply(upload, "I attest")
    await harness.wait_kind("result")
    await harness.done(upload)
    kinds = [payload(c)["kind"] for c in thread_posts(slack, upload)]
    assert kinds == ["card", "invalid", "result", "contact_sheet"] and len(kinds) <= 6


async def test_the_form_shows_refused_answers_inline_audits_them_and_fills_the_card(harness, slack):
    await harness.start()
    upload = await harness.upload(harness.face(OBAMA))
    await harness.wait_card("offered")
    await harness.press(upload, "fr_form")
    await slack.wait_for("views.open", ok=True)
    [view] = slack.views()
    assert view["private_metadata"] == harness.card(upload)["metadata"]["event_payload"]["dialog_id"]
    await harness.press(upload, "fr_form", user=OFFICER2)  # anyone else: a private note, no form
    await slack.wait_for("chat.postEphemeral", ok=True)
    assert len(slack.views()) == 1

    refused = await harness.submit_form(upload, call_number="26-04512", purpose=None,
                                        justification="search him because he is Hispanic")
    errors = refused.json()["errors"]
    assert refused.json()["response_action"] == "errors"
    assert set(errors) == {"fr_form_call", "fr_form_purpose", "fr_form_justification"}
    assert errors["fr_form_justification"].startswith("GO 375.01 C forbids")
    await harness.idle()
    steps = [e["step"] for e in harness.rt.core.audit.entries() if e["kind"] == "refusal"]
    assert sorted(steps) == ["call_number", "justification", "purpose"]  # every refused answer is on record

    accepted = await harness.submit_form(upload)
    assert accepted.text == ""  # acked with nothing: the modal closes
    await harness.wait_card("attestation")
    texts = block_texts(harness.card(upload))
    assert wording.card_call_number("26-012345") in texts[1] and wording.ATTESTATION in texts
    assert harness.thread(upload, "invalid") == []  # the form's errors were inline, not posted
    await harness.press(upload, "fr_attest")
    await harness.wait_kind("result")
    await harness.done(upload)


async def test_the_message_shortcut_searches_someone_elses_photo_with_its_poster_recorded(harness, slack):
    await harness.start()
    name, data = harness.face(OBAMA)
    file = slack.add_file("FPOSTED", name, "image/jpeg", data, OFFICER2)
    posted = slack.add_message(CASE, "found on the victim's phone", user=OFFICER2, files=[file])
    await harness.send(posted)  # not a requester, did not ask: nothing
    await harness.idle()
    assert slack.messages(CASE) == []
    await harness.shortcut(posted, user=OFFICER)
    await slack.wait_for("views.open", ok=True)  # the form opens at once
    card = await harness.wait_card("call_number")
    assert f"photo posted by <@{OFFICER2}>" in block_texts(card.params)[0]
    await harness.submit_form(posted)
    await harness.wait_card("attestation")
    await harness.reply(posted, "I attest")
    await harness.wait_kind("result")
    await harness.done(posted)
    [entry] = harness.audit()
    assert entry["requester"]["id"] == OFFICER and entry["photo_source"]["id"] == OFFICER2
    assert entry["outcome"] == "candidates"


async def test_the_message_shortcut_is_refused_privately_to_someone_who_may_not_request(harness, slack):
    await harness.start(gallery=False)
    name, data = harness.face(OBAMA)
    posted = slack.add_message(CASE, "", user=OFFICER, files=[slack.add_file("FP2", name, "image/jpeg", data, OFFICER)])
    await harness.shortcut(posted, user=OFFICER2)
    await slack.wait_for("chat.postEphemeral", ok=True)
    await harness.idle()
    [note] = slack.ephemerals(CASE, OFFICER2)
    assert wording.NOT_AUTHORISED in note["text"] and slack.views() == []
    [denied] = harness.audit()
    assert denied["outcome"] == "denied" and denied["requester"]["id"] == OFFICER2
