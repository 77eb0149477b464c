"""The calibrated 1:N decision: one score per candidate, and how often a stranger scores that well here.

A fixed distance is the weakest signal at hand: the more people a gallery holds, the more likely some stranger
falls under it. So each candidate gets a **score** from what separates mates from strangers on the development
set (see `score`), and the search asks of the gallery it runs on: *how often would a person who is not enrolled
reach this score?* That chance, the candidate's `fpir_estimate`, is measured on the gallery itself: every
enrolled subject (or a sample of 5,000 in a large gallery) is searched against all the *others*, which makes it
a stranger to them; the scores those searches reach are the gallery's **null scores**. The estimate for a
score s is (1 + how many null scores reach s) / (1 + how many were measured): never 0, and it never rises as
the score improves.

The rank-1 candidate is returned only when its estimate is at most `[search] target_fpir`; lower ranks only if
they pass too. The configured distance `threshold` stays a hard ceiling.

A gallery under `MIN_SUBJECTS` subjects is too small to measure its own tail; it uses reference null scores
measured on the development set (`reference.npz`, written by `bench/accuracy.py --write-reference`) for
galleries of 2 to 199 people: for a gallery of S, the larger estimate of the reference sizes just below and
just above S (strangers score higher in small galleries, where the next few neighbours are spread wider, but
not in step with size), and results say so. The calibration is recomputed with every gallery change and stored with the gallery's
generation (`gallery/calibration-<gen>.npz`); a missing or stale one is recomputed on open.

The estimate is **not** the chance that a candidate is the wrong person: it says how rare such a score is for
someone who is not in the gallery, in searches of this gallery; it assumes probes like the enrolled photos.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

DIM = 128

# The score looks at the candidate and the COHORT subjects after it.
COHORT = 5
# dlib-resnet's horizon (Euclidean). Distances beyond a model's horizon are not looked up exactly (a 1 M-row
# gallery is searched only near the probe); a neighbour further away counts as at the horizon, which can only
# lower a score, never raise it. On the development set the 11th-closest subject of a stranger is nearer than
# 0.65 in 99 % of searches.
HORIZON = 0.75
# At most this many rows within the horizon are looked at per search (the closest ones, by float32 distance).
MAX_ROWS = 4096
# Galleries smaller than this use the reference calibration from the development set.
MIN_SUBJECTS = 200
# Subjects searched against the rest to calibrate a large gallery (all of them below this).
SAMPLE = 5000
# Probes per matrix product while calibrating (bounds memory: BATCH × rows float32).
BATCH = 32
METHOD_GALLERY = "gallery"
METHOD_REFERENCE = "reference"
# dlib-resnet's score version; each Scale has its own, and a stored calibration of another version is stale.
SCORE_VERSION = "cohort5-v1"
REFERENCE_PATH = Path(__file__).with_name("reference.npz")


@dataclass(frozen=True)
class Scale:
    """How one face model's distances are read, and the numbers its decision rests on.

    Every model's templates are compared through their squared Euclidean distance (one matrix product for the
    whole gallery); `distance` turns that into the model's own distance: Euclidean for dlib-resnet, 1 - cosine
    for a model whose templates are unit length (|a - b|² = 2 (1 - cos)). The score, the horizon, the hard
    ceiling and every figure a person reads are in the model's distance.
    """

    metric: str          # "euclidean" | "cosine"
    horizon: float       # in the model's distance (see HORIZON)
    version: str         # the score version of calibrations made on this scale
    reference_path: Path  # the reference null scores for galleries under MIN_SUBJECTS (bench/accuracy.py writes)

    def distance(self, squared: np.ndarray | float) -> np.ndarray:
        """The model's distance from squared Euclidean distances between templates (never negative)."""
        sq = np.maximum(np.asarray(squared, dtype=np.float64), 0.0)
        return np.sqrt(sq) if self.metric == "euclidean" else sq / 2.0

    def squared(self, distance: float) -> float:
        """The squared Euclidean distance at which the model's distance is `distance`."""
        return distance * distance if self.metric == "euclidean" else 2.0 * distance


# dlib-resnet's scale (the defaults below are its: what every gallery used before models had ids).
DLIB_RESNET = Scale("euclidean", HORIZON, SCORE_VERSION, REFERENCE_PATH)


def score(distances: np.ndarray, horizon: float = HORIZON) -> np.ndarray:
    """Scores of the ranked candidates of one search; higher is a stronger candidate.

    `distances` are the closest subjects' distances, ascending (one per subject). The score of rank r is how far
    the candidate stands out from the subjects just after it: the mean distance of the next COHORT subjects
    minus its own. It takes in the margin to the next subject and how crowded the probe's neighbourhood is
    (a soft, generic face is close to many people). Chosen on fold 0 of the development set among the
    candidate's distance, the margin, distance and margin combined, cohorts of 2-19 and the probe's distance
    distribution over the whole gallery (bench/accuracy.py prints them); quality terms did not help there.
    Distances are censored at the model's `horizon`, and missing neighbours count as at it. Scores never rise
    down the ranks: a lower rank is never shown as more certain than the one above it. The same rule on SFace's
    1 - cosine (horizon 0.8) did as well as the distance alone on fold 0 and better held out
    (bench/accuracy.py).
    """
    d = np.minimum(np.asarray(distances, dtype=np.float64), horizon)
    n = len(d)
    if n == 0:
        return np.zeros(0)
    padded = np.concatenate([d, np.full(COHORT, horizon)])
    idx = np.arange(n)[:, None] + 1 + np.arange(COHORT)[None, :]
    raw = padded[idx].mean(axis=1) - d
    return np.minimum.accumulate(raw)


@dataclass(frozen=True)
class Calibration:
    """Null scores (stranger searches) of one gallery generation, and where they came from.

    `tables` holds one ascending array for a gallery calibrated on itself; for the reference, one per
    reference gallery size (the estimate is the largest of theirs).
    """

    tables: tuple[np.ndarray, ...]
    method: str  # METHOD_GALLERY | METHOD_REFERENCE
    gallery_size: int  # subjects in the gallery this calibration is for
    generation: int
    calibrated_at: str  # UTC ISO 8601
    version: str = SCORE_VERSION
    sizes: tuple[int, ...] = ()  # the reference: the gallery size each table was measured at

    @property
    def sample_size(self) -> int:
        """How many stranger searches the smallest table rests on (what the resolution is)."""
        return int(min((len(t) for t in self.tables), default=0))

    def fpir(self, s: float) -> float:
        """Estimated chance that a person not enrolled reaches score `s` here: (1 + #null >= s) / (1 + n)."""
        best = 1.0 if not self.tables else 0.0
        for table in self.tables:
            n = len(table)
            reach = n - int(np.searchsorted(table, s, side="left"))
            best = max(best, (1 + reach) / (1 + n))
        return best

    def below_resolution(self, s: float) -> bool:
        """True when no measured stranger reached `s`: the estimate is a bound ("fewer than 1 in n")."""
        return all(int(np.searchsorted(t, s, side="left")) == len(t) for t in self.tables)

    def operating_point(self, target_fpir: float | None) -> dict:
        """{"target_fpir","gallery_size","calibrated_at","method"} (CONTRACTS.md) plus the sample size."""
        return {"target_fpir": target_fpir, "gallery_size": self.gallery_size,
                "calibrated_at": self.calibrated_at, "method": self.method, "sample_size": self.sample_size}

    def to_bytes(self) -> bytes:
        """The .npz form `save` writes (a database keeps it as it is)."""
        buf = io.BytesIO()
        arrays = {f"table_{i}": t.astype(np.float64) for i, t in enumerate(self.tables)}
        np.savez(buf, method=self.method, gallery_size=self.gallery_size, generation=self.generation,
                 calibrated_at=self.calibrated_at, version=self.version,
                 sizes=np.asarray(self.sizes, dtype=np.int64), **arrays)
        return buf.getvalue()

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename), mode 0600."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, self.to_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    @classmethod
    def from_bytes(cls, data: bytes) -> Calibration:
        """Read what `to_bytes` gave (raises ValueError/KeyError/OSError when damaged)."""
        return cls.load(io.BytesIO(data))

    @classmethod
    def load(cls, path: Path | io.BytesIO) -> Calibration:
        """Read a file written by `save` (raises OSError/ValueError/KeyError when missing or damaged)."""
        with np.load(path, allow_pickle=False) as z:
            count = sum(1 for k in z.files if k.startswith("table_"))
            return cls(
                tables=tuple(np.sort(np.asarray(z[f"table_{i}"], dtype=np.float64)) for i in range(count)),
                method=str(z["method"]),
                gallery_size=int(z["gallery_size"]),
                generation=int(z["generation"]),
                calibrated_at=str(z["calibrated_at"]),
                version=str(z["version"]),
                sizes=tuple(int(v) for v in z["sizes"]) if "sizes" in z.files else (),
            )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def reference(gallery_size: int, generation: int, scale: Scale = DLIB_RESNET) -> Calibration:
    """The reference calibration for a gallery of `gallery_size` (shipped with the bot, measured on the
    development set with the gallery's model): the tables of the reference sizes just below and just above it,
    so every estimate is the larger of the two (strangers' scores change with gallery size, not always in one
    direction)."""
    ref = Calibration.load(scale.reference_path)
    if ref.version != scale.version or len(ref.sizes) != len(ref.tables):
        raise ValueError(f"{scale.reference_path.name} was made for score {ref.version}, not {scale.version}; "
                         "run bench/accuracy.py --write-reference")
    below = [i for i, size in enumerate(ref.sizes) if size <= gallery_size]
    above = [i for i, size in enumerate(ref.sizes) if size >= gallery_size]
    pick = sorted({max(below, key=lambda i: ref.sizes[i]) if below else 0,
                   min(above, key=lambda i: ref.sizes[i]) if above else len(ref.sizes) - 1})
    return Calibration(tuple(ref.tables[i] for i in pick), METHOD_REFERENCE, gallery_size, generation,
                       ref.calibrated_at, version=scale.version, sizes=tuple(ref.sizes[i] for i in pick))


def neighbours(
    matrix: np.ndarray, sq_norms: np.ndarray, row_subject: np.ndarray, probes: np.ndarray, *,
    exclude: np.ndarray | None = None, k: int = COHORT + 1, d2: np.ndarray | None = None,
    scale: Scale = DLIB_RESNET,
) -> tuple[np.ndarray, np.ndarray]:
    """For each probe, its k closest subjects: (distances (P, k) ascending, matrix rows (P, k)), in the model's
    distance (`scale`).

    One row per subject (its closest image). Distances are exact (float64 on the rows kept; float32 only
    preselects rows within the horizon, at most MAX_ROWS of them); missing neighbours are at the horizon with
    row -1.
    When more than MAX_ROWS rows were within HORIZON, a missing neighbour is given the largest distance
    looked at instead (true distances are at least that: the score is never overstated).
    `exclude[i]` is a subject key left out for probe i (leave-one-out calibration). `d2`, the float32 squared
    distances of a single probe to every row, may be passed when the caller already computed them.
    """
    probes = np.asarray(probes, dtype=np.float32).reshape(-1, DIM)
    count = len(probes)
    horizon = scale.horizon
    dist = np.full((count, k), horizon)
    rows_out = np.full((count, k), -1, dtype=np.int64)
    if len(matrix) == 0 or count == 0:
        return dist, rows_out
    subjects = np.asarray(row_subject)
    pn = np.einsum("ij,ij->i", probes, probes)
    limit = np.float32(scale.squared(horizon) + 1e-3)
    for start in range(0, count, BATCH):
        block = probes[start : start + BATCH]
        if d2 is not None and count == 1:
            sq = d2.reshape(1, -1)
        else:
            sq = block @ np.asarray(matrix).T
            sq *= -2.0
            sq += sq_norms[None, :]
            sq += pn[start : start + BATCH, None]
        for j in range(len(block)):
            i = start + j
            rows = np.flatnonzero(sq[j] <= limit)
            if exclude is not None and rows.size:
                rows = rows[subjects[rows] != exclude[i]]
            capped = rows.size > MAX_ROWS
            if capped:
                rows = rows[np.argpartition(sq[j][rows], MAX_ROWS - 1)[:MAX_ROWS]]
            if rows.size == 0:
                continue
            exact = scale.distance(np.sum((np.asarray(matrix[rows], dtype=np.float64) - block[j]) ** 2, axis=1))
            order = np.lexsort((exact, subjects[rows]))
            subj = subjects[rows][order]
            first = np.ones(order.size, dtype=bool)
            first[1:] = subj[1:] != subj[:-1]
            keep = order[first]
            keep = keep[np.argsort(exact[keep], kind="stable")][:k]
            keep = keep[exact[keep] <= horizon]
            dist[i, : keep.size] = exact[keep]
            rows_out[i, : keep.size] = rows[keep]
            if capped and keep.size < k:
                dist[i, keep.size :] = float(exact.max())
    return dist, rows_out


def null_scores(matrix: np.ndarray, sq_norms: np.ndarray, row_subject: np.ndarray, *,
                sample: int = SAMPLE, seed: int = 375, scale: Scale = DLIB_RESNET) -> np.ndarray:
    """Leave-one-out: each (sampled) subject's first image searched against every other subject; rank-1 scores."""
    keys, first = np.unique(np.asarray(row_subject), return_index=True)
    if len(keys) < 2:
        return np.zeros(0)
    if len(keys) > sample:
        pick = np.sort(np.random.default_rng(seed).choice(len(keys), size=sample, replace=False))
        keys, first = keys[pick], first[pick]
    dists, _ = neighbours(matrix, sq_norms, row_subject, np.asarray(matrix[first]), exclude=keys, scale=scale)
    return np.sort(np.array([score(row, scale.horizon)[0] for row in dists]))


def calibrate(matrix: np.ndarray, sq_norms: np.ndarray, row_subject: np.ndarray, *, generation: int,
              subjects: int, scale: Scale = DLIB_RESNET) -> Calibration:
    """The calibration of one gallery generation: its own null scores, or the reference when too small."""
    if subjects < MIN_SUBJECTS:
        return reference(subjects, generation, scale)
    nulls = null_scores(matrix, sq_norms, row_subject, scale=scale)
    return Calibration((nulls,), METHOD_GALLERY, subjects, generation, now_iso(), version=scale.version)


@dataclass(frozen=True)
class Decision:
    """One ranked candidate's numbers: its distance, margin to the next subject, score and estimate."""

    rank: int
    row: int
    distance: float
    margin: float | None  # None when no other subject lies within the horizon
    score: float
    fpir_estimate: float
    below_resolution: bool  # no measured stranger reached this score: the estimate is a bound


def decide(distances: np.ndarray, rows: np.ndarray, cal: Calibration, *, target_fpir: float,
           threshold: float, max_candidates: int, horizon: float = HORIZON) -> list[Decision]:
    """The candidates one search returns: ranks in order while distance <= threshold (the hard ceiling) and
    the estimate <= target_fpir; at most max_candidates. Pure: the same numbers give the same answer."""
    d = np.asarray(distances, dtype=np.float64)
    present = int(np.count_nonzero(np.asarray(rows) >= 0))
    scores = score(d, horizon)
    out: list[Decision] = []
    for r in range(min(present, max_candidates)):
        est = cal.fpir(float(scores[r]))
        if d[r] > threshold or est > target_fpir:
            break
        margin = float(d[r + 1] - d[r]) if r + 1 < present else None
        out.append(Decision(r + 1, int(rows[r]), float(d[r]), margin, float(scores[r]), est,
                            cal.below_resolution(float(scores[r]))))
    return out


def one_in(fpir: float) -> int:
    """The estimate as "about 1 in N" (N rounded to two significant figures)."""
    if fpir <= 0:
        return 0
    n = 1.0 / fpir
    if n < 10:
        return max(1, round(n))
    digits = math.floor(math.log10(n)) - 1
    return int(round(n, -digits))
