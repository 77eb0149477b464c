"""`gallery sync --manifest people.csv`: make the gallery equal to the records system's list of people.

The manifest is the enrollment manifest with an optional `status` column; what changes is decided by the pure
plan (bot.faces.sync_plan). Here: read the manifest (an unknown status stops the run before anything changes),
hash the listed images, plan against the gallery, and then, unless it is a dry run or the plan removes more of
the gallery than `[gallery] sync_max_remove_share` without `yes`, analyse the images to add and make every
change in one gallery commit (a Ctrl-C before it changes nothing and leaves no face crop behind).

One `gallery_change` audit entry per change, each with `via: "sync"` and the manifest's path: an image enrolled
(action "enroll"), an image removed (action "remove", `reason` the person's status, "not_listed", or
"image_not_listed" for an image a person who stays no longer lists), a name or record reference changed
(action "update", with the `previous` ones). A dry run writes nothing, audits nothing and analyses no face.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.faces import sync_plan
from bot.faces.enroll import (
    Crops,
    EnrollIssue,
    EnrollReport,
    Entry,
    analyse,
    audit_enrolled,
    hash_file,
    interrupt_deferred,
    near_duplicates,
    read_manifest,
)
from bot.faces.gallery import NEAR_DUPLICATE_DISTANCE, Gallery
from bot.faces.sync_plan import IMAGE_NOT_LISTED, KEEP_STATUSES, Change, Note, Plan, Removal, Row


@dataclass
class SyncReport:
    """What one `gallery sync` found (`plan`) and did. Nothing changed when `dry_run` or `refused` (the plan
    removes more than the allowed share and `yes` was not given)."""

    plan: Plan
    dry_run: bool = False
    refused: bool = False
    added: list[Change] = field(default_factory=list)  # people added: `add` holds the images that went in
    updated: list[Change] = field(default_factory=list)
    removed: list[Removal] = field(default_factory=list)
    unchanged: int = 0
    images_added: int = 0
    images_removed: int = 0
    rejected: list[EnrollIssue] = field(default_factory=list)  # rows refused, files unreadable, no single face
    notes: list[Note | str] = field(default_factory=list)
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)
    near_duplicate_under: float = NEAR_DUPLICATE_DISTANCE
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def _rows(manifest: Path, report: SyncReport, read: EnrollReport) -> tuple[list[Row], dict[tuple[str, str], Entry]]:
    """The manifest's rows with their images hashed, and the entry of each (subject, image) for the analysis."""
    rows: list[Row] = []
    entries: dict[tuple[str, str], Entry] = {}
    for entry in read_manifest(manifest, read):
        sha = None
        if entry.path is not None and entry.status in KEEP_STATUSES:  # a person removed needs no image read
            try:
                sha = hash_file(entry.path)
                entries.setdefault((entry.subject_id, sha), entry)
            except OSError as exc:
                report.rejected.append(EnrollIssue(entry.source, f"cannot read the file: {exc.strerror}",
                                                   entry.subject_id))
        rows.append(Row(entry.source, entry.subject_id, entry.name, entry.record_ref, entry.status, sha))
    # A refused row (an empty image cell) still says its person is listed: never removed as "not listed".
    rows += [Row(i.source, i.subject_id, "", "", "", None) for i in read.rejected if i.subject_id]
    report.rejected[:0] = read.rejected
    report.notes += read.notes
    return rows, entries


def _settle(report: SyncReport, images: list[dict], enrolled: dict[str, int]) -> None:
    """After the face analysis: what the commit will do. Changes keep only the images that went in; a person
    added with none is not added; a person who would be left with no image keeps the ones enrolled."""
    went_in = {(im["subject_id"], im["sha256"]) for im in images}
    report.unchanged = report.plan.unchanged
    for change in report.plan.adds + report.plan.updates:
        add = tuple(r for r in change.add if (change.subject_id, r.sha256) in went_in)
        drop = change.drop
        if drop and not add and enrolled.get(change.subject_id, 0) == len(drop):
            report.notes.append(Note("no_image_left", change.subject_id, count=len(drop)))
            drop = ()
        done = dataclasses.replace(change, add=add, drop=drop)
        if change.new:
            if add:
                report.added.append(done)
        elif add or drop or done.renamed:
            report.updated.append(done)
        else:
            report.unchanged += 1
    report.removed = list(report.plan.removals)


def sync(
    gallery: Gallery,
    engine: Any,
    manifest: Path | str,
    *,
    max_remove_share: float,
    audit: Any = None,
    actor: str = "",
    yes: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> SyncReport:
    """Make `gallery` equal to `manifest` (see the module); returns what was planned and done. Raises GalleryError
    for a manifest that cannot be read, has another header or an unknown status (nothing changed)."""
    from bot.faces.engine import model_info

    started = time.perf_counter()
    manifest = Path(manifest)
    report = SyncReport(Plan(), dry_run=dry_run)
    rows, entries = _rows(manifest, report, EnrollReport())
    images_of = gallery.subject_images()
    report.plan = sync_plan.plan(rows, sync_plan.enrolled_from(gallery.subjects(), images_of),
                                 max_remove_share=max_remove_share)
    plan = report.plan
    report.refused = plan.needs_confirmation and not yes and not dry_run
    if dry_run or report.refused or plan.empty:
        report.unchanged = plan.unchanged
        report.seconds = time.perf_counter() - started
        return report

    model = model_info(engine.model)["model"]  # the templates are the engine's model's
    todo = {r.sha256: entries[(c.subject_id, r.sha256)] for c in plan.adds + plan.updates for r in c.add
            if r.sha256}
    if todo:
        gallery.check_model(model)  # fail before the long part, not after it
    with Crops(gallery) as crops:
        images, encodings = analyse(engine, todo, report.rejected, crops, actor=actor, progress=progress)
        changes = {c.subject_id: c for c in plan.adds + plan.updates}
        for image in images:  # the person's name and record as the plan settled them (the first row's)
            change = changes[image["subject_id"]]
            image["name"], image["record_ref"] = change.name, change.record_ref
        _settle(report, images, {s: len(shas) for s, shas in images_of.items()})
        with interrupt_deferred():
            removed = gallery.change(
                model, images=images, encodings=encodings,
                subjects=[{"subject_id": c.subject_id, "name": c.name, "record_ref": c.record_ref}
                          for c in report.added],
                remove_subjects=[r.subject_id for r in report.removed],
                remove_images=[sha for c in report.updated for sha in c.drop],
                renames=[{"subject_id": c.subject_id, "name": c.name, "record_ref": c.record_ref}
                         for c in report.updated if c.renamed],
                before_commit=None if audit is None else audit.check_writable,
            )
            crops.committed = True
            if audit is not None:
                _audit(audit, report, removed, images, actor=actor, manifest=str(manifest))
    report.images_added, report.images_removed = len(images), len(removed)
    report.near_duplicates = near_duplicates(gallery, images, report.notes)
    report.near_duplicate_under = gallery.near_duplicate_distance()
    report.seconds = time.perf_counter() - started
    return report


def _audit(audit: Any, report: SyncReport, removed: list[dict], images: list[dict], *, actor: str,
           manifest: str) -> None:
    """One `gallery_change` entry per change: images removed, names and records changed, images enrolled."""
    why = {r.subject_id: r.reason for r in report.removed}
    for image in removed:
        audit.append("gallery_change", action="remove", actor=actor, via="sync", manifest=manifest,
                     reason=why.get(image["subject_id"], IMAGE_NOT_LISTED), **image)
    for change in report.updated:
        if change.before is not None:
            audit.append("gallery_change", action="update", actor=actor, via="sync", manifest=manifest,
                         subject_id=change.subject_id, name=change.name, record_ref=change.record_ref,
                         previous={"name": change.before[0], "record_ref": change.before[1]})
    audit_enrolled(audit, images, actor, via="sync", manifest=manifest)
