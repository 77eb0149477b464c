"""Whether the audit log still reaches the head the bot last posted (GO 375.01 D): a chain alone cannot show that
entries were cut off its end, or that an older copy was put back; the head posted outside the data dir can.

Pure: the caller reads the last posted head (Slack), checks it against the log (`AuditLog.check_head`) and reads
the verified prefix; this module decides whether that is an alarm. An alarm holds until an administrator runs
`python -m bot audit accept-head SEQ:MAC`, whose audit entry (`action: accept_head`) is newer than the head
that disagrees.
"""
from __future__ import annotations

from dataclasses import dataclass

ACCEPT_ACTION = "accept_head"


@dataclass(frozen=True)
class HeadAlarm:
    """The log went backwards or disagrees: `seq`/`mac` the head it no longer reaches, `problem` "missing" (the
    log ends before it), "mismatch" (that entry has another MAC) or "behind_prefix" (the log ends before an entry
    it had already verified), `last_seq` where the log ends now (None: empty)."""

    seq: int
    mac: str
    problem: str
    last_seq: int | None


def judge(
    posted: tuple[int, str] | None,
    problem: str | None,
    *,
    last_seq: int | None,
    prefix: tuple[int, str] | None,
    accepted: bool,
) -> HeadAlarm | None:
    """The alarm, or None when the log reaches (or purged) the posted head and the verified prefix.

    `posted`: (seq, mac) of the newest head the bot posted, None when it posted none; `problem`: what
    `check_head` found for it (None, "missing", "mismatch", "purged"); `prefix`: (seq, mac) the log had verified
    up to before this check; `accepted`: an `accept_head` entry newer than the posted head is in the log.
    """
    if accepted:
        return None
    if posted is not None and problem in ("missing", "mismatch"):
        return HeadAlarm(posted[0], posted[1], problem, last_seq)
    if prefix is not None and (last_seq or 0) < prefix[0]:
        return HeadAlarm(prefix[0], prefix[1], "behind_prefix", last_seq)
    return None
