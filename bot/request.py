"""The request dialog in an upload's Slack thread: a pure state machine plus its persisted store.

The machine knows nothing of Slack, files or clocks. Each input (a thread reply, a button action, a face
analysis result, a search result, a clock tick) takes the current `Dialog` and returns the new `Dialog`
plus a list of effects: plain dataclasses the Slack adapter turns into messages, face work and audit
entries. Time is passed in as `now` (timezone-aware), never read here.

One upload is one dialog; every image in it is one `ImageRequest` with its own request id and audit
trail. The answers (call number, purpose, justification, attestation) are shared by all images; a face
choice is asked only for an image that has several faces, one image at a time.

Steps, in order: CALL_NUMBER -> PURPOSE -> JUSTIFICATION -> ATTESTATION (the input steps) -> ANALYSING
(faces found on each image) -> FACE_CHOICE (only when an image has several faces) -> SEARCHING -> DONE.
CANCELLED and EXPIRED end a dialog early; DONE, CANCELLED and EXPIRED are terminal.

Button action ids (the adapter uses these in Block Kit; a ":suffix" is allowed and ignored, since Slack
wants action ids unique within a block): ACTION_PURPOSE (value = purpose code), ACTION_ATTEST,
ACTION_FACE (value = "request_id:index"), ACTION_CANCEL.
"""
from __future__ import annotations

import contextlib
import copy
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from tinydb import Query

# Imported under another name: `policy` is also the pinned name of the settings parameter below.
from bot import policy as _policy
from bot.config import PolicySettings
from bot.storage import file_lock, open_tinydb


class Step(str, Enum):
    """Where a dialog stands. The value is what is persisted."""

    CALL_NUMBER = "call_number"
    PURPOSE = "purpose"
    JUSTIFICATION = "justification"
    ATTESTATION = "attestation"
    ANALYSING = "analysing"
    FACE_CHOICE = "face_choice"
    SEARCHING = "searching"
    DONE = "done"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# The questions asked before any face work, in the order they are asked.
QUESTION_STEPS = (Step.CALL_NUMBER, Step.PURPOSE, Step.JUSTIFICATION, Step.ATTESTATION)
# Steps that wait on the requester: these (and only these) can time out.
INPUT_STEPS = QUESTION_STEPS + (Step.FACE_CHOICE,)
# Steps that wait on the bot's own face work.
WORK_STEPS = (Step.ANALYSING, Step.SEARCHING)
TERMINAL_STEPS = (Step.DONE, Step.CANCELLED, Step.EXPIRED)

# Image statuses. A failed image is "done" with outcome "error" (and its error code in `error`).
PENDING, NEEDS_FACE, SEARCHING, DONE = "pending", "needs_face", "searching", "done"
IMAGE_STATUSES = (PENDING, NEEDS_FACE, SEARCHING, DONE)
# The audit outcomes an image can end with (bot.audit.OUTCOMES).
IMAGE_OUTCOMES = ("candidates", "no_candidate", "error", "cancelled", "expired", "denied")

ACTION_PURPOSE = "fr_purpose"
ACTION_ATTEST = "fr_attest"
ACTION_FACE = "fr_face"
ACTION_CANCEL = "fr_cancel"

# Field names as Prefilled reports them (they match Dialog attributes and the audit's field names).
PREFILL_FIELDS = ("call_number", "purpose", "justification")


def new_request_id() -> str:
    """A short unique request id an officer can quote in a report (e.g. FR-3F9A0C12D4)."""
    return "FR-" + uuid.uuid4().hex[:10].upper()


def new_dialog_id() -> str:
    """A unique id for one dialog (one upload thread)."""
    return "D-" + uuid.uuid4().hex


def _iso(now: datetime) -> str:
    # Naive times would compare wrongly against stored UTC times: refuse them early.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("times passed to the dialog must be timezone-aware (UTC)")
    return now.isoformat()


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)  # Python 3.11 reads a trailing "Z" too


# --------------------------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Effect:
    """Something the adapter must do after a transition (post, audit, run face work)."""


@dataclass(frozen=True)
class Prompt(Effect):
    """Ask the question of `step` (for ATTESTATION: the attestation text with its button)."""

    step: Step


@dataclass(frozen=True)
class Prefilled(Effect):
    """These answers were taken from the upload message's text; their values are on the dialog."""

    fields: tuple[str, ...]


@dataclass(frozen=True)
class Invalid(Effect):
    """An answer was not accepted; the step is asked again.

    `code` says which check failed, `reason` is the policy module's sentence when it gives one (else None,
    and the adapter words it from `code`):
    "call_number" (reason: policy.check_call_number), "unknown_call" (reason None, `value` = the call
    number: wording.call_number_unknown), "purpose" (reason None for a reply that names no purpose:
    wording.PURPOSE_NOT_UNDERSTOOD; else policy.check_purpose), "justification" (reason:
    policy.check_justification), "attestation" (reason None: wording.ATTESTATION_NOT_UNDERSTOOD),
    "face_choice" (reason None, `request_id` names the image: wording.face_choice_not_understood(n)).
    """

    step: Step
    code: str
    reason: str | None = None
    request_id: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Summary(Effect):
    """Echo every answer before the attestation is asked."""

    call_number: str
    purpose: str
    justification: str


@dataclass(frozen=True)
class Analyse(Effect):
    """Find the faces on these images (once each: the boxes are stored, never re-detected)."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class AskFace(Effect):
    """Post this image with numbered boxes; the requester picks one by button or by replying the number."""

    request_id: str
    faces: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ImageFailed(Effect):
    """This image cannot be searched (`reason`: "no_face" or the image error code); audit it as error."""

    request_id: str
    reason: str


@dataclass(frozen=True)
class Search(Effect):
    """Run the search for this image with the chosen face (numbered from 1, left to right)."""

    request_id: str
    face_index: int


@dataclass(frozen=True)
class NotRequester(Effect):
    """Someone other than the requester answered; tell them briefly (ephemeral), change nothing."""

    user_id: str


@dataclass(frozen=True)
class Cancelled(Effect):
    """The requester cancelled; audit each of these unfinished images as cancelled."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class Expired(Effect):
    """The dialog timed out; audit each of these unfinished images as expired."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class Busy(Effect):
    """A reply arrived while faces are being found or searched; nothing to answer right now."""

    step: Step


@dataclass(frozen=True)
class Closed(Effect):
    """A button was pressed on a dialog that has ended."""

    step: Step


@dataclass(frozen=True)
class Stale(Effect):
    """A button for a question that is not the current one (an earlier message, a double tap)."""

    action: str
    step: Step


@dataclass(frozen=True)
class Done(Effect):
    """Every image has its result; the dialog is finished (e.g. clear the progress reaction)."""

    request_ids: tuple[str, ...]


# ------------------------------------------------------------------------------------------ the state


@dataclass
class ImageRequest:
    """One image of an upload: one request id, one search, one audit trail."""

    request_id: str
    file_id: str
    file_name: str
    probe_sha256: str | None = None
    # Face dicts as bot.faces.engine.Face.as_dict gives them; stored so a resume never re-detects.
    faces: list[dict[str, Any]] | None = None
    face_index: int | None = None
    status: str = PENDING
    outcome: str | None = None
    error: str | None = None
    result_ts: str | None = None
    face_asked: bool = False
    analysed_at: str | None = None
    chosen_at: str | None = None
    result_at: str | None = None

    @property
    def finished(self) -> bool:
        """True once the image has its outcome (result, error, cancelled or expired)."""
        return self.status == DONE

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy."""
        return {
            "request_id": self.request_id,
            "file_id": self.file_id,
            "file_name": self.file_name,
            "probe_sha256": self.probe_sha256,
            "faces": copy.deepcopy(self.faces),  # boxes are nested dicts: share nothing
            "face_index": self.face_index,
            "status": self.status,
            "outcome": self.outcome,
            "error": self.error,
            "result_ts": self.result_ts,
            "face_asked": self.face_asked,
            "analysed_at": self.analysed_at,
            "chosen_at": self.chosen_at,
            "result_at": self.result_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRequest:
        """Rebuild from `to_dict` output."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["faces"] = copy.deepcopy(known.get("faces"))
        return cls(**known)


@dataclass
class Dialog:
    """One upload's request dialog, as persisted between events."""

    dialog_id: str
    channel: str
    thread_ts: str  # the upload message's ts: the request thread
    requester_id: str
    requester_name: str
    created_at: str  # the upload time
    updated_at: str
    step: Step
    images: list[ImageRequest]
    call_number: str | None = None
    purpose: str | None = None
    justification: str | None = None
    attested: bool = False
    # When each answer was given (key: step value, or "cancel"); pre-filled answers carry the upload time.
    answer_times: dict[str, str] = field(default_factory=dict)
    prefilled: list[str] = field(default_factory=list)
    source_event_id: str | None = None
    ended_at: str | None = None

    @property
    def terminal(self) -> bool:
        return self.step in TERMINAL_STEPS

    @property
    def request_ids(self) -> tuple[str, ...]:
        return tuple(i.request_id for i in self.images)

    def image(self, request_id: str) -> ImageRequest | None:
        """The image with this request id, or None."""
        for img in self.images:
            if img.request_id == request_id:
                return img
        return None

    def answers(self) -> _policy.Answers:
        """The policy answers given so far."""
        return _policy.Answers(
            call_number=self.call_number,
            purpose=self.purpose,
            justification=self.justification,
            attested=self.attested,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy for persistence."""
        return {
            "dialog_id": self.dialog_id,
            "channel": self.channel,
            "thread_ts": self.thread_ts,
            "requester_id": self.requester_id,
            "requester_name": self.requester_name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "step": self.step.value,
            "call_number": self.call_number,
            "purpose": self.purpose,
            "justification": self.justification,
            "attested": self.attested,
            "answer_times": dict(self.answer_times),
            "prefilled": list(self.prefilled),
            "images": [i.to_dict() for i in self.images],
            "source_event_id": self.source_event_id,
            "ended_at": self.ended_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dialog:
        """Rebuild from `to_dict` output."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["step"] = Step(known["step"])
        known["images"] = [ImageRequest.from_dict(i) for i in known.get("images", [])]
        known["answer_times"] = dict(known.get("answer_times") or {})
        known["prefilled"] = list(known.get("prefilled") or [])
        return cls(**known)

    def copy(self) -> Dialog:
        """A deep copy, so a transition never changes the dialog it was given."""
        return Dialog.from_dict(self.to_dict())


Result = tuple[Dialog, list[Effect]]


# ------------------------------------------------------------------------------------------- helpers


def _next_question(d: Dialog) -> Step | None:
    """The first question not yet answered, or None when all four are."""
    values = {
        Step.CALL_NUMBER: d.call_number,
        Step.PURPOSE: d.purpose,
        Step.JUSTIFICATION: d.justification,
        Step.ATTESTATION: d.attested or None,
    }
    for step in QUESTION_STEPS:
        if not values[step]:
            return step
    return None


def _ask(d: Dialog) -> list[Effect]:
    """Move to the first unanswered question and ask it (with the summary before the attestation)."""
    step = _next_question(d)
    if step is None:  # all answered: only reachable through _attest
        return []
    d.step = step
    effects: list[Effect] = []
    if step is Step.ATTESTATION:
        effects.append(Summary(d.call_number or "", d.purpose or "", d.justification or ""))
    effects.append(Prompt(step))
    return effects


def _asked_image(d: Dialog) -> ImageRequest | None:
    """The image whose face question is out (at most one at a time, so a bare number is unambiguous)."""
    for img in d.images:
        if img.status == NEEDS_FACE and img.face_asked:
            return img
    return None


def _ask_next_face(d: Dialog) -> list[Effect]:
    """Ask the face question for the next image that needs one, if none is out."""
    if _asked_image(d) is not None:
        return []
    for img in d.images:
        if img.status == NEEDS_FACE:
            img.face_asked = True
            return [AskFace(img.request_id, tuple(copy.deepcopy(img.faces or [])))]
    return []


def _settle(d: Dialog, now: datetime) -> list[Effect]:
    """After face work or a face choice: pick the step from the images' states; finish when all are done."""
    if d.terminal:
        return []
    effects = _ask_next_face(d)
    statuses = {img.status for img in d.images}
    if NEEDS_FACE in statuses:
        d.step = Step.FACE_CHOICE
    elif PENDING in statuses:
        d.step = Step.ANALYSING
    elif SEARCHING in statuses:
        d.step = Step.SEARCHING
    else:
        d.step = Step.DONE
        d.ended_at = _iso(now)
        effects.append(Done(d.request_ids))
    return effects


def _unfinished(d: Dialog) -> list[ImageRequest]:
    """Images no search has started for: the ones a cancel or a timeout ends."""
    return [img for img in d.images if img.status in (PENDING, NEEDS_FACE)]


def _end(d: Dialog, step: Step, outcome: str, now: datetime) -> tuple[str, ...]:
    """End the dialog early; unfinished images take `outcome`. Searches already running finish normally."""
    ended = _unfinished(d)
    for img in ended:
        img.status, img.outcome, img.result_at = DONE, outcome, _iso(now)
    d.step = step
    d.ended_at = _iso(now)
    return tuple(img.request_id for img in ended)


def _touch(d: Dialog, now: datetime, answered: str | None = None) -> None:
    d.updated_at = _iso(now)
    if answered:
        d.answer_times[answered] = d.updated_at


# ------------------------------------------------------------------------------------------- answers
# Each answer function is shared by replies and buttons. It gets a copy of the dialog to change.


def _answer_call_number(
    d: Dialog,
    text: str,
    now: datetime,
    policy_settings: PolicySettings,
    known_call: Callable[[str], bool] | None,
    require_known_call: bool,
) -> list[Effect]:
    value = _policy.parse_call_number(text, policy_settings.call_number_pattern)
    if value is None:
        reason = _policy.check_call_number(_policy.slack_to_plain(text), policy_settings.call_number_pattern)
        _touch(d, now)
        return [Invalid(Step.CALL_NUMBER, "call_number", reason), Prompt(Step.CALL_NUMBER)]
    if not _call_known(value, known_call, require_known_call):
        _touch(d, now)
        return [Invalid(Step.CALL_NUMBER, "unknown_call", None, value=value), Prompt(Step.CALL_NUMBER)]
    d.call_number = value
    _touch(d, now, Step.CALL_NUMBER.value)
    return _ask(d)


def _call_known(value: str, known_call: Callable[[str], bool] | None, require_known_call: bool) -> bool:
    """Whether a call number may be used; with require_known_call and no way to check, it may not."""
    if not require_known_call:
        return True
    return known_call is not None and bool(known_call(value))


def _answer_purpose(d: Dialog, code: str | None, now: datetime) -> list[Effect]:
    # No code at all: the reply named no purpose (reason None); a code not in B.1: the policy's reason.
    reason = None if code is None else _policy.check_purpose(code)
    if code is None or reason is not None:
        _touch(d, now)
        return [Invalid(Step.PURPOSE, "purpose", reason), Prompt(Step.PURPOSE)]
    d.purpose = code
    _touch(d, now, Step.PURPOSE.value)
    return _ask(d)


def _answer_justification(d: Dialog, text: str, now: datetime, policy_settings: PolicySettings) -> list[Effect]:
    # A reply may carry the "justification:" label too; take what follows it.
    value = _policy.find_justification(text) or _policy.collapse_whitespace(_policy.slack_to_plain(text))
    reason = _policy.check_justification(value, policy_settings.justification_min_chars)
    if reason is not None:
        _touch(d, now)
        return [Invalid(Step.JUSTIFICATION, "justification", reason), Prompt(Step.JUSTIFICATION)]
    d.justification = value
    _touch(d, now, Step.JUSTIFICATION.value)
    return _ask(d)


def _attest(d: Dialog, now: datetime, policy_settings: PolicySettings) -> list[Effect]:
    # Every answer was checked when given, but settings may have changed since (a restart with a new
    # config): check them all again, and ask again any that no longer pass. No face work before that.
    effects = _recheck(d, policy_settings)
    if effects:
        _touch(d, now)
        return effects + _ask(d)
    d.attested = True
    _touch(d, now, Step.ATTESTATION.value)
    d.step = Step.ANALYSING
    return [Analyse(tuple(img.request_id for img in d.images if img.status == PENDING))]


def _recheck(d: Dialog, policy_settings: PolicySettings) -> list[Effect]:
    """Clear answers that fail their check now; an Invalid for each."""
    effects: list[Effect] = []
    reason = _policy.check_call_number(d.call_number, policy_settings.call_number_pattern)
    if reason:
        d.call_number = None
        effects.append(Invalid(Step.CALL_NUMBER, "call_number", reason))
    reason = _policy.check_purpose(d.purpose)
    if reason:
        d.purpose = None
        effects.append(Invalid(Step.PURPOSE, "purpose", reason))
    reason = _policy.check_justification(d.justification, policy_settings.justification_min_chars)
    if reason:
        d.justification = None
        effects.append(Invalid(Step.JUSTIFICATION, "justification", reason))
    return effects


def _choose_face(d: Dialog, img: ImageRequest, index: int | None, now: datetime) -> list[Effect]:
    n = len(img.faces or ())
    if index is None or not 1 <= index <= n:
        _touch(d, now)
        return [Invalid(Step.FACE_CHOICE, "face_choice", None, img.request_id)]
    img.face_index, img.status, img.chosen_at = index, SEARCHING, _iso(now)
    _touch(d, now)
    return [Search(img.request_id, index)] + _settle(d, now)


def _cancel(d: Dialog, now: datetime) -> list[Effect]:
    if not _unfinished(d):
        # Every search has already started: there is nothing left to call back.
        return [Busy(d.step)]
    _touch(d, now, "cancel")
    return [Cancelled(_end(d, Step.CANCELLED, "cancelled", now))]


# ---------------------------------------------------------------------------------------------- inputs


def start_dialog(
    *,
    channel: str,
    thread_ts: str,
    requester_id: str,
    requester_name: str,
    files: Iterable[tuple[str, str]],
    text: str,
    now: datetime,
    policy: PolicySettings,
    source_event_id: str | None = None,
    known_call: Callable[[str], bool] | None = None,
    require_known_call: bool = False,
) -> Result:
    """Start the dialog for an upload: one request per image; answers found in the message text skip steps.

    A value found in the text is kept only when it passes its check; otherwise its step is asked (and an
    Invalid effect says why the found value was not used).
    """
    settings = policy  # the PolicySettings argument
    images = [ImageRequest(new_request_id(), file_id, name) for file_id, name in files]
    if not images:
        raise ValueError("a dialog needs at least one image")
    stamp = _iso(now)
    d = Dialog(
        dialog_id=new_dialog_id(),
        channel=channel,
        thread_ts=thread_ts,
        requester_id=requester_id,
        requester_name=requester_name,
        created_at=stamp,
        updated_at=stamp,
        step=Step.CALL_NUMBER,
        images=images,
        source_event_id=source_event_id,
    )
    effects: list[Effect] = []
    found = _policy.read_upload_message(text, settings.call_number_pattern)
    if found.call_number is not None:
        if _call_known(found.call_number, known_call, require_known_call):
            d.call_number = found.call_number
        else:
            effects.append(Invalid(Step.CALL_NUMBER, "unknown_call", None, value=found.call_number))
    if found.purpose is not None:
        reason = _policy.check_purpose(found.purpose)
        if reason is None:
            d.purpose = found.purpose
        else:
            effects.append(Invalid(Step.PURPOSE, "purpose", reason))
    if found.justification is not None:
        reason = _policy.check_justification(found.justification, settings.justification_min_chars)
        if reason is None:
            d.justification = found.justification
        else:
            effects.append(Invalid(Step.JUSTIFICATION, "justification", reason))
    d.prefilled = [name for name in PREFILL_FIELDS if getattr(d, name)]
    for name in d.prefilled:
        d.answer_times[name] = stamp
    if d.prefilled:
        effects.insert(0, Prefilled(tuple(d.prefilled)))
    return d, effects + _ask(d)


def on_reply(
    dialog: Dialog,
    *,
    user_id: str,
    text: str,
    now: datetime,
    policy: PolicySettings,
    known_call: Callable[[str], bool] | None = None,
    require_known_call: bool = False,
) -> Result:
    """A plain reply in the request thread. Only the requester's replies count; every step can be answered."""
    if dialog.terminal:
        return dialog, []  # chatter in a finished thread is not for the bot
    if user_id != dialog.requester_id:
        return dialog, [NotRequester(user_id)]
    d = dialog.copy()
    if _policy.is_cancel(text):
        effects = _cancel(d, now)
        return (d, effects) if d.terminal else (dialog, effects)
    step = d.step
    if step in WORK_STEPS:
        return dialog, [Busy(step)]
    if step is Step.CALL_NUMBER:
        effects = _answer_call_number(d, text, now, policy, known_call, require_known_call)
    elif step is Step.PURPOSE:
        effects = _answer_purpose(d, _policy.parse_purpose_reply(text), now)
    elif step is Step.JUSTIFICATION:
        effects = _answer_justification(d, text, now, policy)
    elif step is Step.ATTESTATION:
        if _policy.is_attestation(text):
            effects = _attest(d, now, policy)
        else:
            _touch(d, now)
            effects = [Invalid(Step.ATTESTATION, "attestation", None), Prompt(Step.ATTESTATION)]
    else:  # FACE_CHOICE
        img = _asked_image(d)
        if img is None:  # not reachable while the step is FACE_CHOICE; be safe
            return dialog, [Busy(step)]
        effects = _choose_face(d, img, _policy.parse_face_choice(text, len(img.faces or ())), now)
    return d, effects


def on_action(
    dialog: Dialog,
    *,
    user_id: str,
    action: str,
    value: str,
    now: datetime,
    policy: PolicySettings,
) -> Result:
    """A button press: the same answers as replies (purpose code, attestation, face choice, cancel)."""
    base = action.partition(":")[0]
    if dialog.terminal:
        return dialog, [Closed(dialog.step)]
    if user_id != dialog.requester_id:
        return dialog, [NotRequester(user_id)]
    d = dialog.copy()
    if base == ACTION_CANCEL:
        effects = _cancel(d, now)
        return (d, effects) if d.terminal else (dialog, effects)
    if base == ACTION_PURPOSE and d.step is Step.PURPOSE:
        return d, _answer_purpose(d, value or None, now)
    if base == ACTION_ATTEST and d.step is Step.ATTESTATION:
        return d, _attest(d, now, policy)
    if base == ACTION_FACE and d.step is Step.FACE_CHOICE:
        request_id, _, raw_index = (value or "").rpartition(":")
        img = d.image(request_id)
        if img is not None and img.status == NEEDS_FACE:
            index = int(raw_index) if raw_index.strip().isdigit() else None
            return d, _choose_face(d, img, index, now)
    return dialog, [Stale(action, dialog.step)]


def on_analysed(
    dialog: Dialog,
    request_id: str,
    *,
    faces: list[dict[str, Any]] | None,
    probe_sha256: str | None,
    error: str | None,
    now: datetime,
) -> Result:
    """Faces were found on one image (or it could not be read). Store the boxes; search or ask which face."""
    img = dialog.image(request_id)
    if not dialog.attested or img is None or img.status != PENDING:
        # No face work counts before the attestation; an image already analysed is never re-detected;
        # one ended by cancel or timeout keeps that ending.
        return dialog, []
    d = dialog.copy()
    img = d.image(request_id)
    assert img is not None
    img.probe_sha256 = probe_sha256
    img.faces = copy.deepcopy(list(faces or ()))
    img.analysed_at = _iso(now)
    _touch(d, now)
    effects: list[Effect] = []
    if error or not img.faces:
        img.status, img.outcome, img.error = DONE, "error", error or "no_face"
        img.result_at = img.analysed_at
        effects.append(ImageFailed(img.request_id, img.error))
    elif len(img.faces) == 1:
        img.face_index, img.status = 1, SEARCHING
        effects.append(Search(img.request_id, 1))
    else:
        img.status = NEEDS_FACE
    return d, effects + _settle(d, now)


def on_searched(
    dialog: Dialog,
    request_id: str,
    *,
    outcome: str,
    now: datetime,
    result_ts: str | None = None,
    error: str | None = None,
) -> Result:
    """One image's search finished (outcome "candidates", "no_candidate" or "error"); DONE when all are."""
    if outcome not in ("candidates", "no_candidate", "error"):
        raise ValueError(f"not a search outcome: {outcome!r}")
    img = dialog.image(request_id)
    if img is None or img.status != SEARCHING:
        return dialog, []
    d = dialog.copy()
    img = d.image(request_id)
    assert img is not None
    img.status, img.outcome, img.error = DONE, outcome, error
    img.result_ts, img.result_at = result_ts, _iso(now)
    _touch(d, now)
    # A dialog cancelled or expired while this search ran keeps its ending; the result is still kept, and
    # when the last such search is over the adapter may clear its progress marks (Done).
    effects = _settle(d, now)
    if d.step in (Step.CANCELLED, Step.EXPIRED) and not any(i.status == SEARCHING for i in d.images):
        effects.append(Done(d.request_ids))
    return d, effects


def on_refused(dialog: Dialog, now: datetime) -> Result:
    """The requester is no longer authorised (re-checked at the attestation, before any face work): every
    image not yet searched ends `denied`. The adapter audits and says why; no effects from here."""
    if dialog.terminal:
        return dialog, []
    d = dialog.copy()
    _end(d, Step.CANCELLED, "denied", now)
    return d, []


def on_tick(dialog: Dialog, now: datetime, timeout_minutes: int) -> Result:
    """End a dialog left unanswered past the timeout. Only input steps expire, never the bot's own work."""
    if dialog.step not in INPUT_STEPS:
        return dialog, []
    if now - _parse_time(dialog.updated_at) < timedelta(minutes=timeout_minutes):
        return dialog, []
    d = dialog.copy()
    _touch(d, now)
    return d, [Expired(_end(d, Step.EXPIRED, "expired", now))]


def resume(dialog: Dialog) -> list[Effect]:
    """Work to restart after a process restart: analysis not yet stored, searches not yet finished.

    Questions are not asked again (they are already in the thread). Images whose faces are stored are
    never analysed again.
    """
    if not dialog.attested:
        return []
    effects: list[Effect] = []
    pending = tuple(i.request_id for i in dialog.images if i.status == PENDING)
    if pending and not dialog.terminal:
        effects.append(Analyse(pending))
    for img in dialog.images:
        if img.status == SEARCHING and img.face_index is not None:
            effects.append(Search(img.request_id, img.face_index))
    return effects


# ----------------------------------------------------------------------------------------------- store


class DialogStore:
    """Dialogs and dedupe keys in one tinydb file (atomic writes), locked across processes.

    Every operation reads the file afresh under the lock (tinydb's query cache is off), so what another
    process wrote is seen. One server instance per data dir still: two servers would both answer a thread.
    """

    def __init__(self, path: Path | str, *, claim_ttl: timedelta = timedelta(days=3)) -> None:
        self.path = Path(path)
        self._db = open_tinydb(self.path)
        # cache_size=0: a cached query result would hide another process's writes.
        self._dialogs = self._db.table("dialogs", cache_size=0)
        self._claims = self._db.table("claims", cache_size=0)
        # Threads of this process queue on a plain lock (woken at once); only its holder takes the file lock,
        # which other processes (the CLI's purge) wait on. filelock alone polls every 50 ms, and the server's
        # I/O threads would wait behind each other that long.
        self._file_lock = file_lock(self.path.with_name(self.path.name + ".lock"))
        self._thread_lock = threading.RLock()
        self._claim_ttl = claim_ttl
        self._last_prune: datetime | None = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, self._file_lock:
            yield

    def threads(self) -> dict[tuple[str, str], str]:
        """(channel, thread_ts) -> dialog_id of every stored dialog: the server's in-memory thread index."""
        with self._locked():
            return {(d["channel"], d["thread_ts"]): d["dialog_id"] for d in self._dialogs.all()}

    def close(self) -> None:
        """Close the tinydb handle (nothing stays open between operations anyway)."""
        self._db.close()

    def _all(self) -> list[Dialog]:
        return [Dialog.from_dict(doc) for doc in self._dialogs.all()]

    def put(self, dialog: Dialog) -> None:
        """Insert or replace a dialog."""
        with self._locked():
            self._dialogs.upsert(dialog.to_dict(), Query().dialog_id == dialog.dialog_id)

    def get(self, dialog_id: str) -> Dialog | None:
        """The dialog with this id, or None."""
        with self._locked():
            doc = self._dialogs.get(Query().dialog_id == dialog_id)
        return Dialog.from_dict(doc) if doc else None

    def update(self, dialog_id: str, transition: Callable[[Dialog], Result]) -> Result | None:
        """Read, transition and write one dialog as one locked step; None when there is no such dialog.

        Use it when two inputs for one dialog may race (e.g. two images analysed at once in threads).
        """
        with self._locked():
            dialog = self.get(dialog_id)
            if dialog is None:
                return None
            new, effects = transition(dialog)
            if new is not dialog:
                self.put(new)
            return new, effects

    def by_thread(self, channel: str, thread_ts: str) -> Dialog | None:
        """Which request is this thread? The dialog its upload started (an active one first, then newest)."""
        q = Query()
        with self._locked():
            docs = self._dialogs.search((q.channel == channel) & (q.thread_ts == thread_ts))
        if not docs:
            return None
        dialogs = [Dialog.from_dict(doc) for doc in docs]
        return max(dialogs, key=lambda x: (not x.terminal, x.created_at))

    def by_request_id(self, request_id: str) -> Dialog | None:
        """The dialog holding the image with this request id, or None."""
        with self._locked():
            doc = self._dialogs.get(Query().images.any(Query().request_id == request_id))
        return Dialog.from_dict(doc) if doc else None

    def by_file_id(self, file_id: str) -> Dialog | None:
        """The newest dialog holding an image of this Slack file, or None."""
        with self._locked():
            docs = self._dialogs.search(Query().images.any(Query().file_id == file_id))
        if not docs:
            return None
        return max((Dialog.from_dict(doc) for doc in docs), key=lambda x: x.created_at)

    def all(self) -> list[Dialog]:
        """Every stored dialog, ended ones included (audit reconciliation at start)."""
        with self._locked():
            return self._all()

    def active(self) -> list[Dialog]:
        """Dialogs not yet ended, oldest first: for timeouts, and to resume after a restart."""
        with self._locked():
            dialogs = self._all()
        return sorted((d for d in dialogs if not d.terminal), key=lambda x: x.created_at)

    def delete_older_than(self, cutoff: datetime) -> int:
        """Remove ended dialogs last changed before `cutoff` (dialog-state retention); returns the count.

        Active dialogs are kept whatever their age: they are still waiting on someone.
        """
        _iso(cutoff)  # refuse a naive cutoff
        with self._locked():
            old = [d.dialog_id for d in self._all() if d.terminal and _parse_time(d.updated_at) < cutoff]
            if old:
                self._dialogs.remove(Query().dialog_id.one_of(old))
        return len(old)

    def claim(self, key: str, now: datetime) -> bool:
        """True the first time `key` is seen (an event id, a file id, an action id + ts), False after.

        Persisted, so a restart plus a Slack redelivery never starts a second request or search. Keys older
        than the claim TTL (default 3 days; Slack stops redelivering within the hour) are pruned.
        """
        stamp = _iso(now)
        with self._locked():
            if self._claims.contains(Query().key == key):
                return False
            self._claims.insert({"key": key, "at": stamp})
            if self._last_prune is None or now - self._last_prune >= timedelta(hours=1):
                cutoff = now - self._claim_ttl
                self._claims.remove(Query().at.test(lambda at: _parse_time(at) < cutoff))
                self._last_prune = now
        return True

    def claimed(self, key: str) -> bool:
        """Whether `key` has been claimed (and not yet pruned)."""
        with self._locked():
            return self._claims.contains(Query().key == key)


__all__ = [
    "ACTION_ATTEST",
    "ACTION_CANCEL",
    "ACTION_FACE",
    "ACTION_PURPOSE",
    "INPUT_STEPS",
    "QUESTION_STEPS",
    "TERMINAL_STEPS",
    "WORK_STEPS",
    "Analyse",
    "AskFace",
    "Busy",
    "Cancelled",
    "Closed",
    "Dialog",
    "DialogStore",
    "Done",
    "Effect",
    "Expired",
    "ImageFailed",
    "ImageRequest",
    "Invalid",
    "NotRequester",
    "Prefilled",
    "Prompt",
    "Search",
    "Stale",
    "Step",
    "Summary",
    "new_request_id",
    "on_action",
    "on_analysed",
    "on_reply",
    "on_searched",
    "on_tick",
    "resume",
    "start_dialog",
]
