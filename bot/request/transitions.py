"""The request dialog in an upload's Slack thread: a pure state machine (its store: bot.store.dialogs).

The machine knows nothing of Slack, files or clocks. Each input (a thread reply, a button action, the form,
a face detection result, a search result, a clock tick) takes the current `Dialog` and returns the new
`Dialog` plus a list of effects: plain dataclasses the Slack adapter turns into the request card, short
lines, face work and audit entries. Time is passed in as `now` (timezone-aware), never read here.

One upload is one dialog; every image in it is one `ImageRequest` with its own request id and audit
trail. The answers (call number, purpose, justification, attestation) are shared by all images; a face
choice is asked for each image that has several faces, one image at a time.

A deliberate start: an upload that does not ask for a search is only OFFERED (no audit, nothing to
dispatch); the uploader starts it with Start or a reply (a call number, "start"). Once started, the faces of
every image are found at once (boxes only), so an unusable photo is said before any question; the questions
are CALL_NUMBER -> PURPOSE -> JUSTIFICATION -> ATTESTATION; the 1:N search runs only after the attestation
(ANALYSING while faces are still being found, FACE_CHOICE while a face is still to be picked) -> SEARCHING ->
DONE. CANCELLED and EXPIRED end a dialog early; DONE, CANCELLED and EXPIRED are terminal.

Button action ids (a ":suffix" is allowed and ignored, since Slack wants action ids unique within a block):
ACTION_START, ACTION_CALL (value = call number), ACTION_PURPOSE (value = purpose code), ACTION_ATTEST,
ACTION_FACE (value = "request_id:index"), ACTION_CANCEL; ACTION_FORM opens the adapter's form (`on_form`).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Imported under another name: `policy` is also the pinned name of the settings parameter below.
from bot import policy as _policy
from bot.config import PolicySettings
from bot.controls.approval import approval_reason
from bot.request.dialog import (
    ACTION_ATTEST,
    ACTION_CALL,
    ACTION_CANCEL,
    ACTION_FACE,
    ACTION_FORM,
    ACTION_PURPOSE,
    ACTION_START,
    DONE,
    INPUT_STEPS,
    NEEDS_FACE,
    PENDING,
    PREFILL_FIELDS,
    QUESTION_STEPS,
    READY,
    SEARCHING,
    TERMINAL_STEPS,
    WORK_STEPS,
    Analyse,
    AskFace,
    Attested,
    Busy,
    Cancelled,
    Closed,
    ConfirmCall,
    Dialog,
    Done,
    Effect,
    Expired,
    ImageFailed,
    ImageRequest,
    Invalid,
    NeedsApproval,
    NotRequester,
    Offer,
    OfferEnded,
    Result,
    Search,
    Stale,
    Started,
    Step,
    UnderReview,
    iso_time,
    new_dialog_id,
    new_request_id,
    parse_time,
)

MAX_ECHO_CHARS = 200  # an answer echoed in a refusal line or its audit entry, as read (one line)


@dataclass(frozen=True)
class Calls:
    """What the dialog may know of dispatch's calls: `known(number)`, whether dispatch posted it (None: no
    dispatch channel, nothing to check against); `recent()`, calls posted lately (typo suggestions); and
    whether an unknown call is refused (`require_known`) or only questioned."""

    known: Callable[[str], bool] | None = None
    recent: Callable[[], Iterable[str]] | None = None
    require_known: bool = False


NO_CALLS = Calls()


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
    """Move to the first unanswered question (the card shows it); nothing is posted."""
    step = _next_question(d)
    if step is not None:
        d.step = step
    return []


def _echo(text: str | None) -> str:
    """An answer as read: one line, trimmed, capped (what a refusal line and its audit entry quote)."""
    line = _policy.collapse_whitespace(_policy.slack_to_plain(text or ""))
    return line if len(line) <= MAX_ECHO_CHARS else line[: MAX_ECHO_CHARS - 1] + "…"


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


def _search_ready(d: Dialog, now: datetime) -> list[Effect]:
    """After the attestation: every image whose face is known is searched."""
    if not d.attested:
        return []
    effects: list[Effect] = []
    for img in d.images:
        if img.status == READY and img.face_index is not None:
            img.status = SEARCHING
            img.chosen_at = img.chosen_at or iso_time(now)
            effects.append(Search(img.request_id, img.face_index))
    return effects


def _settle(d: Dialog, now: datetime) -> list[Effect]:
    """After face work, a face choice or the attestation: search what may be searched, ask the next face,
    pick the step from the images' states; finish when every image is done."""
    if d.terminal:
        return []
    if d.step is Step.AWAITING_APPROVAL:
        return _ask_next_face(d)  # faces found meanwhile wait for the supervisor like everything else
    effects = _search_ready(d, now) + _ask_next_face(d)
    statuses = {img.status for img in d.images}
    if statuses == {DONE}:
        d.step = Step.DONE
        d.ended_at = iso_time(now)
        effects.append(Done(d.request_ids))
    elif not d.attested:
        _ask(d)  # still answering: the question step stands
    elif NEEDS_FACE in statuses:
        d.step = Step.FACE_CHOICE
    elif PENDING in statuses:
        d.step = Step.ANALYSING
    else:
        d.step = Step.SEARCHING
    return effects


def _unfinished(d: Dialog) -> list[ImageRequest]:
    """Images no search has started for: the ones a cancel or a timeout ends."""
    return [img for img in d.images if img.status in (PENDING, READY, NEEDS_FACE)]


def _end(d: Dialog, step: Step, outcome: str, now: datetime) -> tuple[str, ...]:
    """End the dialog early; unfinished images take `outcome`. Searches already running finish normally."""
    ended = _unfinished(d)
    for img in ended:
        img.status, img.outcome, img.result_at = DONE, outcome, iso_time(now)
    d.step = step
    d.ended_at = iso_time(now)
    return tuple(img.request_id for img in ended)


def _touch(d: Dialog, now: datetime, answered: str | None = None) -> None:
    d.updated_at = iso_time(now)
    if answered:
        d.answer_times[answered] = d.updated_at


# ------------------------------------------------------------------------------------------- answers
# Each answer function is shared by replies, buttons and the form. It gets a copy of the dialog to change.


def _call_problem(value: str, calls: Calls) -> list[Effect] | None:
    """None when `value` may be used as it is; else what to say (refused, or asked to confirm). With nothing
    to check against (no dispatch channel) an unknown call is refused only by require_known_call."""
    if calls.known is not None and calls.known(value):
        return None
    if calls.require_known:
        return [Invalid(Step.CALL_NUMBER, "unknown_call", None, value=value, text=value)]
    if calls.known is None:
        return None
    recent = list(calls.recent()) if calls.recent else []
    return [ConfirmCall(value, tuple(_policy.similar_call_numbers(value, recent)[:3]))]


def _take_call_number(d: Dialog, value: str, now: datetime) -> list[Effect]:
    d.call_number, d.pending_call, d.suggestions = value, None, []
    _touch(d, now, Step.CALL_NUMBER.value)
    return _ask(d)


def _answer_call_number(
    d: Dialog, text: str, now: datetime, policy_settings: PolicySettings, calls: Calls
) -> list[Effect]:
    pattern = policy_settings.call_number_pattern
    if d.pending_call and (_policy.is_confirmation(text) or _policy.parse_call_number(text, pattern) == d.pending_call):
        return _take_call_number(d, d.pending_call, now)  # confirmed as typed
    value = _policy.parse_call_number(text, pattern)
    if value is None:
        reason = _policy.check_call_number(_policy.slack_to_plain(text), pattern)
        _touch(d, now)
        return [Invalid(Step.CALL_NUMBER, "call_number", reason, text=_echo(text))]
    return _offer_call_number(d, value, now, calls)


def _offer_call_number(d: Dialog, value: str, now: datetime, calls: Calls) -> list[Effect]:
    """Use a well-formed call number, or ask to confirm it when dispatch never posted it."""
    problem = _call_problem(value, calls)
    if problem is None:
        return _take_call_number(d, value, now)
    _touch(d, now)
    if isinstance(problem[0], ConfirmCall):
        d.pending_call, d.suggestions = value, list(problem[0].suggestions)
    return problem


def _answer_purpose(d: Dialog, code: str | None, now: datetime, text: str | None = None) -> list[Effect]:
    # No code at all: the reply named no purpose (reason None); a code not in B.1: the policy's reason.
    reason = None if code is None else _policy.check_purpose(code)
    if code is None or reason is not None:
        _touch(d, now)
        return [Invalid(Step.PURPOSE, "purpose", reason, text=_echo(text if text is not None else code))]
    d.purpose = code
    _touch(d, now, Step.PURPOSE.value)
    return _ask(d)


def _justification_of(text: str) -> str:
    # A reply may carry the "justification:" label too; take what follows it.
    return _policy.find_justification(text) or _policy.collapse_whitespace(_policy.slack_to_plain(text))


def _answer_justification(d: Dialog, text: str, now: datetime, policy_settings: PolicySettings) -> list[Effect]:
    value = _justification_of(text)
    reason = _policy.check_justification(value, policy_settings.justification_min_chars)
    if reason is not None:
        _touch(d, now)
        return [Invalid(Step.JUSTIFICATION, "justification", reason, text=_echo(value))]
    d.justification = value
    d.flags = list(_policy.justification_flags(value))
    _touch(d, now, Step.JUSTIFICATION.value)
    return _ask(d)


def _attest(d: Dialog, now: datetime, policy_settings: PolicySettings, approval: str = "never") -> list[Effect]:
    # Every answer was checked when given, but settings may have changed since (a restart with a new
    # config): check them all again, and ask again any that no longer pass. No search before that.
    effects = _recheck(d, policy_settings)
    if effects:
        _touch(d, now)
        return effects + _ask(d)
    d.attested = True
    _touch(d, now, Step.ATTESTATION.value)
    reason = approval_reason(approval, d.flags)
    if reason:
        # A supervisor approves (or refuses) first: no search before that.
        d.step, d.approval = Step.AWAITING_APPROVAL, {"status": "pending", "reason": reason, "at": iso_time(now)}
        return [NeedsApproval(reason)]
    return _go(d, now)


def _go(d: Dialog, now: datetime) -> list[Effect]:
    waiting = tuple(img.request_id for img in d.images if img.status != DONE)
    return [Attested(waiting)] + _settle(d, now)


def on_approval(dialog: Dialog, *, approved: bool, by: str, reason: str, now: datetime) -> Result:
    """A supervisor's answer to a request awaiting approval: approved, it goes on to the search (authority
    re-checked, as at any attestation); refused, every image ends `denied` with the supervisor's reason."""
    if dialog.step is not Step.AWAITING_APPROVAL:
        return dialog, [Closed(dialog.step)]
    if by == dialog.requester_id:
        return dialog, [NotRequester(by)]
    d = dialog.copy()
    # "reason" stays why the request waited (the card shows it); the supervisor's own reason is kept beside it.
    d.approval = {**(d.approval or {}), "status": "approved" if approved else "refused", "by": by,
                  "decision_reason": reason, "decided_at": iso_time(now)}
    _touch(d, now)
    if approved:
        d.step = Step.ANALYSING
        return d, _go(d, now)
    _end(d, Step.CANCELLED, "denied", now)
    return d, []


def _recheck(d: Dialog, policy_settings: PolicySettings) -> list[Effect]:
    """Clear answers that fail their check now; an Invalid for each."""
    effects: list[Effect] = []
    reason = _policy.check_call_number(d.call_number, policy_settings.call_number_pattern)
    if reason:
        effects.append(Invalid(Step.CALL_NUMBER, "call_number", reason, text=_echo(d.call_number)))
        d.call_number = None
    reason = _policy.check_purpose(d.purpose)
    if reason:
        effects.append(Invalid(Step.PURPOSE, "purpose", reason, text=_echo(d.purpose)))
        d.purpose = None
    reason = _policy.check_justification(d.justification, policy_settings.justification_min_chars)
    if reason:
        effects.append(Invalid(Step.JUSTIFICATION, "justification", reason, text=_echo(d.justification)))
        d.justification = None
    return effects


def _choose_face(d: Dialog, img: ImageRequest, index: int | None, now: datetime) -> list[Effect]:
    n = len(img.faces or ())
    if index is None or not 1 <= index <= n:
        _touch(d, now)
        return [Invalid(Step.FACE_CHOICE, "face_choice", None, img.request_id)]
    img.face_index, img.status, img.chosen_at = index, READY, iso_time(now)
    _touch(d, now)
    return _settle(d, now)


def _cancel(d: Dialog, now: datetime) -> list[Effect]:
    if not d.started:
        d.step, d.ended_at = Step.CANCELLED, iso_time(now)
        _touch(d, now)
        return [OfferEnded()]
    if not _unfinished(d):
        # Every search has already started: there is nothing left to call back.
        return [Busy(d.step)]
    _touch(d, now, "cancel")
    return [Cancelled(_end(d, Step.CANCELLED, "cancelled", now))]


def _start(d: Dialog, now: datetime, prefilled: tuple[str, ...] = ()) -> list[Effect]:
    """The request starts: faces are found at once, the first unanswered question is asked."""
    d.started_at = iso_time(now)
    _touch(d, now)
    effects: list[Effect] = [Started(prefilled), Analyse(tuple(i.request_id for i in d.images if i.status == PENDING))]
    return effects + _ask(d)


def _prefill(d: Dialog, text: str, policy_settings: PolicySettings, calls: Calls, now: datetime) -> list[Effect]:
    """Take the answers an upload message (or a reply to the offer) carries, timed `now` like any answer; a
    found value that does not pass is asked instead, with the reason."""
    effects: list[Effect] = []
    found = _policy.read_upload_message(text, policy_settings.call_number_pattern)
    if found.call_number is not None:
        effects += _offer_call_number(d, found.call_number, now, calls)
    if found.purpose is not None:
        effects += _answer_purpose(d, found.purpose, now)
    if found.justification is not None:
        effects += _answer_justification(d, f"justification: {found.justification}", now, policy_settings)
    d.prefilled = [name for name in PREFILL_FIELDS if getattr(d, name)]
    return effects


def asks_for_search(text: str | None, policy_settings: PolicySettings) -> bool:
    """Whether an upload's text asks for a search by carrying an answer (call number, purpose,
    `justification:`). A mention of the bot is the adapter's to see."""
    found = _policy.read_upload_message(text, policy_settings.call_number_pattern)
    return any(v is not None for v in (found.call_number, found.purpose, found.justification))


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
    calls: Calls = NO_CALLS,
    ask: bool = True,
    photo_source: dict[str, str] | None = None,
) -> Result:
    """The dialog for an upload: one request per image.

    `ask`: the upload asked for a search (its text carries an answer, it mentions the bot, or the requester
    used the shortcut): the request starts now, taking the answers found in `text`. Otherwise the dialog is
    only OFFERED (an `Offer` effect) until the uploader takes it up."""
    settings = policy  # the PolicySettings argument
    images = [ImageRequest(new_request_id(), file_id, name) for file_id, name in files]
    if not images:
        raise ValueError("a dialog needs at least one image")
    stamp = iso_time(now)
    d = Dialog(
        dialog_id=new_dialog_id(),
        channel=channel,
        thread_ts=thread_ts,
        requester_id=requester_id,
        requester_name=requester_name,
        created_at=stamp,
        updated_at=stamp,
        step=Step.OFFERED,
        images=images,
        source_event_id=source_event_id,
        photo_source=dict(photo_source) if photo_source else None,
    )
    if not ask:
        return d, [Offer()]
    effects = _prefill(d, text, settings, calls, now)
    return d, _start(d, now, tuple(d.prefilled)) + effects


def on_reply(
    dialog: Dialog,
    *,
    user_id: str,
    text: str,
    now: datetime,
    policy: PolicySettings,
    calls: Calls = NO_CALLS,
    approval: str = "never",
) -> Result:
    """A plain reply in the request thread. Only the requester's replies count; every step can be answered."""
    if dialog.terminal:
        # Chatter in a finished thread is not for the bot, except the requester's cancel or status about a
        # search an examiner still has.
        if user_id == dialog.requester_id and any(i.outcome == "review" for i in dialog.images):
            if _policy.is_cancel(text):
                return dialog, [UnderReview("cancel")]
            if _policy.normalise_reply(text) == "status":
                return dialog, [UnderReview("status")]
        return dialog, []
    if dialog.step is Step.OFFERED:
        return _reply_to_offer(dialog, user_id, text, now, policy, calls)
    if user_id != dialog.requester_id:
        return dialog, [NotRequester(user_id)]
    d = dialog.copy()
    if _policy.is_cancel(text):
        effects = _cancel(d, now)
        return (d, effects) if d.terminal else (dialog, effects)
    step = d.step
    if step is Step.AWAITING_APPROVAL:
        return dialog, [Busy(step)]
    img = _asked_image(d)
    if img is not None and step in QUESTION_STEPS and _policy.normalise_reply(text).startswith("face"):
        # "face 2" picks a face whatever question is out (a bare number answers the question).
        return d, _choose_face(d, img, _policy.parse_face_choice(text, len(img.faces or ())), now)
    if step in WORK_STEPS:
        return dialog, [Busy(step)]
    if step is Step.CALL_NUMBER:
        effects = _answer_call_number(d, text, now, policy, calls)
    elif step is Step.PURPOSE:
        effects = _answer_purpose(d, _policy.parse_purpose_reply(text), now, text)
    elif step is Step.JUSTIFICATION:
        effects = _answer_justification(d, text, now, policy)
    elif step is Step.ATTESTATION:
        if _policy.is_attestation(text):
            effects = _attest(d, now, policy, approval)
        else:
            _touch(d, now)
            effects = [Invalid(Step.ATTESTATION, "attestation", None, text=_echo(text))]
    else:  # FACE_CHOICE
        if img is None:  # not reachable while the step is FACE_CHOICE; be safe
            return dialog, [Busy(step)]
        effects = _choose_face(d, img, _policy.parse_face_choice(text, len(img.faces or ())), now)
    return d, effects


def _reply_to_offer(
    dialog: Dialog, user_id: str, text: str, now: datetime, policy_settings: PolicySettings, calls: Calls
) -> Result:
    """A reply in an offered thread: the uploader's call number (or "start") starts the request; anything
    else (colleagues talking about the photo, the uploader's chatter) is not for the bot."""
    if user_id != dialog.requester_id:
        return dialog, []
    d = dialog.copy()
    if _policy.is_cancel(text):
        return d, _cancel(d, now)
    answers = asks_for_search(text, policy_settings)
    looks_like_a_number = any(c.isdigit() for c in _policy.normalise_reply(text))
    if not (answers or looks_like_a_number or _policy.is_start(text)):
        return dialog, []
    effects = _prefill(d, text, policy_settings, calls, now) if answers else []
    if looks_like_a_number and not answers:
        effects = _answer_call_number(d, text, now, policy_settings, calls)  # a mistyped call number: say so
    return d, _start(d, now, ()) + effects


def on_action(
    dialog: Dialog,
    *,
    user_id: str,
    action: str,
    value: str,
    now: datetime,
    policy: PolicySettings,
    calls: Calls = NO_CALLS,
    approval: str = "never",
) -> Result:
    """A button press: the same answers as replies (start, call number, purpose, attestation, face, cancel)."""
    base = action.partition(":")[0]
    if dialog.terminal:
        return dialog, [Closed(dialog.step)]
    if user_id != dialog.requester_id:
        return dialog, [NotRequester(user_id)]
    d = dialog.copy()
    if base == ACTION_CANCEL:
        effects = _cancel(d, now)
        return (d, effects) if d.terminal else (dialog, effects)
    if base == ACTION_START and d.step is Step.OFFERED:
        return d, _start(d, now)
    if base == ACTION_CALL and d.step is Step.CALL_NUMBER and d.pending_call:
        if value == d.pending_call:
            return d, _take_call_number(d, value, now)
        if value in d.suggestions:
            return d, _offer_call_number(d, value, now, calls)
    if base == ACTION_PURPOSE and d.step is Step.PURPOSE:
        return d, _answer_purpose(d, value or None, now)
    if base == ACTION_ATTEST and d.step is Step.ATTESTATION:
        return d, _attest(d, now, policy, approval)
    if base == ACTION_FACE and d.started:
        request_id, _, raw_index = (value or "").rpartition(":")
        img = d.image(request_id)
        if img is not None and img.status == NEEDS_FACE:
            index = int(raw_index) if raw_index.strip().isdigit() else None
            return d, _choose_face(d, img, index, now)
    return dialog, [Stale(action, dialog.step)]


def on_form(
    dialog: Dialog,
    *,
    user_id: str,
    call_number: str,
    purpose: str | None,
    justification: str,
    now: datetime,
    policy: PolicySettings,
    calls: Calls = NO_CALLS,
) -> Result:
    """The form's three answers at once (an offer starts with it). Answers that pass are kept even when
    another fails; each refused one is an Invalid effect (the adapter shows it inline under its field and
    audits it). A call number dispatch never posted is taken as typed (submitting the form confirms it),
    unless require_known_call refuses it. Nothing changes for anyone but the requester, or after the
    attestation."""
    if dialog.terminal or dialog.attested:
        return dialog, [Closed(dialog.step)]
    if user_id != dialog.requester_id:
        return dialog, [NotRequester(user_id)]
    d = dialog.copy()
    effects: list[Effect] = [] if d.started else _start(d, now)
    pattern = policy.call_number_pattern
    value = _policy.parse_call_number(call_number, pattern)
    if value is None:
        reason = _policy.check_call_number(_policy.slack_to_plain(call_number), pattern)
        effects.append(Invalid(Step.CALL_NUMBER, "call_number", reason, text=_echo(call_number)))
    elif calls.require_known and not (calls.known and calls.known(value)):
        effects.append(Invalid(Step.CALL_NUMBER, "unknown_call", None, value=value, text=value))
    else:
        _take_call_number(d, value, now)
    effects += _answer_purpose(d, purpose or None, now, purpose or "")
    effects += _answer_justification(d, justification, now, policy)
    _touch(d, now)
    _ask(d)
    return d, effects


def on_analysed(
    dialog: Dialog,
    request_id: str,
    *,
    faces: list[dict[str, Any]] | None,
    probe_sha256: str | None,
    error: str | None,
    now: datetime,
) -> Result:
    """Faces were found on one image (or it could not be read). Store the boxes; say a problem at once; the
    face to search is known (one face) or asked (several); after the attestation the search follows."""
    img = dialog.image(request_id)
    if not dialog.started or img is None or img.status != PENDING or dialog.terminal:
        # An image already analysed is never re-detected; one ended by cancel or timeout keeps that ending.
        return dialog, []
    d = dialog.copy()
    img = d.image(request_id)
    assert img is not None
    img.probe_sha256 = probe_sha256
    img.faces = copy.deepcopy(list(faces or ()))
    img.analysed_at = iso_time(now)
    if d.attested:
        _touch(d, now)  # the bot's own work: the watchdog's clock; before the attestation the officer's silence
    effects: list[Effect] = []
    if error or not img.faces:
        img.status, img.outcome, img.error = DONE, "error", error or "no_face"
        img.result_at = img.analysed_at
        effects.append(ImageFailed(img.request_id, img.error))
    elif len(img.faces) == 1:
        img.face_index, img.status = 1, READY
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
    """One image's search finished (outcome "candidates", "no_candidate", "error", or "review": its candidates
    went to an examiner, whose release the requester is told of); DONE when all are."""
    if outcome not in ("candidates", "no_candidate", "error", "review"):
        raise ValueError(f"not a search outcome: {outcome!r}")
    img = dialog.image(request_id)
    if img is None or img.status != SEARCHING:
        return dialog, []
    d = dialog.copy()
    img = d.image(request_id)
    assert img is not None
    img.status, img.outcome, img.error = DONE, outcome, error
    img.result_ts, img.result_at = result_ts, iso_time(now)
    _touch(d, now)
    # A dialog cancelled or expired while this search ran keeps its ending; the result is still kept, and
    # when the last such search is over the adapter may clear its progress marks (Done).
    effects = _settle(d, now)
    if d.step in (Step.CANCELLED, Step.EXPIRED) and not any(i.status == SEARCHING for i in d.images):
        effects.append(Done(d.request_ids))
    return d, effects


def on_refused(dialog: Dialog, now: datetime) -> Result:
    """The requester is no longer authorised (re-checked at the attestation, before any search runs): every
    image not yet finished ends `denied`. The adapter audits and says why; no effects from here."""
    if dialog.terminal:
        return dialog, []
    d = dialog.copy()
    for img in d.images:
        if img.status != DONE:
            img.status, img.outcome, img.result_at = DONE, "denied", iso_time(now)
    d.step, d.ended_at = Step.CANCELLED, iso_time(now)
    return d, []


def on_tick(dialog: Dialog, now: datetime, timeout_minutes: int, approval_minutes: int | None = None) -> Result:
    """End a dialog left unanswered past the timeout. Only input steps expire, never the bot's own work; an
    offer nobody took up ends quietly (`OfferEnded`, nothing audited)."""
    if dialog.step is Step.AWAITING_APPROVAL:
        if approval_minutes is None or now - parse_time(dialog.updated_at) < timedelta(minutes=approval_minutes):
            return dialog, []
        d = dialog.copy()
        _touch(d, now)
        d.approval = {**(d.approval or {}), "status": "expired", "decided_at": iso_time(now)}
        return d, [Expired(_end(d, Step.EXPIRED, "expired", now))]
    if dialog.step not in INPUT_STEPS:
        return dialog, []
    if now - parse_time(dialog.updated_at) < timedelta(minutes=timeout_minutes):
        return dialog, []
    d = dialog.copy()
    _touch(d, now)
    if not d.started:
        d.step, d.ended_at = Step.EXPIRED, iso_time(now)
        return d, [OfferEnded()]
    return d, [Expired(_end(d, Step.EXPIRED, "expired", now))]


def resume(dialog: Dialog) -> list[Effect]:
    """Work to restart after a process restart: face detection not yet stored, searches not yet finished.

    Questions are not asked again (the card shows them). Images whose faces are stored are never analysed
    again."""
    if not dialog.started:
        return []
    effects: list[Effect] = []
    pending = tuple(i.request_id for i in dialog.images if i.status == PENDING)
    if pending and not dialog.terminal:
        effects.append(Analyse(pending))
    for img in dialog.images:
        if img.status == SEARCHING and img.face_index is not None:
            effects.append(Search(img.request_id, img.face_index))
    return effects


__all__ = [
    "ACTION_ATTEST",
    "ACTION_CALL",
    "ACTION_CANCEL",
    "ACTION_FACE",
    "ACTION_FORM",
    "ACTION_PURPOSE",
    "ACTION_START",
    "INPUT_STEPS",
    "NO_CALLS",
    "QUESTION_STEPS",
    "TERMINAL_STEPS",
    "WORK_STEPS",
    "Analyse",
    "AskFace",
    "Attested",
    "Busy",
    "Calls",
    "Cancelled",
    "Closed",
    "ConfirmCall",
    "Dialog",
    "Done",
    "Effect",
    "Expired",
    "ImageFailed",
    "ImageRequest",
    "Invalid",
    "NeedsApproval",
    "NotRequester",
    "Offer",
    "OfferEnded",
    "Search",
    "Stale",
    "Started",
    "Step",
    "UnderReview",
    "asks_for_search",
    "new_request_id",
    "on_action",
    "on_analysed",
    "on_approval",
    "on_form",
    "on_reply",
    "on_searched",
    "on_tick",
    "resume",
    "start_dialog",
]
