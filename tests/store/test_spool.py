"""The spool (inputs waiting for room on a full disk) and the replay claims: both on disk, both across a restart."""
from __future__ import annotations

import os

import pytest

from bot.store.replays import ReplayClaims, replay_key
from bot.store.spool import Spool, SpoolFull


def test_the_spool_reserves_real_blocks_at_start(tmp_path):
    spool = Spool(tmp_path / "spool.bin", 1 << 20)
    st = os.stat(tmp_path / "spool.bin")
    assert st.st_size == 1 << 20 and st.st_blocks * 512 >= 1 << 20  # zeros written, not a sparse hole
    assert spool.capacity == 1 << 20 and oct(st.st_mode & 0o777) == "0o600"


def test_pending_inputs_come_back_in_order_after_a_restart_and_done_ones_do_not(tmp_path):
    spool = Spool(tmp_path / "spool.bin", 1 << 16)
    first = spool.add({"handler": "h", "body": {"n": 1}})
    second = spool.add({"handler": "h", "body": {"n": 2, "text": "réponse"}})
    spool.add({"handler": "h", "body": {"n": 3}})
    spool.done(second)
    assert [r["body"]["n"] for _id, r in spool.pending(inherited=True)] == []  # this process retries its own
    again = Spool(tmp_path / "spool.bin", 1 << 16)  # a new process
    assert [r["body"]["n"] for _id, r in again.pending()] == [1, 3]
    assert again.pending(inherited=True) == again.pending()
    assert again.pending()[0][0] == first
    later = again.add({"handler": "h", "body": {"n": 4}})  # appended after the last record, not over one
    assert [r["body"]["n"] for _id, r in Spool(tmp_path / "spool.bin", 1 << 16).pending()] == [1, 3, 4]
    assert later > first


def test_when_every_input_is_done_the_spool_starts_over(tmp_path):
    spool = Spool(tmp_path / "spool.bin", 4096)
    ids = [spool.add({"body": "x" * 1300}) for _ in range(3)]
    with pytest.raises(SpoolFull):
        spool.add({"body": "x" * 1300})
    for record_id in ids:
        spool.done(record_id)
    assert spool.add({"body": "y"}) == 0 and [r["body"] for _i, r in spool.pending()] == ["y"]
    assert [r["body"] for _i, r in Spool(tmp_path / "spool.bin", 4096).pending()] == ["y"]  # stale ones gone


def test_a_record_torn_by_a_crash_or_corrupted_is_not_replayed(tmp_path):
    spool = Spool(tmp_path / "spool.bin", 4096)
    good = spool.add({"body": "kept"})
    torn = spool.add({"body": "torn"})
    with open(tmp_path / "spool.bin", "r+b") as fh:  # a crash before the state byte was set: state 0
        fh.seek(torn)
        fh.write(bytes([0]))
    assert [r["body"] for _i, r in Spool(tmp_path / "spool.bin", 4096).pending()] == ["kept"]
    with open(tmp_path / "spool.bin", "r+b") as fh:  # a flipped payload byte: the CRC ends the list
        fh.seek(good + 12)
        fh.write(b"X")
    assert Spool(tmp_path / "spool.bin", 4096).pending() == []


def test_replay_claims_survive_a_restart_and_expire(tmp_path):
    claims = ReplayClaims(tmp_path / "replays.log", ttl=600)
    claims.claim("event:Ev123", 1000.0)
    again = ReplayClaims(tmp_path / "replays.log", ttl=600)
    assert again.seen("event:Ev123", 1500.0) and not again.seen("event:Ev123", 1601.0)
    assert not again.seen("event:Other", 1500.0)
    with open(tmp_path / "replays.log", "a") as fh:  # a torn last line is never trusted
        fh.write("1500.000 sig:abc")
    assert not ReplayClaims(tmp_path / "replays.log").seen("sig:abc", 1500.0)


def test_replay_claims_are_compacted_without_losing_live_ones(tmp_path):
    claims = ReplayClaims(tmp_path / "replays.log", ttl=600)
    for n in range(300):
        claims.claim(f"sig:{n}", 1000.0 + n * 10)  # the first ones expire as time goes on
    lines = (tmp_path / "replays.log").read_text().splitlines()
    assert len(lines) < 300
    again = ReplayClaims(tmp_path / "replays.log", ttl=600)
    assert again.seen("sig:299", 4000.0) and not again.seen("sig:0", 4000.0)


def test_replay_key_is_the_event_id_else_a_hash_of_timestamp_and_signature():
    json_headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=a"}
    assert replay_key(b'{"event_id": "Ev0ABC", "type": "event_callback"}', json_headers) == "event:Ev0ABC"
    form = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": "1",
            "X-Slack-Signature": "v0=a"}
    key = replay_key(b"payload=%7B%7D", form)
    assert key.startswith("sig:") and key == replay_key(b"other body", form)  # the signature, not the body
    assert key != replay_key(b"payload=%7B%7D", {**form, "X-Slack-Signature": "v0=b"})
    assert replay_key(b'{"event_id": "bad id with spaces"}', json_headers).startswith("sig:")
