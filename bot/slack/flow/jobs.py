"""Background jobs: dialog timeouts, the watchdog for stuck work, outbox delivery, audit reconciliation at start,
resume after a restart, and the daily purge with the publication of the audit chain head.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot import service, wording
from bot.audit import heads
from bot.audit.entries import as_utc
from bot.oversight import retention
from bot.request import transitions
from bot.request.transitions import Dialog, ImageRequest
from bot.slack import blocks
from bot.slack.calls import SLACK_ERRORS, error_text
from bot.slack.flow.dialog import apply, transition
from bot.slack.flow.effects import post_essential, requester_of, source_fields
from bot.slack.flow.oversight import raise_head_alarm

if TYPE_CHECKING:
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------ jobs


async def tick(rt: Runtime) -> int:
    """End dialogs left unanswered past the timeout (audited as expired); restart the work of dialogs stuck
    with nothing running (`watchdog`); write folded refusals whose window closed; deliver queued posts (call
    log and request threads).

    Returns how many dialogs expired.
    """
    minutes = rt.settings.slack.dialog_timeout_minutes
    limit = timedelta(minutes=minutes)
    expired = 0
    for dialog in await rt.io(rt.store.active):
        waits = transitions.INPUT_STEPS + (transitions.Step.AWAITING_APPROVAL,)
        if dialog.step not in waits:
            continue
        if dialog.step in transitions.INPUT_STEPS and rt.now() - datetime.fromisoformat(dialog.updated_at) < limit:
            continue  # checked here first so quiet dialogs take no lock and no write
        new = await transition(rt, dialog.dialog_id, lambda d: transitions.on_tick(d, rt.now(), minutes, rt.settings.review.approval_minutes))
        if new is not None and new.step is transitions.Step.EXPIRED:
            expired += 1
    await watchdog(rt)
    from bot.slack.flow import approving, examining

    await approving.tick(rt)  # command-line requests waiting for a supervisor (none: one small file read)
    if rt.settings.review.mode == "examiner":
        await examining.tick(rt)
    try:
        await rt.io(rt.core.refusals.flush, rt.now())  # folded refusals whose window closed
    except Exception:  # the pending file keeps them; the outbox must still be delivered
        log.exception("folded refusals could not be written to the audit log")
    if rt.calls.outbox_depth():
        await rt.calls.flush_outbox()
    return expired


def _working_on(rt: Runtime, dialog: Dialog) -> bool:
    """Whether this process has analysis or a search running (or about to start) for one of the dialog's
    images."""
    running: set[str] = rt.state.get("analysing", set()) | rt.state.get("searching", set())
    names = {t.get_name() for t in rt.tasks if not t.done()}
    return any(
        rid in running or f"analyse-{rid}" in names or f"search-{rid}" in names for rid in dialog.request_ids
    )


async def _orphaned_work(rt: Runtime) -> set[str]:
    """Request ids whose work's lease ran out (a shared database): its replica died mid-work. Each is taken and
    let go at once, so it is found once; the work resumed takes it again. Empty on the files."""
    if rt.leases is None:
        return set()
    found = set()
    for key in await rt.io(rt.leases.expired, datetime.now(UTC)):
        if key.startswith("work:") and await rt.io(rt.leases.take, key, rt.holder, datetime.now(UTC)):
            await rt.io(rt.leases.release, key, rt.holder)
            found.add(key.removeprefix("work:"))
    if found:
        log.warning("work on %s stopped on a replica that went away: resuming it here", ", ".join(sorted(found)))
    return found


async def _leased_elsewhere(rt: Runtime, dialog: Dialog) -> bool:
    """Whether another replica holds the lease of work on one of the dialog's images (a shared database)."""
    return await rt.in_flight_elsewhere(f"work:{rid}" for rid in dialog.request_ids)


async def watchdog(rt: Runtime) -> int:
    """Restart the work of dialogs stuck finding faces or searching: no change for `rt.stuck_after` and no
    task running for any of their images (a task that died on an unexpected error). `transitions.resume` is
    applied again, as after a restart: analysis only of what was never analysed, and a search already in
    the audit log is posted again, not run again (search() checks its claim). A dialog is re-armed at most
    once per `stuck_after`. Returns how many dialogs were restarted."""
    now = rt.now()
    rearmed: dict[str, datetime] = rt.state.setdefault("watchdog", {})
    orphaned = await _orphaned_work(rt)
    restarted = 0
    for dialog in await rt.io(rt.store.active):
        detecting = dialog.started and any(i.status == transitions.PENDING for i in dialog.images)
        if dialog.step not in transitions.WORK_STEPS and not detecting:
            continue
        since = max([datetime.fromisoformat(dialog.updated_at)]
                    + ([rearmed[dialog.dialog_id]] if dialog.dialog_id in rearmed else []))
        if orphaned.isdisjoint(dialog.request_ids) and (now - since < rt.stuck_after or _working_on(rt, dialog)
                                                        or await _leased_elsewhere(rt, dialog)):
            continue
        async with rt.lock(dialog.dialog_id):
            current = await rt.io(rt.store.get, dialog.dialog_id)
            effects = transitions.resume(current) if current is not None and not current.terminal else []
            if not effects:
                continue
            log.warning("dialog %s stuck at %s with nothing running since %s: resuming its work",
                        dialog.dialog_id, current.step.value, since.isoformat())
            rearmed[dialog.dialog_id] = now
            await apply(rt, current, effects)
        restarted += 1
    return restarted


ENDED_UNSEARCHED = ("cancelled", "expired", "error", "denied")


def audit_gaps(rt: Runtime) -> list[tuple[Dialog, ImageRequest]]:
    """Images whose dialog recorded an end (cancelled, expired, error) that the audit log does not hold: the
    dialog was saved, then the process stopped (or the audit write failed) before the entry was written.
    Each image is looked up by its request id in the audit's lookup index, not by a scan of the log."""
    return [
        (dialog, image)
        for dialog in rt.store.all()
        for image in dialog.images
        if image.outcome in ENDED_UNSEARCHED
        and not rt.core.audit.find(request_id=image.request_id, kinds=["search"])
    ]


async def reconcile_audit(rt: Runtime) -> int:
    """At start: write the audit entries an interrupted run left unwritten (every use is documented)."""
    gaps = await rt.io(audit_gaps, rt)
    written = 0
    for dialog, image in gaps:
        async with rt.lock(dialog.dialog_id):
            # A transition that saved the ending may be writing its entry right now (it holds this lock).
            if await rt.io(rt.core.audit.find, request_id=image.request_id, kinds=["search"]):
                continue
            await _write_missing_entry(rt, dialog, image)
            written += 1
    if written:
        log.warning("wrote %d audit entries an interrupted run had left unwritten", written)
    return written


async def _write_missing_entry(rt: Runtime, dialog: Dialog, image: ImageRequest) -> None:
    """The audit entry of an image whose dialog recorded its end without one (marked recorded_at_restart)."""
    permalink = await rt.permalink(dialog.channel, dialog.thread_ts)
    await rt.io(
        service.record_ended, rt.core, outcome=image.outcome, request_id=image.request_id,
        answers=dialog.answers(), requester=requester_of(dialog),
        source={**(await source_fields(rt, dialog, image, permalink)), "recorded_at_restart": True},
        error=image.error or None, faces=image.faces,
    )


async def resume_all(rt: Runtime) -> int:
    """After a restart: restart analysis not yet stored and searches not yet finished. Returns dialogs resumed."""
    resumed = 0
    for dialog in await rt.io(rt.store.active):
        if _working_on(rt, dialog) or await _leased_elsewhere(rt, dialog):  # in flight here or elsewhere
            continue
        effects = transitions.resume(dialog)
        if effects:
            async with rt.lock(dialog.dialog_id):
                await apply(rt, dialog, effects)
            resumed += 1
    return resumed


async def purge(rt: Runtime) -> dict[str, int]:
    """The daily retention job: `bot.oversight.retention.purge_expired` with this server's stores (dialog state and
    cached probes past `dialog_state_days`; audit entries only past `audit_retention_days`)."""
    report = await rt.io(
        retention.purge_expired, rt.settings, now=rt.now(), audit=rt.core.audit, dialog_store=rt.store,
        backend=rt.core.backend,
    )
    rt.threads = await rt.io(rt.store.threads)  # forget the threads of purged dialogs
    dropped = await rt.io(rt.calls.purge_outbox, rt.now() - timedelta(days=rt.settings.retention.dialog_state_days))
    if dropped:
        log.warning("outbox: %d posts never delivered within %d days dropped (retention)", dropped,
                    rt.settings.retention.dialog_state_days)
    pruned = await rt.io(rt.calls.prune, rt.now())
    if pruned:
        log.info("dispatch index: %d calls older than %d days pruned", pruned, rt.settings.slack.call_index_days)
    if report.dialogs_removed or report.probe_files_removed or report.audit_removed or not report.ok:
        log.info("%s", report.text())
    await publish_head(rt)  # after the purge, which may append a purge entry
    return {"dialogs": report.dialogs_removed, "probes": report.probe_files_removed}


async def publish_head(rt: Runtime) -> str | None:
    """Post the audit chain head (last entry's seq and MAC) in `[audit] head_channel`: kept outside the data
    dir, it lets `audit verify --head` show later that entries were cut off the end. Daily with the purge,
    and at start; queued like an essential post when Slack is down. The ts, or None (off, empty log, queued,
    or an alarm).

    First the log is compared with the head this bot posted last (read back from the channel) and with the
    prefix it had verified: a log that went backwards or disagrees is an alarm (bot.audit.heads) in the
    channel (once), `/frs status` and the server log, and no new head is posted until `audit accept-head`."""
    channel = rt.settings.audit.head_channel
    try:
        posted = await _last_posted_head(rt) if channel else None
    except SLACK_ERRORS as exc:  # nothing to compare with: posting now could hide a log that went backwards
        log.warning("the last posted audit head could not be read (%s): no head posted now", error_text(exc))
        return None
    alarm = await rt.io(_head_alarm, rt, posted)
    if alarm is not None:
        text = wording.audit_head_alarm(alarm.seq, alarm.problem, alarm.last_seq)
        if rt.state.get("head_alarm") != text:
            log.error("%s", text)
            rt.state["head_alarm"] = text
            try:
                await raise_head_alarm(rt, alarm)  # the chain alert in [oversight] alert_channel too
            except Exception:
                log.exception("the chain alert for the head alarm could not be raised")
            if channel:
                await post_essential(rt, channel, None, blocks.audit_head_alarm(text, seq=alarm.seq,
                                                                                problem=alarm.problem))
        return None
    rt.state.pop("head_alarm", None)
    if not channel:
        return None
    head = await rt.io(rt.core.audit.head)
    if head is None:
        return None
    check = await rt.io(rt.core.audit.verify, use_prefix=True)
    broken = None if check.ok else wording.audit_chain_broken(check.bad_seq, check.reason)
    text = wording.audit_head_text(head["seq"], head["mac"], head["ts"], rt.settings.timezone, broken)
    message = blocks.audit_head(text, seq=head["seq"], mac=head["mac"], verified=check.ok)
    return await post_essential(rt, channel, None, message)


async def _last_posted_head(rt: Runtime) -> dict[str, Any] | None:
    """{"seq", "mac", "ts"} of the newest head this bot posted in the head channel (its metadata), else None."""
    response = await rt.client.conversations_history(channel=rt.settings.audit.head_channel, limit=200,
                                                     include_all_metadata=True)
    own = {i for i in (rt.bot_user_id, rt.bot_id) if i}
    for message in response.get("messages") or []:  # newest first
        if not own & {message.get("user"), message.get("bot_id")}:
            continue
        body = (message.get("metadata") or {}).get("event_payload") or {}
        if body.get("kind") == "audit_head" and isinstance(body.get("seq"), int) and isinstance(body.get("mac"), str):
            return {"seq": body["seq"], "mac": body["mac"], "ts": str(message.get("ts") or "0")}
    return None


def _head_alarm(rt: Runtime, posted: dict[str, Any] | None) -> heads.HeadAlarm | None:
    """bot.audit.heads.judge over the log as it is (a thread: it reads the whole log when a head was posted)."""
    audit = rt.core.audit
    prefix = audit.verified_prefix()  # read before any check rewrites it
    last = audit.head()
    problem = audit.check_head(posted["seq"], posted["mac"]).problem if posted else None
    accepted = False
    if (posted is not None and problem in ("missing", "mismatch")) or (prefix and (last or {}).get("seq", 0) < prefix[0]):
        since = float(posted["ts"]) if posted else 0.0
        accepted = any(e.get("action") == heads.ACCEPT_ACTION and as_utc(e["ts"]).timestamp() > since
                       for e in audit.find(kinds=["audit_access"]))
    return heads.judge((posted["seq"], posted["mac"]) if posted else None, problem,
                       last_seq=(last or {}).get("seq"), prefix=prefix, accepted=accepted)
