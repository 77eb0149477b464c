"""The request dialog's data: steps, the state of a dialog and its images, and the effects its transitions
return (plain dataclasses the adapters render). The transitions themselves are bot.request.transitions.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from bot import policy as _policy


class Step(str, Enum):
    """Where a dialog stands. The value is what is persisted."""

    OFFERED = "offered"  # the bot offered a search for the upload; nothing started (no audit)
    CALL_NUMBER = "call_number"
    PURPOSE = "purpose"
    JUSTIFICATION = "justification"
    ATTESTATION = "attestation"
    AWAITING_APPROVAL = "awaiting_approval"  # attested; a supervisor must approve before any search ([review] approval)
    ANALYSING = "analysing"
    FACE_CHOICE = "face_choice"
    SEARCHING = "searching"
    DONE = "done"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# The questions asked before any face work, in the order they are asked.
QUESTION_STEPS = (Step.CALL_NUMBER, Step.PURPOSE, Step.JUSTIFICATION, Step.ATTESTATION)
# Steps that wait on the requester: these (and only these) can time out.
INPUT_STEPS = (Step.OFFERED,) + QUESTION_STEPS + (Step.FACE_CHOICE,)
# Steps that wait on the bot's own face work.
WORK_STEPS = (Step.ANALYSING, Step.SEARCHING)
TERMINAL_STEPS = (Step.DONE, Step.CANCELLED, Step.EXPIRED)

# Image statuses: PENDING (faces not found yet), READY (faces found, the face to search known), NEEDS_FACE
# (several faces: the requester picks one), SEARCHING, DONE. A failed image is "done" with outcome "error"
# (and its error code in `error`). Faces are found as soon as a request starts; the search waits for the
# attestation.
PENDING, READY, NEEDS_FACE, SEARCHING, DONE = "pending", "ready", "needs_face", "searching", "done"
IMAGE_STATUSES = (PENDING, READY, NEEDS_FACE, SEARCHING, DONE)
# The audit outcomes an image can end with (bot.store.audit_log.OUTCOMES).
IMAGE_OUTCOMES = ("candidates", "no_candidate", "error", "cancelled", "expired", "denied")

ACTION_PURPOSE = "fr_purpose"
ACTION_ATTEST = "fr_attest"
ACTION_FACE = "fr_face"
ACTION_CANCEL = "fr_cancel"
ACTION_START = "fr_start"  # the offer's Start button
ACTION_CALL = "fr_call"  # value = a call number: confirm the one typed, or take a suggested one
ACTION_FORM = "fr_form"  # opens the form (handled by the adapter; the form's submit is `on_form`)

# Field names as Prefilled reports them (they match Dialog attributes and the audit's field names).
PREFILL_FIELDS = ("call_number", "purpose", "justification")


def new_request_id() -> str:
    """A short unique request id an officer can quote in a report (e.g. FR-3F9A0C12D4)."""
    return "FR-" + uuid.uuid4().hex[:10].upper()


def new_dialog_id() -> str:
    """A unique id for one dialog (one upload thread)."""
    return "D-" + uuid.uuid4().hex


def iso_time(now: datetime) -> str:
    """`now` as ISO 8601, refusing a naive time."""
    # Naive times would compare wrongly against stored UTC times: refuse them early.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("times passed to the dialog must be timezone-aware (UTC)")
    return now.isoformat()


def parse_time(value: str) -> datetime:
    """A stored ISO 8601 time back as a datetime."""
    return datetime.fromisoformat(value)  # Python 3.11 reads a trailing "Z" too


# --------------------------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Effect:
    """Something the adapter must do after a transition (post, audit, run face work)."""


@dataclass(frozen=True)
class Offer(Effect):
    """The upload did not ask for a search: offer one, once, in the thread (Start button or a reply)."""


@dataclass(frozen=True)
class OfferEnded(Effect):
    """Nobody took the offer up before the timeout (or the uploader declined): say so on the offer; nothing
    is audited, nothing goes to dispatch."""


@dataclass(frozen=True)
class Started(Effect):
    """The request started (from the upload's text, a mention, Start, a reply to the offer or the shortcut):
    the request card replaces the offer. `prefilled`: answers taken from the upload message's text."""

    prefilled: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invalid(Effect):
    """An answer was not accepted; the card still asks for it, and one short line says what was read.

    `code` says which check failed, `reason` is the policy module's sentence when it gives one (else None,
    and the adapter words it from `code`), `text` is the answer as read (one line):
    "call_number" (reason: policy.check_call_number), "unknown_call" (require_known_call: reason None,
    `value` = the call number: wording.call_number_unknown), "purpose" (reason None for a reply that names no
    purpose: wording.PURPOSE_NOT_UNDERSTOOD; else policy.check_purpose), "justification" (reason:
    policy.check_justification), "attestation" (reason None: wording.ATTESTATION_NOT_UNDERSTOOD),
    "face_choice" (reason None, `request_id` names the image: wording.face_choice_not_understood(n)).
    Every Invalid of a question step is a refused answer the adapter audits (`refusal`).
    """

    step: Step
    code: str
    reason: str | None = None
    request_id: str | None = None
    value: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class ConfirmCall(Effect):
    """The call number is not one dispatch has posted: ask the officer to confirm it, suggesting recent calls
    it may be a typo of. Not a refusal (only require_known_call refuses)."""

    value: str
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class NeedsApproval(Effect):
    """Attested, and a supervisor must approve before any search: `reason` is "flagged" (the justification names
    a protected class) or "always"."""

    reason: str


@dataclass(frozen=True)
class UnderReview(Effect):
    """The requester of a search an examiner is reviewing asks in its thread: "cancel" (withdraw it while
    unclaimed) or "status" (where it stands)."""

    action: str


@dataclass(frozen=True)
class Attested(Effect):
    """The requester attested: the adapter checks their authority again (fresh) before any search runs."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class Analyse(Effect):
    """Find the faces on these images (boxes and quality, no encoding), once each: the boxes are stored and
    never detected again. Runs as soon as the request starts, before the questions are answered."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class AskFace(Effect):
    """Show this image with numbered boxes; the requester picks one by button (or by replying the number)."""

    request_id: str
    faces: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ImageFailed(Effect):
    """This image cannot be searched (`reason`: "no_face" or the image error code); audit it as error."""

    request_id: str
    reason: str


@dataclass(frozen=True)
class Search(Effect):
    """Encode the chosen face (numbered from 1, left to right) and run this image's 1:N search."""

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
    started_at: str | None = None  # None while only offered
    card_ts: str | None = None  # the adapter's request card (the offer first), updated in place
    photo_source: dict[str, str] | None = None  # {"id", "name"} of whoever posted the photo, when not the requester
    pending_call: str | None = None  # a call number dispatch has not posted, waiting for the officer to confirm
    suggestions: list[str] = field(default_factory=list)  # recent calls `pending_call` may be a typo of
    flags: list[str] = field(default_factory=list)  # for command staff: e.g. "protected_class"
    approval: dict[str, str] | None = None  # {"status": "pending"|"approved"|"refused", "by", "reason", "at"}

    @property
    def terminal(self) -> bool:
        return self.step in TERMINAL_STEPS

    @property
    def started(self) -> bool:
        """Whether the request started (an offer nobody took up never did: no audit, no dispatch post)."""
        return self.started_at is not None

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
            "started_at": self.started_at,
            "card_ts": self.card_ts,
            "photo_source": dict(self.photo_source) if self.photo_source else None,
            "pending_call": self.pending_call,
            "suggestions": list(self.suggestions),
            "flags": list(self.flags),
            "approval": dict(self.approval) if self.approval else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dialog:
        """Rebuild from `to_dict` output."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["step"] = Step(known["step"])
        known["images"] = [ImageRequest.from_dict(i) for i in known.get("images", [])]
        known["answer_times"] = dict(known.get("answer_times") or {})
        known["prefilled"] = list(known.get("prefilled") or [])
        known["suggestions"] = list(known.get("suggestions") or [])
        known["flags"] = list(known.get("flags") or [])
        if "started_at" not in data and known["step"] is not Step.OFFERED:
            known["started_at"] = known.get("created_at")  # stored before offers existed: it had started
        return cls(**known)

    def copy(self) -> Dialog:
        """A deep copy, so a transition never changes the dialog it was given."""
        return Dialog.from_dict(self.to_dict())


Result = tuple[Dialog, list[Effect]]
