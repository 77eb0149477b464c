"""`gallery sync`'s pure plan: manifest rows against the gallery's subjects -> adds, updates, removals, the
status rules, conflicts, and the share of the gallery a sync may remove without `--yes`."""
from __future__ import annotations

import pytest

from bot.faces.sync_plan import (
    IMAGE_NOT_LISTED,
    NOT_LISTED,
    REMOVE_STATUSES,
    Conflict,
    Enrolled,
    Note,
    Row,
    plan,
    read_status,
)

SHA = {k: k * 64 for k in "abcdefgh"}  # stand-ins for image SHA-256s


def row(subject: str, image: str | None, status: str = "", name: str = "", record: str = "", line: int = 2) -> Row:
    return Row(f"people.csv:{line}", subject, name or subject.title(), record or f"R-{subject}", status,
               SHA[image] if image else None)


def enrolled(subject: str, *images: str, name: str = "", record: str = "") -> Enrolled:
    return Enrolled(subject, name or subject.title(), record or f"R-{subject}", frozenset(SHA[i] for i in images))


def test_an_equal_manifest_changes_nothing():
    p = plan([row("ann", "a"), row("ann", "b"), row("bob", "c")], [enrolled("ann", "a", "b"), enrolled("bob", "c")],
             max_remove_share=0.1)
    assert p.empty and p.unchanged == 2 and not p.conflicts and not p.notes


def test_new_people_are_added_with_their_images():
    p = plan([row("ann", "a"), row("cat", "d"), row("cat", "e")], [enrolled("ann", "a")], max_remove_share=0.1)
    [add] = p.adds
    assert (add.subject_id, add.name, add.record_ref, add.new) == ("cat", "Cat", "R-cat", True)
    assert [r.sha256 for r in add.add] == [SHA["d"], SHA["e"]] and not p.updates and not p.removals


def test_a_changed_name_or_record_and_changed_images_are_updates():
    p = plan([row("ann", "a", name="Ann Lee"), row("bob", "c"), row("bob", "f")],
             [enrolled("ann", "a"), enrolled("bob", "c", "g")], max_remove_share=0.5)
    ann, bob = p.updates
    assert ann.renamed and ann.before == ("Ann", "R-ann") and ann.name == "Ann Lee" and not ann.add and not ann.drop
    assert not bob.renamed and [r.sha256 for r in bob.add] == [SHA["f"]] and bob.drop == (SHA["g"],)
    assert p.unchanged == 0 and not p.removals


@pytest.mark.parametrize("status", REMOVE_STATUSES)
def test_a_person_listed_with_an_ineligible_status_is_removed(status):
    p = plan([row("ann", "a", status=status), row("bob", "c")], [enrolled("ann", "a", "b"), enrolled("bob", "c")],
             max_remove_share=0.5)
    [removal] = p.removals
    assert (removal.subject_id, removal.images, removal.reason) == ("ann", 2, status)
    assert p.unchanged == 1 and not p.adds and not p.updates


def test_one_ineligible_row_removes_the_person_and_an_ineligible_stranger_is_never_added():
    p = plan([row("ann", "a"), row("ann", None, status="expunged"), row("dan", "d", status="acquitted")],
             [enrolled("ann", "a")], max_remove_share=1.0)
    assert [(r.subject_id, r.reason) for r in p.removals] == [("ann", "expunged")]
    assert not p.adds


def test_a_person_no_longer_listed_is_removed():
    p = plan([row("bob", "c")], [enrolled("ann", "a"), enrolled("bob", "c")], max_remove_share=0.5)
    assert [(r.subject_id, r.reason) for r in p.removals] == [("ann", NOT_LISTED)]


def test_removing_more_than_the_share_needs_a_confirmation():
    gallery = [enrolled(f"p{i}", "a" if i == 0 else "b") for i in range(10)]
    keep_nine = [row(f"p{i}", None) for i in range(1, 10)]
    one = plan(keep_nine, gallery, max_remove_share=0.10)
    assert len(one.removals) == 1 and one.remove_share == pytest.approx(0.1) and not one.needs_confirmation
    two = plan(keep_nine[1:], gallery, max_remove_share=0.10)
    assert len(two.removals) == 2 and two.needs_confirmation
    assert not plan([row("ann", "a")], [], max_remove_share=0.0).needs_confirmation  # nothing to remove


def test_rows_that_could_not_be_read_keep_the_enrolled_images():
    """A share that is not mounted must not empty the gallery: a person with an unreadable row keeps every
    enrolled image, and stays."""
    p = plan([row("ann", None), row("ann", "c")], [enrolled("ann", "a", "b")], max_remove_share=0.1)
    [update] = p.updates
    assert [r.sha256 for r in update.add] == [SHA["c"]] and update.drop == ()
    assert p.notes == [Note("unread_rows", "ann", count=2, other=1)]
    only_unread = plan([row("ann", None)], [enrolled("ann", "a")], max_remove_share=0.1)
    assert only_unread.empty and only_unread.unchanged == 1


def test_a_person_is_never_left_without_an_image():
    p = plan([row("ann", "b"), row("bob", "b", line=3)], [enrolled("ann", "a"), enrolled("bob", "b")],
             max_remove_share=0.1)
    assert p.empty and p.unchanged == 2
    assert p.conflicts == [Conflict("people.csv:2", "ann", "bob")]
    assert Note("no_image_left", "ann", count=1) in p.notes


def test_an_image_of_someone_who_keeps_it_or_listed_twice_is_a_conflict():
    p = plan([row("ann", "a"), row("bob", "a", line=3), row("bob", "b", line=4), row("cat", "c", line=5),
              row("dan", "c", line=6), row("dan", "d", line=7)],
             [enrolled("ann", "a")], max_remove_share=0.1)
    assert p.conflicts == [Conflict("people.csv:3", "bob", "ann"),
                           Conflict("people.csv:5", "cat", None, ("cat", "dan")),
                           Conflict("people.csv:6", "dan", None, ("cat", "dan"))]
    assert {c.subject_id: [r.sha256 for r in c.add] for c in p.adds} == {"bob": [SHA["b"]], "dan": [SHA["d"]]}


def test_an_image_moves_when_its_owner_is_removed_or_no_longer_lists_it():
    """A changed subject id: the records system now lists the same photos under a new id."""
    p = plan([row("ann2", "a"), row("bob", "c"), row("cat", "b")],
             [enrolled("ann", "a"), enrolled("bob", "b", "c")], max_remove_share=1.0)
    assert [(r.subject_id, r.reason) for r in p.removals] == [("ann", NOT_LISTED)]
    assert {c.subject_id: [r.sha256 for r in c.add] for c in p.adds} == {"ann2": [SHA["a"]], "cat": [SHA["b"]]}
    [bob] = p.updates
    assert bob.drop == (SHA["b"],) and not p.conflicts


def test_the_first_row_of_a_person_gives_the_name_and_record():
    p = plan([row("ann", "a", name="Ann", line=2), row("ann", "b", name="Anne", line=3)], [],
             max_remove_share=0.1)
    assert p.adds[0].name == "Ann" and p.notes == [Note("first_row_used", "ann", where="people.csv:2")]


@pytest.mark.parametrize(("value", "read"), [("", ""), ("  Eligible ", "eligible"), ("EXPUNGED", "expunged"),
                                             ("not_charged", "not_charged"), ("sealed", None), ("not charged", None),
                                             ("expunge", None)])
def test_status_values(value, read):
    assert read_status(value) == read


def test_image_reasons_are_named():
    assert IMAGE_NOT_LISTED == "image_not_listed" and NOT_LISTED == "not_listed"
