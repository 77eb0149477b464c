"""The leader's oversight jobs (CONTRACTS ### 14): the anomaly alert rules (bot.oversight.alerts) every `[oversight]
check_minutes` and once when a server starts leading; the full chain check (bot.oversight.chain_check) every
`verify_minutes` and at start, kept as a small record every replica reads. A new alert is an `alert` audit entry
first (the only state: a restart or another leader reads it back and raises nothing twice), then a post in
`[oversight] alert_channel` (queued like an essential post while Slack is down). A broken chain, or a head that
disagrees with the one posted (bot.slack.flow.jobs.publish_head), raises the chain alert at once.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.oversight import alerts, chain_check
from bot.slack import blocks
from bot.slack.flow.effects import post_essential, private_channel_problem

if TYPE_CHECKING:
    from bot.audit.heads import HeadAlarm
    from bot.oversight.chain_check import ChainCheck
    from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)

ALERTS_PATH = "/console/alerts"


def _lock(rt: Runtime) -> asyncio.Lock:
    """One run at a time on this server: the start's run, the periodic one and a chain alert never append the
    same alert twice between reading the log and writing to it."""
    lock = rt.state.get("oversight_lock")
    if lock is None:
        lock = rt.state["oversight_lock"] = asyncio.Lock()
    return lock


def console_alerts_url(rt: Runtime) -> str | None:
    """The console's alerts page as people reach it, when `[console] public_url` is set."""
    base = rt.settings.console.public_url.rstrip("/")
    return f"{base}{ALERTS_PATH}" if base else None


async def check_alerts(rt: Runtime) -> list[dict[str, Any]]:
    """Run the alert rules over the entries they need (since `alerts.horizon`), judging what happened in the last
    `alerts.EVALUATE_DAYS`; append and post each new alert. Returns the new `alert` entries."""
    settings = rt.settings.oversight
    now = rt.now()
    async with _lock(rt):
        entries = await rt.io(rt.core.audit.find, since=alerts.horizon(settings, now))
        found = await rt.io(alerts.evaluate, entries, settings, rt.settings.timezone,
                            since=now - timedelta(days=alerts.EVALUATE_DAYS))
        written = [await _raise(rt, alert) for alert in found]
    if written:
        log.warning("oversight: %d new alerts (%s)", len(written), ", ".join(sorted({a.rule for a in found})))
    return written


async def verify_chain(rt: Runtime, by: str | None = None) -> ChainCheck:
    """The whole chain checked (never the verified prefix alone), kept where every replica and the console read
    it; a broken chain raises the chain alert at once. `by`: who asked (a person on the console), else this
    replica."""
    check = await rt.io(chain_check.run, rt.core.audit, rt.now(), by or rt.replica or "server")
    await rt.io(chain_check.save, rt.core.backend.small_records(), check)
    alert = alerts.chain_alert(check)
    if alert is not None:
        log.error("oversight: the full chain check failed at entry %s: %s", check.bad_seq, check.reason)
        await raise_once(rt, alert)
    return check


async def raise_head_alarm(rt: Runtime, alarm: HeadAlarm) -> dict[str, Any] | None:
    """The chain alert for a log that no longer reaches the head the bot posted (once per head and problem)."""
    return await raise_once(rt, alerts.head_alert(alarm, rt.now()))


async def raise_once(rt: Runtime, alert: alerts.Alert) -> dict[str, Any] | None:
    """Append and post `alert` unless an `alert` entry already has its id; the entry, or None."""
    async with _lock(rt):
        existing = await rt.io(rt.core.audit.find, kinds=["alert"])
        if alert.alert_id in alerts.raised(existing):
            return None
        return await _raise(rt, alert)


async def alert_channel_problem(rt: Runtime) -> str | None:
    """Why alerts may not be posted in `[oversight] alert_channel` (one sentence), or None: they name officers and
    requests, so the channel must be readable by the bot, private, and the department's own."""
    return await private_channel_problem(rt, "[oversight] alert_channel", rt.settings.oversight.alert_channel,
                                         "alerts name officers and requests")


async def _raise(rt: Runtime, alert: alerts.Alert) -> dict[str, Any]:
    entry = await rt.io(rt.core.audit.append, "alert", **alert.entry_fields())
    channel = rt.settings.oversight.alert_channel
    if not channel:  # without one, alerts are in the console only
        return entry
    problem = await alert_channel_problem(rt)
    if problem:  # the entry stands (the console lists it); nothing is posted where it should not be read
        log.error("%s: alert %s not posted", problem, entry["alert_id"])
        return entry
    await post_essential(rt, channel, None, blocks.oversight_alert(entry, console_alerts_url(rt)))
    return entry


__all__ = ["alert_channel_problem", "check_alerts", "console_alerts_url", "raise_head_alarm", "raise_once", "verify_chain"]
