"""The request dialog in an upload's Slack thread: a pure state machine (its store: bot.dialog_store).

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

import copy
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

# Imported under another name: `policy` is also the pinned name of the settings parameter below.
from bot import policy as _policy
from bot.config import PolicySettings
from bot.dialog import (
    ACTION_ATTEST,
    ACTION_CANCEL,
    ACTION_FACE,
    ACTION_PURPOSE,
    DONE,
    INPUT_STEPS,
    NEEDS_FACE,
    PENDING,
    PREFILL_FIELDS,
    QUESTION_STEPS,
    SEARCHING,
    TERMINAL_STEPS,
    WORK_STEPS,
    Analyse,
    AskFace,
    Busy,
    Cancelled,
    Closed,
    Dialog,
    Done,
    Effect,
    Expired,
    ImageFailed,
    ImageRequest,
    Invalid,
    NotRequester,
    Prefilled,
    Prompt,
    Result,
    Search,
    Stale,
    Step,
    Summary,
    iso_time,
    new_dialog_id,
    new_request_id,
    parse_time,
)

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
        d.ended_at = iso_time(now)
        effects.append(Done(d.request_ids))
    return effects


def _unfinished(d: Dialog) -> list[ImageRequest]:
    """Images no search has started for: the ones a cancel or a timeout ends."""
    return [img for img in d.images if img.status in (PENDING, NEEDS_FACE)]


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
    img.face_index, img.status, img.chosen_at = index, SEARCHING, iso_time(now)
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
    stamp = iso_time(now)
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
    img.analysed_at = iso_time(now)
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
    img.result_ts, img.result_at = result_ts, iso_time(now)
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
    if now - parse_time(dialog.updated_at) < timedelta(minutes=timeout_minutes):
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
