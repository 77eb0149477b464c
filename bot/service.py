"""The search flow shared by the CLI and Slack: policy gate -> probe -> 1:N search -> audit.

Adapters collect answers and bytes; this module decides and records. Every path that ends a request
writes exactly one audit entry with one of the closed outcomes (see bot.store.audit_log.OUTCOMES).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot import policy, wording
from bot.audit.refusals import RefusalAggregator
from bot.config import Settings
from bot.faces import models
from bot.faces.engine import Face, FaceEngine, Probe, model_info
from bot.faces.gallery import Candidate, Gallery
from bot.store.audit_log import AuditLog
from bot.store.backend import Backend
from bot.store.disk import ensure_private_dir
from bot.store.small_records import SmallRecords


class SearchUnavailable(Exception):
    """The search cannot run (e.g. the gallery is empty); the message says why and what to do."""


class GalleryModelMismatch(SearchUnavailable):
    """The gallery holds templates of another face model than the one set: nothing can be compared."""


def new_request_id() -> str:
    """A short unique request id officers can quote in a report (e.g. FR-3F9A0C12D4)."""
    return "FR-" + uuid.uuid4().hex[:10].upper()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Requester:
    """Who asked: an OS user (CLI) or a Slack user id with display name."""

    id: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass
class SearchResult:
    """What a finished search returns to an adapter (and what `--json` prints)."""

    request_id: str
    call_number: str
    purpose: str
    faces: list[dict[str, Any]]
    face_index: int
    candidates: list[Candidate]
    threshold: float
    gallery_size: int
    gallery_images: int
    model: dict[str, Any] | str  # {id, version, weights_sha256, runtime}; a string in entries written before
    versions: dict[str, str]
    audit_seq: int = 0
    # {"target_fpir","gallery_size","calibrated_at","method","sample_size"} (CONTRACTS.md)
    operating_point: dict[str, Any] = field(default_factory=dict)
    for_review: bool = False  # [review] mode "examiner": the candidates go to an examiner, not the requester

    @property
    def outcome(self) -> str:
        if self.for_review and self.candidates:
            return "review"  # the request's final outcome is its release's
        return "candidates" if self.candidates else "no_candidate"

    @property
    def caveat(self) -> str:
        return wording.result_caveat(bool(self.candidates))

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "outcome": self.outcome,
            "call_number": self.call_number,
            "purpose": self.purpose,
            "faces": self.faces,
            "face_index": self.face_index,
            "candidates": [candidate_json(c, names=True) for c in self.candidates],
            "caveat": self.caveat,
            "operating_point": self.operating_point,
            "threshold": self.threshold,
            "gallery_size": self.gallery_size,
            "gallery_images": self.gallery_images,
            "model": self.model,
            "versions": self.versions,
        }


def candidate_json(c: Candidate, *, names: bool) -> dict[str, Any]:
    """A candidate as CONTRACTS.md gives it: rank, subject_id, [name, record_ref,] distance, margin, score,
    fpir_estimate (and whether that estimate is only a bound). Names stay out of the audit entry (the
    subject id identifies the record; names change)."""
    out: dict[str, Any] = {"rank": c.rank, "subject_id": c.subject_id}
    if names:
        out.update(name=c.name, record_ref=c.record_ref)
    out.update(
        distance=round(float(c.distance), 4),
        margin=None if c.margin is None else round(float(c.margin), 4),
        score=None if c.score is None else round(float(c.score), 4),
        fpir_estimate=None if c.fpir_estimate is None else float(f"{c.fpir_estimate:.3g}"),
        below_resolution=bool(c.below_resolution),
    )
    return out


@dataclass
class Core:
    """The functional core's services for one data dir: settings, audit log, gallery, face engine."""

    settings: Settings
    env: Mapping[str, str] | None = field(default=None, repr=False)  # may hold BOT_AUDIT_KEY
    # Files or PostgreSQL ($BOT_DATABASE_URL, else [store] url): where every record opened here lives.
    _backend: Backend | None = field(default=None, repr=False)
    _audit: AuditLog | None = field(default=None, repr=False)
    _gallery: Gallery | None = field(default=None, repr=False)
    _engine: FaceEngine | None = field(default=None, repr=False)
    # Engines of a model the gallery has moved away from: searches already in them finish; closed with the core.
    _retired: list[FaceEngine] = field(default_factory=list, repr=False)
    # The model a command asked for (`--model`): refused when an existing gallery holds another one.
    model_override: str | None = None
    _refusals: RefusalAggregator | None = field(default=None, repr=False)
    # Told once the audit log is open (the command line warns about a key file beside the log).
    on_audit_open: Callable[[AuditLog], None] | None = field(default=None, repr=False)

    @property
    def backend(self) -> Backend:
        """Where this department's records live (bot.store.backend), decided once per core."""
        if self._backend is None:
            self._backend = Backend.of(self.settings, self.env)
        return self._backend

    @property
    def audit(self) -> AuditLog:
        if self._audit is None:
            self._audit = self.backend.audit_log()
            if self.on_audit_open is not None:
                self.on_audit_open(self._audit)
        return self._audit

    @property
    def refusals(self) -> RefusalAggregator:
        """Folds refused attempts by people who hold no role (bot.audit.refusals; the server's only)."""
        if self._refusals is None:
            # On a database, each replica folds its own refusals in its own data dir (they are one document per
            # process; replicas sharing one would overwrite each other's windows).
            pending = SmallRecords(self.settings.data_dir) if self.backend.shared else None
            self._refusals = RefusalAggregator(self.audit, self.settings.audit.refusal_window_minutes, pending)
        return self._refusals

    @property
    def gallery(self) -> Gallery:
        if self._gallery is None:
            ensure_private_dir(self.settings.data_dir)
            self._gallery = self.backend.gallery()
        return self._gallery

    @property
    def model_id(self) -> str:
        """The face model this data dir's face work uses: the gallery's recorded one (CONTRACTS ### 12), else
        the one asked for (`--model`, else [faces] model), which a new gallery is enrolled with."""
        return self.gallery.model_id or self.model_override or self.settings.faces.model

    def check_model(self) -> None:
        """GalleryModelMismatch (a sentence naming `gallery reencode`) when `--model` asked for another model
        than the one the gallery's templates came from."""
        held = self.gallery.model_id
        if self.model_override and held and held != self.model_override:
            raise GalleryModelMismatch(wording.gallery_model_mismatch(held, self.model_override))

    @property
    def engine(self) -> FaceEngine:
        """Face workers of the gallery's model: a gallery re-encoded meanwhile gets workers of its new model
        (the old ones finish what they hold and close with the core)."""
        model = self.model_id
        if self._engine is not None and self._engine.model != model:
            self._retired.append(self._engine)
            self._engine = None
        if self._engine is None:
            faces = self.settings.faces
            self._engine = FaceEngine(self.settings.images, workers=faces.workers, deadline=faces.deadline_seconds,
                                      model=model)
        return self._engine

    def close(self) -> None:
        for engine in [*self._retired, self._engine]:
            if engine is not None:
                engine.close()
        self._engine, self._retired = None, []
        if self._backend is not None:
            self._backend.close()


def policy_fields(answers: policy.Answers) -> dict[str, Any]:
    """The policy answers as they are recorded in every search audit entry."""
    return {
        "call_number": answers.call_number,
        "purpose": answers.purpose,
        "justification": answers.justification,
        "attestation": {"attested": bool(answers.attested), "text": wording.ATTESTATION},
    }


def check(answers: policy.Answers, settings: Settings) -> list[str]:
    """Denial reasons for these answers under GO 375.01 ([] when the search may proceed)."""
    return policy.check_answers(answers, settings.policy)


def record_denied(
    core: Core,
    *,
    request_id: str,
    answers: policy.Answers,
    reasons: list[str],
    requester: Requester,
    source: dict[str, Any],
    fold_at: datetime | None = None,
) -> dict[str, Any] | None:
    """Audit a refused request (policy gate or authorisation). With `fold_at` (the time; for someone who holds
    no role) the refusal may be folded with that person's others (bot.audit.refusals): None when it was."""
    fields = {"outcome": "denied", "request_id": request_id, "requester": requester.as_dict(),
              "denied": list(reasons), **source, **policy_fields(answers)}
    if fold_at is not None:
        return core.refusals.record("search", requester.id, fields, fold_at)
    return core.audit.append("search", **fields)


def record_refusal(
    core: Core,
    *,
    request_id: str,
    step: str,
    reason: str,
    text: str,
    requester: Requester,
    source: dict[str, Any],
) -> dict[str, Any]:
    """Audit one refused answer in a running request (`refusal`): which step, why, and the answer as read
    (one line, capped like justifications), so command staff see every reason tried, not only the one that
    passed."""
    return core.audit.append(
        "refusal",
        request_id=request_id,
        step=step,
        reason=reason,
        text=" ".join(str(text).split())[: policy.MAX_JUSTIFICATION_CHARS],
        requester=requester.as_dict(),
        **source,
    )


def record_ended(
    core: Core,
    *,
    outcome: str,
    request_id: str,
    answers: policy.Answers,
    requester: Requester,
    source: dict[str, Any],
    error: str | None = None,
    probe: Probe | None = None,
    probe_sha256: str | None = None,
    faces: list[dict[str, Any]] | None = None,
    face_index: int | None = None,
) -> dict[str, Any]:
    """Audit a request that ended without a search: `error`, `cancelled` or `expired`."""
    fields: dict[str, Any] = {}
    if probe_sha256 is not None:
        fields["probe_sha256"] = probe_sha256  # bytes that were read but could not be decoded
    if probe is not None:
        fields["probe_sha256"] = probe.sha256
        fields["faces"] = [f.as_dict() for f in probe.faces]
    elif faces is not None:
        fields["faces"] = faces
    if face_index is not None:
        fields["face_index"] = face_index
    if error:
        fields["error"] = error
    return core.audit.append(
        "search",
        outcome=outcome,
        request_id=request_id,
        requester=requester.as_dict(),
        **source,
        **policy_fields(answers),
        **fields,
    )


def search_face(
    core: Core,
    *,
    request_id: str,
    answers: policy.Answers,
    requester: Requester,
    source: dict[str, Any],
    probe_sha256: str,
    faces: list[dict[str, Any]],
    face: Face | None = None,
    encoding: Any = None,
    face_index: int,
    for_review: bool = False,
    model: str | None = None,
) -> SearchResult:
    """Run the 1:N search for one chosen face and audit it. The policy gate must already have passed.

    `for_review` ([review] mode "examiner"): the candidates an examiner should see (within `review_fpir`, at
    most `review_candidates`), audited with outcome "review"; none at all is a plain "no_candidate".

    `encoding` may be given instead of `face` (Slack resumes from stored encodings, never re-detecting);
    `model` is the id of the model that encoded it (None: the engine's now).
    """
    reasons = check(answers, core.settings)
    if reasons:  # defence in depth: adapters gate first, but no path may search without the gate
        raise PermissionError("; ".join(reasons))
    vector = face.encoding if face is not None else encoding
    gallery = core.gallery
    gallery.refresh()
    if gallery.image_count == 0:
        # "No candidate" from an empty gallery would read as a search that found nobody: refuse instead.
        raise SearchUnavailable(wording.GALLERY_EMPTY)
    model = model or core.engine.model
    if gallery.model_id != model:
        # Templates of two models never meet: their distances mean nothing to each other.
        raise GalleryModelMismatch(wording.gallery_model_moved(gallery.model_id, model))
    s = core.settings.search
    review = core.settings.review
    target = review.review_fpir if for_review else s.target_fpir
    limit = review.review_candidates if for_review else s.max_candidates
    threshold = s.threshold_for(model)
    candidates, nearest, point = gallery.search_detail(vector, threshold=threshold, max_candidates=limit,
                                                       target_fpir=target)
    info = model_info(model)  # the model the probe's face was encoded with
    result = SearchResult(
        request_id=request_id,
        call_number=answers.call_number or "",
        purpose=answers.purpose or "",
        faces=faces,
        face_index=face_index,
        candidates=candidates,
        threshold=threshold,
        gallery_size=gallery.subject_count,
        gallery_images=gallery.image_count,
        model=models.record(model),  # {id, version, weights_sha256, runtime}
        versions={k: v for k, v in info.items() if k != "model"},
        operating_point=point or {},
        for_review=for_review,
    )
    entry = core.audit.append(
        "search",
        outcome=result.outcome,
        request_id=request_id,
        requester=requester.as_dict(),
        **source,
        **policy_fields(answers),
        probe_sha256=probe_sha256,
        faces=faces,
        face_index=face_index,
        model=result.model,
        versions=result.versions,
        threshold=result.threshold,
        gallery_subjects=result.gallery_size,
        gallery_images=result.gallery_images,
        target_fpir=target,
        operating_point=result.operating_point,
        nearest_distances=nearest,
        candidates=[candidate_json(c, names=False) for c in candidates],
        result_at=utc_now(),
    )
    result.audit_seq = entry["seq"]
    return result


def cli_source(requester_name: str, slack_user: str) -> dict[str, Any]:
    """What the server needs of a command-line requester on a review card: who to tell (the Slack account the OS
    account is mapped to, or none) and how to name them."""
    return {"cli": True, "requester_slack": slack_user,
            "requester_label": slack_user or wording.cli_requester_label(requester_name)}


def queue_examination(store: Any, result: SearchResult, answers: policy.Answers, *, requester_id: str,
                      reviewers_required: int, now: datetime, source: dict[str, Any]) -> tuple[Any, list]:
    """Put a search's candidates in the examiner queue (bot.controls.examination); the caller carries out the effects
    (its `queued` audit entry, the review card). `store` is an ExaminationStore."""
    from bot.controls import examination

    exam, effects = examination.queue(
        request_id=result.request_id, requester_id=requester_id, call_number=answers.call_number or "",
        purpose=answers.purpose or "", justification=answers.justification or "",
        candidates=[candidate_json(c, names=True) for c in result.candidates],
        reviewers_required=reviewers_required, now=now,
        source={"operating_point": result.operating_point, **source},
    )
    store.put(exam)
    return exam, effects
