"""Every sentence a person reads: caveat, attestation, refusals, prompts, results, call-thread log.

Plain text only (no Block Kit). Constants carry no user input and no raw `&`, `<` or `>`, so they read the same
in a terminal, in the README and in Slack. Functions that echo what someone typed (justifications, names,
file names) escape it with `escape_slack` and clip it so a Slack section text stays within 3,000 characters.

This module imports nothing from the project: `bot.policy` builds its denial reasons from it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

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
    "gallery, the photo may be too poor (angle, lighting, blur, size of the face), or the similarity may fall "
    "just outside the search threshold. Do not treat this result as clearing anyone."
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


def call_number_invalid(example: str | None) -> str:
    """Denial reason: the call number does not match the configured format (the value is not echoed)."""
    shown = f"for example {example}" if example else "the format set in [policy] call_number_pattern"
    return f"That call number is not in the department's call number format ({shown})."


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
        f"This request expired after {minutes} minutes without an answer. No search was run. Upload the photo "
        "again to start over."
    )


def wrong_person(requester_id: str) -> str:
    """Ephemeral note to someone other than the requester who replies in a request thread."""
    return f"Only {mention(requester_id)} who uploaded the photo can answer in this request."


def non_image_note(filename: str) -> str:
    """Short note for an uploaded file that is not an image."""
    return f"{_clip(filename or 'This file', 200)} is not an image, so no search was started for it."


def image_error(message: str) -> str:
    """Preface for an image that could not be used; `message` is the image module's sentence."""
    return f"The photo could not be used, so no search was run: {_clip(message, 1000)}"


# --- Dialog prompts ---------------------------------------------------------------------------------------------


class PurposeOption(Protocol):
    """What a prompt needs from a purpose (bot.policy.Purpose fits)."""

    @property
    def number(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def code(self) -> str: ...


def request_opened(requester_id: str, request_id: str) -> str:
    """First message in the request thread."""
    return (
        f"Facial recognition request {_clip(request_id, 100)} for {mention(requester_id)} under {POLICY}. "
        f"Answer each question in this thread, with the buttons or by replying. Reply {CANCEL_REPLY} at any time "
        "to stop."
    )


def prompt_call_number(example: str | None) -> str:
    """Ask for the call number, showing the department's format."""
    shown = f", for example {example}" if example else ""
    return f"What is the call number for this search? Reply with the dispatched call number{shown}."


def prompt_purpose(purposes: Iterable[PurposeOption]) -> str:
    """Ask for the purpose, listing the three permitted purposes numbered."""
    lines = [f"{p.number}. {p.label} ({p.code})" for p in purposes]
    return (
        "What is the purpose of this search (GO 375.01 B.1)? Press a button or reply with its number:\n"
        + "\n".join(lines)
    )


def prompt_justification(min_chars: int) -> str:
    """Ask for the justification and say what reasonable suspicion needs."""
    return (
        "Why is this search needed? Reply with the facts that give you reasonable suspicion that it will "
        "provide relevant information (GO 375.01 B.1): what happened, where and when, and how the person in "
        "the photo is connected to it (report or case number, victim, witness, camera). A description of the "
        "person's race, religion, ethnicity, citizenship, national origin, age, disability, gender, gender "
        f"identity or sexual orientation is not a reason to search (C). At least {min_chars} characters."
    )


def prompt_attestation() -> str:
    """Ask for the attestation: its text and how to answer."""
    return (
        f"{ATTESTATION}\n\nTo attest, press the I attest button or reply exactly: {ATTEST_REPLY}. "
        f"Reply {CANCEL_REPLY} to stop."
    )


def prompt_face_choice(n_faces: int) -> str:
    """Ask which of several faces to search (numbered from 1, left to right, on the posted image)."""
    return (
        f"This photo shows {n_faces} faces, numbered from 1, left to right, on the image above. Which one should "
        f"be searched? Press its button or reply with its number (1 to {n_faces})."
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


def summary(call_number: str, purpose_label: str, justification: str) -> str:
    """Echo every answer before the attestation, escaped, within the Slack section limit."""
    head = (
        "Check your answers before you attest:\n"
        f"Call number: {_clip(call_number, 100)}\n"
        f"Purpose: {_clip(purpose_label, 200)}\n"
        "Justification: "
    )
    tail = f"\nIf anything is wrong, reply {CANCEL_REPLY} and upload the photo again."
    return head + _clip(justification, SLACK_SECTION_LIMIT - len(head) - len(tail)) + tail


# --- Progress and results -------------------------------------------------------------------------------------

PROGRESS_QUEUED = "Waiting for a free search worker…"
PROGRESS_DOWNLOADING = "Downloading the photo…"
PROGRESS_FINDING_FACES = "Looking for faces in the photo…"
PROGRESS_SEARCHING = "Searching the known-person gallery…"
PROGRESS_DONE = "Search finished."
CONTACT_SHEET_TEXT = (
    "Contact sheet: the searched face beside each candidate's gallery photo, labelled by rank. Investigative "
    "leads only, not an identification."
)


def result_header(candidate_count: int, request_id: str) -> str:
    """Heading of a result (it follows the caveat)."""
    rid = _clip(request_id, 100)
    if candidate_count == 0:
        return f"Request {rid}: no candidate within the search threshold."
    noun = "candidate" if candidate_count == 1 else "candidates"
    return f"Request {rid}: {candidate_count} {noun} within the search threshold, closest first."


def distance_band(distance: float, threshold: float) -> str:
    """A coarse similarity band, relative to the threshold, so officers do not over-read decimals.

    Bands: at least 0.15 under the threshold -> higher; at least 0.05 under -> moderate; otherwise near the
    threshold. A band is a similarity measure, never a confidence of identity.
    """
    if distance <= threshold - 0.15:
        return "higher similarity"
    if distance <= threshold - 0.05:
        return "moderate similarity"
    return "lower similarity, near the threshold"


def candidate_line(rank: int, name: str, subject_id: str, record_ref: str, band: str, distance: float) -> str:
    """One ranked candidate for Slack, escaped."""
    return _candidate(rank, name, subject_id, record_ref, band, distance, lambda t: _clip(t, 200))


def _candidate(
    rank: int, name: str, subject_id: str, record_ref: str, band: str, distance: float, show: Callable[[str], str]
) -> str:
    ref = f", record {show(record_ref)}" if record_ref else ""
    return f"{rank}. {show(name)} (subject {show(subject_id)}{ref}): {band}, distance {distance:.3f}"


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
}


def outcome_label(outcome: str) -> str:
    """Words for an audit outcome."""
    return OUTCOME_LABELS.get(outcome) or _clip(outcome, 100)


# --- Call thread in the dispatch channel ------------------------------------------------------------------------


def call_thread_opening(call_number: str) -> str:
    """Top-level message that starts a call's thread when dispatch has none."""
    return f"Call {_clip(call_number, 100)} — facial recognition activity"


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
        + (f", {candidate_count} candidate{'s' if candidate_count != 1 else ''}" if candidate_count else "")
        + "\nJustification: "
    )
    # Leave room for the caller to append candidate lines in another section.
    return head + _clip(justification, SLACK_SECTION_LIMIT - len(head))


# --- Terminal (CLI) -------------------------------------------------------------------------------------------
# Terminal text is not Slack mrkdwn: nothing here is escaped.

CLI_DESCRIPTION = (
    "Facial recognition searches under General Order 375.01 for personnel with direct access. Every search "
    "needs a call number, a permitted purpose, a justification and an attestation; every use is audited."
)
CLI_DENIED_HEADER = "Search refused under GO 375.01:"


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


def cli_result(result: Any) -> str:
    """Terminal text of a finished search: the caveat first, then ranked candidates and the reminder.

    `result` needs request_id, candidates (rank, name, subject_id, record_ref, distance), threshold,
    gallery_size and model (bot.service.SearchResult fits).
    """
    candidates = list(result.candidates)
    lines = [result_caveat(bool(candidates)), "", result_header(len(candidates), result.request_id)]
    for c in candidates:
        band = distance_band(float(c.distance), float(result.threshold))
        lines.append(_candidate(c.rank, c.name, c.subject_id, c.record_ref, band, float(c.distance), str))
    lines += [
        "",
        f"Threshold {result.threshold}; gallery of {result.gallery_size} subjects; model {result.model}.",
        document_reminder(result.request_id),
    ]
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


# --- Escaping ---------------------------------------------------------------------------------------------------

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
_SAFE_URL = re.compile(r"https://[^\s<>|]+")


def escape_slack(text: str) -> str:
    """Escape `&`, `<` and `>` (Slack's control characters) so echoed text cannot ping @channel or fake a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    """A Slack user mention; anything that is not a user id is echoed escaped instead."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id or "") else _clip(user_id or "someone", 100)


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


def _or_list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
