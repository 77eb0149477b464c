"""`gallery sync`'s plan (pure): what makes the gallery equal to the records system's list of people.

The manifest is the enrollment manifest (`subject_id,name,record_ref,image`, one row per image) with an optional
fifth column, `status`. Empty or `eligible` keeps a person in the gallery. `not_charged`, `dropped`, `acquitted`
and `expunged` remove them at once: model policies drop the mugshots of people not charged, whose charges were
dropped, who were acquitted, or whose record was expunged. Any other value stops the sync before anything changes
(a typo must never keep someone in the gallery, nor remove someone). Case and surrounding spaces do not matter.

`plan` compares the manifest's rows, their images already hashed, with the gallery's subjects:
- a person listed and eligible: added when new; updated when the name or record reference differs, or when
  images were listed or are no longer listed (an image is the same image by its SHA-256);
- a person listed with an ineligible status, or not listed at all: removed, every image;
- an image listed under a person while enrolled under another who keeps it is a conflict and not enrolled; one
  listed under two people is enrolled under neither (which label is right cannot be known). An image whose owner
  is removed or no longer lists it moves to the person now listing it (a changed subject id);
- a person some of whose rows could not be read (a missing file, a row refused) keeps every enrolled image: an
  unreadable share must not empty the gallery;
- removing more than `max_remove_share` of the gallery's people needs a confirmation (`--yes`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

KEEP_STATUSES = ("", "eligible")
REMOVE_STATUSES = ("not_charged", "dropped", "acquitted", "expunged")
NOT_LISTED = "not_listed"  # a removal's reason when the person is not in the manifest at all
IMAGE_NOT_LISTED = "image_not_listed"  # an image removed from a person who stays: no longer listed


def read_status(value: str) -> str | None:
    """A manifest row's status, normalised (lower case, trimmed), or None when it is none of the known ones."""
    status = value.strip().lower()
    return status if status in KEEP_STATUSES + REMOVE_STATUSES else None


@dataclass(frozen=True)
class Row:
    """One manifest row as the sync reads it. `sha256` is None when its image could not be read or the row was
    refused (a missing file, an empty image cell); a refused row has no `name`: it only says the person is
    listed."""

    where: str  # "people.csv:12 (photos/a.jpg)": what a person is shown
    subject_id: str
    name: str
    record_ref: str
    status: str  # one of KEEP_STATUSES or REMOVE_STATUSES
    sha256: str | None


@dataclass(frozen=True)
class Enrolled:
    """A subject in the gallery now."""

    subject_id: str
    name: str
    record_ref: str
    images: frozenset[str]  # SHA-256 of each enrolled image


@dataclass(frozen=True)
class Removal:
    """A person who leaves the gallery, with every image."""

    subject_id: str
    name: str
    record_ref: str
    images: int
    reason: str  # one of REMOVE_STATUSES, or NOT_LISTED


@dataclass(frozen=True)
class Change:
    """A person added (`new`) or updated: images to enroll (their rows), images to drop, the name and record."""

    subject_id: str
    name: str
    record_ref: str
    new: bool
    add: tuple[Row, ...] = ()
    drop: tuple[str, ...] = ()  # SHA-256 of enrolled images no longer listed
    before: tuple[str, str] | None = None  # (name, record_ref) when either changed

    @property
    def renamed(self) -> bool:
        return self.before is not None


@dataclass(frozen=True)
class Conflict:
    """A listed image not enrolled: already enrolled under another person who keeps it, or listed under several."""

    where: str
    subject_id: str
    enrolled_under: str | None  # the person who keeps it; None when listed under several (`listed_under`)
    listed_under: tuple[str, ...] = ()


@dataclass(frozen=True)
class Note:
    """Something a person should know about the plan. `kind`: "first_row_used" (rows of one person disagree on
    the name or record; `where` is the row used), "unread_rows" (`count` images no longer listed are kept because
    `other` rows could not be read), "no_image_left" (`count` images kept: none listed can be enrolled)."""

    kind: str
    subject_id: str
    count: int = 0
    other: int = 0
    where: str = ""


@dataclass
class Plan:
    """What `gallery sync` will do, before any face is analysed."""

    adds: list[Change] = field(default_factory=list)
    updates: list[Change] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[Conflict] = field(default_factory=list)  # listed images not enrolled
    notes: list[Note] = field(default_factory=list)
    gallery_subjects: int = 0
    max_remove_share: float = 1.0

    @property
    def remove_share(self) -> float:
        """The share of the gallery's people this plan removes (0 for an empty gallery)."""
        return len(self.removals) / self.gallery_subjects if self.gallery_subjects else 0.0

    @property
    def needs_confirmation(self) -> bool:
        """More of the gallery removed than `max_remove_share` allows without `--yes`."""
        return self.remove_share > self.max_remove_share

    @property
    def empty(self) -> bool:
        """Nothing to add, update or remove."""
        return not (self.adds or self.updates or self.removals)


def _first_status(rows: Sequence[Row]) -> str:
    """A person's status: the first ineligible one among their rows (any row saying so removes them), else ""."""
    return next((r.status for r in rows if r.status in REMOVE_STATUSES), "")


def plan(rows: Iterable[Row], enrolled: Iterable[Enrolled], *, max_remove_share: float) -> Plan:
    """The changes that make the gallery (`enrolled`) equal to the manifest (`rows`); see the module's rules."""
    gallery = {e.subject_id: e for e in enrolled}
    out = Plan(gallery_subjects=len(gallery), max_remove_share=max_remove_share)
    by_subject: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_subject[row.subject_id].append(row)
    status = {s: _first_status(subject_rows) for s, subject_rows in by_subject.items()}
    staying = {s for s, st in status.items() if not st}
    for subject_id, e in gallery.items():
        if subject_id not in staying:
            reason = status.get(subject_id) or NOT_LISTED
            out.removals.append(Removal(subject_id, e.name, e.record_ref, len(e.images), reason))

    # First what each staying person keeps and drops, so an image released by its owner can move.
    keeps: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for subject_id in sorted(staying):
        subject_rows = by_subject[subject_id]
        named = [r for r in subject_rows if r.name] or subject_rows  # a refused row only says "listed"
        first = named[0]
        name, record_ref = first.name or subject_id, first.record_ref
        if any((r.name, r.record_ref) != (name, record_ref) for r in named[1:]):
            out.notes.append(Note("first_row_used", subject_id, where=first.where))
        have = gallery[subject_id].images if subject_id in gallery else frozenset()
        drop = tuple(sorted(have - {r.sha256 for r in subject_rows}))
        unread = sum(r.sha256 is None for r in subject_rows)
        if drop and unread:
            out.notes.append(Note("unread_rows", subject_id, count=len(drop), other=unread))
            drop = ()
        keeps[subject_id] = (name, record_ref, drop)
    owner = {sha: e.subject_id for e in gallery.values() for sha in e.images}
    released = {sha for r in out.removals for sha in gallery[r.subject_id].images}
    released |= {sha for _n, _r, drop in keeps.values() for sha in drop}
    listed: dict[str, set[str]] = defaultdict(set)  # image -> the staying people listing it
    for s in staying:
        for row in by_subject[s]:
            if row.sha256:
                listed[row.sha256].add(s)

    for subject_id, (name, record_ref, drop) in keeps.items():
        current = gallery.get(subject_id)
        have = current.images if current else frozenset()
        add: dict[str, Row] = {}
        for row in by_subject[subject_id]:
            sha = row.sha256
            if sha is None or sha in have or sha in add:
                continue
            holder = owner.get(sha)
            if holder is not None and sha not in released:
                out.conflicts.append(Conflict(row.where, subject_id, holder))
            elif len(listed[sha]) > 1:
                out.conflicts.append(Conflict(row.where, subject_id, None, tuple(sorted(listed[sha]))))
            else:
                add[sha] = row
        if drop and not add and not have - set(drop):
            # Never a person with no image left: they stay as enrolled until an image of them can be.
            out.notes.append(Note("no_image_left", subject_id, count=len(drop)))
            drop = ()
        before = None
        if current is not None and (current.name, current.record_ref) != (name, record_ref):
            before = (current.name, current.record_ref)
        change = Change(subject_id, name, record_ref, current is None, tuple(add.values()), drop, before)
        if current is None:
            if add:
                out.adds.append(change)
        elif add or drop or before:
            out.updates.append(change)
        else:
            out.unchanged += 1
    return out


def enrolled_from(subjects: Iterable[Mapping], images: Mapping[str, Iterable[str]]) -> list[Enrolled]:
    """Enrolled subjects from `Gallery.subjects()` rows and `Gallery.subject_images()`."""
    return [Enrolled(s["subject_id"], s["name"], s["record_ref"], frozenset(images.get(s["subject_id"], ())))
            for s in subjects]
