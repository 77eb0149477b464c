"""Every message the bot posts in Slack, as Block Kit built with `slack_sdk.models.blocks`.

Texts come from `bot.wording` (which escapes and clips whatever a person typed); this module only arranges
them into blocks, adds the buttons whose action ids `bot.request.transitions.on_action` parses, and attaches the message
metadata that makes channel archives machine-readable (CONTRACTS "Metadata").

Every mrkdwn text is `verbatim`, so Slack does not auto-link plain text such as "@channel" in an echoed
justification; explicit `<@U…>` mentions and `<https://…|label>` links written by `bot.wording` still work.

Slack's limits hold for every builder, whatever the input: at most 50 blocks, 3,000 characters per section
text, 75 per button label, 25 elements per actions block (slack_sdk refuses anything over when serialising).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.blocks.basic_components import ConfirmObject
from slack_sdk.models.metadata import Metadata

from bot import policy as _policy
from bot import wording
from bot.config import PolicySettings
from bot.faces.quality import level_of
from bot.faces.quality import problems as quality_problems
from bot.request import transitions
from bot.request.transitions import Dialog, ImageRequest, Step

EVENT_TYPE = "fr_search"  # Slack: event_type must match [A-Za-z0-9_]+
MAX_BLOCKS = 50
SECTION_LIMIT = wording.SLACK_SECTION_LIMIT
BUTTON_LIMIT = wording.SLACK_BUTTON_LIMIT
ACTIONS_LIMIT = 25  # elements per actions block
FALLBACK_LIMIT = 3000  # notification text: Slack allows more, phones show a line or two
MAX_FACE_BUTTON_BLOCKS = 4  # 100 face buttons; a crowd beyond that is answered by replying the number

# Actions blocks have block_id "fr:<dialog_id>:<n>": the dialog their buttons belong to.
BLOCK_ID_PREFIX = "fr"


@dataclass
class Message:
    """One chat.postMessage / chat.update worth: fallback text, blocks and metadata."""

    text: str  # notification fallback (escaped)
    blocks: list[Block]
    metadata: Metadata

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `chat_postMessage` / `chat_update`: plain JSON (what the outbox stores)."""
        return {
            "text": self.text,
            "blocks": [b.to_dict() for b in self.blocks],
            "metadata": self.metadata.to_dict(),
        }

    def ephemeral_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `chat_postEphemeral`, which takes no metadata."""
        out = self.kwargs()
        del out["metadata"]
        return out


# --- metadata ------------------------------------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    """Metadata payload values stay flat scalars (string, number, boolean): what Slack accepts everywhere."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in value)
    return str(value)


def meta(
    kind: str,
    *,
    dialog: Dialog | None = None,
    request_id: str | None = None,
    call_number: str | None = None,
    outcome: str | None = None,
    **extra: Any,
) -> Metadata:
    """Message metadata: event_type "fr_search", payload {kind, dialog_id, request_id | request_ids,
    call_number, outcome, ...extra}.

    Missing values are empty strings, never null; `request_ids` (every image of the dialog) is one
    comma-separated string, so the payload is flat. `extra` values of None are left out.
    """
    payload: dict[str, Any] = {
        "kind": kind,
        "dialog_id": dialog.dialog_id if dialog else "",
        "call_number": call_number or (dialog.call_number if dialog else None) or "",
        "outcome": outcome or "",
    }
    if request_id:
        payload["request_id"] = request_id
    else:
        payload["request_ids"] = ",".join(dialog.request_ids) if dialog else ""
    for key, value in extra.items():
        if value is not None:
            payload[key] = _scalar(value)
    return Metadata(event_type=EVENT_TYPE, event_payload=payload)


# --- small block helpers -----------------------------------------------------------------------------------------


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text, verbatim=True)


def _section(text: str) -> SectionBlock:
    # wording clips what people typed; this guard only keeps a future wording change from breaking a post.
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return SectionBlock(text=_md(text))


def _context(text: str) -> ContextBlock:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return ContextBlock(elements=[_md(text)])


def _fallback(*parts: str) -> str:
    text = " ".join(p for p in parts if p)
    return text if len(text) <= FALLBACK_LIMIT else text[: FALLBACK_LIMIT - 1] + "…"


def _cancel_button(dialog: Dialog) -> ButtonElement:
    return ButtonElement(
        text=wording.CANCEL_BUTTON,
        action_id=transitions.ACTION_CANCEL,
        value=dialog.dialog_id,
        style="danger",
        confirm=ConfirmObject(
            title=wording.CANCEL_CONFIRM_TITLE,
            text=wording.CANCEL_CONFIRM_TEXT,
            confirm=wording.CANCEL_CONFIRM_YES,
            deny=wording.CANCEL_CONFIRM_NO,
        ),
    )


def _actions(dialog: Dialog, n: int, elements: list[ButtonElement]) -> ActionsBlock:
    """An actions block whose block_id carries the dialog id, so a button of an ended dialog is never taken
    for one of a newer dialog in the same thread (block ids must be unique within a message: `n`)."""
    return _actions_block(f"{BLOCK_ID_PREFIX}:{dialog.dialog_id}:{n}", elements)


def _actions_block(block_id: str, elements: list[ButtonElement]) -> ActionsBlock:
    """An actions block with an explicit block id (unique within its message)."""
    return ActionsBlock(block_id=block_id[:255], elements=elements)


def button_dialog_id(block_id: str | None) -> str | None:
    """The dialog id an actions block of `_actions` carries, or None for any other block id."""
    prefix, _, rest = str(block_id or "").partition(":")
    dialog_id, sep, _n = rest.rpartition(":")
    return dialog_id if prefix == BLOCK_ID_PREFIX and sep and dialog_id else None


def _purpose_label(code: str | None) -> str:
    p = _policy.purpose_by_code(code)
    return p.label if p else (code or wording.NOT_GIVEN)


def _image_context(image: ImageRequest) -> ContextBlock:
    return _context(wording.image_label(image.file_name, image.request_id))


def _chosen_face(image: ImageRequest) -> dict[str, Any] | None:
    if not image.faces or image.face_index is None:
        return None
    return next((f for f in image.faces if f.get("index") == image.face_index), None)


# --- the request thread ------------------------------------------------------------------------------------------


def invalid_text(effect: transitions.Invalid, dialog: Dialog | None, policy: PolicySettings) -> str:
    """One short line: the answer as read and what is expected (the card still asks the question)."""
    code = effect.code
    if code == "unknown_call":
        return wording.call_number_unknown(effect.value or "")
    if code == "purpose" and effect.reason is None:
        return wording.not_a_purpose(effect.text)
    if code == "attestation" and effect.reason is None:
        return wording.not_the_attestation(effect.text)
    if code == "face_choice" and effect.reason is None:
        image = dialog.image(effect.request_id or "") if dialog else None
        return wording.face_choice_not_understood(len(image.faces or ()) if image else 0)
    if code == "call_number":
        return wording.not_a_call_number(effect.text, _policy.example_call_number(policy.call_number_pattern))
    if code == "justification" and effect.reason:
        return wording.justification_refused(effect.reason)
    return effect.reason or wording.escape_slack(code)


def invalid(effect: transitions.Invalid, dialog: Dialog, policy: PolicySettings) -> Message:
    """Why an answer was not accepted, in one short line (never the whole question again)."""
    text = invalid_text(effect, dialog, policy)
    return Message(
        _fallback(text),
        [_section(text)],
        meta("invalid", dialog=dialog, request_id=effect.request_id, step=effect.step, code=effect.code),
    )


def confirm_call(effect: transitions.ConfirmCall, dialog: Dialog) -> Message:
    """A call number dispatch never posted: confirm it, or take a suggested one (buttons on the card)."""
    text = wording.confirm_call_line(effect.value, effect.suggestions)
    return Message(_fallback(text), [_section(text)],
                   meta("confirm_call", dialog=dialog, step=Step.CALL_NUMBER, value=effect.value))


def _candidate_lines(result: Any) -> list[str]:
    point = getattr(result, "operating_point", None) or {}
    return [
        wording.candidate_line(c.rank, c.name, c.subject_id, c.record_ref, float(c.distance),
                               wording.estimate_text(c.fpir_estimate, c.below_resolution, point))
        for c in result.candidates
    ]


def _candidate_sections(lines: Sequence[str], max_blocks: int) -> list[Block]:
    """Candidate lines packed into sections of at most 3,000 characters, never splitting a line; when more
    sections would be needed than `max_blocks` allows, the rest is replaced by a "not shown" note."""
    sections = pack_lines(lines, SECTION_LIMIT)
    if len(sections) <= max_blocks:
        return [_section(s) for s in sections]
    kept = sections[: max_blocks - 1]
    shown = sum(s.count("\n") + 1 for s in kept)
    return [_section(s) for s in kept] + [_context(wording.candidates_not_shown(len(lines) - shown))]


def result(
    dialog: Dialog | None,
    image: ImageRequest | None,
    result: Any,
    call_thread_link: str | None,
    *,
    min_face_px: int | None = None,
) -> Message:
    """A finished search (bot.service.SearchResult): the caveat FIRST, every time; the ranked candidates
    (rank, name, subject id, record ref, distance band); the search details; the reminder to document the
    search quoting the request id (GO 375.01 D); the call thread where the search is logged, when known."""
    candidates = list(result.candidates)
    request_id = result.request_id or image.request_id
    point = getattr(result, "operating_point", None) or {}
    caveat = wording.result_caveat(bool(candidates))
    header = wording.result_header(len(candidates), request_id, point.get("target_fpir"))
    head: list[Block] = [_section(caveat), _section(header)]
    tail: list[Block] = [
        _context(wording.result_details_short(result.threshold, result.gallery_size, point)),
    ]
    face = _chosen_face(image) if image else next(
        (f for f in result.faces or [] if f.get("index") == result.face_index), None)
    if face is not None and level_of(face) == "too_small" and min_face_px:
        tail.insert(0, _context(wording.face_too_small_note(int(face["index"]), min_face_px)))
    elif face is not None and level_of(face) == "low":
        tail.insert(0, _context(wording.quality_note(int(face["index"]), quality_problems(face.get("quality") or {}))))
    tail += [DividerBlock(), _section(wording.document_reminder(request_id))]
    if call_thread_link:  # None: no dispatch channel, or the log entry is still queued
        tail.append(_context(wording.call_thread_logged(call_thread_link)))
    if dialog and image and len(dialog.images) > 1:  # which photo, when the upload had several
        tail.append(_image_context(image))
    body = _candidate_sections(_candidate_lines(result), MAX_BLOCKS - len(head) - len(tail))
    return Message(
        _fallback(wording.CAVEAT_SHORT, header),
        head + body + tail,
        meta("result", dialog=dialog, request_id=request_id, call_number=result.call_number or None,
             outcome=result.outcome, candidate_count=len(candidates), purpose=result.purpose or "",
             face_index=result.face_index, threshold=float(result.threshold),
             audit_seq=getattr(result, "audit_seq", None)),
    )


def contact_sheet(dialog: Dialog, image: ImageRequest) -> Message:
    """The message that carries the contact sheet upload (the probe face beside each candidate, by rank)."""
    text = wording.CONTACT_SHEET_TEXT
    tail = [_image_context(image)] if len(dialog.images) > 1 else []
    return Message(_fallback(text), [_section(text), _context(wording.CAVEAT_SHORT), *tail],
                   meta("contact_sheet", dialog=dialog, request_id=image.request_id))


def image_failed(dialog: Dialog, image: ImageRequest, reason: str) -> Message:
    """A photo that could not be searched (`reason`: a code such as "no_face", or the image module's
    sentence); no search ran for it."""
    text = wording.image_problem(reason)
    code = reason if reason.replace("_", "").isalnum() and len(reason) <= 40 else "image_error"
    return Message(
        _fallback(text),
        [_section(text), _image_context(image)],
        meta("image_failed", dialog=dialog, request_id=image.request_id, outcome="error", error=code),
    )


def ended(dialog: Dialog, kind: str, *, timeout_minutes: int | None = None,
          request_ids: Sequence[str] = ()) -> Message:
    """The dialog ended early: "cancelled" by the requester or "expired" after the inactivity timeout.

    When other photos of the upload were already searched (or are being searched), the message names what
    ended and what was kept, instead of saying no search was run."""
    ended_ids = list(request_ids)
    kept = [i.request_id for i in dialog.images if ended_ids and i.request_id not in ended_ids
            and (i.outcome in ("candidates", "no_candidate") or i.status == transitions.SEARCHING)]
    if kept and kind in ("cancelled", "expired"):
        text = wording.dialog_ended_partly(kind, ended_ids, kept)
    elif kind == "cancelled":
        text = wording.DIALOG_CANCELLED
    elif kind == "expired":
        text = wording.dialog_expired(timeout_minutes) if timeout_minutes else wording.DIALOG_EXPIRED
    else:
        raise ValueError(f"unknown ending {kind!r}")
    return Message(_fallback(text), [_section(text)], meta("ended", dialog=dialog, outcome=kind))


def refusal(reason: str, *, request_id: str | None = None, dialog: Dialog | None = None) -> Message:
    """A request refused (not authorised, guest, shared channel, policy): the reason, and the request id
    the audit entry carries."""
    blocks: list[Block] = [_section(reason)]
    if request_id:
        blocks.append(_context(f"Request {wording.escape_slack(request_id)}"))
    return Message(_fallback(reason), blocks,
                   meta("refusal", dialog=dialog, request_id=request_id, outcome="denied"))


def note(text: str, *, kind: str = "note", dialog: Dialog | None = None, request_id: str | None = None) -> Message:
    """A short notice already worded by `bot.wording` (wrong person, busy, stale button, non-image file)."""
    return Message(_fallback(text), [_section(text)], meta(kind, dialog=dialog, request_id=request_id))


def storage_failed(*, gave_up: bool, spool_full: bool = False, database: bool = False) -> Message:
    """The bot could not save what was just sent (disk full, failing disk, the database away): it retries, or
    has given up (after an hour, or at once when the spool has no room to keep it)."""
    if spool_full:
        return note(wording.STORAGE_SPOOL_FULL, kind="storage_gave_up")
    if database and not gave_up:
        return note(wording.DATABASE_DELAYED, kind="database_delayed")
    text = wording.STORAGE_GAVE_UP if gave_up else wording.STORAGE_RETRYING
    return note(text, kind="storage_gave_up" if gave_up else "storage_retrying")


def not_requester(dialog: Dialog, user_id: str) -> Message:
    """Ephemeral note to someone other than the requester who answered in the request thread."""
    return note(wording.wrong_person(dialog.requester_id), kind="not_requester", dialog=dialog)


def busy(dialog: Dialog) -> Message:
    """A reply while faces are being found or searched."""
    return note(wording.BUSY_NOTE, kind="busy", dialog=dialog)


def stale(dialog: Dialog) -> Message:
    """A button of an earlier question."""
    return note(wording.STALE_NOTE, kind="stale", dialog=dialog)


def closed(dialog: Dialog) -> Message:
    """A button pressed after the dialog ended."""
    return note(wording.CLOSED_NOTE, kind="closed", dialog=dialog)


def non_image(file_name: str) -> Message:
    """An uploaded file that is not an image: no request is started for it."""
    return note(wording.non_image_note(file_name), kind="non_image")


# --- the call thread in the dispatch channel --------------------------------------------------------------------


def call_thread_opening(call_number: str, replaces_deleted: bool = False) -> Message:
    """Top-level dispatch message that starts a call's thread when dispatch has none (or it was deleted)."""
    text = wording.call_thread_opening(call_number, replaces_deleted)
    return Message(_fallback(text), [_section(text)], meta("call_thread", call_number=call_number))


def _when(value: str | None, timezone: str | None) -> str:
    """A readable time for dispatchers: the configured timezone, else UTC."""
    try:
        moment = datetime.fromisoformat(value) if value else datetime.now(UTC)
    except ValueError:
        return value or ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    zone: Any = UTC
    if timezone:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def call_log_entry(
    dialog: Dialog,
    image: ImageRequest | None,
    *,
    outcome: str,
    result: Any | None,
    request_link: str | None,
    detail: str,
    timezone: str | None = None,
) -> Message:
    """The log entry in the call's thread: who, when, purpose, justification, outcome, a link to the
    request thread. With `detail` "full" and a search result, the caveat comes first and the ranked
    candidates follow; with "summary" (CONTRACTS), only who, when, the request id, the outcome, the count and
    the link (and the short caveat when there are candidates): no justification, no candidate."""
    candidates = list(result.candidates) if result is not None else []
    request_id = image.request_id if image else ", ".join(dialog.request_ids)
    when = (image.result_at if image else None) or dialog.ended_at or dialog.updated_at
    if detail == "summary":
        entry = wording.call_log_summary(
            requester_id=dialog.requester_id, when=_when(when, timezone), outcome=outcome,
            candidate_count=len(candidates), request_id=request_id, permalink=request_link,
        )
    else:
        entry = wording.call_log_entry(
            requester_id=dialog.requester_id,
            when=_when(when, timezone),
            purpose_label=_purpose_label(dialog.purpose),
            justification=dialog.justification or wording.NOT_GIVEN,
            outcome=outcome,
            candidate_count=len(candidates),
            request_id=request_id,
            permalink=request_link,
        )
    blocks: list[Block] = []
    if result is not None and detail == "full":
        blocks.append(_section(wording.result_caveat(bool(candidates))))
        blocks.append(_section(entry))
        blocks += _candidate_sections(_candidate_lines(result), MAX_BLOCKS - len(blocks))
    else:
        blocks.append(_section(entry))
        if candidates:
            blocks.append(_context(wording.CAVEAT_SHORT))
    return Message(
        _fallback(wording.call_log_notification(dialog.call_number or wording.NOT_GIVEN, outcome, len(candidates),
                                                request_id)),
        blocks,
        meta("call_log", dialog=dialog, request_id=image.request_id if image else None,
             call_number=dialog.call_number, outcome=outcome, candidate_count=len(candidates),
             purpose=dialog.purpose or "", requester=dialog.requester_id),
    )


__all__ = [
    "EVENT_TYPE",
    "Message",
    "busy",
    "button_dialog_id",
    "call_log_entry",
    "call_thread_opening",
    "closed",
    "confirm_call",
    "contact_sheet",
    "ended",
    "image_failed",
    "invalid",
    "invalid_text",
    "meta",
    "non_image",
    "not_requester",
    "note",
    "refusal",
    "result",
    "stale",
]


# --- /frs: command-staff review answers ------------------------------------------------------------------------
# Posted in a channel only when the command ends with "public" (then with metadata of event type "fr_review",
# so review posts are told apart from search posts in the archive); otherwise sent ephemerally (no metadata).

REVIEW_EVENT_TYPE = "fr_review"
REVIEW_MAX_SECTIONS = MAX_BLOCKS - 3  # room for the heading, a "not shown" note and the part footer


def review_meta(kind: str, **extra: Any) -> Metadata:
    """Metadata of an /frs answer: event_type "fr_review", payload {kind, ...extra} (flat, None left out)."""
    payload: dict[str, Any] = {"kind": kind}
    for key, value in extra.items():
        if value is not None:
            payload[key] = _scalar(value)
    return Metadata(event_type=REVIEW_EVENT_TYPE, event_payload=payload)


def pack_lines(lines: Sequence[str], limit: int = SECTION_LIMIT) -> list[str]:
    """Lines joined into as few texts of at most `limit` characters as possible, never splitting a line
    (a line over the limit is clipped on its own)."""
    texts: list[str] = []
    current = ""
    for line in lines:
        if len(line) > limit:
            line = line[: limit - 1] + "…"
        joined = f"{current}\n{line}" if current else line
        if len(joined) <= limit:
            current = joined
            continue
        texts.append(current)
        current = line
    if current:
        texts.append(current)
    return texts


def review_pages(
    header: str,
    lines: Sequence[str],
    *,
    kind: str,
    not_shown: str | None = None,
    max_sections: int = REVIEW_MAX_SECTIONS,
    **payload: Any,
) -> list[Message]:
    """An /frs answer listing `lines` (e.g. wording.audit_lines): the heading, then the lines packed into
    sections of at most 3,000 characters, split over several messages of at most 50 blocks when needed,
    each numbered "Part k of n"; `not_shown` (a note that the list was cut) ends the last one."""
    chunks = pack_lines(lines)
    groups = [chunks[i:i + max_sections] for i in range(0, len(chunks), max_sections)] or [[]]
    pages = len(groups)
    messages = []
    for page, group in enumerate(groups, start=1):
        body: list[Block] = [_section(header)] if page == 1 else []
        body += [_section(text) for text in group]
        if page == pages and not_shown:
            body.append(_context(not_shown))
        if pages > 1:
            body.append(_context(wording.review_page(page, pages)))
        messages.append(Message(
            _fallback(header, wording.review_page(page, pages) if pages > 1 else ""),
            body,
            review_meta(kind, page=page, pages=pages, **payload),
        ))
    return messages


def review_note(text: str, *, kind: str, **payload: Any) -> Message:
    """A one-section /frs answer already worded by `bot.wording` (help, status, usage, refusal)."""
    return Message(_fallback(text), [_section(text)], review_meta(kind, **payload))


def review_report(report_text: str, *, note: str | None, month: str, **payload: Any) -> Message:
    """The monthly accountability report (wording.report_text) with a note on where its chart is."""
    body: list[Block] = [_section(report_text)]
    if note:
        body.append(_context(note))
    first_line = report_text.split("\n", 1)[0]
    return Message(_fallback(first_line), body, review_meta("report", month=month, **payload))


__all__ += ["REVIEW_EVENT_TYPE", "pack_lines", "review_meta", "review_note", "review_pages", "review_report"]


# --- The audit chain head, posted daily in [audit] head_channel ----------------------------------------------------

AUDIT_EVENT_TYPE = "fr_audit"


def audit_head(text: str, *, seq: int, mac: str, verified: bool) -> Message:
    """The chain head post (wording.audit_head_text), with metadata {kind "audit_head", seq, mac, verified}:
    machine-readable, so an auditor's script can collect the heads from the channel's history."""
    payload = {"kind": "audit_head", "seq": seq, "mac": mac, "verified": verified}
    return Message(_fallback(text), [_section(text)], Metadata(event_type=AUDIT_EVENT_TYPE, event_payload=payload))


def audit_head_alarm(text: str, *, seq: int, problem: str) -> Message:
    """The alarm when the log no longer reaches the head posted last (wording.audit_head_alarm), with metadata
    {kind "audit_head_alarm", seq, problem}: never read back as a head."""
    payload = {"kind": "audit_head_alarm", "seq": seq, "problem": problem}
    return Message(_fallback(text), [_section(text)], Metadata(event_type=AUDIT_EVENT_TYPE, event_payload=payload))


__all__ += ["AUDIT_EVENT_TYPE", "audit_head", "audit_head_alarm"]


# --- oversight alerts ([oversight] alert_channel) -------------------------------------------------------------

OVERSIGHT_EVENT_TYPE = "fr_oversight"


def oversight_alert(alert: dict[str, Any], console_url: str | None) -> Message:
    """An anomaly alert (bot.oversight.alerts: its `alert` entry's fields) for the private alert channel: the rule,
    the sentence, where to review it; metadata {kind "oversight_alert", alert_id, rule, key, window}."""
    header = wording.alert_post_header(str(alert.get("rule")))
    summary = wording.escape_slack(str(alert.get("summary") or ""))
    footer = wording.alert_post_footer(str(alert.get("alert_id")), console_url)
    payload = {"kind": "oversight_alert", **{k: _scalar(alert.get(k)) for k in ("alert_id", "rule", "key", "window")}}
    return Message(_fallback(header.strip("*"), summary), [_section(header), _section(summary), _context(footer)],
                   Metadata(event_type=OVERSIGHT_EVENT_TYPE, event_payload=payload))


__all__ += ["OVERSIGHT_EVENT_TYPE", "oversight_alert"]
