"""Block Kit messages: metadata on every message, Slack's limits, the caveat first, escaping, and buttons whose
action ids and values the request machine accepts. Also the app manifest's scopes and events."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import policy, request, wording
from bot.config import PolicySettings
from bot.faces.gallery import Candidate
from bot.request import Dialog, Step
from bot.service import SearchResult
from bot.slack import blocks
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


def start(text: str = "", files=(("F1", "one.jpg"),)) -> tuple[Dialog, list[request.Effect]]:
    return request.start_dialog(channel="C0CASE", thread_ts="1700000000.000100", requester_id=OFFICER,
                                requester_name="Ofc. Reyes", files=list(files), text=text, now=T0, policy=POLICY)


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


def analysed(n_faces: int, small: tuple[int, ...] = ()) -> tuple[Dialog, list[request.Effect]]:
    """An attested one-image dialog whose image has `n_faces` faces."""
    d = at_step(Step.ATTESTATION)
    d, _ = request.on_action(d, user_id=OFFICER, action=request.ACTION_ATTEST, value="attest", now=at(1),
                             policy=POLICY)
    return request.on_analysed(d, d.images[0].request_id, faces=faces(n_faces, small), probe_sha256="ab" * 32,
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
    ask = next(e for e in face_effects if isinstance(e, request.AskFace))
    img = d_face.image(ask.request_id)
    prefilled_dialog, effects = start(f"call {CALL} purpose: 1 justification: {JUSTIFICATION}")
    pre = next(e for e in effects if isinstance(e, request.Prefilled))
    one = search_result(d_attest, [candidate(1)])
    none = search_result(d_attest, [])
    image = d_attest.images[0]
    return [
        blocks.request_opened(d_attest),
        blocks.request_opened(start(files=[("F1", "a.jpg"), ("F2", "b.jpg")])[0]),
        *(blocks.prompt(step, at_step(step), POLICY) for step in request.QUESTION_STEPS),
        blocks.prompt(Step.FACE_CHOICE, d_face, POLICY),
        blocks.invalid(request.Invalid(Step.CALL_NUMBER, "unknown_call", None, value=CALL), d_purpose, POLICY),
        blocks.invalid(request.Invalid(Step.PURPOSE, "purpose", None), d_purpose, POLICY),
        blocks.invalid(request.Invalid(Step.FACE_CHOICE, "face_choice", None, ask.request_id), d_face, POLICY),
        blocks.prefilled(pre, prefilled_dialog),
        blocks.summary(d_attest),
        blocks.ask_face(d_face, img),
        *(blocks.progress(d_attest, image, s) for s in blocks.PROGRESS_TEXTS),
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
    assert {"prompt", "result", "call_log", "call_thread", "progress", "face_choice", "refusal"} <= kinds


def test_metadata_names_the_dialog_request_call_and_outcome():
    d = at_step(Step.ATTESTATION)
    md = blocks.meta("result", dialog=d, request_id="FR-1", outcome="candidates", step=Step.ATTESTATION,
                     skipped=None, ids=("a", "b"))
    assert md.event_type == "fr_search"
    assert md.event_payload == {"kind": "result", "dialog_id": d.dialog_id, "call_number": CALL,
                                "outcome": "candidates", "request_id": "FR-1", "step": "attestation",
                                "ids": "a,b"}
    whole = blocks.meta("summary", dialog=start(files=[("F1", "a.jpg"), ("F2", "b.jpg")])[0])
    assert whole.event_payload["request_ids"].count("FR-") == 2
    bare = blocks.meta("call_thread", call_number=CALL).event_payload
    assert bare == {"kind": "call_thread", "dialog_id": "", "call_number": CALL, "outcome": "", "request_ids": ""}


def test_ephemeral_kwargs_carry_no_metadata():
    kwargs = blocks.busy(at_step(Step.ATTESTATION)).ephemeral_kwargs()
    assert "metadata" not in kwargs and kwargs["blocks"] and kwargs["text"] == wording.BUSY_NOTE


# --- prompts and buttons the request machine accepts -----------------------------------------------------------


def test_each_prompt_asks_its_question_and_offers_cancel():
    example = policy.example_call_number(POLICY.call_number_pattern)
    call = blocks.prompt(Step.CALL_NUMBER, at_step(Step.CALL_NUMBER), POLICY).kwargs()
    assert example in section_texts(call)[0]
    just = section_texts(blocks.prompt(Step.JUSTIFICATION, at_step(Step.JUSTIFICATION), POLICY).kwargs())[0]
    assert "reasonable suspicion" in just and f"{POLICY.justification_min_chars} characters" in just
    attest = section_texts(blocks.prompt(Step.ATTESTATION, at_step(Step.ATTESTATION), POLICY).kwargs())[0]
    assert attest.startswith(wording.ATTESTATION) and "reply exactly: I attest" in attest
    purpose = section_texts(blocks.prompt(Step.PURPOSE, at_step(Step.PURPOSE), POLICY).kwargs())[0]
    assert "reply with its number" in purpose
    for step in request.QUESTION_STEPS:
        kwargs = blocks.prompt(step, at_step(step), POLICY).kwargs()
        assert [b["action_id"] for b in buttons(kwargs)][-1] == request.ACTION_CANCEL
        assert kwargs["metadata"]["event_payload"]["step"] == step.value


def test_other_steps_are_not_questions():
    d, _ = analysed(1)
    with pytest.raises(ValueError):
        blocks.prompt(Step.SEARCHING, d, POLICY)


@pytest.mark.parametrize("number", [1, 2, 3])
def test_purpose_buttons_are_accepted_by_the_request_machine(number):
    d = at_step(Step.PURPOSE)
    kwargs = blocks.prompt(Step.PURPOSE, d, POLICY).kwargs()
    purpose_buttons = [b for b in buttons(kwargs) if b["action_id"].startswith(request.ACTION_PURPOSE)]
    assert len(purpose_buttons) == 3
    assert len({b["action_id"] for b in purpose_buttons}) == 3  # unique within the block, as Slack requires
    button = purpose_buttons[number - 1]
    assert button["text"]["text"].startswith(f"{number}. ")
    new, effects = request.on_action(d, user_id=OFFICER, action=button["action_id"], value=button["value"],
                                     now=at(1), policy=POLICY)
    assert new.purpose == policy.purpose_by_number(number).code
    assert new.step is Step.JUSTIFICATION
    assert not any(isinstance(e, (request.Stale, request.Invalid)) for e in effects)


def test_attest_button_is_accepted_by_the_request_machine():
    d = at_step(Step.ATTESTATION)
    (button,) = [b for b in buttons(blocks.prompt(Step.ATTESTATION, d, POLICY).kwargs())
                 if b["action_id"] != request.ACTION_CANCEL]
    assert button["text"]["text"] == "I attest"
    new, effects = request.on_action(d, user_id=OFFICER, action=button["action_id"], value=button["value"],
                                     now=at(1), policy=POLICY)
    assert new.attested and new.step is Step.ANALYSING
    assert effects == [request.Analyse((d.images[0].request_id,))]


@pytest.mark.parametrize("step", request.QUESTION_STEPS)
def test_cancel_button_is_accepted_by_the_request_machine(step):
    d = at_step(step)
    cancel = buttons(blocks.prompt(step, d, POLICY).kwargs())[-1]
    assert cancel["style"] == "danger" and cancel["confirm"]["title"]["text"] == wording.CANCEL_CONFIRM_TITLE
    new, effects = request.on_action(d, user_id=OFFICER, action=cancel["action_id"], value=cancel["value"],
                                     now=at(1), policy=POLICY)
    assert new.step is Step.CANCELLED
    assert effects == [request.Cancelled(d.request_ids)]


def test_face_buttons_for_three_faces_are_numbered_and_accepted():
    d, effects = analysed(3, small=(3,))
    ask = next(e for e in effects if isinstance(e, request.AskFace))
    image = d.image(ask.request_id)
    kwargs = check_slack_limits(blocks.ask_face(d, image))
    face_buttons = [b for b in buttons(kwargs) if b["action_id"].startswith(request.ACTION_FACE)]
    assert [b["text"]["text"] for b in face_buttons] == ["Face 1", "Face 2", "Face 3 (small)"]
    assert [b["value"] for b in face_buttons] == [f"{image.request_id}:{k}" for k in (1, 2, 3)]
    assert buttons(kwargs)[-1]["action_id"] == request.ACTION_CANCEL
    text = section_texts(kwargs)[0]
    assert "reply with its number (1 to 3)" in text
    assert kwargs["metadata"]["event_payload"]["request_id"] == image.request_id
    # The prompt for the FACE_CHOICE step is the same question.
    assert blocks.prompt(Step.FACE_CHOICE, d, POLICY).kwargs()["blocks"] == kwargs["blocks"]
    new, out = request.on_action(d, user_id=OFFICER, action=face_buttons[1]["action_id"],
                                 value=face_buttons[1]["value"], now=at(3), policy=POLICY)
    assert request.Search(image.request_id, 2) in out
    assert new.image(image.request_id).face_index == 2


def test_a_crowd_gets_rows_of_face_buttons_within_slacks_limits():
    d, effects = analysed(60)
    image = d.image(next(e for e in effects if isinstance(e, request.AskFace)).request_id)
    kwargs = check_slack_limits(blocks.ask_face(d, image))
    face_buttons = [b for b in buttons(kwargs) if b["action_id"].startswith(request.ACTION_FACE)]
    assert len(face_buttons) == 60
    assert buttons(kwargs)[-1]["action_id"] == request.ACTION_CANCEL


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
    assert_escaped(blocks.summary(d).kwargs())
    assert_escaped(blocks.call_log_entry(d, d.images[0], outcome="no_candidate", result=search_result(d, []),
                                         request_link=None, detail="full").kwargs())
    prefilled_dialog, effects = start(f"call {CALL} purpose: 1 justification: {JUSTIFICATION}")
    prefilled_dialog.justification = d.justification
    assert_escaped(blocks.prefilled(next(e for e in effects if isinstance(e, request.Prefilled)),
                                    prefilled_dialog).kwargs())


def test_a_typed_channel_mention_is_echoed_as_inert_verbatim_text():
    # "@channel" typed in Slack arrives as <!channel>; the dialog keeps "@channel", which a verbatim
    # mrkdwn text shows as typed instead of notifying the channel.
    d = at_step(Step.ATTESTATION, justification=f"{JUSTIFICATION} <!channel> <https://evil.example|click>")
    kwargs = check_slack_limits(blocks.summary(d))
    (section,) = [b for b in kwargs["blocks"] if b["type"] == "section"]
    assert "@channel" in section["text"]["text"] and "<" not in section["text"]["text"]
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


def test_progress_is_one_message_kind_updated_from_searching_to_done():
    d = at_step(Step.ATTESTATION)
    image = d.images[0]
    searching = blocks.progress(d, image, "searching").kwargs()
    done = blocks.progress(d, image, "done").kwargs()
    assert section_texts(searching)[0] == wording.PROGRESS_SEARCHING
    assert section_texts(done)[0] == wording.PROGRESS_DONE
    for kwargs, status in ((searching, "searching"), (done, "done")):
        payload = kwargs["metadata"]["event_payload"]
        assert payload["kind"] == "progress" and payload["status"] == status
        assert payload["request_id"] == image.request_id
    with pytest.raises(ValueError):
        blocks.progress(d, image, "thinking")


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


def test_invalid_answers_are_explained():
    d = at_step(Step.CALL_NUMBER)
    reason = policy.check_call_number("12345", POLICY.call_number_pattern)
    text = section_texts(blocks.invalid(request.Invalid(Step.CALL_NUMBER, "call_number", reason), d,
                                        POLICY).kwargs())[0]
    assert text == reason and "26-012345" in text
    unknown = blocks.invalid(request.Invalid(Step.CALL_NUMBER, "unknown_call", None, value=CALL), d, POLICY)
    assert section_texts(unknown.kwargs())[0] == wording.call_number_unknown(CALL)
    attest = blocks.invalid(request.Invalid(Step.ATTESTATION, "attestation", None), d, POLICY)
    assert section_texts(attest.kwargs())[0] == wording.ATTESTATION_NOT_UNDERSTOOD


def test_request_opened_lists_every_photo_of_a_multi_image_upload():
    d, _ = start(files=[("F1", "a.jpg"), ("F2", "b.jpg")])
    kwargs = blocks.request_opened(d).kwargs()
    everything = "\n".join(texts(kwargs))
    for img in d.images:
        assert f"Request {img.request_id}: {img.file_name}" in everything
    assert f"<@{OFFICER}>" in everything
    single, _ = start()
    assert section_texts(blocks.request_opened(single).kwargs())[0] == \
        wording.request_opened(OFFICER, single.images[0].request_id)


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


def test_every_actions_block_names_its_dialog():
    purpose, attest = at_step(Step.PURPOSE), at_step(Step.ATTESTATION)
    face_dialog, _ = analysed(30)  # two rows of face buttons and the cancel row
    cases = [(blocks.prompt(Step.PURPOSE, purpose, POLICY), purpose),
             (blocks.prompt(Step.ATTESTATION, attest, POLICY), attest),
             (blocks.ask_face(face_dialog, face_dialog.images[0]), face_dialog)]
    for message, dialog in cases:
        ids = [b["block_id"] for b in message.kwargs()["blocks"] if b["type"] == "actions"]
        assert ids and len(set(ids)) == len(ids)  # unique within the message, as Slack requires
        assert {blocks.button_dialog_id(i) for i in ids} == {dialog.dialog_id}
    assert len([b for b in cases[2][0].kwargs()["blocks"] if b["type"] == "actions"]) == 3
    assert blocks.button_dialog_id("actions") is None and blocks.button_dialog_id(None) is None
    assert blocks.button_dialog_id(f"fr:{purpose.dialog_id}:2") == purpose.dialog_id


def test_the_face_question_says_when_the_numbered_photo_is_missing():
    d, _ = analysed(2)
    attached = section_texts(blocks.ask_face(d, d.images[0]).kwargs())[0]
    missing = section_texts(blocks.ask_face(d, d.images[0], image_attached=False).kwargs())[0]
    assert wording.FACE_IMAGE_NOT_ATTACHED not in attached
    assert missing.startswith(attached) and missing.endswith(wording.FACE_IMAGE_NOT_ATTACHED)


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
    from bot.request import ImageRequest

    dialog, _ = start()
    searched = ImageRequest(request_id="FR-KEPT000001", file_id="F2", file_name="b.jpg", outcome="candidates",
                            status="done")
    dialog.images.append(searched)
    first = dialog.images[0].request_id
    message = blocks.ended(dialog, "cancelled", request_ids=(first,))
    text = message.kwargs()["text"]
    assert "FR-KEPT000001" in text and first in text and "No search was run" not in text
    assert blocks.ended(dialog, "cancelled").kwargs()["text"] == wording.DIALOG_CANCELLED
