"""The leader's monthly draw of sampled audits (CONTRACTS ### 14): on or after the 1st, once per month, last
month's finished searches that ran are sampled from a fresh seed and the `sample_draw` entry is appended
(bot.oversight.samples decides everything; this reads the log, asks Slack who the auditors are, and writes).

Run by bot.slack.server when a replica starts leading and daily while it leads, like the purge. A draw already in
the log for last month makes it a no-op, so a restart never draws twice.
"""
from __future__ import annotations

import logging
from typing import Any

from bot.oversight import samples
from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)
ACTOR = {"id": "frbot", "name": "frbot (the leading server)"}


async def auditors(rt: Runtime) -> list[dict[str, str]]:
    """The auditors to assign to, each once: `[oversight] auditors` in the order listed, then the members of
    `[oversight] auditor_groups` as Slack lists them now (sorted by id, so the order does not depend on Slack's)."""
    oversight = rt.settings.oversight
    ids = list(oversight.auditors)
    for group in oversight.auditor_groups:
        ids += sorted(await rt.group_members(group, fresh=True))
    people, seen = [], set()
    for uid in ids:
        if uid not in seen:
            seen.add(uid)
            people.append({"id": uid, "name": await rt.user_name(uid)})
    return people


async def draw_samples(rt: Runtime) -> dict[str, Any] | None:
    """Append last month's `sample_draw` when it is due (the entry, else None: drawn already, or no search ran).
    Never raises: a failure is logged and the next daily run tries again."""
    try:
        tz = rt.settings.timezone
        entries = await rt.io(lambda: list(rt.core.audit.entries()))
        month = samples.due_month(rt.now(), tz, entries)
        if month is None:
            return None
        settings = rt.settings.oversight
        fields = samples.draw_fields(entries, month, tz, seed=samples.new_seed(), percent=settings.sample_percent,
                                     minimum=settings.sample_min, auditors=await auditors(rt), actor=ACTOR)
        if fields is None:
            return None
        if not any(a["auditor"] for a in fields["assignments"]):
            log.warning("sampled audit %s: no [oversight] auditors or auditor_groups, so nobody is assigned", month)
        entry = await rt.io(rt.core.audit.append, "sample_draw", **fields)
        log.info("sampled audit %s: %d of %d searches drawn", month, fields["n"], fields["population"])
        return entry
    except Exception:
        log.exception("the monthly sampled-audit draw failed")
        return None
