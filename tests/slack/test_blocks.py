"""Block Kit messages: metadata on every message, Slack's limits, the caveat first, escaping, and buttons whose
action ids and values the request machine accepts. Also the app manifest's scopes and events."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import policy, wording
from bot.config import PolicySettings, Settings
from bot.faces.gallery import Candidate
from bot.request import transitions
from bot.request.transitions import Dialog, Step
from bot.service import SearchResult
from bot.slack import blocks, card
from bot.slack.blocks import Message

from .double import block_errors, metadata_error

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
POLICY = PolicySettings()
OFFICER = "U0OFFICER"
CALL = "26-012345"
JUSTIFICATION = "Armed robbery at the Fifth Street market; store camera shows him pointing a handgun at the clerk."
EVIL = "<!channel> & <https://evil.example|click here>"
MANIFEST = Path(__file__).resolve().parents[2] / "config" / "slack-manifest.yml"


# --- helpers -------------------------------------------------------------------------------------------------


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def faces(n: int, small: tuple[int, ...] = ()) -> list[dict]:
    return [{"index": i, "box": {"top": 10, "right": 100 * i + 80, "bottom": 90, "left": 100 * i},
             "size": 40 if i in small else 80, "quality": "too_small" if i in small else "ok"}
            for i in range(1, n + 1)]


def start(text: str = "", files=(("F1", "one.jpg"),), ask: bool = True) -> tuple[Dialog, list[transitions.Effect]]:
    return transitions.start_dialog(channel="C0CASE", thread_ts="1700000000.000100", requester_id=OFFICER,
                                requester_name="Ofc. Reyes", files=list(files), text=text, now=T0, policy=POLICY,
                                ask=ask)


def at_step(step: Step, justification: str = JUSTIFICATION) -> Dialog:
    """A dialog waiting at `step` (one of the four questions)."""
    texts = {
        Step.CALL_NUMBER: "",
        Step.PURPOSE: f"call {CALL}",
        Step.JUSTIFICATION: f"call {CALL} purpose: 1",
        Step.ATTESTATION: f"call {CALL} purpose: 1 justification: {justification}",
    }
    d, _ = start(texts[step])
    assert d.step is step
    return d


def analysed(n_faces: int, small: tuple[int, ...] = ()) -> tuple[Dialog, list[transitions.Effect]]:
    """A one-image dialog at the attestation whose image has `n_faces` faces."""
    d = at_step(Step.ATTESTATION)
    return transitions.on_analysed(d, d.images[0].request_id, faces=faces(n_faces, small), probe_sha256="ab" * 32,
                               error=None, now=at(2))


def candidate(rank: int, name: str = "Doe, Jane", distance: float = 0.35, fpir: float = 0.002) -> Candidate:
    return Candidate(rank=rank, subject_id=f"S-{rank:03d}", name=name, record_ref=f"BK-{rank}",
                     distance=distance, image_sha256="cd" * 32, margin=0.1, score=0.2, fpir_estimate=fpir)


POINT = {"target_fpir": 0.01, "gallery_size": 400, "calibrated_at": "2026-11-30T10:00:00Z", "method": "gallery",
         "sample_size": 400}


def search_result(d: Dialog, candidates: list[Candidate]) -> SearchResult:
    return SearchResult(request_id=d.images[0].request_id, call_number=CALL, purpose="investigation",
                        faces=faces(1), face_index=1, candidates=candidates, threshold=0.55, gallery_size=400,
                        gallery_images=452, model="dlib_face_recognition_resnet_model_v1",
                        versions={"dlib": "19.24"}, audit_seq=7, operating_point=POINT)


def texts(kwargs: dict[str, Any]) -> list[str]:
    """Every text a person can read in a message: the fallback and each text in its blocks, in order."""
    out = [kwargs["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(kwargs["blocks"])
    return out


def section_texts(kwargs: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in kwargs["blocks"] if b["type"] == "section"]


def buttons(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    return [el for b in kwargs["blocks"] if b["type"] == "actions" for el in b["elements"]]


def check_slack_limits(message: Message) -> dict[str, Any]:
    """The message as Slack would get it, checked the way Slack checks it (the double's own checks)."""
    assert isinstance(message, Message)
    kwargs = message.kwargs()
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON: what the outbox stores
    assert block_errors(kwargs["blocks"]) == []
    assert metadata_error(kwargs["metadata"]) is None
    md = kwargs["metadata"]
    assert re.fullmatch(r"[A-Za-z0-9_]+", md["event_type"]) and md["event_type"] == "fr_search"
    payload = md["event_payload"]
    assert isinstance(payload, dict) and payload["kind"]
    assert {"kind", "dialog_id", "call_number", "outcome"} <= set(payload)
    assert "request_id" in payload or "request_ids" in payload
    # Flat scalars only, never null: what Slack accepts in a payload everywhere.
    assert all(isinstance(v, (str, int, float, bool)) for v in payload.values()), payload
    assert 0 < len(kwargs["text"]) <= 3000
    for block in kwargs["blocks"]:
        for obj in [block.get("text")] + block.get("elements", []):
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                assert obj.get("verbatim") is True  # no auto-linking of "@channel" typed as plain text
    return kwargs


def every_message() -> list[Message]:
    d_purpose = at_step(Step.PURPOSE)
    d_attest = at_step(Step.ATTESTATION)
    d_face, face_effects = analysed(3)
    ask = next(e for e in face_effects if isinstance(e, transitions.AskFace))
    settings = Settings()
    one = search_result(d_attest, [candidate(1)])
    none = search_result(d_attest, [])
    image = d_attest.images[0]
    return [
        card.request_card(d_attest, settings),
        card.request_card(start(files=[("F1", "a.jpg"), ("F2", "b.jpg")])[0], settings),
        card.request_card(start(ask=False)[0], settings),
        *(card.request_card(at_step(step), settings) for step in transitions.QUESTION_STEPS),
        card.request_card(d_face, settings),
        blocks.invalid(transitions.Invalid(Step.CALL_NUMBER, "unknown_call", None, value=CALL), d_purpose, POLICY),
        blocks.invalid(transitions.Invalid(Step.PURPOSE, "purpose", None, text="seven"), d_purpose, POLICY),
        blocks.invalid(transitions.Invalid(Step.FACE_CHOICE, "face_choice", None, ask.request_id), d_face, POLICY),
        blocks.confirm_call(transitions.ConfirmCall("26-012354", ("26-012345",)), d_purpose),
        blocks.result(d_attest, image, one, "https://example.slack.com/archives/C0D/p1"),
        blocks.result(d_attest, image, none, None),
        blocks.contact_sheet(d_attest, image),
        blocks.image_failed(d_attest, image, "no_face"),
        blocks.image_failed(d_attest, image, "The photo is damaged and cannot be read."),
        blocks.ended(d_purpose, "cancelled"),
        blocks.ended(d_purpose, "expired", timeout_minutes=30),
        blocks.ended(d_purpose, "expired"),
        blocks.refusal(wording.NOT_AUTHORISED, request_id="FR-0123456789"),
        blocks.refusal(wording.GUEST_REFUSED),
        blocks.not_requester(d_purpose, "U0OTHER"),
        blocks.busy(d_attest),
        blocks.stale(d_attest),
        blocks.closed(d_attest),
        blocks.non_image("notes.pdf"),
        blocks.call_thread_opening(CALL),
        blocks.call_log_entry(d_attest, image, outcome="candidates", result=one,
                              request_link="https://example.slack.com/archives/C0CASE/p1", detail="full"),
        blocks.call_log_entry(d_attest, image, outcome="no_candidate", result=none, request_link=None,
                              detail="summary"),
        blocks.call_log_entry(d_purpose, None, outcome="cancelled", result=None, request_link=None, detail="full"),
    ]


# --- every message ---------------------------------------------------------------------------------------------


def test_every_builder_returns_a_message_with_metadata_within_slacks_limits():
    messages = every_message()
    assert len(messages) > 30
    kinds = set()
    for message in messages:
        kwargs = check_slack_limits(message)
        kinds.add(kwargs["metadata"]["event_payload"]["kind"])
    assert {"card", "result", "call_log", "call_thread", "invalid", "confirm_call", "refusal"} <= kinds


def test_metadata_names_the_dialog_request_call_and_outcome():
    d = at_step(Step.ATTESTATION)
    md = blocks.meta("result", dialog=d, request_id="FR-1", outcome="candidates", step=Step.ATTESTATION,
                     skipped=None, ids=("a", "b"))
    assert md.event_type == "fr_search"
    assert md.event_payload == {"kind": "result", "dialog_id": d.dialog_id, "call_number": CALL,
                                "outcome": "candidates", "request_id": "FR-1", "step": "attestation",
                                "ids": "a,b"}
    whole = blocks.meta("card", dialog=start(files=[("F1", "a.jpg"), ("F2", "b.jpg")])[0])
    assert whole.event_payload["request_ids"].count("FR-") == 2
    bare = blocks.meta("call_thread", call_number=CALL).event_payload
    assert bare == {"kind": "call_thread", "dialog_id": "", "call_number": CALL, "outcome": "", "request_ids": ""}


def test_ephemeral_kwargs_carry_no_metadata():
    kwargs = blocks.busy(at_step(Step.ATTESTATION)).ephemeral_kwargs()
    assert "metadata" not in kwargs and kwargs["blocks"] and kwargs["text"] == wording.BUSY_NOTE


# --- prompts and buttons the request machine accepts -----------------------------------------------------------


# --- results ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 3])
def test_result_puts_the_caveat_first_every_time(n):
    d = at_step(Step.ATTESTATION)
    res = search_result(d, [candidate(i) for i in range(1, n + 1)])
    kwargs = check_slack_limits(blocks.result(d, d.images[0], res, None))
    assert kwargs["blocks"][0]["type"] == "section"
    assert section_texts(kwargs)[0] == wording.result_caveat(n > 0)
    assert kwargs["text"].startswith(wording.CAVEAT_SHORT)
    assert kwargs["metadata"]["event_payload"]["outcome"] == ("candidates" if n else "no_candidate")
    assert kwargs["metadata"]["event_payload"]["candidate_count"] == n
    joined = "\n".join(texts(kwargs))
    if n == 0:
        assert wording.NO_CANDIDATE_CAVEAT in joined


def test_result_lists_ranked_candidates_with_estimates_then_the_reminder_and_the_call_thread():
    d = at_step(Step.ATTESTATION)
    res = search_result(d, [candidate(1, "Doe, Jane", 0.30, 0.0025), candidate(2, "Roe, Rick", 0.52, 0.008)])
    link = "https://example.slack.com/archives/C0DISPATCH/p1700000000000200"
    kwargs = blocks.result(d, d.images[0], res, link).kwargs()
    sections = section_texts(kwargs)
    body = "\n".join(sections)
    assert ("1. Doe, Jane (subject S-001, record BK-1): distance 0.300; a person not in the gallery scores this "
            "well in about 1 in 400 searches of these 400 people") in body
    assert "2. Roe, Rick (subject S-002, record BK-2): distance 0.520; a person not in the gallery scores this " \
        "well in about 1 in 120 searches" in body
    details = "\n".join(texts(kwargs))
    assert "false-match target 1 in 100 searches; calibrated on this gallery 2026-11-30" in details
    assert body.index("1. Doe") < body.index("2. Roe")
    assert sections[-1] == wording.document_reminder(res.request_id)
    assert "GO 375.01 D" in sections[-1] and res.request_id in sections[-1]
    assert f"<{link}|call thread>" in "\n".join(texts(kwargs))
    no_link = blocks.result(d, d.images[0], res, None).kwargs()
    assert not any("call thread" in t for t in texts(no_link))
    # A link that is not https is never written as a link.
    unsafe = blocks.result(d, d.images[0], res, "javascript:alert(1)").kwargs()
    assert "javascript" not in json.dumps(unsafe)


def test_result_notes_a_small_face_when_the_minimum_is_given():
    d, _ = analysed(1, small=(1,))
    image = d.images[0]
    res = search_result(d, [candidate(1)])
    kwargs = blocks.result(d, image, res, None, min_face_px=60).kwargs()
    assert wording.face_too_small_note(1, 60) in texts(kwargs)


def test_twenty_candidates_with_huge_names_stay_within_slacks_limits():
    d = at_step(Step.ATTESTATION)
    huge = ("<!here> & " * 400) + "x" * 3000
    res = search_result(d, [candidate(i, huge, 0.3 + i / 100) for i in range(1, 21)])
    kwargs = check_slack_limits(blocks.result(d, d.images[0], res, None))
    assert len(kwargs["blocks"]) <= 50
    assert all(len(t) <= 3000 for t in section_texts(kwargs))
    body = "\n".join(section_texts(kwargs))
    for i in range(1, 21):  # every candidate is shown, none is lost to the limits
        assert f"(subject S-{i:03d}, record BK-{i})" in body
    assert section_texts(kwargs)[0] == wording.CAVEAT
    log = check_slack_limits(blocks.call_log_entry(d, d.images[0], outcome="candidates", result=res,
                                                   request_link=None, detail="full"))
    assert all(f"(subject S-{i:03d}, record BK-{i})" in json.dumps(log) for i in range(1, 21))


def test_far_too_many_candidates_are_cut_with_a_note():
    d = at_step(Step.ATTESTATION)
    res = search_result(d, [candidate(i, "N" * 200) for i in range(1, 501)])
    kwargs = check_slack_limits(blocks.result(d, d.images[0], res, None))
    assert len(kwargs["blocks"]) <= 50
    note = next(t for t in texts(kwargs) if "not shown here" in t)
    shown = sum(t.count("(subject S-") for t in section_texts(kwargs))
    assert note == wording.candidates_not_shown(500 - shown)
    assert section_texts(kwargs)[0] == wording.CAVEAT


# --- escaping ----------------------------------------------------------------------------------------------------


def assert_escaped(kwargs: dict[str, Any]) -> None:
    everything = "\n".join(texts(kwargs))
    assert "<!channel>" not in everything and "<https://evil" not in everything
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click here&gt;" in everything


def test_a_justification_is_escaped_wherever_it_is_echoed():
    # Replies reach the dialog as plain text (Slack markup folded by bot.policy); whatever it holds, control
    # characters are escaped when echoed.
    d = at_step(Step.ATTESTATION)
    d.justification = f"{JUSTIFICATION} {EVIL}"
    assert_escaped(card.request_card(d, Settings()).kwargs())
    assert_escaped(blocks.call_log_entry(d, d.images[0], outcome="no_candidate", result=search_result(d, []),
                                         request_link=None, detail="full").kwargs())
    assert_escaped(blocks.invalid(transitions.Invalid(Step.JUSTIFICATION, "purpose", None, text=EVIL), d, POLICY).kwargs())


def test_a_typed_channel_mention_is_echoed_as_inert_verbatim_text():
    # "@channel" typed in Slack arrives as <!channel>; the dialog keeps "@channel", which a verbatim
    # mrkdwn text shows as typed instead of notifying the channel.
    d = at_step(Step.ATTESTATION, justification=f"{JUSTIFICATION} <!channel> <https://evil.example|click>")
    kwargs = check_slack_limits(card.request_card(d, Settings()))
    section = next(b for b in kwargs["blocks"] if b["type"] == "section" and "Justification" in b["text"]["text"])
    assert "@channel" in section["text"]["text"] and "<" not in section["text"]["text"].replace("<@U0OFFICER>", "")
    assert section["text"]["verbatim"] is True


def test_a_candidate_name_is_escaped_in_the_result_and_the_call_log():
    d = at_step(Step.ATTESTATION)
    res = search_result(d, [candidate(1, f"Doe {EVIL}")])
    assert_escaped(blocks.result(d, d.images[0], res, None).kwargs())
    assert_escaped(blocks.call_log_entry(d, d.images[0], outcome="candidates", result=res, request_link=None,
                                         detail="full").kwargs())


def test_file_names_and_image_errors_are_escaped():
    d, _ = start(files=[("F1", "<!channel>.jpg")])
    kwargs = blocks.image_failed(d, d.images[0], "<!here> broke").kwargs()
    everything = "\n".join(texts(kwargs)) + "\n".join(texts(blocks.non_image("<!here>.pdf").kwargs()))
    assert "<!" not in everything and "&lt;!channel&gt;.jpg" in everything


# --- other messages ------------------------------------------------------------------------------------------------


def test_image_failures_are_worded_from_codes_or_sentences():
    d = at_step(Step.ATTESTATION)
    image = d.images[0]
    assert section_texts(blocks.image_failed(d, image, "no_face").kwargs())[0] == wording.NO_FACE
    assert section_texts(blocks.image_failed(d, image, "missing_files_scope").kwargs())[0] == \
        wording.FILES_READ_MISSING
    corrupt = blocks.image_failed(d, image, "corrupt").kwargs()
    assert "damaged" in section_texts(corrupt)[0]
    assert corrupt["metadata"]["event_payload"] == {**corrupt["metadata"]["event_payload"], "outcome": "error",
                                                    "error": "corrupt"}


def test_invalid_answers_are_one_line_naming_what_was_read():
    d = at_step(Step.CALL_NUMBER)
    reason = policy.check_call_number("12345", POLICY.call_number_pattern)
    text = section_texts(blocks.invalid(transitions.Invalid(Step.CALL_NUMBER, "call_number", reason, text="26-04512"), d,
                                        POLICY).kwargs())[0]
    assert text == "‘26-04512’ is not a call number like 26-012345 — reply again."
    unknown = blocks.invalid(transitions.Invalid(Step.CALL_NUMBER, "unknown_call", None, value=CALL), d, POLICY)
    assert section_texts(unknown.kwargs())[0] == wording.call_number_unknown(CALL)
    attest = blocks.invalid(transitions.Invalid(Step.ATTESTATION, "attestation", None, text="ok"), d, POLICY)
    assert section_texts(attest.kwargs())[0] == wording.not_the_attestation("ok")
    refused = blocks.invalid(transitions.Invalid(Step.JUSTIFICATION, "justification", wording.JUSTIFICATION_PROTECTED_CLASS,
                                             text="he is Hispanic"), d, POLICY)
    assert section_texts(refused.kwargs())[0].startswith("GO 375.01 C forbids")
    for message in (unknown, attest, refused):
        assert wording.prompt_justification(40) not in json.dumps(message.kwargs())  # never the whole question


def test_call_log_entry_full_and_summary():
    d = at_step(Step.ATTESTATION)
    image = d.images[0]
    res = search_result(d, [candidate(1), candidate(2)])
    link = "https://example.slack.com/archives/C0CASE/p1700000000000100"
    full = blocks.call_log_entry(d, image, outcome="candidates", result=res, request_link=link, detail="full",
                                 timezone="America/Los_Angeles").kwargs()
    sections = section_texts(full)
    assert sections[0] == wording.CAVEAT  # the candidates in the call thread are caveated too
    assert f"<@{OFFICER}>" in sections[1] and "Purpose: Active investigation" in sections[1]
    assert f"<{link}|request thread>" in sections[1] and "2 candidates" in sections[1]
    assert "(subject S-002" in sections[-1]
    assert full["metadata"]["event_payload"]["call_number"] == CALL
    assert full["metadata"]["event_payload"]["outcome"] == "candidates"
    summary = blocks.call_log_entry(d, image, outcome="candidates", result=res, request_link=link,
                                    detail="summary").kwargs()
    assert "(subject S-" not in json.dumps(summary)
    assert wording.CAVEAT_SHORT in texts(summary) and "2 candidates" in section_texts(summary)[0]
    # CONTRACTS: "summary" is outcome, count and link only: the justification never reaches dispatch.
    assert JUSTIFICATION[:30] not in json.dumps(summary) and "Justification" not in json.dumps(summary)
    assert "Active investigation" not in json.dumps(summary)
    text = section_texts(summary)[0]
    assert f"<{link}|request thread>" in text and image.request_id in text
    error = blocks.call_log_entry(d, image, outcome="error", result=None, request_link=None, detail="summary")
    assert JUSTIFICATION[:30] not in json.dumps(error.kwargs())


def test_call_thread_notification_names_the_call_and_says_leads_not_identifications():
    d = at_step(Step.ATTESTATION)
    image = d.images[0]
    two = blocks.call_log_entry(d, image, outcome="candidates", result=search_result(d, [candidate(1), candidate(2)]),
                                request_link=None, detail="full").kwargs()["text"]
    assert two.startswith(f"Call {CALL}: facial recognition request {image.request_id}")
    assert "2 possible leads to check, not identifications" in two and "Investigative leads only" in two
    assert "candidates returned" not in two
    one = blocks.call_log_entry(d, image, outcome="candidates", result=search_result(d, [candidate(1)]),
                                request_link=None, detail="summary").kwargs()["text"]
    assert "1 possible lead to check, not an identification" in one
    none = blocks.call_log_entry(d, image, outcome="no_candidate", result=search_result(d, []),
                                 request_link=None, detail="full").kwargs()["text"]
    assert f"Call {CALL}" in none and "no candidate (not an exclusion)" in none


# --- the app manifest --------------------------------------------------------------------------------------------

SCOPES = ("files:read", "files:write", "chat:write", "channels:history", "groups:history", "channels:read",
          "groups:read", "reactions:write", "users:read", "usergroups:read", "commands", "im:write")
EVENTS = ("message.channels", "message.groups")  # file_shared is unused, so not subscribed


def yaml_list(text: str, key: str) -> list[str]:
    """The items of the block list under `key:` (a tiny reader, since PyYAML is not a dependency)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{key}:")
    items = []
    for line in lines[start + 1:]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.startswith("- "):
            break
        items.append(stripped[2:].split(" #")[0].strip())
    return items


def test_manifest_lists_exactly_the_scopes_and_events_used():
    text = MANIFEST.read_text(encoding="utf-8")
    assert sorted(yaml_list(text, "bot")) == sorted(SCOPES)
    assert sorted(yaml_list(text, "bot_events")) == sorted(EVENTS)
    lines = [line.split(" #")[0].strip() for line in text.splitlines()]
    assert "should_escape: true" in lines and "command: /frs" in lines[lines.index("slash_commands:") + 1]
    assert "socket_mode_enabled: false" in lines and "org_deploy_enabled: false" in lines
    assert lines[lines.index("interactivity:") + 1] == "is_enabled: true"
    assert text.count("request_url: https://YOUR-HOST/slack/events") == 2  # events and interactivity
    assert "url: https://YOUR-HOST/slack/events" in lines  # /frs
    assert 'usage_hint: "audit CALL | audit @user [since YYYY-MM-DD] | report [YYYY-MM] | status | help"' in lines
    # The message shortcut, with the callback id its listener answers.
    from bot.slack.listeners.shortcuts.search_photo import SHORTCUT_CALLBACK

    shortcut = lines.index("- name: Facial recognition search")
    assert lines[shortcut + 1:shortcut + 3] == ["type: message", f"callback_id: {SHORTCUT_CALLBACK}"]
    try:
        import yaml
    except ImportError:
        return  # PyYAML is not a dependency: the line checks above stand in for a parse
    doc = yaml.safe_load(text)
    assert sorted(doc["oauth_config"]["scopes"]["bot"]) == sorted(SCOPES)
    assert sorted(doc["settings"]["event_subscriptions"]["bot_events"]) == sorted(EVENTS)
    assert doc["settings"]["interactivity"]["is_enabled"] is True
    (frs,) = doc["features"]["slash_commands"]
    assert frs["command"] == "/frs" and frs["should_escape"] is True


def test_ended_after_another_photo_was_searched_names_what_was_kept():
    from bot.request.transitions import ImageRequest

    dialog, _ = start()
    searched = ImageRequest(request_id="FR-KEPT000001", file_id="F2", file_name="b.jpg", outcome="candidates",
                            status="done")
    dialog.images.append(searched)
    first = dialog.images[0].request_id
    message = blocks.ended(dialog, "cancelled", request_ids=(first,))
    text = message.kwargs()["text"]
    assert "FR-KEPT000001" in text and first in text and "No search was run" not in text
    assert blocks.ended(dialog, "cancelled").kwargs()["text"] == wording.DIALOG_CANCELLED
