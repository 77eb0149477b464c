"""`/frs`: command-staff review in Slack (GO 375.01 D), the Slack side of `bot.oversight.review`.

`parse` turns the command text into a `Command`; `handle` (run after the ack) authorises it, calls
`bot.oversight.review` (which records every read of the audit as an `audit_access` entry), and answers with messages
built by `bot.slack.blocks` from `bot.wording` texts:

    /frs audit CALL_NUMBER                  every request for a call             command staff
    /frs audit @person [since YYYY-MM-DD]   every request by one person          command staff
    /frs report [YYYY-MM]                   monthly report; chart by DM          command staff
    /frs status                             gallery, model, queue, audit head    requesters, staff, gallery admins
    /frs help                               the list of commands                 anyone

Answers are ephemeral unless the text ends with `public`; then they are posted in the channel with metadata
(event type "fr_review"), except in a channel shared with another organisation. A refusal is ephemeral and
audited (`audit_access` with allowed=False). With `should_escape: true` (the manifest), Slack sends a
mentioned person as `<@U123|name>`.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import aiohttp

from bot import __version__, policy, wording
from bot.faces.engine import model_info
from bot.oversight import evidence, monthly, review
from bot.slack import blocks, roles
from bot.slack.blocks import Message
from bot.slack.calls import SLACK_ERRORS, error_text

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)

AUDIT_CAP = 100  # request lines per answer; past it, `python -m bot audit export` (Slack is not an export tool)
_TOKENS = re.compile(r"<[^>]*>|\S+")  # a <@U…|name> mention stays one token even if its label has spaces
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_ACTIONS = {"audit_call": "query", "audit_user": "query", "report": "report", "status": "status",
            "exam_queue": "exam_queue"}

Respond = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    """One parsed `/frs` command. `action` is "help", "status", "audit_call", "audit_user", "report" or
    "usage" (not understood: `problem` is a key of wording.FRS_PROBLEMS, `problem_text` what was typed)."""

    action: str
    public: bool = False
    call_number: str | None = None
    user_id: str | None = None
    since: date | None = None
    month: str | None = None
    problem: str | None = None
    problem_text: str = ""

    def query(self) -> dict[str, Any]:
        """The parameters recorded in the audit entry of this command."""
        if self.action == "audit_call":
            return {"call_number": self.call_number}
        if self.action == "audit_user":
            return {"requester_id": self.user_id, "since": self.since.isoformat() if self.since else None}
        if self.action == "report":
            return {"month": self.month}
        return {}


def _usage(problem: str, text: str = "") -> Command:
    return Command("usage", problem=problem, problem_text=text)


def _unescape(token: str) -> str:
    return token.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_day(text: str) -> date | None:
    """A calendar day written YYYY-MM-DD, or None (Python would also take 20260301; people mean the dashes)."""
    if not _DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse(text: str) -> Command:
    """The command in the text after `/frs` (an empty text asks for help)."""
    # Slack escapes &, < and > in the text; <…> tokens are its own syntax (mentions), the rest is what was typed.
    tokens = [t if t.startswith("<") else _unescape(t) for t in _TOKENS.findall(text or "")]
    public = bool(tokens) and tokens[-1].lower() == wording.FRS_PUBLIC_WORD
    if public:
        tokens = tokens[:-1]
    if not tokens:
        return Command("help", public=public)
    word, args = tokens[0].lower(), tokens[1:]
    if word == "help":
        return Command("help", public=public)
    if word == "status":
        return Command("status", public=public) if not args else _usage("extra", " ".join(args))
    if word == "review":  # examiners: the open reviews (never public: faces and justifications are listed)
        return Command("exam_queue") if not args else _usage("extra", " ".join(args))
    if word == "report":
        if not args:
            return Command("report", public=public)
        if len(args) > 1:
            return _usage("extra", " ".join(args[1:]))
        try:
            year, month = review.parse_month(args[0])
        except ValueError:
            return _usage("month", args[0])
        return Command("report", public=public, month=f"{year:04d}-{month:02d}")
    if word != "audit":
        return _usage("unknown", tokens[0])  # the word it does not know, without "public" or what follows
    if not args:
        return _usage("missing")
    target, rest = args[0], args[1:]
    mention = _MENTION.fullmatch(target)
    if mention is None:
        if target.startswith(("@", "<")):
            return _usage("person", target)
        # Stored in normal form (policy.normalise_call_number): "#26-012345" or "*26-012345*" find it too.
        call_number = policy.normalise_call_number(target.strip("#*_~`")) or target
        return Command("audit_call", public=public, call_number=call_number) if not rest else _usage(
            "extra", " ".join(rest))
    since = None
    if rest:
        if rest[0].lower() != "since" or len(rest) > 2:
            return _usage("extra", " ".join(rest))
        if len(rest) == 1:
            return _usage("no_day")
        since = parse_day(rest[1])
        if since is None:
            return _usage("day", rest[1])
    return Command("audit_user", public=public, user_id=mention.group(1), since=since)


# --------------------------------------------------------------------------------------- answering


class Answer:
    """Where the answers to one command go: ephemeral to the person who asked (chat.postEphemeral, else the
    command's response_url), or posted in the channel with metadata."""

    def __init__(self, rt: Runtime, channel: str, user: str, respond: Respond | None) -> None:
        self.rt = rt
        self.channel = channel
        self.user = user
        self.respond = respond

    async def private(self, message: Message) -> bool:
        """Show `message` only to the person who asked; False when neither way reached them."""
        try:
            await self.rt.client.chat_postEphemeral(channel=self.channel, user=self.user,
                                                    **message.ephemeral_kwargs())
            return True
        except SLACK_ERRORS as exc:
            # Not a member of the channel, or a DM between people: the response_url still reaches them.
            log.info("chat.postEphemeral for /frs failed (%s); using the response_url", error_text(exc))
        if self.respond is None:
            return False
        try:
            reply = await self.respond(response_type="ephemeral", **message.ephemeral_kwargs())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # the rest of the answer still goes
            log.warning("the /frs response_url failed: %s", exc)
            return False
        return getattr(reply, "status_code", 200) == 200

    async def post(self, channel: str, message: Message) -> str | None:
        """chat.postMessage with the message's metadata; the new ts, or None when Slack refused."""
        try:
            resp = await self.rt.client.chat_postMessage(channel=channel, **message.kwargs())
        except SLACK_ERRORS as exc:
            log.warning("chat.postMessage of an /frs answer to %s failed: %s", channel, error_text(exc))
            return None
        return resp.get("ts")

    async def may_post_here(self) -> bool:
        """Whether a `public` answer may go in this channel: never in one shared with another organisation."""
        info = await self.rt.channel_info(self.channel)
        return not (info or {}).get("is_ext_shared")

    async def send(self, messages: Sequence[Message], *, public: bool) -> bool:
        """Deliver an answer; a `public` one falls back to ephemeral (saying why) when it cannot be posted.
        True when it was posted in the channel."""
        if public and not await self.may_post_here():
            await self.private(blocks.review_note(wording.FRS_PUBLIC_SHARED, kind="public_refused"))
            public = False
        if public:
            for i, message in enumerate(messages):
                if await self.post(self.channel, message) is None:
                    await self.private(blocks.review_note(wording.FRS_PUBLIC_NOT_MEMBER, kind="public_failed"))
                    for rest in messages[i:]:
                        await self.private(rest)
                    return False
            return True
        for message in messages:
            await self.private(message)
        return False

    async def upload(self, channel: str, data: bytes, *, filename: str, title: str) -> bool:
        """files_upload_v2 of a PNG into a channel or DM; False when Slack refused."""
        try:
            await self.rt.client.files_upload_v2(channel=channel, file=data, filename=filename, title=title,
                                                 alt_txt=title)
        except SLACK_ERRORS as exc:
            log.error("files_upload_v2 of %s failed: %s", filename, error_text(exc))
            return False
        return True

    async def open_dm(self) -> str | None:
        """The bot's direct-message channel with the person who asked (conversations.open, im:write)."""
        try:
            resp = await self.rt.client.conversations_open(users=self.user)
        except SLACK_ERRORS as exc:
            log.error("conversations.open for the /frs report failed: %s", error_text(exc))
            return None
        return (resp.get("channel") or {}).get("id")


# --------------------------------------------------------------------------------------- authorisation


async def may_see_status(rt: Runtime, user: str) -> bool:
    """Requesters, command staff and gallery administrators (guests never: each role check refuses them)."""
    if await roles.is_command_staff(rt, user) or await roles.is_gallery_admin(rt, user):
        return True
    allowed, _reason = await roles.can_request(rt, user, None)
    return allowed


async def _refuse(rt: Runtime, answer: Answer, who: dict[str, str], command: Command, text: str) -> None:
    """Record the refused attempt (before answering, so a Slack failure cannot lose it), then say no. From
    someone on no list at all, the refusals are folded with that person's others (bot.audit.refusals)."""
    fields = {"actor": who, "action": _ACTIONS[command.action], "query": command.query(), "allowed": False,
              "outcome": "denied", "source": "slack", "channel": answer.channel}
    if await roles.holds_no_role(rt, answer.user):
        await rt.io(rt.core.refusals.record, "audit_access", answer.user, fields, rt.now())
    else:
        await rt.io(rt.core.audit.append, "audit_access", **fields)
    await answer.private(blocks.review_note(text, kind="refusal", action=command.action))


# --------------------------------------------------------------------------------------- the commands


async def handle(rt: Runtime, body: dict[str, Any], respond: Respond | None = None) -> None:
    """Answer one `/frs` slash command (its form-decoded body); run after the ack, never raises."""
    user = str(body.get("user_id") or "")
    answer = Answer(rt, str(body.get("channel_id") or ""), user, respond)
    command = parse(str(body.get("text") or ""))
    try:
        await run(rt, command, answer)
    except Exception:
        log.exception("/frs %s failed", command.action)
        await answer.private(blocks.review_note(wording.FRS_FAILED, kind="failed"))


async def run(rt: Runtime, command: Command, answer: Answer) -> None:
    """Authorise and answer a parsed command."""
    if command.action == "usage":
        text = wording.frs_not_understood(command.problem or "unknown", command.problem_text)
        await answer.private(blocks.review_note(text, kind="usage"))
        return
    if command.action == "help":
        await answer.send([blocks.review_note(wording.FRS_HELP, kind="help")], public=command.public)
        return
    who = {"id": answer.user, "name": await rt.user_name(answer.user)}
    if command.action == "exam_queue":
        if not await roles.is_examiner(rt, answer.user):
            await _refuse(rt, answer, who, command, wording.EXAM_NOT_EXAMINER)
            return
        await answer.private(await exam_queue_message(rt))
        return
    if command.action == "status":
        if not await may_see_status(rt, answer.user):
            await _refuse(rt, answer, who, command, wording.FRS_STATUS_REFUSED)
            return
        await answer.send([await status_message(rt, answer.user)], public=command.public)
        return
    if not await roles.is_command_staff(rt, answer.user):
        await _refuse(rt, answer, who, command, wording.FRS_STAFF_ONLY)
        return
    if command.action == "report":
        await report(rt, command, answer, who)
    else:
        await audit(rt, command, answer, who)


def _chain_warning(rt: Runtime) -> str | None:
    """The warning line that starts an answer drawn from a log whose chain does not verify, else None."""
    result = rt.core.audit.verify(use_prefix=True)
    return None if result.ok else wording.audit_chain_broken(result.bad_seq, result.reason)


async def audit(rt: Runtime, command: Command, answer: Answer, who: dict[str, str]) -> None:
    """`/frs audit CALL_NUMBER` or `/frs audit @person [since YYYY-MM-DD]`: the matching requests, oldest
    first, in the configured timezone; at most AUDIT_CAP lines, then a pointer to the export."""
    tz = rt.settings.timezone
    log_ = rt.core.audit
    if command.action == "audit_call":
        entries = await rt.work(review.audit_by_call, log_, command.call_number or "", who)
        header = wording.audit_call_header(command.call_number or "", len(entries))
        payload: dict[str, Any] = {"call_number": command.call_number}
    else:
        user_id = command.user_id or ""
        entries = await rt.work(review.audit_by_user, log_, user_id, command.since, who, tz)
        name = await rt.user_name(user_id)
        since = command.since.isoformat() if command.since else None
        header = wording.audit_user_header(user_id, since, len(entries), name=name if name != user_id else None)
        payload = {"requester_id": user_id, "since": since}
    shown = entries[:AUDIT_CAP]
    lines = wording.audit_lines(shown, tz) or [wording.AUDIT_NO_ENTRIES]
    broken = await rt.work(_chain_warning, rt)
    if broken:
        header = f"{broken}\n{header}"
    more = len(entries) - len(shown)
    messages = blocks.review_pages(
        header, lines, kind=command.action, not_shown=wording.audit_not_shown(more, AUDIT_CAP) if more else None,
        requested_by=answer.user, count=len(entries), shown=len(shown), **payload,
    )
    await answer.send(messages, public=command.public)


async def report(rt: Runtime, command: Command, answer: Answer, who: dict[str, str]) -> None:
    """`/frs report [YYYY-MM]` (default: last month in the configured timezone): the summary, and the chart
    uploaded into a DM with the person who asked (with a copy of the summary, so it outlives the ephemeral
    answer), or posted in the channel with the chart when `public`."""
    tz = rt.settings.timezone
    month = command.month or review.previous_month(rt.now(), tz)
    public = command.public
    if public and not await answer.may_post_here():
        await answer.private(blocks.review_note(wording.FRS_PUBLIC_SHARED, kind="public_refused"))
        public = False
    target = answer.channel if public else await answer.open_dm()
    result = await rt.work(monthly.monthly_report, rt.core.audit, month, who, tz,
                           png_file=f"slack:{target}" if target else None)
    png = await rt.work(monthly.report_chart_png, result)
    text = wording.report_text(result)
    # A record given out is judged by every line of the chain, not only the tail after the verified prefix.
    broken = evidence.warning(await rt.work(evidence.whole_chain, rt.core.audit))
    if broken:
        text = f"{broken}\n{text}"
    chart = {"filename": f"frs-report-{result.month}.png",
             "title": wording.report_chart_file_title(result.month_title)}
    extra = {"requested_by": answer.user, "total": result.total}
    with_chart = blocks.review_report(text, note=wording.REPORT_CHART_BELOW, month=result.month, **extra)
    if public:
        if await answer.post(answer.channel, with_chart) is not None:
            if not await answer.upload(answer.channel, png, **chart):
                await answer.private(blocks.review_note(wording.REPORT_CHART_FAILED, kind="chart_failed"))
            return
        await answer.private(blocks.review_note(wording.FRS_PUBLIC_NOT_MEMBER, kind="public_failed"))
        target = await answer.open_dm()
    delivered = bool(target) and await answer.post(target, with_chart) is not None and await answer.upload(
        target, png, **chart)
    if delivered and target == answer.channel:
        return  # asked in the DM with the bot: the copy there is the answer
    note = wording.REPORT_CHART_BY_DM if delivered else wording.REPORT_CHART_FAILED
    await answer.private(blocks.review_report(text, note=note, month=result.month, **extra))


def _status_numbers(rt: Runtime) -> tuple[int, int, int, int, dict]:
    """(gallery subjects, gallery images, open requests, call-log outbox depth, operating point), from disk."""
    gallery = rt.core.gallery
    gallery.refresh()  # another process (the CLI) may have enrolled since
    cal = gallery.calibration
    point = cal.operating_point(rt.settings.search.target_fpir) if cal is not None else {}
    return gallery.subject_count, gallery.image_count, len(rt.store.active()), rt.calls.outbox_depth(), point


async def exam_queue_message(rt: Runtime) -> Message:
    """`/frs review`: open examiner reviews, urgent (purpose 2) first, then the oldest."""
    from bot.controls import examination

    exams = examination.queue_order(await rt.io(rt.exams.open))
    lines = [wording.exam_queue_line(e.request_id, e.urgent, e.status, e.claimed_by,
                                     review.local_time(e.queued_at, rt.settings.timezone), len(e.candidates))
             for e in exams]
    return blocks.review_note(wording.exam_queue_text(lines), kind="exam_queue", open_reviews=len(exams))


def _awaiting_approval(rt: Runtime) -> int:
    """Requests waiting for a supervisor: Slack dialogs at that step and command-line requests."""
    from bot.controls.approval import PENDING
    from bot.request.transitions import Step

    dialogs = sum(1 for d in rt.store.active() if d.step is Step.AWAITING_APPROVAL)
    return dialogs + sum(1 for p in rt.approvals.open() if p.status == PENDING)


async def status_message(rt: Runtime, user: str) -> Message:
    """The answer to `/frs status`."""
    subjects, images, open_requests, outbox, point = await rt.io(_status_numbers, rt)
    head = await rt.io(rt.core.audit.head)
    info = model_info(rt.engine.model)  # the model the face workers run
    threshold = rt.settings.search.threshold_for(rt.engine.model)
    searching = len(rt.state.get("searching", ()))
    reviews = len(await rt.io(rt.exams.open)) if rt.settings.review.mode == "examiner" else None
    text = wording.status_text(
        subjects=subjects, images=images, model=str(info.get("model")),
        versions={k: v for k, v in info.items() if k != "model"}, threshold=threshold,
        version=__version__, searching=searching, outbox=outbox, open_requests=open_requests,
        timezone=rt.settings.timezone, operating_point=point, face_work=rt.face_work(), audit_head=head,
        head_alarm=rt.state.get("head_alarm"),
    )
    if reviews is not None:
        text += "\n" + wording.exam_queue_status(reviews)
    if rt.settings.review.approval != "never":
        waiting = await rt.io(_awaiting_approval, rt)
        text += "\n" + wording.approval_queue_status(waiting)
    return blocks.review_note(text, kind="status", requested_by=user, gallery_subjects=subjects,
                              gallery_images=images, searching=searching, outbox=outbox,
                              open_requests=open_requests, threshold=threshold,
                              target_fpir=rt.settings.search.target_fpir, version=__version__,
                              audit_seq=(head or {}).get("seq"), audit_mac=(head or {}).get("mac"))
