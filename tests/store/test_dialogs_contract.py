"""One contract, two stores: the file DialogStore and PgDialogStore (tests/pg_fixtures.py, as the app's role)
answer every call the same way (issue 17: the store seam). Each test runs on both, with real dialogs from the
request state machine."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.config import PolicySettings
from bot.request.transitions import Dialog, ImageRequest, Step, on_reply, start_dialog
from bot.store.dialogs import DialogStore
from bot.store.pg.dialogs import PgDialogStore

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
POLICY = PolicySettings()
OFFICER = "U0OFFICER1"
CALL = "26-012345"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(params=["file", "postgresql"])
def make_store(request, tmp_path):
    """make_store(claim_ttl) -> a new handle on one store of the parametrised kind (two handles: two processes
    on one data dir, or two replicas on one database)."""
    if request.param == "file":
        return lambda claim_ttl=timedelta(days=3): DialogStore(tmp_path / "dialogs.json", claim_ttl=claim_ttl)
    db = request.getfixturevalue("pg_migrated")
    return lambda claim_ttl=timedelta(days=3): PgDialogStore(lambda: psycopg.connect(db.app_url),
                                                             claim_ttl=claim_ttl)


def upload(thread_ts: str, minutes: float = 0, files=(("F1", "one.jpg"),)) -> Dialog:
    """A started request (a call number given with the upload) in `thread_ts`, uploaded at `minutes`."""
    dialog, _ = start_dialog(channel="C0CASE", thread_ts=thread_ts, requester_id=OFFICER, requester_name="Ofc. Reyes",
                             files=list(files), text=f"call {CALL}", now=at(minutes), policy=POLICY)
    return dialog


def reply(dialog: Dialog, text: str, minutes: float) -> tuple[Dialog, list]:
    return on_reply(dialog, user_id=OFFICER, text=text, now=at(minutes), policy=POLICY)


def cancelled(dialog: Dialog, minutes: float) -> Dialog:
    ended, _ = reply(dialog, "cancel", minutes)
    assert ended.terminal
    return ended


def test_a_dialog_is_stored_and_found_by_id_thread_request_and_file(make_store):
    store = make_store()
    first = upload("1700000000.000100", files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    second = upload("1700000000.000200", minutes=5, files=(("F2", "b.jpg"),))  # the same Slack file again
    store.put(first)
    store.put(second)
    assert store.get(first.dialog_id) == first and store.get("D-none") is None
    assert store.by_thread("C0CASE", "1700000000.000100") == first
    assert store.by_thread("C0OTHER", "1700000000.000100") is None
    assert store.by_request_id(first.images[1].request_id) == first
    assert store.by_request_id(second.images[0].request_id) == second and store.by_request_id("FR-NONE") is None
    assert store.by_file_id("F2") == second and store.by_file_id("F1") == first and store.by_file_id("F9") is None
    assert store.all() == [first, second] and store.active() == [first, second]
    assert store.threads() == {("C0CASE", "1700000000.000100"): first.dialog_id,
                               ("C0CASE", "1700000000.000200"): second.dialog_id}
    assert store.thread_of("C0CASE", "1700000000.000200") == second.dialog_id
    assert store.thread_of("C0CASE", "1700000000.999999") is None
    other = make_store()  # another process, or another replica, sees it all
    assert other.get(second.dialog_id) == second and other.thread_of("C0CASE", "1700000000.000100") == first.dialog_id
    store.close()
    other.close()


def test_a_thread_answers_its_active_dialog_first_then_its_newest(make_store):
    store = make_store()
    thread = "1700000000.000300"
    newer_ended = cancelled(upload(thread, minutes=10), minutes=11)
    older_active = upload(thread, minutes=1)
    store.put(newer_ended)
    store.put(older_active)
    assert store.by_thread("C0CASE", thread) == older_active
    assert store.thread_of("C0CASE", thread) == older_active.dialog_id
    store.put(cancelled(older_active, minutes=12))
    assert store.by_thread("C0CASE", thread) == newer_ended  # both ended: the newest upload
    assert store.thread_of("C0CASE", thread) == newer_ended.dialog_id
    assert store.active() == []


def test_put_replaces_a_dialog_and_its_image_lookups_follow(make_store):
    store = make_store()
    dialog = upload("1700000000.000400", files=(("F1", "a.jpg"), ("F2", "b.jpg")))
    store.put(dialog)
    changed = dialog.copy()
    gone = changed.images.pop(1)
    changed.images.append(ImageRequest("FR-REPLACED0", "F3", "c.jpg"))
    store.put(changed)
    assert store.get(dialog.dialog_id) == changed and store.all() == [changed]
    assert store.by_request_id(gone.request_id) is None and store.by_file_id("F2") is None
    assert store.by_request_id("FR-REPLACED0") == changed and store.by_file_id("F3") == changed


def test_update_transitions_one_dialog_and_stores_what_changed(make_store):
    store = make_store()
    dialog = upload("1700000000.000500")
    store.put(dialog)
    assert dialog.step is Step.PURPOSE
    new, effects = store.update(dialog.dialog_id, lambda d: reply(d, "1", minutes=2))
    assert new.step is Step.JUSTIFICATION and new.purpose == "investigation" and effects == []
    assert make_store().get(dialog.dialog_id) == new
    # A transition that changes nothing (someone else's reply) returns its answer and leaves the dialog as it was.
    same, effects = store.update(dialog.dialog_id, lambda d: on_reply(d, user_id="U0SOMEONE", text="hi",
                                                                      now=at(3), policy=POLICY))
    assert same == new and [type(e).__name__ for e in effects] == ["NotRequester"] and store.get(dialog.dialog_id) == new
    assert store.update("D-none", lambda d: (d, [])) is None


def test_retention_removes_ended_dialogs_only_and_their_lookups(make_store):
    store = make_store()
    old_ended = cancelled(upload("1700000000.000600"), minutes=1)
    old_active = upload("1700000000.000700")
    new_ended = cancelled(upload("1700000000.000800"), minutes=60)
    for d in (old_ended, old_active, new_ended):
        store.put(d)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.delete_older_than(datetime(2026, 1, 6))
    assert store.delete_older_than(at(1)) == 0  # ended at minute 1: not before the cutoff
    assert store.delete_older_than(at(30)) == 1
    assert store.get(old_ended.dialog_id) is None and store.by_request_id(old_ended.images[0].request_id) is None
    assert store.thread_of("C0CASE", "1700000000.000600") is None
    assert store.all() == [old_active, new_ended]


def test_a_claim_is_true_once_on_every_handle_and_old_keys_are_pruned(make_store):
    store, other = make_store(), make_store()
    assert store.claim("event:Ev01", T0) is True
    assert store.claim("event:Ev01", at(1)) is False
    assert other.claim("event:Ev01", at(1)) is False and other.claimed("event:Ev01")
    assert other.claim("file:F1", at(1)) is True and store.claimed("file:F1")
    assert not store.claimed("event:Ev99")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.claim("event:Ev02", datetime(2026, 1, 5))
    # Long after Slack stops redelivering, a new claim prunes the old keys.
    later = make_store(claim_ttl=timedelta(days=3))
    assert later.claim("event:Ev02", T0 + timedelta(days=4)) is True
    assert not later.claimed("event:Ev01") and not later.claimed("file:F1") and later.claimed("event:Ev02")
