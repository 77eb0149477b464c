"""Every sentence a person reads: caveat, attestation, refusals, prompts, results, call-thread log.

Plain text only (no Block Kit). Constants carry no user input and no raw `&`, `<` or `>`, so they read the same
in a terminal, in the README and in Slack. Functions that echo what someone typed (justifications, names,
file names) escape it with `escape_slack` and clip it so a Slack section text stays within 3,000 characters.

This module imports nothing from the project: `bot.policy` builds its denial reasons from it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

POLICY = "GO 375.01"
SLACK_SECTION_LIMIT = 3000  # characters per Block Kit section text
ATTEST_REPLY = "I attest"
CANCEL_REPLY = "cancel"

# --- Caveats (GO 375.01 A.2, A.3, B.3) -----------------------------------------------------------------------

CAVEAT = (
    "Investigative leads only. Under GO 375.01, a facial recognition result is a potential investigative lead "
    "based on algorithmic similarity, not a positive identification (A.2, A.3). It shall not be used as the "
    "sole basis for a detention, arrest, identification, or requesting a warrant of any kind (B.3). "
    "Corroborate any candidate independently before acting on it."
)

NO_CANDIDATE_CAVEAT = (
    "No candidate — the absence of a result is not an exclusion. The person may not be enrolled in the "
    "gallery, the photo may be too poor (angle, lighting, blur, size of the face), or the closest match may "
    "not stand out from the gallery enough: a candidate is shown only when a person who is not enrolled would "
    "rarely score as well. Do not treat this result as clearing anyone."
)


def result_caveat(has_candidates: bool) -> str:
    """The caveat every result carries, first: the leads-only caveat, plus the no-candidate caveat when empty."""
    return CAVEAT if has_candidates else f"{CAVEAT}\n\n{NO_CANDIDATE_CAVEAT}"


# --- Attestation (GO 375.01 B.1, B.2, B.3, C, D) --------------------------------------------------------------

ATTESTATION = (
    "I attest that:\n"
    "1. I have reasonable suspicion that this search will provide information relevant to the purpose I "
    "stated: an active investigation, an imminent threat to health or safety, or identifying a deceased "
    "person or a person unable to identify themselves (GO 375.01 B.1).\n"
    "2. This use complies with all federal and state laws and all department policies (B.2).\n"
    "3. This search is not based solely on race, religion, ethnicity, citizenship, national origin, age, "
    "disability, gender, gender identity, sexual orientation or any other protected classification (C).\n"
    "4. I will treat any result as an investigative lead only, never as the sole basis for a detention, "
    "arrest, identification or a warrant request (B.3).\n"
    "5. I will document this search in the associated report or on the dispatched call incident (D)."
)

# --- Policy denial reasons (returned by bot.policy checks) ------------------------------------------------------

CALL_NUMBER_MISSING = (
    "A call number is required: every facial recognition search must be tied to a dispatched call or case "
    "so that its use can be documented (GO 375.01 D)."
)
PURPOSE_MISSING = "A purpose is required: choose one of the three purposes GO 375.01 B.1 permits."
JUSTIFICATION_MISSING = (
    "A justification is required: state the facts that give reasonable suspicion that this search will "
    "provide relevant information (GO 375.01 B.1)."
)
JUSTIFICATION_PLACEHOLDER = (
    "The justification looks like a placeholder (such as n/a, test or repeated characters). State the actual "
    "facts that give reasonable suspicion for this search (GO 375.01 B.1)."
)
JUSTIFICATION_PROTECTED_CLASS = (
    "GO 375.01 C forbids searches based solely on race, religion, ethnicity, citizenship, national origin, "
    "age, disability, gender, gender identity, sexual orientation or another protected classification. The "
    "justification describes the person but states no facts: add what happened, where and when, and how the "
    "person in the photo is connected to it."
)
JUSTIFICATION_NO_FACTS = (
    "The justification does not state enough facts for reasonable suspicion (GO 375.01 B.1): say what "
    "happened, where and when, and how the person in the photo is connected to it (for example a report "
    "number, a victim, a witness or a camera)."
)
ATTESTATION_MISSING = (
    "The attestation is required: the requester must attest to the conditions of GO 375.01 before a search "
    "runs."
)


def call_number_invalid(example: str | None, read: str | None = None) -> str:
    """Denial reason: the call number does not match the configured format; `read`, what was read, is quoted
    (escaped, on one line, clipped), so a look-alike character or a stray word shows."""
    shown = f"for example {example}" if example else "the format set in [policy] call_number_pattern"
    said = f"The call number {read_back(read, 40)}" if read and read.strip() else "That call number"
    return f"{said} is not in the department's call number format ({shown})."


def purpose_unknown(codes: Iterable[str]) -> str:
    """Denial reason: the purpose is not one of the codes of GO 375.01 B.1."""
    return f"The purpose must be one of the three GO 375.01 B.1 permits: {_or_list(list(codes))}."


def justification_too_short(min_chars: int) -> str:
    """Denial reason: the justification is under the configured minimum length."""
    return (
        f"The justification is too short: write at least {min_chars} characters stating what happened, where "
        "and when, and how the person in the photo is connected to it (GO 375.01 B.1)."
    )


# --- Refusals before or during a request ----------------------------------------------------------------------

NOT_AUTHORISED_NOBODY_CONFIGURED = (
    "No one is authorised to request facial recognition searches yet: an administrator must authorise "
    "requesters (the requesters or requester_groups setting) before searches can be requested."
)
NOT_AUTHORISED = (
    "You are not on the list of personnel authorised to request facial recognition searches (GO 375.01). "
    "If your assignment requires it, ask an administrator to authorise you."
)
GUEST_REFUSED = "Guest accounts cannot request facial recognition searches."
ACCOUNT_NOT_VERIFIED = (
    "Your Slack account could not be verified just now, so no search was requested. Upload the photo again "
    "in a few minutes; if this keeps happening, tell an administrator."
)
EXTERNAL_CHANNEL_REFUSED = (
    "Facial recognition searches cannot be requested in a channel shared with another organisation."
)
DIALOG_CANCELLED = "Request cancelled. No search was run. The cancellation is recorded in the audit log."
FILES_READ_MISSING = (
    "The photo could not be downloaded: Slack returned a login page instead of the image, which means the "
    "app lacks the files:read scope. An administrator must reinstall the app from its manifest."
)
NO_FACE = (
    "No face was found in this photo, so no search was run. Try a clearer photo in which the face is "
    "front-facing, well lit and large enough."
)
SEARCH_FAILED = (
    "The search failed because of an internal error, so no result was produced. The error is recorded in "
    "the audit log. Try again, or tell an administrator if it keeps happening."
)


def call_number_unknown(call_number: str) -> str:
    """Refusal when require_known_call is on and the call was never seen in the dispatch channel."""
    return (
        f"Call {_clip(call_number, 100)} has not been seen in the dispatch channel. Searches must be tied to "
        "a dispatched call: check the number, or ask dispatch to post the call, then reply with the number."
    )


def dialog_expired(minutes: int) -> str:
    """Notice that a dialog ended after the inactivity timeout."""
    return (
        f"This request expired after {minutes_text(minutes)} without an answer. No search was run. Upload the "
        "photo again to start over."
    )


def minutes_text(minutes: int) -> str:
    """A number of minutes in words, each unit singular or plural: "1 minute", "1 hour 30 minutes", "2 days"."""
    days, rest = divmod(int(minutes), 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [count_noun(n, unit) for n, unit in ((days, "day"), (hours, "hour"), (mins, "minute")) if n]
    return " ".join(parts) or count_noun(0, "minute")


def wrong_person(requester_id: str) -> str:
    """Ephemeral note to someone other than the requester who replies in a request thread."""
    return f"Only {mention(requester_id)} who uploaded the photo can answer in this request."


def non_image_note(filename: str) -> str:
    """Short note for an uploaded file that is not an image."""
    return f"{_clip(one_line(filename) or 'This file', 200)} is not an image, so no search was started for it."


def image_error(message: str) -> str:
    """Preface for an image that could not be used; `message` is the image module's sentence."""
    return f"The photo could not be used, so no search was run: {_clip(message, 1000)}"


# --- Dialog prompts ---------------------------------------------------------------------------------------------


def prompt_justification(min_chars: int) -> str:
    """Ask for the justification and say what reasonable suspicion needs."""
    return (
        "Why is this search needed? Reply with the facts that give you reasonable suspicion that it will "
        "provide relevant information (GO 375.01 B.1): what happened, where and when, and how the person in "
        "the photo is connected to it (report or case number, victim, witness, camera). A description of the "
        "person's race, religion, ethnicity, citizenship, national origin, age, disability, gender, gender "
        f"identity or sexual orientation is not a reason to search (C). At least {min_chars} characters."
    )


PURPOSE_NOT_UNDERSTOOD = "That reply did not match a purpose. Reply 1, 2 or 3, or press a button."
ATTESTATION_NOT_UNDERSTOOD = (
    f"To attest, press the button or reply exactly: {ATTEST_REPLY}. Reply {CANCEL_REPLY} to stop."
)


def face_choice_not_understood(n_faces: int) -> str:
    """Re-ask after a face-choice reply that is not a face number."""
    return f"Reply with a face number from 1 to {n_faces}, or press its button."


def face_too_small_note(index: int, min_face_px: int) -> str:
    """Note that the chosen face is small, so its result is a weaker lead."""
    return (
        f"Face {index} is smaller than {min_face_px} pixels across: there is little detail, so any result is a "
        "weaker lead."
    )


# --- Progress and results -------------------------------------------------------------------------------------

CONTACT_SHEET_NOT_ATTACHED = (
    "The contact sheet could not be attached (Slack did not accept the upload). The candidates listed in the "
    "result above are complete."
)
FACE_IMAGE_NOT_ATTACHED = (
    "The photo with numbered faces could not be attached (Slack did not accept the upload). Faces are "
    "numbered from 1, left to right: press a button or reply with the number."
)
CONTACT_SHEET_TEXT = "Contact sheet: your photo beside each candidate's gallery photo, by rank."

# The examiners' comparison sheet (bot.contact_sheet.comparison_sheet): drawn as pixels, so plain text.
COMPARISON_PROBE = "Probe (the searched face)"
COMPARISON_NO_PROBE = "no probe image"
COMPARISON_NO_GALLERY_CROP = "no gallery image"
COMPARISON_NO_CANDIDATE = "No candidate"


def comparison_gallery_caption(rank: int) -> str:
    """Under a gallery face on the comparison sheet."""
    return f"Gallery image of candidate #{rank}"


def comparison_left_off(count: int, per_sheet: int) -> str:
    """Above the caveat when a comparison sheet could not hold every candidate."""
    return f"{count_noun(count, 'more candidate')} not shown on this sheet (at most {per_sheet} a sheet)."


def comparison_sheet_title(title: str, sheet: int, sheets: int) -> str:
    """The title of one of several comparison sheets."""
    return f"{title} · sheet {sheet} of {sheets}"


def result_header(candidate_count: int, request_id: str, target_fpir: float | None = None) -> str:
    """Heading of a result (it follows the caveat)."""
    rid = _clip(request_id, 100)
    # The check's target is said once, in the result's details line (result_details_short).
    if candidate_count == 0:
        return f"Request {rid}: no candidate passed the false-match check."
    noun = "candidate" if candidate_count == 1 else "candidates"
    return f"Request {rid}: {candidate_count} {noun} passed the false-match check, strongest first."


def one_in_text(fpir: float | None) -> str:
    """0.01 -> "1 in 100"; 0.0025 -> "1 in 400" (two significant figures)."""
    from bot.faces.calibration import one_in

    return f"1 in {one_in(float(fpir or 0)):,}"


def estimate_text(fpir: float | None, below_resolution: bool, operating_point: Mapping[str, Any] | None) -> str:
    """A candidate's false-match estimate in words an officer reads correctly (what it is NOT: the chance
    this candidate is wrong; README "Accuracy")."""
    point = operating_point or {}
    size = int(point.get("gallery_size") or 0)
    if fpir is None:
        return "no false-match estimate (searched before calibration)"
    if below_resolution:
        n = int(point.get("sample_size") or 0)
        freq = f"fewer than 1 in {n:,}" if n else f"about {one_in_text(fpir)}"
    else:
        freq = f"about {one_in_text(fpir)}"
    if point.get("method") == "reference":
        where = f"of a gallery of {size:,} people (estimated from the reference set, not this gallery)"
    else:
        where = f"of these {size:,} people"
    return f"a person not in the gallery scores this well in {freq} searches {where}"


def estimate_short(fpir: float | None, below_resolution: bool, operating_point: Mapping[str, Any] | None) -> str:
    """The estimate for a contact-sheet tile: "stranger ≈ 1 in 400" ("< 1 in 1,600" when a bound)."""
    if fpir is None:
        return "no estimate"
    n = int((operating_point or {}).get("sample_size") or 0)
    if below_resolution and n:
        return f"stranger < 1 in {n:,}"
    return f"stranger ≈ {one_in_text(fpir)}"


def candidate_line(rank: int, name: str, subject_id: str, record_ref: str, distance: float,
                   estimate: str) -> str:
    """One ranked candidate for Slack, escaped."""
    return _candidate(rank, name, subject_id, record_ref, distance, estimate, lambda t: _clip(t, 200))


def _candidate(
    rank: int, name: str, subject_id: str, record_ref: str, distance: float, estimate: str,
    show: Callable[[str], str],
) -> str:
    ref = f", record {show(record_ref)}" if record_ref else ""
    return f"{rank}. {show(name)} (subject {show(subject_id)}{ref}): distance {distance:.3f}; {estimate}"


QUALITY_PROBLEMS = {
    "small": "the face is small",
    "eyes": "the eyes are few pixels apart",
    "soft": "the face is soft or blurred",
    "dark": "the face is dark",
    "bright": "the face is washed out",
    "turned": "the head is turned",
}


def quality_note(index: int, problems: Sequence[str]) -> str:
    """Said with a result whose face is of low quality: what was measured and what it means."""
    said = "; ".join(QUALITY_PROBLEMS.get(p, p) for p in problems) or "the face is of low quality"
    return (
        f"Face {index} is of low quality ({said}). On the reference set such photos found their mate far less "
        "often: a missing or weak result says even less than usual, and any candidate needs more "
        "corroboration."
    )


def document_reminder(request_id: str) -> str:
    """Reminder on every final result to document the search (GO 375.01 D)."""
    return (
        f"Document this search in the associated report or on the dispatched call incident, quoting request "
        f"{_clip(request_id, 100)} (GO 375.01 D)."
    )


OUTCOME_LABELS = {
    "candidates": "candidates returned",
    "no_candidate": "no candidate (not an exclusion)",
    "denied": "refused under GO 375.01",
    "error": "failed (error)",
    "cancelled": "cancelled by the requester",
    "expired": "expired without an answer",
    "review": "searched, waiting for examiner review",
}


def outcome_label(outcome: str) -> str:
    """Words for an audit outcome."""
    return OUTCOME_LABELS.get(outcome) or _clip(outcome, 100)


# --- Slack messages: buttons, notes, result details ------------------------------------------------------------
# Button labels are plain text (at most 75 characters in Slack); they carry no user input.

SLACK_BUTTON_LIMIT = 75  # characters per Block Kit button label
CAVEAT_SHORT = "Investigative leads only, not an identification (GO 375.01 A.2, B.3)."
ATTEST_BUTTON = "I attest"
CANCEL_BUTTON = "Cancel request"
CANCEL_CONFIRM_TITLE = "Cancel this request?"
CANCEL_CONFIRM_TEXT = (
    "No search will be run for the photos still waiting. The cancellation is recorded in the audit log."
)
CANCEL_CONFIRM_YES = "Cancel request"
CANCEL_CONFIRM_NO = "Keep going"
NOT_GIVEN = "not given"
DIALOG_EXPIRED = (
    "This request expired without an answer. No search was run. Upload the photo again to start over."
)
BUSY_NOTE = "The search is under way; the result will be posted in this thread."
STALE_NOTE = "That button belongs to an earlier question. Answer the latest question in this thread."
CLOSED_NOTE = (
    "This request has ended, so the button does nothing. Upload the photo again to start a new request."
)
CALL_THREAD_LOGGED = "This search is logged in the call's thread in the dispatch channel."
IMAGE_PROBLEMS = {
    "too_large": "the file is larger than the size limit ([images] max_bytes). Send a smaller photo.",
    "too_many_pixels": (
        "the photo has more pixels than the limit ([images] max_pixels). Send a smaller photo."
    ),
    "corrupt": "the photo is damaged and cannot be read. Send the original file.",
    "not_image": "this file is not a photo the bot can read. Send the original JPEG, PNG or HEIC file.",
    "unsupported": "this image format is not supported. Send the original JPEG, PNG or HEIC file.",
    "download_failed": "it could not be downloaded from Slack. Upload it again.",
}


def purpose_button(number: int, label: str) -> str:
    """Label of a purpose button: its reply number and label, within Slack's button limit."""
    return _cut(f"{number}. {label}", SLACK_BUTTON_LIMIT)


def face_button(index: int, too_small: bool = False) -> str:
    """Label of a face-choice button; a small face says so (its result is a weaker lead)."""
    return f"Face {index} (small)" if too_small else f"Face {index}"


def image_label(file_name: str, request_id: str) -> str:
    """Which photo and request a message is about (several photos may share one thread)."""
    return f"Photo {_clip(one_line(file_name) or 'without a name', 200)}, request {_clip(request_id, 100)}"


def model_label(model: Any) -> str:
    """A model as a person reads it, plain text (escaped where it is shown): "dlib-resnet 1" from a search entry's
    {id, version, ...}; an entry written before models had ids named it with a string, shown as it is."""
    if isinstance(model, Mapping):
        return _cut(f"{model.get('id') or 'unknown'} {model.get('version') or ''}".strip(), 120)
    return _cut(str(model or "unknown"), 120)


def model_record_text(model: Any) -> str:
    """A model as evidence names it: id and version, the SHA-256 of its weights and the runtime (an entry
    written before models had ids named it with a string, shown as it is)."""
    if isinstance(model, Mapping):
        return (f"{model_label(model)} (weights SHA-256 {_cut(str(model.get('weights_sha256') or NOT_GIVEN), 80)}; "
                f"runtime {_cut(str(model.get('runtime') or NOT_GIVEN), 80)})")
    return model_label(model) if model else NOT_GIVEN


def result_details(threshold: float, gallery_size: int, gallery_images: int, model: Any,
                   operating_point: Mapping[str, Any] | None = None) -> str:
    """The operating point and settings a result was produced with."""
    return f"{operating_point_text(operating_point, gallery_size, gallery_images)} Distance ceiling {threshold}; " \
        f"model {_clip(model_label(model), 200)}."


def result_details_short(threshold: float, gallery_size: int, operating_point: Mapping[str, Any] | None = None) -> str:
    """The operating point under a result in Slack, briefly (the model and versions are in the audit entry)."""
    point = operating_point or {}
    target = (f"false-match target {one_in_text(point.get('target_fpir'))} searches"
              if point.get("target_fpir") else "no false-match target")
    if not point:
        how = "not calibrated"
    elif point.get("method") == "reference":
        how = "calibrated from the reference set (a gallery this small cannot calibrate itself)"
    else:
        how = f"calibrated on this gallery {_clip(str(point.get('calibrated_at') or '')[:10], 20)}"
    return f"Gallery of {gallery_size:,} subjects; {target}; {how}; distance ceiling {threshold}."


def operating_point_text(operating_point: Mapping[str, Any] | None, gallery_size: int,
                         gallery_images: int | None = None) -> str:
    """Gallery size, target FPIR and the calibration's date, in one sentence."""
    point = operating_point or {}
    images = f" ({gallery_images:,} images)" if gallery_images is not None else ""
    head = f"Gallery of {gallery_size:,} subjects{images}"
    if not point:
        return f"{head}; not calibrated."
    target = f"false-match target {one_in_text(point.get('target_fpir'))} searches" if point.get(
        "target_fpir") else "no false-match target"
    when = _clip(str(point.get("calibrated_at") or "")[:10], 20)
    if point.get("method") == "reference":
        from bot.faces.calibration import MIN_SUBJECTS

        how = f"calibrated from the reference set, not this gallery (it is under {MIN_SUBJECTS} subjects)"
    else:
        how = f"calibrated on this gallery {when} ({int(point.get('sample_size') or 0):,} stranger searches)"
    return f"{head}; {target}; {how}."


def candidates_not_shown(count: int) -> str:
    """Note when a long candidate list is cut to fit one Slack message."""
    noun = "candidate is" if count == 1 else "candidates are"
    return f"{count} more {noun} not shown here; every candidate is recorded in the audit log."


def already_requested(request_id: str | None) -> str:
    """A photo shared again after its request ended (cancelled, expired, refused, or searched): no second
    request starts for the same file, and the earlier request is named."""
    earlier = f"request {_clip(request_id, 100)}" if request_id else "an earlier request"
    return (
        f"This photo was already part of {earlier}, so no new request was started for it. To search it "
        "again, upload the photo file itself again rather than sharing the earlier message."
    )


def call_thread_logged(permalink: str | None) -> str:
    """Where the search is logged for dispatch; a link only for an https permalink."""
    if permalink and _SAFE_URL.fullmatch(permalink):
        return f"Logged in the dispatch <{permalink}|call thread>."
    return CALL_THREAD_LOGGED


def image_problem(code_or_message: str) -> str:
    """Why a photo was not searched: a known code (no_face, missing_files_scope, an image error code, ...)
    in words, or the image module's own sentence."""
    if code_or_message == "no_face":
        return NO_FACE
    if code_or_message == "missing_files_scope":
        return FILES_READ_MISSING
    if code_or_message in ("error", "search_failed"):
        return SEARCH_FAILED
    if code_or_message == "gallery_empty":
        return GALLERY_EMPTY
    if code_or_message == "gallery_moved":
        return GALLERY_MOVED
    return image_error(IMAGE_PROBLEMS.get(code_or_message, code_or_message))


# --- Call thread in the dispatch channel ------------------------------------------------------------------------


STORAGE_RETRYING = (
    "The bot could not save this just now: the server's storage is full or failing. Nothing is lost: it tries "
    "again by itself over the next hour, and goes on here when it can. You need not post it again; the "
    "administrator has been alerted in the server log."
)
DATABASE_DELAYED = (
    "Your search is delayed: the bot's database is not answering just now. What you sent is kept on this server "
    "and goes on here by itself as soon as the database is back, so you need not post it again; the "
    "administrator has been alerted in the server log."
)
STORAGE_SPOOL_FULL = (
    "The bot could not save this (the server's storage is full or failing) and has no room left to keep it "
    "until it can, so nothing was done with it. Post it again once the administrator says the server is back."
)
STORAGE_GAVE_UP = (
    "The bot still cannot save this after an hour (the server's storage is full or failing), so nothing was "
    "done with it. Post it again once the administrator says the server is back."
)


def call_thread_opening(call_number: str, replaces_deleted: bool = False) -> str:
    """Top-level message that starts a call's thread when dispatch has none (or its thread was deleted)."""
    text = f"Call {_clip(call_number, 100)} — facial recognition activity"
    if replaces_deleted:
        text += (" (the earlier thread for this call was deleted; entries from now on are here, and every "
                 "search stays in the audit log)")
    return text


def call_log_entry(
    *,
    requester_id: str,
    when: str,
    purpose_label: str,
    justification: str,
    outcome: str,
    candidate_count: int,
    request_id: str,
    permalink: str | None = None,
) -> str:
    """Log entry posted in the call thread: who, when, purpose, justification, outcome, link."""
    link = f" <{permalink}|request thread>" if permalink and _SAFE_URL.fullmatch(permalink) else ""
    head = (
        f"Facial recognition request {_clip(request_id, 100)} by {mention(requester_id)} at "
        f"{_clip(when, 100)}.{link}\n"
        f"Purpose: {_clip(purpose_label, 200)}\n"
        f"Outcome: {outcome_label(outcome)}"
        + (f", {count_noun(candidate_count, 'candidate')}" if candidate_count else "")
        + "\nJustification: "
    )
    # Leave room for the caller to append candidate lines in another section.
    return head + _clip(justification, SLACK_SECTION_LIMIT - len(head))


def call_log_notification(call_number: str, outcome: str, candidate_count: int, request_id: str) -> str:
    """The notification line of a call-thread log entry (what a phone shows): the call, the request and the
    outcome, with candidates worded as leads to check, never as a hit (GO 375.01 A.2, B.3)."""
    head = f"Call {_clip(call_number, 100)}: facial recognition request {_clip(request_id, 100)}"
    if outcome != "candidates":
        return f"{head}: {outcome_label(outcome)}."
    leads = count_noun(candidate_count, "possible lead")
    not_id = "an identification" if candidate_count == 1 else "identifications"
    return f"{head}: {leads} to check, not {not_id}. Investigative leads only ({POLICY})."


def call_log_summary(
    *,
    requester_id: str,
    when: str,
    outcome: str,
    candidate_count: int,
    request_id: str,
    permalink: str | None = None,
) -> str:
    """Log entry in the call thread with `call_log_detail = "summary"`: who, when, the request id, the
    outcome, the candidate count and the link only (no justification, no candidate)."""
    link = f" <{permalink}|request thread>" if permalink and _SAFE_URL.fullmatch(permalink) else ""
    count = f", {count_noun(candidate_count, 'candidate')}" if candidate_count else ""
    return (
        f"Facial recognition request {_clip(request_id, 100)} by {mention(requester_id)} at "
        f"{_clip(when, 100)}.{link}\nOutcome: {outcome_label(outcome)}{count}"
    )


# --- Face models (bot.faces.models): said to the operator when a model cannot be loaded -------------------------
# Plain text: these end up in a terminal, a log line or an exception.


def model_weights_refused(path: str, digest: str, expected: str) -> str:
    """A weight file whose SHA-256 is not the one the model was measured with: it is not loaded."""
    return (f"The face model file {_cut(one_line(path), 300)} is not the file this version was tested with "
            f"(SHA-256 {_cut(digest, 64)}, expected {_cut(expected, 64)}), so it was not loaded and no face work "
            "can run. Reinstall the pinned packages (`make setup`); never replace a model file by hand.")


def model_weights_unreadable(path: str, error: str) -> str:
    """A weight file that cannot be read (missing, no permission)."""
    return (f"The face model file {_cut(one_line(path), 300)} could not be read ({_cut(one_line(error), 200)}), "
            "so no face work can run. Reinstall the pinned packages (`make setup`).")


def gallery_model_mismatch(gallery_model: str, set_model: str) -> str:
    """A search or enrollment refused because it asked for another face model than the gallery's templates."""
    return (f"The gallery holds templates of the face model {_clip(gallery_model, 40)}, not "
            f"{_clip(set_model, 40)}: templates of two models cannot be compared, so nothing was done. To use "
            f"{_clip(set_model, 40)}, move the gallery first: python -m bot gallery reencode --model "
            f"{_clip(set_model, 40)} (until then it is searched with {_clip(gallery_model, 40)}).")


def gallery_model_moved(gallery_model: str, probe_model: str) -> str:
    """A search refused because the gallery was re-encoded with another model after the photo's face was."""
    return (f"The gallery was just moved to the face model {_clip(gallery_model, 40)}, and this photo's face was "
            f"encoded with {_clip(probe_model, 40)}: nothing was searched. Send the photo again to search it.")


def gallery_database_damaged(generation: int, array: str) -> str:
    """The database's gallery lacks face data of its current generation (a GalleryError: nothing is searched)."""
    return (f"The gallery in the database is damaged: the face data {_cut(one_line(array), 40)} of generation "
            f"{generation} is missing, so nothing can be searched. Restore the database from a backup or "
            "re-enroll.")


def model_unknown(model: str, known: Sequence[str]) -> str:
    """A face model id nobody built (a setting, an argument)."""
    return f"There is no face model called {_cut(one_line(model), 100)!r}: use one of {', '.join(known)}."


# --- Terminal (CLI) -------------------------------------------------------------------------------------------

STORE_URL_MISSING = ("No database is named: set BOT_DATABASE_URL to the owner's postgresql:// URL (the role that "
                     "owns the database, frbot_owner) and run `python -m bot store migrate` again.")


def store_unreachable(reason: str) -> str:
    """The database could not be reached or refused (its own first line: no such role, a password, a right)."""
    return (f"The database refused or could not be reached ({_cut(one_line(reason), 300)}); nothing was changed. "
            "Check BOT_DATABASE_URL (the owner's URL for `store migrate`) and that the server is up.")


def store_migrated(version: int, applied: Sequence[str]) -> str:
    """`store migrate` done: the schema version now, and the migrations applied (none: nothing to do)."""
    if not applied:
        return f"The database schema is at version {version}: nothing to do, nothing was changed."
    return f"The database schema is at version {version}; applied {', '.join(_cut(a, 80) for a in applied)}."


STORE_COPY_PASSWORD_IN_ARGS = ("The URL after --to carries a password, which other users of this machine can read in "
                               "its process list: nothing was copied. Give the password in PGPASSWORD or ~/.pgpass, "
                               "or the whole URL in BOT_DATABASE_URL.")


def store_copy_not_empty(database: str, tables: Sequence[str]) -> str:
    """`store copy --to` refused: the target database already holds records."""
    shown = ", ".join(_cut(t, 40) for t in list(tables)[:6]) + (", ..." if len(tables) > 6 else "")
    return (f"{_cut(database, 120)} already holds records ({shown}): `store copy` only fills an empty database, "
            "so nothing was copied. Name a new database, or ask its DBA to empty it.")


def store_copy_broken_log(seq: int | None, reason: str) -> str:
    """`store copy` refused: the data dir's audit log does not verify (a copy would carry the damage)."""
    return (f"The audit log here is broken at entry {seq} ({_cut(one_line(reason), 120)}): nothing was copied. "
            "Run `python -m bot audit verify` and settle that first.")


def store_copy_heads_differ() -> str:
    """`store copy`: the copy did not verify to the same chain head; rolled back."""
    return ("The copied audit log did not verify to the same chain head as the data dir's, so the copy was rolled "
            "back and the database is as empty as before. Report this; keep serving from the data dir.")


def store_copied(database: str, counts: Mapping[str, int], head: Mapping[str, Any] | None) -> str:
    """`store copy` done: what went over, the head both sides verify to, and what to do next."""
    what = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing"
    same = f"both verify to chain head {head['seq']}:{head['mac']}" if head else "the audit log was empty"
    return (f"Copied to {_cut(database, 120)}: {what}; {same}. The data dir now says MOVED_TO: start the servers "
            "with BOT_DATABASE_URL (the app's role, frbot_app) and keep this data dir as a backup.")


def store_moved(database: str) -> str:
    """The file store refuses to start: its records were copied to a database (MOVED_TO)."""
    return (f"This data dir's records were moved to {_cut(database, 120)} (`store copy`; see its MOVED_TO file): "
            "set BOT_DATABASE_URL to serve from the database. Starting on these files would fork the records.")


def store_schema_version(have: int, want: int) -> str:
    """`serve` (or a command) on a database whose schema is not this version's: what to run."""
    if have > want:
        return (f"The database is at schema version {have}, newer than this version of the bot knows ({want}): run "
                "the newer version of the bot (`python -m bot store migrate` never takes a schema back).")
    where = "has no schema yet" if have == 0 else f"is at schema version {have}"
    return (f"The database {where}; this version of the bot needs version {want}. Run `python -m bot store migrate` "
            "with the owner's BOT_DATABASE_URL (frbot_owner), then start again.")


def store_role_too_strong(rights: Sequence[str]) -> str:
    """The server's database role could change or remove audit entries: refused (CONTRACTS ### 13)."""
    return (f"The database role in BOT_DATABASE_URL may {', '.join(r.upper() for r in rights)} the audit table: "
            "the audit log must be append-only for the bot. Connect as the app's role (frbot_app), not the owner.")


def store_unreachable_serving(reason: str) -> str:
    """The database could not be reached or refused when the bot started or a command ran."""
    return (f"The database refused or could not be reached ({_cut(one_line(reason), 300)}). Check BOT_DATABASE_URL "
            "(the app's role, frbot_app) and that the database server is up.")


def store_audit_key_needed(env_name: str, min_chars: int, set_but_short: bool) -> str:
    """On PostgreSQL the audit key comes only from the environment (every replica signs one chain)."""
    state = f"is set but shorter than {min_chars} characters" if set_but_short else "is not set"
    return (f"{env_name} {state}: with a database every replica signs one audit chain, so the key comes only from "
            f"the environment (the same value on every replica; at least {min_chars} random characters).")

# Terminal text is not Slack mrkdwn: nothing here is escaped.

CLI_DESCRIPTION = (
    "Facial recognition searches under General Order 375.01 for personnel with direct access. Every search "
    "needs a call number, a permitted purpose, a justification and an attestation; every use is audited."
)
CLI_DENIED_HEADER = "Search refused under GO 375.01:"
def cli_audit_key_file(path: Any) -> str:
    """The command line's warning while the audit log is keyed from a file beside it (BOT_AUDIT_KEY unset)."""
    return (f"warning: the audit log is keyed from {_cut(str(path), 300)}, a file beside the log: whoever can change "
            "the log can read that key and re-sign what they changed. Production must set BOT_AUDIT_KEY in the "
            "environment (and keep the key off this disk).")


CLI_EXIT_CODES = (
    "Exit codes:\n"
    "0  the search ran (candidates or none)\n"
    "1  error: unreadable image, no face, bad --face, empty gallery (audited as error); also a usage error, or an "
    "audit log that cannot record the request (then nothing runs)\n"
    "2  refused under GO 375.01, or nobody can be named as the requester on a shared account (audited as denied)\n"
    "3  the photo shows several faces: choose one with --face K (nothing searched or audited yet)\n"
    "4  queued for examiner review, or waiting for a supervisor's approval: `status REQUEST-ID` says where it "
    "stands, `cancel REQUEST-ID` withdraws it"
)
CLI_OUT_HELD = ("--out: nothing written. Candidates reach you only once an examiner releases them, or once a "
                "supervisor approves the search, in Slack.")


def cli_out_written(paths: Sequence[str]) -> str:
    """Where `search --out DIR` put its files (0600: they name people)."""
    return "Written (readable by you only): " + ", ".join(_cut(p, 300) for p in paths[:10])


def cli_out_folder_missing(path: str) -> str:
    return f"--out {_cut(path, 300)}: no such folder you can write in. Make it first (nothing was searched)."


def cli_out_failed(error: str) -> str:
    return (f"warning: --out could not be written ({_cut(error, 300)}); the search ran and is recorded in the "
            "audit log, and its result is printed here.")


CLI_ATTEST_HEADER = "--attest attests to this statement (GO 375.01):"
CLI_ATTEST_ADD = "Read the statement; add --attest only if every point holds:"


def cli_denied(reasons: Iterable[str]) -> str:
    """Terminal message for a search refused by policy: the header, then one reason per line."""
    return CLI_DENIED_HEADER + "".join(f"\n- {r}" for r in reasons)


def image_too_large(max_bytes: int) -> str:
    """Refusal of a file over [images] max_bytes."""
    return f"The file is larger than the {_size(max_bytes)} limit ([images] max_bytes). Send a smaller photo."


def face_line(face: Mapping[str, Any]) -> str:
    """One detected face for a listing: number, box, width, quality (no demographic attribute, ever)."""
    box = face.get("box") or {}
    where = ", ".join(f"{k} {box[k]}" for k in ("left", "top", "right", "bottom") if k in box)
    quality = "too small for a reliable lead" if face.get("quality") == "too_small" else "ok"
    return f"Face {face.get('index')}: {where}; {face.get('size')} px; {quality}"


def _bundle_candidate(c: Mapping[str, Any], point: Mapping[str, Any]) -> str:
    head = f"{c.get('rank')}. subject {c.get('subject_id')}: distance {c.get('distance')}"
    if c.get("fpir_estimate") is None:
        return head  # an entry from before the calibrated decision
    return (f"{head}, margin {c.get('margin') if c.get('margin') is not None else 'none'}, score {c.get('score')}; "
            f"{estimate_text(c.get('fpir_estimate'), bool(c.get('below_resolution')), point)}")


def cli_choose_face(faces: Sequence[Mapping[str, Any]] | int) -> str:
    """CLI message when several faces were found and --face was not given, listing the faces."""
    n = faces if isinstance(faces, int) else len(faces)
    listing = "" if isinstance(faces, int) else "".join(f"\n{face_line(f)}" for f in faces)
    return (
        f"The photo shows {n} faces, numbered from 1, left to right. Choose one with --face K "
        f"(1 to {n}) and run the search again.{listing}"
    )


def bad_face_choice(index: int, n_faces: int) -> str:
    """Error for a face number that does not exist in the photo."""
    if n_faces == 1:
        return f"There is no face {index}: the photo shows one face (use --face 1 or leave --face out)."
    return f"There is no face {index}: the photo shows {n_faces} faces, numbered 1 to {n_faces}."


def cli_result(result: Any, flagged: bool = False) -> str:
    """Terminal text of a finished search: the caveat first, then ranked candidates and the reminder; `flagged`:
    the justification names a protected class, said right after the caveat as the Slack card says it.

    `result` needs request_id, candidates (rank, name, subject_id, record_ref, distance), threshold,
    gallery_size and model (bot.service.SearchResult fits).
    """
    candidates = list(result.candidates)
    point = getattr(result, "operating_point", None) or {}
    lines = [result_caveat(bool(candidates)), "", *([CARD_FLAG_PROTECTED, ""] if flagged else []),
             result_header(len(candidates), result.request_id, point.get("target_fpir"))]
    for c in candidates:
        est = estimate_text(c.fpir_estimate, c.below_resolution, point)
        lines.append(_candidate(c.rank, c.name, c.subject_id, c.record_ref, float(c.distance), est, str))
    lines += [
        "",
        result_details(result.threshold, result.gallery_size, getattr(result, "gallery_images", None),
                       result.model, point),
        document_reminder(result.request_id),
    ]
    return "\n".join(lines)


def gallery_stats_text(stats: Mapping[str, Any]) -> str:
    """`gallery stats` in a terminal: one readable line per fact (`--json` keeps the raw fields)."""
    cal = stats.get("calibration") or {}
    files = stats.get("files") or {}
    if cal:
        calibrated = (f"Calibration: {cal.get('method')} method, {int(cal.get('sample_size') or 0):,} samples, "
                      f"made {cal.get('calibrated_at') or NOT_GIVEN}; score version {cal.get('score') or NOT_GIVEN}")
    else:
        calibrated = "Calibration: none (nothing is enrolled)"
    sizes = (f"Files: face data {_file_size(files.get('matrix_bytes'))}, metadata "
             f"{_file_size(files.get('metadata_bytes'))}, {count_noun(int(files.get('thumbnails') or 0), 'thumbnail')} "
             f"{_file_size(files.get('thumbnail_bytes'))}")
    return "\n".join([
        operating_point_text(stats.get("operating_point"), int(stats.get("subjects") or 0), stats.get("images")),
        f"Model: {stats.get('model') or 'none yet'}",
        f"Enrolled: first {stats.get('first_enrolled') or 'never'}, last {stats.get('last_enrolled') or 'never'}",
        calibrated,
        sizes,
        f"Folder: {stats.get('path')} (generation {stats.get('generation')})",
    ])


def _file_size(n: Any) -> str:
    n = int(n or 0)
    if n < 1024:
        return count_noun(n, "byte")
    return f"{n / 1024:,.1f} kB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.1f} MB"


def _subject_named(subject_id: str, name: str) -> str:
    """A subject for the terminal: its id, and its name when that says more (enrolled from a folder, it is
    the id)."""
    return subject_id if not name or name == subject_id else f"{subject_id} ({name})"


def gallery_remove_question(subject_id: str, name: str, images: int) -> str:
    """The terminal question before `gallery remove` changes anything."""
    return (f"Remove {_subject_named(subject_id, name)} and its {count_noun(images, 'image')} from the gallery? "
            "The removal is recorded in the audit log. [y/N] ")


def gallery_remove_needs_yes(subject_id: str, name: str, images: int) -> str:
    """One line when `gallery remove` cannot ask (standard input is not a terminal) and --yes was not given."""
    return (f"error: not removing {_subject_named(subject_id, name)} ({count_noun(images, 'image')}): standard "
            "input is not a terminal, so nobody can confirm; add --yes to remove it.")


GALLERY_REMOVE_DECLINED = "Nothing was removed."


def gallery_sync_bad_status(where: str, value: str) -> str:
    """A manifest row whose `status` is none of the known ones: the whole run stops before anything changes."""
    return (f"{one_line(where)[:300]}: status {one_line(value)[:80]!r} is not a status the gallery knows: leave "
            "it empty or write eligible to keep a person; not_charged, dropped, acquitted or expunged removes them. "
            "Nothing was changed.")


def gallery_enroll_ineligible(status: str) -> str:
    """Why `gallery enroll --manifest` skips a row whose status removes the person."""
    return f"status {status}: not enrolled (`gallery sync` removes people with this status)"


def gallery_near_duplicate(subject: str, other: str, distance: float, under: float) -> str:
    """Two subjects so close they may be one person (after `gallery enroll` and `gallery sync`)."""
    return (f"near-duplicate: subjects {one_line(subject)[:200]} and {one_line(other)[:200]} are {distance:.3f} "
            f"apart (under {under}): possibly one person enrolled twice, which hides the mate of either; check and "
            "merge or remove one")


def gallery_sync_needs_yes(removing: int, subjects: int, max_share: float) -> str:
    """One line when `gallery sync` would remove more of the gallery than `[gallery] sync_max_remove_share`."""
    share = f"{removing / subjects:.0%}" if subjects else "0%"
    return (f"error: this manifest would remove {removing} of the gallery's {count_noun(subjects, 'subject')} "
            f"({share}), more than [gallery] sync_max_remove_share ({max_share:.0%}) allows without confirmation. "
            "Nothing was changed. Check the list with --dry-run, then run it again with --yes to remove them.")


_SYNC_REASONS = {"not_listed": "not in the manifest", "image_not_listed": "no longer listed"}


def _sync_change(verb: str, change: Any) -> str:
    """One person added or updated by `gallery sync` (bot.faces.sync_plan.Change)."""
    parts = []
    if change.before is not None:
        old_name, old_record = change.before
        parts.append(f"name and record {one_line(old_name)!r} ({one_line(old_record)!r}) -> "
                     f"{one_line(change.name)!r} ({one_line(change.record_ref)!r})")
    if change.add:
        parts.append(f"+{count_noun(len(change.add), 'image')}")
    if change.drop:
        parts.append(f"-{count_noun(len(change.drop), 'image')} no longer listed")
    return f"  {verb} {one_line(_subject_named(change.subject_id, change.name))}: {', '.join(parts)}"


def _sync_removal(verb: str, removal: Any) -> str:
    """One person removed by `gallery sync` (bot.faces.sync_plan.Removal)."""
    reason = _SYNC_REASONS.get(removal.reason, f"status {removal.reason}")
    return (f"  {verb} {one_line(_subject_named(removal.subject_id, removal.name))}: {reason}, "
            f"{count_noun(removal.images, 'image')}")


def gallery_sync_note(note: Any) -> str:
    """A note of `gallery sync`: a plain text, or a bot.faces.sync_plan.Note."""
    if isinstance(note, str):
        return f"note: {one_line(note)[:1000]}"
    who = f"subject {one_line(note.subject_id)[:200]}"
    if note.kind == "unread_rows":
        return (f"note: {who} keeps its {count_noun(note.count, 'enrolled image')} no longer listed: "
                f"{count_noun(note.other, 'row')} of it could not be read")
    if note.kind == "no_image_left":
        return (f"note: {who} keeps its {count_noun(note.count, 'enrolled image')}: none of the images listed for "
                "it could be enrolled, and a subject is never left without one")
    return (f"note: {who} has another name or record_ref on another row; the first ({one_line(note.where)[:300]}) "
            "is used")


def gallery_sync_conflict(conflict: Any) -> str:
    """A listed image not enrolled (bot.faces.sync_plan.Conflict)."""
    if conflict.enrolled_under is not None:
        why = f"this image is already enrolled under subject {one_line(conflict.enrolled_under)}, who keeps it"
    else:
        why = (f"the same image is listed under subjects {one_line(', '.join(conflict.listed_under))}; enrolled "
               "under none")
    return f"conflict: {one_line(conflict.where)}: {why}"


def gallery_sync_text(report: Any) -> str:
    """`gallery sync` in a terminal (bot.faces.sync.SyncReport): each change, what was not enrolled and why,
    then the summary last. A dry run lists what the sync would do."""
    plan = report.plan
    if report.dry_run:
        changed = len(plan.adds) + len(plan.updates) + len(plan.removals)
        lines = [f"Dry run: nothing was changed. This manifest would change {count_noun(changed, 'subject')}:"]
        lines += [_sync_change("add", c) for c in plan.adds] + [_sync_change("update", c) for c in plan.updates]
        lines += [_sync_removal("remove", r) for r in plan.removals]
    else:
        lines = [_sync_change("added", c) for c in report.added]
        lines += [_sync_change("updated", c) for c in report.updated]
        lines += [_sync_removal("removed", r) for r in report.removed]
    lines += [f"rejected: {one_line(i.source)}: {i.reason}" for i in report.rejected]
    lines += [gallery_sync_conflict(c) for c in plan.conflicts]
    lines += [gallery_sync_note(n) for n in [*plan.notes, *report.notes]]
    lines += [gallery_near_duplicate(a, b, d, report.near_duplicate_under) for a, b, d in report.near_duplicates]
    share = f" ({plan.remove_share:.0%} of {count_noun(plan.gallery_subjects, 'subject')})" if plan.removals else ""
    if report.dry_run:
        lines.append(f"would add {len(plan.adds)}, update {len(plan.updates)}, remove {len(plan.removals)}{share}, "
                     f"leave {plan.unchanged} unchanged (faces are looked for only when it runs: an image without "
                     "exactly one face is then rejected)")
    else:
        lines.append(f"gallery sync: added {count_noun(len(report.added), 'subject')}, updated "
                     f"{len(report.updated)}, removed {len(report.removed)}{share}, unchanged {report.unchanged}; "
                     f"{count_noun(report.images_added, 'image')} enrolled, {report.images_removed} removed; "
                     f"{len(report.rejected)} rejected ({report.seconds:.1f} s)")
    return "\n".join(lines)


def gallery_interrupted(command: str) -> str:
    """One line when Ctrl-C stops a `gallery` command (exit 130)."""
    if command == "thumbnails":
        return ("Interrupted: the face crops made so far are kept; run `gallery thumbnails --rebuild` again to make "
                "the rest.")
    if command == "reencode":
        return ("Interrupted: the gallery was not changed and still holds its old templates; the images re-encoded "
                "so far are kept with it: run the same `gallery reencode` command again to go on from there.")
    return "Interrupted: the gallery was not changed (nobody was enrolled or removed)."


def gallery_thumbnails_text(report: Any, rebuilt: bool, crop_px: int) -> str:
    """`gallery thumbnails [--rebuild]` in a terminal: the totals, then each image whose crop could not be made
    again and why (`report`: bot.faces.thumbnails.ThumbnailReport)."""
    crops = f"{crop_px} px face crops"
    if not rebuilt:
        return (f"{crops}: {report.current} of {count_noun(report.images, 'image')} have one; "
                f"{report.to_rebuild} to make with `gallery thumbnails --rebuild`")
    lines = [(f"{crops}: made {report.rebuilt}, {report.current} already there, {len(report.problems)} could not "
              f"be made (of {count_noun(report.images, 'image')}; {report.seconds:.1f} s)")]
    lines += [f"not made: subject {i.subject_id}, image {i.image_sha256[:12]} ({i.source}): {i.reason}"
              for i in report.problems]
    if report.problems:
        lines.append("The images not made keep their old crop; restore their source files and run this again.")
    return "\n".join(lines)


def gallery_source_unreadable(path: str, why: str) -> str:
    """An enrolled image whose recorded source file cannot be read (`thumbnails --rebuild`, `reencode`)."""
    return f"the source image cannot be read ({why}): {path}"


def gallery_source_changed(path: str) -> str:
    """An enrolled image whose recorded source file no longer holds the enrolled bytes."""
    return f"the source image has changed since it was enrolled (another SHA-256): {path}"


def gallery_source_unanalysed(reason: str) -> str:
    """An enrolled image's source file that the face workers could not read as a photo (or in time)."""
    return f"the source image could not be analysed: {reason}"


def gallery_reencode_no_overlap(faces: int, best: float, min_iou: float) -> str:
    """`gallery reencode`: the new model finds no face where the enrolled one was (boxes compared by
    intersection over union), so it cannot know which face to encode."""
    if faces == 0:
        return "the new model finds no face in the source image"
    return (f"none of the {count_noun(faces, 'face')} the new model finds overlaps the enrolled face's box enough "
            f"(best overlap {best:.2f}, at least {min_iou:.2f} needed)")


def gallery_reencode_same_model(model: str) -> str:
    """`gallery reencode --model X` on a gallery whose templates are X's already."""
    return f"The gallery already holds templates of the face model {_cut(model, 60)}: there is nothing to re-encode."


def gallery_reencode_empty(model: str) -> str:
    """`gallery reencode` on a gallery with nothing enrolled."""
    return (f"The gallery is empty: there is nothing to re-encode. Enroll with [faces] model = \"{_cut(model, 60)}\" "
            "set instead.")


def gallery_reencode_resuming(done: int, images: int) -> str:
    """`gallery reencode` going on from a run that stopped: what it does not encode again."""
    return (f"Resuming: {done} of the gallery's {count_noun(images, 'image')} were done by an earlier run and are "
            "not encoded again.")


def gallery_reencode_running() -> str:
    """`gallery reencode` while another one runs on the same gallery."""
    return ("Another `gallery reencode` is running on this gallery; wait for it to end (or stop it: a run started "
            "again goes on from where it stopped).")


def gallery_reencode_skipped(issue: Any) -> str:
    """One image `gallery reencode` skips, and why (`issue`: bot.faces.sources.SourceIssue)."""
    return f"skipped: subject {issue.subject_id}, image {issue.image_sha256[:12]} ({issue.source}): {issue.reason}"


def gallery_reencode_needs_yes(skipped: int, images: int, max_share: float) -> str:
    """One line when `gallery reencode` would skip more of the gallery than it may without --yes."""
    share = f"{skipped / images:.0%}" if images else "0%"
    return (f"error: {skipped} of the gallery's {count_noun(images, 'image')} ({share}) would be skipped (listed "
            f"above), more than {max_share:.0%} allows without confirmation. Nothing was changed; the images "
            "re-encoded are kept. Restore their source files and run it again, or run it again with --yes to "
            "re-encode without them (they leave the gallery, and so does anyone left with no image).")


def gallery_reencode_text(report: Any) -> str:
    """`gallery reencode` in a terminal: the totals, each image skipped and why, each subject removed
    (`report`: bot.faces.reencode.ReencodeReport)."""
    lines = [(f"re-encoded {report.reencoded} of {count_noun(report.images, 'image')} from "
              f"{model_label(report.model_from)} to {model_label(report.model_to)} ({report.resumed} by an earlier "
              f"run); {len(report.skipped)} skipped; {count_noun(len(report.subjects_removed), 'subject')} removed "
              f"({report.seconds:.1f} s, {report.images_per_second:.1f} images a second)")]
    lines += [gallery_reencode_skipped(i) for i in report.skipped]
    lines += [f"removed: subject {_subject_named(s['subject_id'], s.get('name') or '')}: no image of them is left"
              for s in report.subjects_removed]
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


# --- Command-staff review: audit queries, monthly report, discovery bundle, retention -----------------------------
# Slack-facing functions escape what people typed (names, purposes, justifications); the terminal ones
# (bundle_summary_text, report_text with for_slack=False, the CLI notes) do not.

AUDIT_NO_ENTRIES = "No facial recognition requests match."
NO_PURPOSE_LABEL = "none given, or not one GO 375.01 B.1 permits (refused)"
ENDED_BEFORE_PURPOSE_LABEL = "none given yet: cancelled or expired before the purpose was answered"
REPORT_CHART_XLABEL = "ISO week (days of the month in it)"
REPORT_CHART_YLABEL = "Requests"
REPORT_CHART_LEGEND = "Outcome (month total)"
REPORT_NO_REQUESTS = "No facial recognition requests this month."
REPORT_MEDIAN_NOTE = "upload to result, including the time taken to answer the questions"
REPORT_REQUESTER_LIMIT = 15  # requesters listed in Slack before "and N more"


def _local(ts: str | None, tz: str) -> str:
    """A UTC ISO timestamp as "YYYY-MM-DD HH:MM TZ" in the configured timezone (UTC when tz is unknown)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    if not ts:
        return "time unknown"
    try:
        when = datetime.fromisoformat(ts)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            when = when.astimezone(ZoneInfo(tz))
        except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
            when = when.astimezone(UTC)
        return when.strftime("%Y-%m-%d %H:%M %Z")
    except (TypeError, ValueError):
        return _clip(str(ts), 40)


def audit_lines(entries: Iterable[Mapping[str, Any]], tz: str = "UTC") -> list[str]:
    """One line per audit entry for a command-staff query: local time (with its zone), request id, requester,
    call number, purpose, outcome and candidate count (of an examined request, the candidates released to the
    requester, and how many the examiners ruled out). Escaped; each line far under the Slack limit."""
    lines = []
    for e in entries:
        when = _local(e.get("ts"), tz)
        if e.get("kind") not in (None, "search"):
            lines.append(f"{when} · {_clip(str(e.get('kind')), 40)} (seq {e.get('seq')})")
            continue
        who = e.get("requester")
        if isinstance(who, Mapping):
            name = person_name(str(who.get("name") or who.get("id") or "unknown"))
            person = f"{_clip(name, 100)} ({_clip(one_line(str(who.get('id', ''))), 60)})"
        else:
            person = _clip(one_line(str(who or "unknown")), 100)
        outcome = str(e.get("outcome") or "")
        released = e.get("released")  # examined: what the requester was shown, not what the examiner saw
        count = released if isinstance(released, int) else len(e.get("candidates") or [])
        detail = f", {count_noun(count, 'candidate')}" if outcome == "candidates" else ""
        ruled_out = e.get("ruled_out")
        if isinstance(ruled_out, int) and not isinstance(ruled_out, bool) and ruled_out > 0:
            detail += f", {ruled_out} ruled out by the examiners"
        folded = e.get("count")
        if isinstance(folded, int) and not isinstance(folded, bool) and folded > 1:
            detail += f", {folded} attempts folded into this entry"
        refused = e.get("refused_answers")
        if isinstance(refused, int) and not isinstance(refused, bool) and refused > 0:
            detail += f", {count_noun(refused, 'refused answer')} before"
        if "protected_class" in (e.get("flags") or ()):
            detail += ", flagged: names a protected class"
        lines.append(
            f"{when} · {_clip(str(e.get('request_id') or ('folded' if folded else 'no request id')), 60)} · {person} · "
            f"call {_clip(str(e.get('call_number') or 'not given'), 60)} · "
            f"purpose {_clip(str(e.get('purpose') or 'not given'), 60)} · {outcome_label(outcome)}{detail}"
        )
    return lines


def audit_call_header(call_number: str, count: int) -> str:
    """Heading of the answer to `/frs audit CALL_NUMBER`."""
    noun = "request" if count == 1 else "requests"
    return (f"Facial recognition {noun} for call {_clip(call_number, 100)}: {count}. This query is recorded "
            "in the audit log.")


def audit_user_header(user_id: str, since: str | None, count: int, name: str | None = None) -> str:
    """Heading of the answer to `/frs audit @user [since YYYY-MM-DD]`: the person as "name (ID)" when `name` is
    given, on one line whatever the name holds."""
    noun = "request" if count == 1 else "requests"
    when = f" since {_clip(since, 20)}" if since else ""
    who = f"{_clip(person_name(name), 60)} ({_clip(one_line(user_id), 30)})" if name else _clip(one_line(user_id), 60)
    return f"Facial recognition {noun} by {who}{when}: {count}. This query is recorded in the audit log."


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def report_week_label(week: str, first_day: str, last_day: str) -> str:
    """X-axis label of one week bar: "W10" and the month's days in it ("Mar 2–8")."""
    from datetime import date

    try:
        a, b = date.fromisoformat(first_day), date.fromisoformat(last_day)
    except ValueError:
        return week
    days = f"{a.strftime('%b')} {a.day}" if a == b else f"{a.strftime('%b')} {a.day}–{b.day}"
    return f"{week}\n{days}"


def report_chart_title(month_title: str, tz: str, total: int) -> str:
    """Title of the monthly chart."""
    noun = "request" if total == 1 else "requests"
    return f"Facial recognition requests per week, {month_title}\n{total} {noun} in all; days in {tz}"


def report_text(report: Any, *, for_slack: bool = True) -> str:
    """The monthly accountability report as text: counts by outcome (all six), share with a candidate,
    median time to result, counts by purpose and by requester.

    `report` needs month_title, timezone, total, by_outcome, searches_run, with_candidate, candidate_share,
    median_seconds_to_result, timed_searches, refused_commands, by_purpose, by_requester (bot.oversight.monthly.MonthlyReport
    fits). Folded refusals count as the attempts they stand for (bot.audit.refusals).
    For Slack, names are escaped and the requester list is cut to fit one section.
    """
    show: Callable[[str], str] = (lambda t: _clip(t, 60)) if for_slack else str
    lines = [
        f"Facial recognition accountability report, {report.month_title} ({report.timezone}) under {POLICY}",
        f"Requests: {report.total}",
        "By outcome:",
    ]
    lines += [f"- {outcome_label(o)}: {n}" for o, n in report.by_outcome.items()]
    if report.searches_run:
        share = (f"{report.with_candidate} of {report.searches_run} searches that ran "
                 f"({report.candidate_share:.0%})")
    else:
        share = "n/a (no search ran)"
    lines.append(f"Searches with a candidate: {share}")
    if report.median_seconds_to_result is None:
        median = "n/a (no search ran)"
    else:
        n = report.timed_searches
        median = (f"{_duration(report.median_seconds_to_result)} over {n} search{'es' if n != 1 else ''} "
                  f"({REPORT_MEDIAN_NOTE})")
    lines.append(f"Median time from upload to result: {median}")
    lines.append(f"Refused /frs commands (audit queries, reports, status): {report.refused_commands}")
    lines.append(f"Answers refused in running requests (every reason tried): {getattr(report, 'refused_answers', 0)}")
    lines.append("Justifications naming a protected class, for review (GO 375.01 C): "
                 f"{getattr(report, 'flagged', 0)}")
    released = getattr(report, "reviews_released", 0)
    if released or report.by_outcome.get("review"):
        median = getattr(report, "median_seconds_to_release", None)
        lines.append(f"Examiner reviews released: {released} ({getattr(report, 'leads_released', 0)} leads "
                     f"released, {getattr(report, 'candidates_ruled_out', 0)} candidates ruled out; median from "
                     "queued to release "
                     f"{_duration(median) if median is not None else 'n/a'})")
    if getattr(report, "approvals", 0) or getattr(report, "approval_refusals", 0):
        lines.append(f"Supervisor approvals: {report.approvals} approved, {report.approval_refusals} refused")
    lines.append(report_samples_line(report))
    if getattr(report, "by_model", None):
        used = ", ".join(f"{show(str(m))}: {n}" for m, n in report.by_model.items())
        lines.append(f"Face models of the searches that ran: {used}")
    lines.append("By purpose:")
    lines += [f"- {p['label']}: {p['count']}" for p in report.by_purpose]
    lines.append("By requester:")
    people = list(report.by_requester)
    used = sum(len(line) + 1 for line in lines)
    shown = 0
    for p in people:
        line = f"- {show(person_name(str(p['name'])))} ({show(one_line(str(p['id'])))}): {p['count']}"
        if for_slack and (shown == REPORT_REQUESTER_LIMIT or used + len(line) > SLACK_SECTION_LIMIT - 60):
            break  # the rest is in the export; one Slack section holds 3,000 characters
        lines.append(line)
        used += len(line) + 1
        shown += 1
    if len(people) > shown:
        lines.append(f"- and {len(people) - shown} more (see the export for all)")
    if not people:
        lines.append("- none")
    return "\n".join(lines)


def _quoted(value: Any) -> str:
    """A typed value as a JSON string literal (line breaks escaped), or NOT_GIVEN."""
    import json

    return json.dumps(str(value), ensure_ascii=False) if value else NOT_GIVEN


def bundle_summary_text(summary: Mapping[str, Any], verification: Mapping[str, Any], tz: str) -> str:
    """summary.txt of a discovery bundle (a file, not Slack): the request, its policy answers, the probe, the
    faces, the candidates with distances, the search settings, the links and the audit chain check."""
    answers = summary.get("policy_answers") or {}
    attestation = answers.get("attestation") or {}
    probe = summary.get("probe") or {}
    slack = summary.get("slack") or {}
    times = summary.get("times_utc") or {}
    requester = summary.get("requester") or {}
    versions = summary.get("versions") or {}
    purpose = answers.get("purpose_label") or answers.get("purpose") or NOT_GIVEN
    lines = [
        f"Discovery bundle: facial recognition request {summary.get('request_id')} ({POLICY})",
        "",
        f"Outcome: {outcome_label(str(summary.get('outcome')))}",
        f"Requester: {person_name(requester.get('name') or NOT_GIVEN)} ({one_line(requester.get('id') or NOT_GIVEN)})",
        f"Source: {summary.get('source') or NOT_GIVEN}",
        "",
        "Policy answers",
        f"Call number: {answers.get('call_number') or NOT_GIVEN}",
        f"Purpose: {purpose}" + (f" (GO 375.01 {clause})" if (clause := answers.get("purpose_clause")) else ""),
        # Quoted: whatever was typed stays inside the quotes and cannot pass for a line of this summary.
        f"Justification: {_quoted(answers.get('justification'))}",
        f"Attested: {'yes' if attestation.get('attested') else 'no'}",
    ]
    if attestation.get("text"):
        lines += ["Attestation text:", str(attestation["text"])]
    if summary.get("denied"):
        lines += ["Refused under GO 375.01:"] + [f"- {r}" for r in summary["denied"]]
    if summary.get("error"):
        lines.append(f"Error: {summary['error']}")
    lines += [
        "",
        "Probe",
        f"SHA-256: {probe.get('sha256') or NOT_GIVEN}",
        f"Slack file: {probe.get('slack_file_id') or NOT_GIVEN}",
        f"File name: {_quoted(probe.get('image_name'))}",
        "Faces (numbered from 1, left to right; pixels of the orientation-corrected photo):",
    ]
    lines += [f"- {face_line(f)}" for f in summary.get("faces") or []] or ["- none recorded"]
    lines.append(f"Face searched: {summary.get('face_index') or 'none'}")
    lines += ["", ("Candidates (distance: lower is more similar; margin: to the next subject; estimate: how often "
                  "a person not in the gallery scores as well; investigative leads only)")]
    cands = summary.get("candidates") or []
    point = summary.get("operating_point") or {}
    lines += [_bundle_candidate(c, point) for c in cands]
    if not cands:
        lines.append("none")
    near = summary.get("nearest_distances") or []
    lines += [
        "",
        "Search settings",
        (f"Threshold (distance ceiling): "
        f"{summary.get('threshold') if summary.get('threshold') is not None else NOT_GIVEN}"),
        f"Operating point: {operating_point_text(point, int(point.get('gallery_size') or 0)) if point else NOT_GIVEN}",
        f"Closest subjects' distances: {', '.join(str(d) for d in near) if near else NOT_GIVEN}",
        f"Model: {model_record_text(summary.get('model'))}",
        "Versions: " + (", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or NOT_GIVEN),
        (f"Gallery at search time: {summary.get('gallery_subjects', NOT_GIVEN)} subjects, "
         f"{summary.get('gallery_images', NOT_GIVEN)} images"),
        "",
        "Slack",
        f"Request thread: {slack.get('request_thread_link') or slack.get('request_thread_ts') or NOT_GIVEN}"
        + (f" (channel {slack['channel']})" if slack.get("channel") else ""),
        f"Call thread: {slack.get('call_thread_link') or slack.get('call_thread_ts') or NOT_GIVEN}"
        + (f" (channel {slack['call_channel']})" if slack.get("call_channel") else ""),
        "",
        f"Times (UTC; {tz} in brackets)",
    ]
    for label, key in (("Uploaded", "uploaded_at"), ("Result", "result_at"), ("Recorded", "recorded_at")):
        if times.get(key):
            lines.append(f"{label}: {times[key]} ({_local(times[key], tz)})")
    for step, ts in sorted((times.get("answer_times") or {}).items()):
        lines.append(f"Answer {step}: {ts} ({_local(ts, tz)})")
    lines += ["", "Audit entries in this bundle (entries.jsonl)"]
    lines += [f"- seq {e.get('seq')} at {e.get('ts')}: {e.get('kind')} {e.get('outcome') or ''}".rstrip()
              for e in summary.get("audit_entries") or []]
    state = ("intact" if verification.get("ok")
             else f"BROKEN at entry {verification.get('bad_seq')}: {verification.get('reason')}")
    lines += [
        "",
        (f"Audit chain at bundling time: {state}; {verification.get('count')} entries checked, last seq "
         f"{verification.get('last_seq')} (verification.json)"),
        "",
        str(summary.get("caveat") or CAVEAT),
    ]
    return "\n".join(lines)


def unknown_request(request_id: str) -> str:
    """Error when no audit entry carries a request id."""
    return f"No audit entry has request id {_clip(request_id, 100)}. Check the id (for example FR-3F9A0C12D4)."


def export_written(count: int, fmt: str, where: str) -> str:
    """CLI note after an export (on stderr, so stdout stays the file)."""
    noun = "entry" if count == 1 else "entries"
    return f"Exported {count} audit {noun} as {fmt} to {where}. The export is recorded in the audit log."


def bundle_written(path: str, count: int, chain_ok: bool) -> str:
    """CLI note after a discovery bundle is written."""
    noun = "entry" if count == 1 else "entries"
    chain = ("the audit chain verified" if chain_ok
             else "WARNING: the audit chain did NOT verify (see verification.json)")
    return f"Wrote {path}: {count} audit {noun}, summary, verification and manifest; {chain}."


def audit_purge_refused(bad_seq: int | None, reason: str) -> str:
    """Why old audit entries were not purged: the chain does not verify, and a purge would destroy the evidence."""
    return (f"refusing to purge: the audit log is broken at entry {bad_seq} ({_clip(reason, 300)}); "
            "run `python -m bot audit verify`")


def audit_purge_under_floor(cutoff: str, floor_days: int) -> str:
    """Why the database refused a purge: it keeps every audit entry at least `floor_days` days (CJIS 5.4.7)."""
    return (f"refusing to purge: the database keeps audit entries at least {floor_days} days, and entries "
            f"recorded before {_clip(cutoff, 100)} are not all that old; set [retention] audit_retention_days to "
            f"{floor_days} or more")


def purge_summary(dialogs: int, probe_files: int, audit_removed: int, audit_kept_forever: bool,
                  audit_cutoff: str | None = None, audit_error: str | None = None, *, records: int = 0) -> str:
    """What a retention purge removed (and, when it was refused, why no audit entry was)."""
    if audit_error:
        audit = f"audit entries: NOT purged: {_clip(audit_error, 500)}"
    elif audit_kept_forever:
        audit = "audit entries: none removed (kept forever: audit_retention_days = 0)"
    elif audit_removed:
        audit = (f"audit entries: {audit_removed} removed (recorded before {audit_cutoff}; a purge entry "
                 "keeps the chain verifiable)")
    else:
        audit = f"audit entries: none older than {audit_cutoff}"
    return (
        f"Retention purge: expired dialog states: {dialogs} removed; ended reviews and approvals: {records} "
        f"removed; cached probe files: {probe_files} removed; {audit}."
    )


# --- /frs: the command-staff slash command -----------------------------------------------------------------------
# Answers go only to the person who asked unless the command ends with "public".

FRS_PUBLIC_WORD = "public"
FRS_HELP = (
    "Facial recognition review under GO 375.01 D. Commands:\n"
    "`/frs audit CALL_NUMBER`: every facial recognition request for a call (command staff)\n"
    "`/frs audit @person [since YYYY-MM-DD]`: every request by one person, optionally since a day "
    "(command staff)\n"
    "`/frs report [YYYY-MM]`: the monthly accountability report, last month by default; the chart comes by "
    "direct message (command staff)\n"
    "`/frs status`: gallery size, model, threshold, version and queue (personnel authorised to request "
    "searches, command staff and gallery administrators)\n"
    "`/frs review`: the open examiner reviews, urgent first (examiners; never public)\n"
    "`/frs help`: this list\n"
    "Answers are shown only to you; end the command with `public` to post the answer in the channel. Every "
    "audit query and report, and every refused attempt, is recorded in the audit log."
)
FRS_USAGE = (
    "Use `/frs audit CALL_NUMBER`, `/frs audit @person [since YYYY-MM-DD]`, `/frs report [YYYY-MM]`, "
    "`/frs status` or `/frs help`; end with `public` to answer in the channel."
)
FRS_STAFF_ONLY = (
    "Only command staff can query the facial recognition audit log or see its reports (GO 375.01 D). If your "
    "assignment requires it, ask an administrator to add you to command_staff. This attempt is recorded in "
    "the audit log."
)
FRS_STATUS_REFUSED = (
    "Only personnel authorised to request facial recognition searches, command staff and gallery "
    "administrators can see the bot's status. This attempt is recorded in the audit log."
)
FRS_PUBLIC_SHARED = (
    "This channel is shared with another organisation, so the answer is shown only to you, not posted."
)
FRS_PUBLIC_NOT_MEMBER = (
    "The answer could not be posted in this channel (the bot is not a member of it), so it is shown only to "
    "you. Invite the bot to the channel to post answers there."
)
FRS_FAILED = (
    "The command failed because of an internal error. Nothing was posted. Try again, or tell an "
    "administrator if it keeps happening."
)
REPORT_CHART_BY_DM = (
    "The chart of requests per week, by outcome, and a copy of this report are in your direct messages with "
    "the bot."
)
REPORT_CHART_BELOW = "The chart of requests per week, by outcome, follows."
REPORT_CHART_FAILED = (
    "The chart could not be sent: the app may lack the im:write or files:write scope, which an administrator "
    "adds by reinstalling the app from its manifest. The summary above is complete."
)
# Why an /frs command was not understood; "{text}" is what was typed (escaped and clipped).
FRS_PROBLEMS = {
    "unknown": "/frs {text} is not a command the bot knows. Type `/frs help` for the list of commands.",
    "missing": "Say what to look up: a call number, or a person mentioned with @.",
    "person": "{text} is not a person mentioned with @: type @ and pick the person from the list.",
    "day": "{text} is not a day: write it as YYYY-MM-DD, for example 2026-03-01.",
    "no_day": "Give the day after since, written YYYY-MM-DD, for example 2026-03-01.",
    "month": "{text} is not a month: write it as YYYY-MM, for example 2026-03.",
    "extra": "The bot did not understand {text} at the end of the command.",
}


def frs_not_understood(problem: str, text: str = "") -> str:
    """Short usage message for an /frs command that was not understood: what was wrong, then the forms."""
    sentence = FRS_PROBLEMS.get(problem, FRS_PROBLEMS["unknown"])
    said = sentence.replace("{text}", _clip(text.strip() or "(nothing)", 100))
    # An unknown command is pointed to the help alone; a known one used wrongly is shown the forms.
    return said if problem not in FRS_PROBLEMS or problem == "unknown" else f"{said}\n{FRS_USAGE}"


def audit_not_shown(count: int, cap: int) -> str:
    """Note under an /frs audit answer cut at `cap` lines: how many more, and where the full list is."""
    noun = "request is" if count == 1 else "requests are"
    return (
        f"{count} more {noun} not shown: answers list the first {cap}. For the full list use "
        "`python -m bot audit export` (with --since and --until) on the server; the export is audited too."
    )


def review_page(page: int, pages: int) -> str:
    """Footer of one message of an /frs answer split over several messages."""
    return f"Part {page} of {pages}."


def report_chart_file_title(month_title: str) -> str:
    """Title of the report chart file sent by direct message or into the channel."""
    return f"Facial recognition requests per week, by outcome, {_clip(month_title, 40)}"


def status_text(
    *,
    subjects: int,
    images: int,
    model: str,
    versions: Mapping[str, Any],
    threshold: float,
    version: str,
    searching: int,
    outbox: int,
    open_requests: int,
    timezone: str,
    operating_point: Mapping[str, Any] | None = None,
    face_work: Sequence[tuple[str, float]] = (),
    audit_head: Mapping[str, Any] | None = None,
    head_alarm: str | None = None,
) -> str:
    """Answer to `/frs status`: gallery size, operating point (target FPIR, calibration date), model and package
    versions, distance ceiling, bot version, queue, and the audit log's head (`audit_head`: AuditLog.head(),
    None for an empty log) with the alarm when the log went backwards (`head_alarm`, audit_head_alarm's text)."""
    packages = ", ".join(f"{k} {_clip(str(v), 40)}" for k, v in sorted(versions.items()) if v and k != "bot")
    return (
        f"Facial recognition bot status ({POLICY})\n"
        f"Gallery: {subjects} subject{'s' if subjects != 1 else ''}, {images} image{'s' if images != 1 else ''}\n"
        f"Operating point: {operating_point_text(operating_point, subjects)}\n"
        f"Model: {_clip(model, 200)}" + (f"; {packages}" if packages else "") + "\n"
        f"Distance ceiling: {threshold} (no candidate is ever further; lower is more similar)\n"
        f"Bot version: {_clip(version, 40)}\n"
        f"Queue: {searching} search{'es' if searching != 1 else ''} running; {open_requests} request"
        f"{'s' if open_requests != 1 else ''} open (waiting for answers or a face choice); {outbox} post"
        f"{'s' if outbox != 1 else ''} waiting for Slack to be delivered (call-thread log entries and results)\n"
        f"{face_work_text(face_work)}\n"
        f"{status_head_line(audit_head)}\n"
        + (f"{_clip(head_alarm, 900)}\n" if head_alarm else "")
        + f"Times are shown in {_clip(timezone, 60)}."
    )


def audit_damage(kind: str, bad_seq: Any, first: Any = None, last: Any = None) -> str:
    """What `audit verify` found broken, in words: an entry edited, entries deleted, entries reordered."""
    if kind == "deleted":
        if first == last:
            return f"entry {_cut(str(first), 20)} was deleted"
        return f"entries {_cut(str(first), 20)} to {_cut(str(last), 20)} were deleted"
    if kind == "reordered":
        return f"entries were reordered: entry {_cut(str(bad_seq), 20)} is out of its place"
    return f"entry {_cut(str(bad_seq), 20)} was edited (changed, replaced or made unreadable) after it was written"


def audit_entry_set_aside(file_name: str, seq: Any) -> str:
    """`audit verify`: a side file holds a signed entry that continues the chain, so the log lost it."""
    return (f"error: {_cut(file_name, 200)} holds entry {_cut(str(seq), 20)}, signed and continuing the chain, "
            f"while the log has another entry {_cut(str(seq), 20)}: an entry was removed from the end of the log "
            "(its final newline cut, so the next write moved it aside). Treat the log as tampered with; keep the "
            "side file as evidence.")


def audit_chain_broken(bad_seq: Any, reason: str) -> str:
    """Said before (Slack) or after (terminal) any review output drawn from a log whose chain does not verify."""
    return (f"WARNING: the audit log does not verify (entry {_clip(str(bad_seq), 20)}: {_clip(str(reason), 200)}). "
            "What follows may include altered, inserted or missing entries; run `audit verify` and treat the log "
            "as evidence of tampering.")


# --- Audit chain head: published outside the data dir, checked with `audit verify --head` ----------------------

HEAD_FORMAT = ("give the published head as SEQ:MAC, for example 1234:9f86d081884c7d659a2feaa0c55ad015 (the "
               "entry number, a colon, then the MAC or at least its first 16 hexadecimal characters)")


def audit_head_text(seq: Any, mac: str, ts: str | None, tz: str, broken: str | None = None) -> str:
    """Posted daily (and at start) in `[audit] head_channel`: the chain head, to be compared later."""
    seq_text, mac_text = _clip(str(seq), 20), _clip(str(mac), 128)
    text = (f"Audit log chain head (GO 375.01 D): entry {seq_text}, MAC `{mac_text}`, written {_local(ts, tz)}. "
            "Kept here, outside the bot's server, it shows later whether entries were cut off the end of the audit "
            "log or an older copy put back: on the server run "
            f"`python -m bot audit verify --head {seq_text}:{mac_text}`.")
    return _clip(f"{broken}\n{text}" if broken else text, SLACK_SECTION_LIMIT)


def status_head_line(head: Mapping[str, Any] | None) -> str:
    """The `/frs status` line with the audit chain head (unverified: as the log's last line says)."""
    if not head:
        return "Audit log head: no entry yet"
    return (f"Audit log head: entry {_clip(str(head.get('seq')), 20)}, MAC `{_clip(str(head.get('mac')), 128)}` "
            "(compare with the head published daily)")


def audit_head_alarm(seq: Any, problem: str, last_seq: Any) -> str:
    """The alarm when the audit log no longer reaches the head the bot posted (bot.audit.heads): in the head
    channel, `/frs status` and the server log; no new head is posted until an administrator accepts one."""
    ends = f"the log now ends at entry {_clip(str(last_seq), 20)}" if last_seq is not None else "the log is empty"
    what = {
        "missing": f"it no longer holds entry {_clip(str(seq), 20)}, the head posted here ({ends}): entries were cut "
                   "off the end, or an older copy of the file was put back",
        "mismatch": f"entry {_clip(str(seq), 20)} has another MAC than the head posted here: the log was replaced "
                    "or rewritten",
        "behind_prefix": f"{ends}, before entry {_clip(str(seq), 20)} that it had already verified: entries were "
                         "cut off the end, or an older copy of the file was put back",
    }.get(problem, f"it does not match the head posted here (entry {_clip(str(seq), 20)})")
    return (f"ALARM: the audit log went backwards or was changed: {what}. No new head is posted until an "
            "administrator has checked the log (`python -m bot audit verify`) and runs "
            "`python -m bot audit accept-head SEQ:MAC` with the head the log has now.")


def audit_head_accepted(seq: int, mac: str) -> str:
    """`audit accept-head`: what was recorded."""
    return (f"accepted: entry {seq} (MAC {_clip(mac, 16)}) is the audit log's head from now on; the acceptance is "
            "recorded in the audit log and the server posts a new head at its next publication.")


def head_check_text(check: Any) -> str:
    """`audit verify --head SEQ:MAC`: whether the log still holds the published head (bot.store.audit_log.HeadCheck)."""
    given = f"entry {check.seq} with MAC {_clip(check.mac, 16)}"
    if check.problem is None:
        return f"The audit log holds the published head: {given}."
    if check.problem == "missing":
        ends = f"the log ends at entry {check.last_seq}" if check.last_seq is not None else "the log has no entry"
        return (f"audit log does NOT hold the published head: entry {check.seq} is missing ({ends}). Entries were "
                "cut off the end of the log, or an older copy of the file was put back.")
    if check.problem == "purged":
        return (f"the published head cannot be checked: entry {check.seq} was removed by a retention purge "
                f"(entries up to {check.through_seq}). Check against a more recent published head.")
    return (f"audit log does NOT match the published head: entry {check.seq} has MAC {_clip(check.actual_mac, 16)}, "
            f"the published head says {_clip(check.mac, 16)}. The log was replaced or rewritten since the head "
            "was published.")


def face_work_text(face_work: Sequence[tuple[str, float]]) -> str:
    """The photos in the face workers now: "Photos being read: FR-1 for 12 s, FR-2 for 1 s" (at most 10)."""
    if not face_work:
        return "Photos being read: none"
    shown = ", ".join(f"{_clip(rid, 40)} for {secs:.0f} s" for rid, secs in list(face_work)[:10])
    more = f" and {len(face_work) - 10} more" if len(face_work) > 10 else ""
    return f"Photos being read: {shown}{more}"


# --- Escaping ---------------------------------------------------------------------------------------------------

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
_SAFE_URL = re.compile(r"https://[^\s<>|]+")


def escape_slack(text: str) -> str:
    """Escape `&`, `<` and `>` (Slack's control characters) so echoed text cannot ping @channel or fake a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_ID_IN_PARENS = re.compile(r"\(\s*([UWB][A-Z0-9]{2,30})\s*\)")


def one_line(text: str) -> str:
    """A name or file name on one line: line breaks, tabs and control characters become one space, and
    direction overrides are dropped, so a name can never forge a line in a post or a listing."""
    return " ".join(_LINE_BREAKS.sub(" ", _BIDI.sub("", str(text))).split())


def person_name(name: str) -> str:
    """A display name as shown before its "(ID)": one line, and an ID in parentheses inside it written in
    brackets, so "Pat (U0CAPTAIN)" cannot pass for the command staff member U0CAPTAIN."""
    return _ID_IN_PARENS.sub(r"[\1]", one_line(name))


def mention(user_id: str) -> str:
    """A Slack user mention; anything that is not a user id is echoed escaped instead."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id or "") else _clip(one_line(user_id or "someone"), 100)


def count_noun(n: int, noun: str) -> str:
    """"1 minute", "5 minutes", "0 requests": a count and its noun, plural unless the count is one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _clip(text: str, limit: int) -> str:
    """Escape `text`; when the escaped form exceeds `limit` characters, cut it (never mid-entity) and end with …."""
    escaped = escape_slack(text)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    used = 0
    for ch in str(text):
        piece = escape_slack(ch)
        if used + len(piece) > limit - 1:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out) + "…"


def _cut(text: str, limit: int) -> str:
    """Cut plain text (not escaped: button labels are plain_text) to `limit` characters, ending with …."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _or_list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


# --- CLI errors found in review -------------------------------------------------------------------------------

GALLERY_MOVED = (
    "The gallery was moved to another face model while this photo was being searched, so nothing was searched. "
    "Send the photo again to search it."
)
GALLERY_EMPTY = (
    "The known-person gallery is empty, so no search was run. Enroll known persons first "
    "(python -m bot gallery enroll DIR), or check that BOT_DATA_DIR points at the department's data."
)


def audit_unwritable(detail: str) -> str:
    """The audit log cannot record a request: nothing is done (GO 375.01 D needs every use documented)."""
    return _clip(
        "No search was run: the audit log cannot record this request, and every use must be documented "
        f"(GO 375.01 D). {detail}", SLACK_SECTION_LIMIT)


def bad_face_value(value: str) -> str:
    """--face given something that is not a face number."""
    return _clip(f"--face {value!r} is not a face number: faces are numbered 1, 2, 3… from the left.", 500)


def search_crashed(detail: str) -> str:
    """An unexpected failure during a search: it is recorded as an error."""
    return _clip(f"The search failed unexpectedly and was recorded as an error: {detail}", 1000)

UPLOAD_IN_THREAD = (
    "Photos posted as a reply in a thread do not start a facial recognition request, and are not added to one "
    "that is running. To request a search, upload the photo as a new message in the case channel. Nothing was "
    "searched."
)


def justification_too_long(max_chars: int) -> str:
    """Refusal of a justification over the length cap."""
    return (f"The justification is longer than {max_chars} characters. State the facts that give reasonable "
            "suspicion briefly (GO 375.01 B.1); the full narrative belongs in the report.")


def call_thread_moved(call_number: str, link: str | None) -> str:
    """In dispatch's thread for a call, pointing to the facial recognition entries logged before it existed.
    Only the call number is escaped and clipped: the `<url|label>` link is Slack markup and must stay one."""
    fits = link and _SAFE_URL.fullmatch(link) and len(link) <= SLACK_SECTION_LIMIT // 2
    where = f"<{link}|this earlier thread>" if fits else "an earlier thread"
    return (f"Facial recognition activity for call {_clip(call_number, 100)} logged before this message is in "
            f"{where}; new entries follow here.")


def dialog_ended_partly(kind: str, ended: Sequence[str], kept: Sequence[str]) -> str:
    """Cancel or timeout after some photos of the upload were already searched: what ended, what was kept."""
    verb = "cancelled" if kind == "cancelled" else "expired without an answer"
    ended_text = ", ".join(escape_slack(r) for r in ended) or "the rest"
    kept_text = ", ".join(escape_slack(r) for r in kept)
    return _clip(f"Request {ended_text} {verb}: not searched. Already searched and kept: {kept_text} (its result "
                 "is in this thread). This is recorded in the audit log.", SLACK_SECTION_LIMIT)


EDIT_NOT_READ = (
    "Edited replies are not read: your answer was taken as you first sent it (the summary before the "
    "attestation shows every answer). If the question is still open, reply again; to correct an earlier "
    "answer, reply cancel and upload the photo again."
)


# --- The offer, the request card and its short lines (one card per upload, updated in place) ----------------

OFFER_TEXT = (
    "Photo received — reply with the call number to run a facial recognition search, or press Start."
)
OFFER_ENDED = "No search was requested for this photo (the offer ended). Nothing was recorded."
START_BUTTON = "Start"
FORM_BUTTON = "Fill in a form"
CARD_TITLE = "Facial recognition request"
MARK_DONE = "✓"
MARK_TODO = "•"
MARK_PROBLEM = "✗"


def card_header(request_ids: Sequence[str], requester_id: str, photo_source_id: str | None = None) -> str:
    """The card's first line: request id(s), requester, and who posted the photo when someone else did."""
    ids = ", ".join(_clip(r, 100) for r in request_ids[:10]) + (" …" if len(request_ids) > 10 else "")
    head = f"*{CARD_TITLE}* {ids} · {mention(requester_id)} · {POLICY}"
    if photo_source_id:
        head += f" · photo posted by {mention(photo_source_id)}"
    return head


def card_call_number(value: str) -> str:
    return f"{MARK_DONE} Call {_clip(value, 100)}"


def card_ask_call_number(example: str | None) -> str:
    like = f" (like {example})" if example else ""
    return f"{MARK_TODO} *Call number:* reply with the dispatched call number{like}"


def card_confirm_call(value: str, suggestions: Sequence[str], recent_hours: int) -> str:
    """The card's call-number line while a number dispatch never posted waits for the officer's word."""
    text = f"? *Call {_clip(value, 100)}* was not posted in the dispatch channel in the last {count_noun(recent_hours, 'hour')}."
    if suggestions:
        text += " Did you mean " + _or_list([_clip(s, 100) for s in suggestions]) + "?"
    return text + " Reply *yes* to use it as typed, or reply the right number."


def card_purpose(number: int, label: str) -> str:
    return f"{MARK_DONE} Purpose {number}: {_clip(label, 200)}"


CARD_ASK_PURPOSE = f"{MARK_TODO} *Purpose* ({POLICY} B.1): press a button or reply 1, 2 or 3"


def card_justification(text: str, limit: int = 1500) -> str:
    return f"{MARK_DONE} Justification: “{_clip(text, limit)}”"


def card_ask_justification(min_chars: int) -> str:
    return (
        f"{MARK_TODO} *Justification:* reply with the facts that give reasonable suspicion — what happened, "
        f"where and when, how the person in the photo is connected ({POLICY} B.1; at least {min_chars} "
        "characters). A description of a person is never a reason (C)."
    )


CARD_FLAG_PROTECTED = "⚑ The justification names a protected class: flagged for command-staff review (GO 375.01 C)."
CARD_ASK_ATTESTATION = f"Read, then press *I attest* or reply exactly: {ATTEST_REPLY}"


def card_attested(when: str) -> str:
    return f"{MARK_DONE} Attested {when}"


CARD_PHOTO_READING = f"{MARK_TODO} Photo: looking for faces…"


def card_photo_one_face(file_name: str, note: str | None = None) -> str:
    text = f"{MARK_DONE} Photo {_clip(one_line(file_name), 80)}: 1 face"
    return f"{text} — {note}" if note else text


def card_photo_choose(file_name: str, n_faces: int) -> str:
    return (f"{MARK_TODO} Photo {_clip(one_line(file_name), 80)}: {n_faces} faces, numbered left to right in the "
            "picture — press the one to search (or reply face 2, …)")


def card_photo_chosen(file_name: str, index: int, n_faces: int, note: str | None = None) -> str:
    text = f"{MARK_DONE} Photo {_clip(one_line(file_name), 80)}: face {index} of {n_faces}"
    return f"{text} — {note}" if note else text


def card_photo_problem(file_name: str, problem: str) -> str:
    return f"{MARK_PROBLEM} Photo {_clip(one_line(file_name), 80)}: {problem}"


CARD_SEARCHING = "Searching the known-person gallery…"
CARD_WAITING_FACES = "Attested. Waiting for the photo's faces…"


def card_outcome(outcome: str) -> str:
    """The card's last line once a photo has its outcome."""
    return {
        "candidates": "Searched: the result is below.",
        "no_candidate": "Searched: the result is below.",
        "error": "Not searched.",
        "cancelled": "Cancelled. No search was run.",
        "expired": "Expired without an answer. No search was run.",
        "denied": "Refused. No search was run.",
        "review": "Searched: an examiner is reviewing the result before any candidate is shown.",
    }.get(outcome, escape_slack(outcome))


def read_back(text: str | None, limit: int = 120) -> str:
    """An answer quoted back as read: one line, escaped, at most `limit` characters."""
    return f"‘{_clip(one_line(text or ''), limit)}’"


def not_a_call_number(text: str | None, example: str | None) -> str:
    like = f" like {example}" if example else ""
    return f"{read_back(text)} is not a call number{like} — reply again."


def not_a_purpose(text: str | None) -> str:
    return f"{read_back(text)} is not a purpose — reply 1, 2 or 3, or press a button."


def not_the_attestation(text: str | None) -> str:
    return f"{read_back(text)} is not the attestation — press *I attest* or reply exactly: {ATTEST_REPLY}."


def justification_refused(reason: str) -> str:
    """A refused justification: the policy's reason, then what to do."""
    return f"{reason} Reply again with the facts."


def confirm_call_line(value: str, suggestions: Sequence[str]) -> str:
    """The short line posted when a call number is not in the dispatch index."""
    text = f"Call {_clip(value, 100)} is not a call dispatch has posted."
    if suggestions:
        text += " Did you mean " + _or_list([_clip(s, 100) for s in suggestions]) + "?"
    return text + f" Reply *yes* to use {_clip(value, 100)} as typed, or reply the right number."


def use_call_button(value: str) -> str:
    return _cut(f"Use {value}", SLACK_BUTTON_LIMIT)


FORM_TITLE = "Facial recognition"  # Slack: at most 24 characters
FORM_SUBMIT = "Check answers"
FORM_CLOSE = "Close"
FORM_CALL_LABEL = "Dispatched call number"
FORM_PURPOSE_LABEL = "Purpose (GO 375.01 B.1)"
FORM_JUSTIFICATION_LABEL = "Justification: the facts that give reasonable suspicion"
FORM_JUSTIFICATION_HINT = (
    "What happened, where and when, and how the person in the photo is connected. A description of a person "
    "is never a reason (GO 375.01 C)."
)
FORM_INTRO = "Your answers go on the request card in the thread; you attest there, after reading them."
FORM_PURPOSE_MISSING = "Choose a purpose."
FORM_CLOSED = "This request can no longer be changed: see its card in the thread."

CARD_PHOTO_PROBLEMS = {
    "no_face": "no face found — it cannot be searched (the reason is below)",
    "too_slow": "it takes too long to read — it cannot be searched",
}


def card_problem(code: str) -> str:
    """A photo's problem on the card, briefly (the full sentence is posted below it)."""
    return CARD_PHOTO_PROBLEMS.get(code, "it cannot be used — the reason is below")


def card_quality(level: str, problems: Sequence[str]) -> str | None:
    """A face's quality on the card, said at once: None when it is fine."""
    if level == "too_small":
        return "small face: any result is a weaker lead"
    if level == "low":
        said = ", ".join(QUALITY_PROBLEMS.get(p, p) for p in problems if p != "small") or "low quality"
        return f"low quality ({said}): any result is a weaker lead"
    return None


SHORTCUT_NOT_CASE_CHANNEL = "Facial recognition searches are requested in case channels only: nothing was started."
SHORTCUT_NO_PHOTO = "This message has no photo the bot can read, so no search was started."


def shortcut_already_requested(request_ids: Sequence[str]) -> str:
    return f"This photo's thread already has a request ({', '.join(_clip(r, 100) for r in request_ids[:5])})."


# --- Examiner review (bot/examination.py, bot/slack/examination.py) ---------------------------------------------

EXAM_CLOSED = "This review is no longer open."
EXAM_APPROVER = "You approved this request as its supervisor: another examiner must review its result."
EXAM_NOT_YOUR_OWN = "You requested this search: another examiner must review it (a second person, GO 375.01 A.3)."
EXAM_SECOND_EXAMINER = ("You already reviewed this request: the second review must be by another examiner, "
                        "who decides without seeing your decisions.")
EXAM_NOT_CLAIMED_BY_YOU = "Claim this review first (or it is claimed by another examiner)."
EXAM_UNKNOWN_DECISION = "That is not a decision: possible lead, not the same person, or inconclusive."
EXAM_UNKNOWN_CANDIDATE = "That candidate is not in this review."
EXAM_CANCEL_REQUESTER_ONLY = "Only the requester can cancel this request."
EXAM_CANCEL_TOO_LATE = "An examiner has started this review: it can no longer be cancelled."
EXAM_CANCEL_ALREADY = "This request was withdrawn already: nothing was or will be released for it."
EXAM_CANCEL_RELEASED = "The examiner's review was released already: there is nothing left to cancel."


def exam_claimed_by(examiner_id: str) -> str:
    return f"{mention(examiner_id)} has claimed this review."


def exam_note_needed(min_chars: int) -> str:
    return (f"A possible lead needs a note of at least {min_chars} characters saying which features agree "
            "(e.g. ear shape, scar over the left eyebrow, hairline).")


def exam_undecided(count: int) -> str:
    return f"Decide every candidate before releasing: {count_noun(count, 'candidate')} still undecided."

EXAM_WAITING_REQUESTER = (
    "Searched. Under department policy a trained examiner reviews the candidates before any reach you: you will "
    "be told here. Reply status to see where it stands; cancel withdraws the request while no examiner has it."
)
NO_LEAD_AFTER_REVIEW = "No lead after examiner review — not an exclusion: the person may still be in the gallery."
EXAM_CLAIM_BUTTON = "Claim"
EXAM_GIVE_BACK_BUTTON = "Give back"
EXAM_RELEASE_BUTTON = "Release"
EXAM_DECISION_BUTTONS = {"possible_lead": "Possible lead", "not_same_person": "Not the same person",
                         "inconclusive": "Inconclusive"}
EXAM_NOTE_TITLE = "Possible lead"  # modal title: at most 24 characters
EXAM_NOTE_LABEL = "Which features agree (ears, scars, hairline, nose shape…)"
EXAM_NOTE_SUBMIT = "Record lead"
EXAM_CANCELLED = "Request withdrawn by the requester before an examiner claimed it. Nothing was released."


def exam_card_header(request_id: str, urgent: bool) -> str:
    urgent_text = " · *URGENT: imminent threat (purpose 2)*" if urgent else ""
    return f"*Examiner review* {_clip(request_id, 100)}{urgent_text}"


def exam_card_request(call_number: str, purpose_label: str, requester_id: str, justification: str) -> str:
    return (f"Call {_clip(call_number, 100)} · {_clip(purpose_label, 100)} · requested by {mention(requester_id)}\n"
            f"Justification: “{_clip(justification, 1500)}”")


def exam_status(status: str, *, claimed_by: str | None = None, decided: int = 0, total: int = 0,
                round_no: int = 1, rounds: int = 1) -> str:
    """The review card's state line (never another examiner's decisions: the second review is blind)."""
    of = f" (review {round_no} of {rounds})" if rounds > 1 else ""
    if status == "queued":
        return f"Waiting for an examiner{of}. Press Claim to take it."
    if status == "claimed":
        return f"Claimed by {mention(claimed_by or '')}{of}: {decided} of {total} candidates decided."
    if status == "released":
        return "Released to the requester."
    return "Withdrawn by the requester."


def exam_status_requester(status: str, *, claimed_by: str | None = None, decided: int = 0, total: int = 0,
                          round_no: int = 1, rounds: int = 1) -> str:
    """Where a review stands, told to its requester, who cannot claim it (the card's line is the examiners')."""
    if status == "queued":
        of = f" (review {round_no} of {rounds})" if rounds > 1 else ""
        return (f"Waiting for an examiner to claim it{of}: no candidate reaches you before an examiner releases "
                "the review. Until it is claimed, cancel withdraws it.")
    if status == "cancelled":
        return "Withdrawn by you: no candidate was released."
    return exam_status(status, claimed_by=claimed_by, decided=decided, total=total, round_no=round_no,
                       rounds=rounds)


def exam_released_header(request_id: str, leads: int) -> str:
    if not leads:
        return f"Request {_clip(request_id, 100)}: {NO_LEAD_AFTER_REVIEW}"
    return (f"Request {_clip(request_id, 100)}: {count_noun(leads, 'possible lead')} after examiner review, "
            "strongest first.")


def exam_lead_note(notes: Sequence[Mapping[str, Any]]) -> str:
    """Each examiner's name and note under a released candidate."""
    said = [f"{mention(str(n.get('by') or ''))}: {_clip(str(n.get('note') or '—'), 400)}" for n in notes]
    return "Examiner " + "; ".join(said)


def exam_inconclusive(count: int) -> str:
    return (f"{count_noun(count, 'candidate')} inconclusive after examiner review (not a lead, not an exclusion; "
            "the examiners' notes are in the audit log).")


def exam_ping(group_ids: Sequence[str], request_id: str, urgent: bool) -> str:
    who = " ".join(f"<!subteam^{g}>" for g in group_ids if re.fullmatch(r"S[A-Z0-9]{2,30}", g)) or "Examiners"
    return f"{who}: review {_clip(request_id, 100)} is still waiting to be claimed{' (URGENT)' if urgent else ''}."
EXAM_NOT_EXAMINER = "Only trained examiners listed in [review] examiners or examiner_groups can review searches."


def _cli_where(mapped: bool) -> str:
    return ("sent to you in Slack by direct message" if mapped
            else "posted in the review channel (no Slack account is mapped to you: [review] cli_slack_users)")


def cli_queued_for_review(request_id: str, mapped: bool = False) -> str:
    where = _cli_where(mapped)
    return (f"Searched, and queued for examiner review as {_clip(request_id, 100)}: no candidate is shown before "
            f"a trained examiner releases the review (GO 375.01 A.3). The release will be {where}.")


def cli_awaiting_approval(request_id: str, reason: str, minutes: int, mapped: bool = False) -> str:
    where = _cli_where(mapped)
    return (f"Not searched yet: {_clip(request_id, 100)} waits for a supervisor's approval in Slack, because "
            f"{APPROVAL_REASONS.get(reason) or _clip(reason, 100)}. Approved, the server runs the search and the "
            f"result will be {where}; unanswered within {minutes_text(minutes)}, the request expires.")


def contact_sheet_title(request_id: str, call_number: str) -> str:
    """The requester's contact sheet's own title line (drawn on the image)."""
    return f"Request {_cut(request_id, 100)} · call {_cut(call_number, 100)}"


def comparison_title(request_id: str, call_number: str) -> str:
    """The comparison sheet's own title line (drawn on the image)."""
    return f"Review {_clip(request_id, 100)} · call {_clip(call_number, 100)}"


def comparison_upload_title(request_id: str) -> str:
    """The comparison sheet's file title in the review card's thread."""
    return f"Comparison {_clip(request_id, 100)}"


def cli_no_person(account: str) -> str:
    """Refusal of a command run on a shared account when neither the login session nor sudo names a person."""
    who = _cut(account, 64)
    return (f"Nobody can be named as the requester: this command runs as {who}, an account several people share "
            "(the data dir's owner, root, or one listed in [cli] shared_accounts), and neither your login session "
            f"nor sudo (SUDO_USER) says who you are. Log in as yourself and run it through sudo, e.g. `sudo -u {who} "
            ".venv/bin/python -m bot ...`, so the audit log records you (where nobody has a login of their own, as in "
            "a container, set SUDO_USER to your own account name: the record says it was named that way).")


def cli_person_name(person: str, account: str, uid: int, how: str) -> str:
    """A person reached through a shared account, as the audit record names them (and how they were told)."""
    source = "the login session" if how == "login" else "SUDO_USER"
    return f"{_cut(person, 64)} (as {_cut(account, 64)}, uid {uid}; named by {source})"


def cli_requester_label(name: str) -> str:
    """A command-line requester with no Slack account mapped, as cards name them: plain text, escaped once where a
    card shows it (`mention`)."""
    return f"{_cut(person_name(name), 80)} (command line)"


# --- Supervisor approval ([review] approval) ---------------------------------------------------------------------

APPROVAL_REASONS = {
    "flagged": "the justification names a protected class (GO 375.01 C)",
    "always": "department policy asks a supervisor to approve every search",
}
APPROVE_BUTTON = "Approve"
REFUSE_BUTTON = "Refuse"
APPROVAL_TITLE = "Supervisor decision"  # modal title: at most 24 characters
APPROVAL_REASON_LABEL = "Reason (recorded in the audit log)"
APPROVAL_SUBMIT = "Record"
NOT_SUPERVISOR = "Only supervisors listed in [review] supervisors or supervisor_groups can approve searches."
SUPERVISOR_IS_REQUESTER = "You requested this search: another supervisor must approve it."
APPROVAL_CLOSED = "This request is no longer waiting for a supervisor: it was decided, cancelled or expired."
APPROVAL_CANCELLED = "Cancelled by the requester before a supervisor decided. No search was run."
CARD_AWAITING_APPROVAL = "Attested. Waiting for a supervisor's approval: no search runs before it."


def approval_waiting(reason: str, minutes: int) -> str:
    return (f"Waiting for a supervisor's approval before the search: {(APPROVAL_REASONS.get(reason) or _clip(reason, 100))}. "
            f"If nobody answers within {minutes_text(minutes)}, the request expires.")


def approval_card(request_ids: Sequence[str], requester_id: str, call_number: str, purpose_label: str,
                  justification: str, reason: str) -> str:
    return (f"*Approval needed* {', '.join(_clip(r, 100) for r in request_ids[:5])} · requested by "
            f"{mention(requester_id)}: {(APPROVAL_REASONS.get(reason) or _clip(reason, 100))}\n"
            f"Call {_clip(call_number, 100)} · {_clip(purpose_label, 100)}\nJustification: “{_clip(justification, 1500)}”")


def approval_decided(approved: bool, by: str, reason: str) -> str:
    word = "Approved" if approved else "Refused"
    return f"{word} by {mention(by)}: {_clip(reason or 'no reason given', 500)}"


def approval_expired_line(minutes: int) -> str:
    return f"No supervisor answered within {minutes_text(minutes)}: the request expired. No search was run."


def cli_approval_status(status: str, reason: str, decided_by: str) -> str:
    """Where a command-line request waiting for (or past) a supervisor's approval stands."""
    why = APPROVAL_REASONS.get(reason) or _clip(reason, 100)
    return {
        "pending": f"Waiting for a supervisor's approval ({why}). No search has run.",
        "approved": f"Approved by {mention(decided_by)}: the server runs the search at its next tick.",
        "searched": f"Approved by {mention(decided_by)} and searched: the result went where `search` said it would.",
        "refused": f"Refused by {mention(decided_by)}. No search was run.",
        "expired": "Expired without a supervisor's answer. No search was run.",
        "cancelled": "Cancelled by you. No search was run.",
    }.get(status, _clip(status, 40))


def cli_cancelled(request_id: str) -> str:
    return f"Cancelled {_clip(request_id, 100)}: no search result will be released for it. Recorded in the audit log."


def cli_cancel_too_late(status: str) -> str:
    done = {"approved": "a supervisor approved it and its search runs", "searched": "its search has run",
            "refused": "a supervisor refused it", "expired": "it expired", "cancelled": "it was cancelled already"}
    return f"It can no longer be cancelled: {done.get(status, _clip(status, 40))}."


def cli_unknown_request(request_id: str) -> str:
    return (f"No request {_clip(request_id, 100)} waits for a supervisor or an examiner here "
            "(a request id looks like FR-3F9A0C12D4).")


def cli_sheet_failed(error: str) -> str:
    return (f"warning: the comparison sheet could not be written ({_clip(error, 300)}); the review is queued "
            "without it and the examiner compares from the gallery record.")


def cli_search_failed(request_id: str) -> str:
    return (f"The approved search {_clip(request_id, 100)} could not be run (the error is in the audit log). "
            "Run it again from the command line.")


def approval_refused_line(reason: str) -> str:
    return f"A supervisor refused this search: {_clip(reason or 'no reason given', 500)}. No search was run."


def exam_queue_line(request_id: str, urgent: bool, status: str, claimed_by: str | None, queued: str,
                    candidates: int) -> str:
    """One open review in `/frs review`; `queued` is its local time, as the caller's timezone writes it."""
    who = f"claimed by {mention(claimed_by)}" if claimed_by else "unclaimed"
    flag = "URGENT · " if urgent else ""
    return (f"{flag}{_clip(request_id, 100)} · queued {_clip(queued, 40)} · {who} · "
            f"{count_noun(candidates, 'candidate')}")


def exam_queue_text(lines: Sequence[str]) -> str:
    if not lines:
        return "No examiner review is open."
    head = f"Open examiner reviews ({len(lines)}), urgent first:"
    more = [f"… and {len(lines) - 25} more"] if len(lines) > 25 else []
    return "\n".join([head, *lines[:25], *more])


def approval_queue_status(count: int) -> str:
    return f"Requests waiting for a supervisor's approval: {count} (their cards are in the review channel)"


def exam_queue_status(count: int) -> str:
    return f"Examiner reviews open: {count} (/frs review lists them)"


def exam_decision_recorded(rank: int, name: str, decision: str) -> str:
    """Told only to the examiner who decided (the card shows no decision)."""
    label = EXAM_DECISION_BUTTONS.get(decision, _clip(decision, 40))
    return f"Recorded for candidate {rank} ({_clip(name, 100)}): {label}. You can change it until you release."


# --- Oversight console: sign-in and its refusals (bot/console) -------------------------------------------------

CONSOLE_FOREIGN_ORIGIN = "refused: this form did not come from the console's own page"
CONSOLE_BAD_TOKEN = "refused: the form's token does not match your session; reload the page and try again"
CONSOLE_ROLE_GONE = "refused: Slack does not show you as command staff or an auditor now"
CONSOLE_SLACK_UNREACHABLE = "refused: Slack could not be asked who you are; try again shortly"
# The sign-in page (/console/signin), its button, and the sentence for each `?reason=`.
CONSOLE_SIGNIN_TITLE = "Sign in"
CONSOLE_SIGNIN_INTRO = ("This console shows how facial recognition searches are used under General Order 375.01. "
                        "It is open to command staff and auditors only, and every page you open is recorded.")
CONSOLE_SIGNIN_BUTTON = "Sign in with Slack"
CONSOLE_SIGNIN_REASONS = {
    "revoked": "You were signed out: Slack no longer shows you as command staff or an auditor.",
    "refused": "Sign-in was cancelled at Slack, so you are not signed in.",
    "expired": "Your sign-in expired. Sign in again to continue.",
    "failed": "Sign-in did not complete, so you are not signed in. Start again from this page.",
    "signed_out": "You have signed out.",
    "unreachable": "Slack could not be asked who you are just now, so you are not signed in. Try again shortly.",
}
# The 403 page of someone Slack signed in who may not use the console (nothing else is shown).
CONSOLE_REFUSED_TITLE = "Not allowed"
CONSOLE_NOT_LISTED = ("You are signed in to Slack, but you are not on the console's lists (command staff or "
                      "auditors), so the console stays closed to you. This attempt was recorded.")
CONSOLE_OTHER_WORKSPACE = ("You signed in to another Slack workspace than the department's, so the console stays "
                           "closed to you. This attempt was recorded.")
# `python -m bot serve` with the console on but nowhere for Slack to send people back to.
CONSOLE_NO_PUBLIC_URL = ("error: the console is on (CONSOLE_CLIENT_ID and CONSOLE_CLIENT_SECRET are set) but "
                         "[console] public_url is empty: set it to the console's https:// origin, e.g. "
                         "https://frbot.example.org, which Slack sends people back to after they sign in")


# --- Oversight: anomaly alerts (bot/oversight/alerts.py) ----------------------------------------------------------

ALERT_RULE_LABELS = {  # the console's and the alert post's name for each rule
    "requester_day": "Searches in a day",
    "subject_spread": "One subject shown to several requesters",
    "probe_repeat": "One photo searched again and again",
    "refusals": "Repeated refusals",
    "flagged": "Protected class named",
    "off_hours": "Outside usual hours",
    "chain": "Audit chain",
}
ALERT_REVIEWED_BUTTON = "Reviewed"
ALERT_NOTE_LABEL = "Note (what you looked at and what you found)"
ALERTS_NONE = "No alert has been raised."
ALERT_NOT_FOUND = "There is no such alert."
ALERT_NOTE_MISSING = "refused: write a note saying what you looked at before marking the alert reviewed"
ALERT_OWN = "refused: this alert is about you, so someone else must review it (nobody clears their own alert)"


def _alert_who(name: str | None, user_id: str | None) -> str:
    """A person in an alert's summary: their name and id, on one line (plain text; Slack escapes it)."""
    name = person_name(name or "")[:80]
    uid = one_line(user_id or "")[:40]
    return f"{name} ({uid})" if name and uid and name != uid else (name or uid or "someone")


def alert_requester_day(name: str, user_id: str, day: str, count: int, threshold: float, median: float | None,
                        baseline_days: int) -> str:
    """A requester's day far above their own usual day (bot.oversight.alerts, rule requester_day)."""
    usual = (f"their usual day over the {baseline_days} days before: {median:g} searches" if median else
             f"no searches in the {baseline_days} days before")
    return (f"{_alert_who(name, user_id)} ran {count} {'search' if count == 1 else 'searches'} on "
            f"{day}, at or above the alert level of {threshold:g} ({usual}).")


def alert_subject_spread(subject_id: str, count: int, first_day: str, last_day: str, days: int) -> str:
    """One gallery subject released to several requesters (rule subject_spread)."""
    return (f"Gallery subject {one_line(subject_id)[:60]} was shown as a candidate to {count} different requesters "
            f"between {first_day} and {last_day} (within {count_noun(days, 'day')}).")


def alert_probe_repeat(sha256: str, count: int, first_day: str, last_day: str, who: tuple[str, str] | None) -> str:
    """One probe photo searched again and again (rule probe_repeat)."""
    by = f" by {_alert_who(*who)}" if who else " by more than one requester"
    return (f"The same probe photo (SHA-256 {one_line(sha256)[:12]}…) was searched {count} times{by} between "
            f"{first_day} and {last_day}.")


def alert_refusals(name: str, user_id: str, day: str, count: int) -> str:
    """Repeated refusals of one person in a day (rule refusals)."""
    return f"{_alert_who(name, user_id)} was refused {count} times on {day} (requests or answers the policy refused)."


def alert_flagged(name: str, user_id: str, request_id: str) -> str:
    """A search whose justification names a protected class (rule flagged)."""
    return (f"Request {one_line(request_id)[:40]} by {_alert_who(name, user_id)} names a protected class in its "
            "justification (GO 375.01 C): check that the search rests on facts, not on who the person is.")


def alert_off_hours(name: str, user_id: str, day: str, at: str, usual_from: str, usual_to: str, earlier: int) -> str:
    """A search outside the requester's usual hours (rule off_hours)."""
    return (f"{_alert_who(name, user_id)} searched at {at} on {day}, outside their usual hours of {usual_from} to "
            f"{usual_to} (from their {earlier} searches before that day).")


def alert_chain_broken(bad_seq: Any, reason: str, checked_at: str) -> str:
    """The full chain check failed (rule chain): never taken on trust, raised at once."""
    return (f"The audit log does not verify: entry {one_line(str(bad_seq))[:20]}: {one_line(reason)[:200]} (full "
            f"check at {one_line(checked_at)[:40]}). Entries may have been altered, inserted or removed; run `audit verify`.")


def alert_post_header(rule: str) -> str:
    """The first line of an alert posted in [oversight] alert_channel."""
    return f"*Oversight alert: {ALERT_RULE_LABELS.get(rule) or _clip(one_line(rule), 40)}*"


def alert_post_footer(alert_id: str, console_url: str | None) -> str:
    """Where to review an alert posted in the alert channel (the console, when its address is set)."""
    safe = console_url and console_url.startswith(("https://", "http://")) and not set(console_url) & set("<>| ")
    where = f"<{console_url}|the console's alerts page>" if safe else "the console's alerts page"
    return f"Alert {_clip(one_line(alert_id), 40)}. Review it and record what you found on {where}."



# --- Oversight: sampled audits (bot/oversight/samples.py) --------------------------------------------------------

# The checklist an auditor answers for each sampled request (yes / no / can't tell, and a note).
SAMPLE_Q_PURPOSE = "Does the purpose fit the facts given (GO 375.01 B.1)?"
SAMPLE_Q_JUSTIFICATION = "Does the justification state facts, not a label or a hunch?"
SAMPLE_Q_CALL = "Is the call documented (the call number matches a real dispatch call)?"
SAMPLE_Q_LEAD = "Was any lead corroborated by independent evidence before action was taken?"
SAMPLE_Q_CAVEAT = "Was the caveat kept (the result treated as a lead only, never as identification)?"
SAMPLE_ANSWER_LABELS = {"yes": "Yes", "no": "No", "cant_tell": "Can't tell"}
SAMPLE_NOTE_LABEL = "Note (what you checked; required when any answer is no)"
SAMPLE_SUBMIT = "Record this review"
SAMPLE_ANSWER_MISSING = "refused: answer every question of the checklist (yes, no or can't tell)"
SAMPLE_NOTE_NEEDED = "refused: a request found wanting needs a note saying what is wrong"
SAMPLE_OWN_REQUEST = "refused: nobody reviews a request they made themselves; another auditor must take it"
SAMPLE_TOOK_PART = ("refused: you examined, released or approved this request, so another auditor must audit "
                    "it")
SAMPLE_RECHECK_HASH = "the population's SHA-256 differs from the one recorded"
SAMPLE_RECHECK_IDS = "the recorded seed does not draw the recorded request ids from this population"
SAMPLE_RECHECK_PURGED = ("entries of that month were purged from the audit log under [retention] since the "
                         "draw, so it can no longer be re-checked")
SAMPLE_NONE_DRAWN = "No sample has been drawn yet: the first is drawn on the 1st of the month after searches ran."
SAMPLE_UNASSIGNED = "unassigned (any auditor)"
SAMPLE_PAGE_INTRO = (
    "Each month a random sample of the last month's searches that ran is drawn from a fresh seed, recorded in the "
    "audit log, and assigned to auditors. Answer the checklist for each request you are assigned; a request found "
    "wanting needs a note.")
SAMPLE_CHECKLISTS_INTRO = ("Open a request's checklist, answer each question, and record it. Each review is an entry "
                           "in the audit log; the first review of a request stands.")
SAMPLE_RECHECK_OK = ("Re-checked against the audit log just now: the same population and the same requests come "
                     "from the recorded seed.")
SAMPLE_RECHECK_FAILED = "Re-check against the audit log FAILED"
SAMPLE_BACK = "Back to the sample"


def sample_not_drawn(request_id: str, month: str) -> str:
    return f"refused: {_clip(request_id, 40)} is not in the sample drawn for {_clip(month, 10)}"


def sample_reviewed_already(request_id: str) -> str:
    return f"refused: {_clip(request_id, 40)} was reviewed already; the first review stands in the audit log"


def sample_note_too_long(limit: int) -> str:
    return f"refused: the note is longer than {limit} characters"


def sample_recheck_population(found: int, recorded: Any) -> str:
    return f"the log now gives {found} searches for that month, the draw recorded {_clip(str(recorded), 20)}"


def sample_recheck_size(found: int, recorded: Any) -> str:
    return f"the size rule gives {found} requests, the draw recorded {_clip(str(recorded), 20)}"


def report_samples_line(report: Any) -> str:
    """The monthly report's line on its sampled audit (bot.oversight.samples): drawn on the 1st after the month."""
    if not getattr(report, "sample_drawn", False):
        return "Sampled audit: not drawn yet (drawn on the 1st of the next month)"
    return (f"Sampled audit: {report.sampled} of {report.sample_population} searches that ran sampled, "
            f"{report.sample_reviewed} reviewed, {report.sample_found_wanting} found wanting")



# --- Oversight: the public transparency report (bot/oversight/transparency.py) ---------------------------------

PUBLIC_TOTAL = "Total"
PUBLIC_CATEGORIES = {  # the report's own category codes, in words (months, purposes and outcomes have theirs)
    "reviews_released": "Searches reviewed by a trained examiner and released",
    "leads_released": "Possible leads released to the requesting officer",
    "candidates_ruled_out": "Candidates the examiners ruled out (never shown to the officer)",
    "approved": "Requests a supervisor approved before the search",
    "approval_refused": "Requests a supervisor refused",
    "sampled": "Searches drawn at random for an auditor's review",
    "reviewed": "Sampled searches reviewed so far",
    "found_wanting": "Sampled searches found wanting (any checklist answer no)",
    "other": "Other rules",
}
PUBLIC_TABLE_TITLES = {
    "requests_by_month": "Requests by month",
    "requests_by_purpose": "Requests by purpose (GO 375.01 B.1)",
    "requests_by_outcome": "Requests by outcome",
    "examiner_reviews": "Examiner reviews and leads",
    "supervisor_approvals": "Supervisor approvals",
    "alerts_raised": "Anomaly alerts raised, by rule",
    "alerts_reviewed": "Anomaly alerts reviewed, by rule",
    "sampled_audits": "Sampled audits",
}
PUBLIC_INTRO = (
    "Every facial recognition search request made under General Order 375.01 is recorded in a tamper-evident "
    "audit log. These counts are drawn from that log. They contain no names, no call or case numbers, no request "
    "numbers, no photographs and no text written by officers."
)
PUBLIC_COUNTED = (
    "A request is counted once, in the month it was recorded, by its final outcome. A result is an investigative lead only, "
    "never an identification; a search with no candidate does not rule anyone out."
)
PUBLIC_PRINT_HINT = "Print this page, or save it as PDF from the browser's print dialog, for a paper copy."
PUBLIC_NO_ALERTS = "No anomaly alert was raised this year."
PUBLIC_YEAR_LABEL = "Year"
PUBLIC_SHOW = "Show"
PUBLIC_CATEGORY_HEADER = "Category"
PUBLIC_COUNT_HEADER = "Count"


def public_report_title(year: int) -> str:
    return f"Facial recognition transparency report, {year}"


def public_suppression_note(min_cell: int) -> str:
    """The footnote that defines the suppression mark, so a suppressed count never reads as a claim."""
    return (f"<{min_cell} marks a count from 1 to {min_cell - 1}, withheld so that nobody can be recognised "
            f"from it; where a table has a total, one more count is withheld with it and marked the same way, "
            "so the small one cannot be worked out by subtraction.")


def public_chain_line(ok: bool | None, checked_at: str) -> str:
    if ok is None:
        return "The audit log's integrity was not checked for this copy."
    if ok:
        return f"The audit log's integrity check passed on {_clip(checked_at, 40)}, before these counts were made."
    return (f"Warning: the audit log's integrity check FAILED on {_clip(checked_at, 40)}; these counts may rest "
            "on altered or missing entries.")


def public_report_written(paths: Sequence[str]) -> str:
    return "public transparency report written: " + ", ".join(_clip(p, 300) for p in paths)



# --- Oversight console: pages (bot/console) ----------------------------------------------------------------------
# The searches page (/console/searches), its filters and exports (bot/console/searches.py).

CONSOLE_SEARCHES_TITLE = "Searches"
CONSOLE_SEARCHES_CAPTION = "Searches, newest first"
CONSOLE_NO_SEARCHES = "No search matches these filters."
CONSOLE_FILTER_ANY = "any"
CONSOLE_FILTER_YES = "yes"
CONSOLE_FILTER_NO = "no"
CONSOLE_CHAIN_NOT_CHECKED = ("The whole audit chain has not been checked yet (the bot checks it at start and every "
                             "hour; the Chain page can check it now).")
CONSOLE_EXPORT_NOTE = ("Exports hold every search these filters match (all pages), in the columns of the "
                       "command-line export (python -m bot audit export), and are recorded in the audit log.")


def console_bad_date(label: str, value: str) -> str:
    """A filter's date the console cannot read (the form's label is named)."""
    return f"{_clip(label, 40)}: {_clip(value, 40)!r} is not a date; use YYYY-MM-DD, for example 2026-03-01."


def console_dates_reversed(since: str, until: str) -> str:
    return f"from ({_clip(since, 20)}) is after to ({_clip(until, 20)}): swap them."


def console_bad_choice(label: str, value: str, choices: Sequence[str]) -> str:
    """A filter value outside its closed list (a hand-edited address)."""
    return (f"{_clip(label, 40)}: {_clip(value, 60)!r} is not one of the choices "
            f"({_clip(', '.join(choices), 300)}).")


def console_bad_page(value: str) -> str:
    return f"page: {_clip(value, 20)!r} is not a page number; use 1, 2, 3 …"


def console_searches_count(total: int, page: int, pages: int) -> str:
    """Above the table: how many searches match and which page this is."""
    found = "1 search matches" if total == 1 else f"{total} searches match"
    return f"{found} · page {page} of {max(pages, 1)}"


def console_default_range(days: int) -> str:
    return f"Showing the last {days} days. Clear from and apply to see every search in the log."


def console_chain_banner(bad_seq: Any, reason: str) -> str:
    """The page's banner when the audit chain does not verify: the rows may not be what was recorded."""
    return (f"The audit log does NOT verify (entry {_clip(str(bad_seq), 20)}: {_clip(str(reason), 200)}). The "
            "searches below may include altered, inserted or missing entries; treat the log as evidence of "
            "tampering.")


def console_chain_checked(when: str, count: int, by: str) -> str:
    """The page's line when the last full check of the chain passed."""
    entries = "1 entry" if count == 1 else f"{count} entries"
    return (f"The whole audit chain verified at {_clip(when, 40)} ({entries}, checked by {_clip(by, 80)}); "
            "entries written since are checked at each view.")

# The request trail, the monthly report, the chain and open reviews (bot/console/trail.py, status.py,
# bot/oversight/trail.py).

CONSOLE_NOT_SEARCHED_YET = "not searched yet: the request is still running, or ended before any search was recorded"
CONSOLE_ANSWERS_SO_FAR = ("The request is still running: these are its answers so far, from its dialog; the audit log "
                          "records them with the search.")
CONSOLE_PROBE_REMOVED = ("The probe photo's face crops are no longer kept: the bot removes them once the search is "
                         "done (or by the [retention] dialog_state_days period). The face sizes and quality above "
                         "are from the audit log.")
CONSOLE_NO_FACES = "No face is recorded for this request."
CONSOLE_CANDIDATE_CROP_GONE = "no crop kept (the subject or image is no longer in the gallery, or has no thumbnail)"
CONSOLE_NO_CANDIDATES = "No candidate: the search returned no one within the calibrated threshold."
CONSOLE_NO_LINK = "not recorded"
CONSOLE_WAITS_EXAMINER_CLAIM = "an examiner to claim it"
CONSOLE_WAITS_EXAMINER_RELEASE = "the examiner who claimed it to decide each candidate and release"
CONSOLE_WAITS_SECOND_EXAMINER = "a second examiner (two must decide each candidate)"
CONSOLE_KIND_EXAMINATION = "examiner review"
CONSOLE_KIND_APPROVAL = "supervisor approval"
CONSOLE_NOTHING_OPEN = "Nothing waits on an examiner or a supervisor now."
CONSOLE_CHAIN_NEVER_CHECKED = ("No full check of the chain is recorded yet: the leader runs one at start and every "
                               "[oversight] verify_minutes; you can run one now.")
CONSOLE_HEAD_NOT_CONFIGURED = ("not configured: [audit] head_channel is not set, so no head is posted outside the "
                               "server and entries cut off the end of the log could go unnoticed")
CONSOLE_HEAD_NONE_POSTED = "no head posted yet in the head channel"
CONSOLE_NO_PREFIX = "none remembered yet"
CONSOLE_NO_HEAD = "the audit log has no entry yet"
CONSOLE_CHAIN_OK = ("Every entry verified from the first line: the HMAC chain is intact (no entry was altered, "
                    "inserted, reordered or removed before the last one).")
CONSOLE_REPORT_EMPTY = "No request was recorded in this month."
_CONSOLE_STAGES = {"approval": "supervisor approval", "": "examiner review"}
_CONSOLE_ACTIONS = {
    "queued": "queued", "claim": "claimed", "give_back": "gave it back", "decision": "decided a candidate",
    "release": "released", "timeout": "timed out", "cancel": "cancelled", "approve": "approved", "refuse": "refused",
    "ping": "reminded the examiners",
}


def console_face_quality(level: str, problems: Sequence[str]) -> str:
    """A face's quality on the trail page: "ok", "too small to search well", or "low: ..." in words."""
    if level == "too_small":
        return "too small to search well"
    if level == "low":
        said = "; ".join(QUALITY_PROBLEMS.get(p, _clip(p, 40)) for p in problems) or "low quality"
        return f"low: {said}"
    return "ok" if level == "ok" else _clip(level, 40)


def console_review_stage(stage: str) -> str:
    """Which second-person control a `review` entry belongs to."""
    return _CONSOLE_STAGES.get(stage, _clip(stage, 40))


def console_review_action(action: str) -> str:
    """What a `review` entry records, in words."""
    return _CONSOLE_ACTIONS.get(action, _clip(action, 40))


def console_decision(decision: str) -> str:
    """An examiner's decision on a candidate, in words."""
    return EXAM_DECISION_BUTTONS.get(decision, _clip(decision, 40))


def console_waits_supervisor(reason: str) -> str:
    """What a request waiting for approval waits for, and why it must ([review] approval)."""
    why = {"always": "every search needs one", "flagged": "its justification was flagged"}.get(reason)
    return f"a supervisor to approve or refuse it ({why})" if why else "a supervisor to approve or refuse it"


def console_unknown_request(request_id: str) -> str:
    """The trail page of a request id no audit entry carries."""
    return (f"No audit entry carries request {_clip(request_id, 100)}. Check the id (it looks like FR-3F9A0C12D4); "
            "a request offered but never started is not recorded.")


def console_probe_crop_alt(index: int, size: Any) -> str:
    """Alt text of a probe face crop: what it is, never who."""
    return f"Face {index} cut from the probe photo ({_clip(str(size), 10)} pixels wide in the photo)"


def console_candidate_crop_alt(rank: int) -> str:
    """Alt text of a candidate's crop: what it is, never who."""
    return f"Face crop of an image enrolled in the gallery for candidate {rank}'s subject"


def console_chart_alt(month_title: str, total: int) -> str:
    """Alt text of the monthly chart (the table under it gives the same counts)."""
    return (f"Bar chart of the {total} requests in {_clip(month_title, 40)}, per ISO week, stacked by outcome; the "
            "table of weeks below gives the same counts.")


def console_chain_broken(bad_seq: Any, reason: str) -> str:
    """The chain page's verdict on a log that does not verify: BROKEN, never clean."""
    return (f"BROKEN at entry {_clip(str(bad_seq), 20)}: {_clip(str(reason), 200)}. The audit log was altered, or "
            "entries were inserted, reordered or removed; run `python -m bot audit verify` on the server and keep "
            "the log as evidence.")


def console_bad_month(text: str) -> str:
    """A month the report page cannot read."""
    return f"{_clip(text, 40)!r} is not a month: use YYYY-MM, for example 2026-03. Showing last month instead."


def console_head_unreadable(error: str) -> str:
    """The chain page when Slack did not give the head channel's history."""
    return f"could not be read from Slack now ({_clip(error, 200)}); reload the page later"
