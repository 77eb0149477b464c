"""bot.audit.heads: when the audit log no longer reaches the head the bot posted (or its verified prefix)."""
from __future__ import annotations

from bot.audit.heads import HeadAlarm, judge

POSTED = (10, "ab" * 32)


def test_a_log_that_holds_or_purged_the_posted_head_is_no_alarm():
    for problem in (None, "purged"):
        assert judge(POSTED, problem, last_seq=12, prefix=(12, "cd" * 32), accepted=False) is None
    assert judge(None, None, last_seq=None, prefix=None, accepted=False) is None


def test_a_missing_or_different_posted_head_is_an_alarm_naming_where_the_log_ends():
    assert judge(POSTED, "missing", last_seq=6, prefix=None, accepted=False) == HeadAlarm(10, "ab" * 32, "missing", 6)
    assert judge(POSTED, "mismatch", last_seq=12, prefix=None, accepted=False).problem == "mismatch"


def test_a_log_ending_before_its_verified_prefix_is_an_alarm_even_with_no_posted_head():
    assert judge(None, None, last_seq=6, prefix=(10, "ef" * 32), accepted=False) == HeadAlarm(
        10, "ef" * 32, "behind_prefix", 6)
    assert judge(None, None, last_seq=None, prefix=(1, "ef" * 32), accepted=False).last_seq is None


def test_an_accepted_head_clears_the_alarm():
    assert judge(POSTED, "missing", last_seq=6, prefix=(10, "ef" * 32), accepted=True) is None
