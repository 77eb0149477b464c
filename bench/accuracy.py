"""Open-set 1:N accuracy on the development set: FNIR at fixed FPIR, the bot against plain face_recognition.

    BOT_DEV_FACES=/abs/path/shared/faces-dev .venv/bin/python -m bench.accuracy [--write-reference] [--plot P]

Protocol (NIST FRTE open-set terms). Gallery: the first photo of every person in people/ plus 1,000 singles;
mated probes: each person's second photo; non-mated probes: the other 500 singles, rotated across 3 folds
(each fold enrolls a different 1,000 singles), so FPIR rests on 1,500 non-mated searches.
- FNIR: share of mated probes whose mate is not returned as the rank-1 candidate.
- FPIR: share of non-mated probes that get any candidate.
Constants (the score's weights, the quality limits) are chosen on fold 0 and its first third of the people;
every figure reported as "held out" comes from folds 1 and 2 with the other two thirds of the people, which
no constant saw. Both systems run in the same process on the same photos: the bot with its own pipeline and
calibrated decision (bot.faces.calibration, the gallery calibrated on itself exactly as the server does),
plain face_recognition with load_image_file + face_locations + face_encodings and a distance threshold.

Encodings are cached (bench/devset.py), so a sweep of decision rules takes seconds.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import devset
from bot.faces import calibration
from bot.faces.search import squared_norms

TARGETS = (0.005, 0.01, 0.02, 0.05)
OUT = devset.OUT


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / max(n, 1):.1f} % [{100 * lo:.1f}–{100 * hi:.1f}]"


@dataclass
class Search:
    """One probe's search of one fold's gallery: closest per-subject distances and whether rank 1 is the mate."""

    fold: int
    mated: bool
    person: str | None  # the mate's subject id (mated probes)
    distances: np.ndarray  # ascending, COHORT + 1, censored at HORIZON; empty when no face was found
    rank1_is_mate: bool
    quality: dict = field(default_factory=dict)


@dataclass
class FoldGallery:
    matrix: np.ndarray
    subjects: list[str]
    calibration: calibration.Calibration


def _gallery(dev: devset.DevSet, fold: devset.Fold, enc: dict, key: str) -> tuple[np.ndarray, list[str]]:
    rows, ids = [], []
    for name in sorted(dev.people):
        r = enc[str(dev.people[name][0])]
        if key in r:
            rows.append(r[key])
            ids.append(name)
    for i in fold.enrolled_singles:
        r = enc[str(dev.singles[i])]
        if key in r:
            rows.append(r[key])
            ids.append(dev.singles[i].stem)
    return np.stack(rows).astype(np.float32), ids


def searches(dev: devset.DevSet, enc: dict, key: str = "enc", *, calibrate: bool = True
             ) -> tuple[list[Search], list[FoldGallery]]:
    """Every mated and non-mated search of every fold, with each fold's gallery calibration."""
    out: list[Search] = []
    galleries = []
    for fold in devset.folds(dev):
        matrix, ids = _gallery(dev, fold, enc, key)
        sq = squared_norms(matrix)
        row_subject = np.arange(len(ids), dtype=np.int32)
        cal = (calibration.calibrate(matrix, sq, row_subject, generation=0, subjects=len(ids)) if calibrate
               else None)
        galleries.append(FoldGallery(matrix, ids, cal))
        probes = [(True, name, dev.people[name][1]) for name in sorted(dev.people)]
        probes += [(False, None, dev.singles[i]) for i in fold.probe_singles]
        found = [(m, n, enc[str(p)]) for m, n, p in probes]
        with_face = [f for f in found if key in f[2]]
        vecs = np.stack([f[2][key] for f in with_face]).astype(np.float32) if with_face else np.zeros((0, 128))
        dists = calibration.neighbour_distances(matrix, sq, row_subject, vecs)
        # rank-1 identity: the closest row (one row per subject here)
        d2 = sq[None, :] - 2.0 * (vecs @ matrix.T) + np.einsum("ij,ij->i", vecs, vecs)[:, None]
        nearest = np.argmin(d2, axis=1)
        it = iter(range(len(with_face)))
        for mated, name, r in found:
            if key not in r:
                out.append(Search(fold.index, mated, name, np.zeros(0), False))
                continue
            j = next(it)
            out.append(Search(fold.index, mated, name, dists[j], mated and ids[nearest[j]] == name,
                              r.get("quality", {})))
    return out, galleries


def held_out(s: Search, dev: devset.DevSet) -> bool:
    """Folds 1-2, and for mated probes the people outside the first third (those tuned nothing)."""
    if s.fold == 0:
        return False
    if not s.mated:
        return True
    names = sorted(dev.people)
    return names.index(s.person) >= len(names) // 3


def tuning(s: Search, dev: devset.DevSet) -> bool:
    """Fold 0, and for mated probes only the first third of the people."""
    if s.fold != 0:
        return False
    if not s.mated:
        return True
    names = sorted(dev.people)
    return names.index(s.person) < len(names) // 3


def decide(ss: list[Search], accept) -> tuple[int, int, int, int]:
    """(mated misses, mated total, non-mated with a candidate, non-mated total) under `accept(search) -> bool`."""
    miss = sum(1 for s in ss if s.mated and not (len(s.distances) and s.rank1_is_mate and accept(s)))
    fp = sum(1 for s in ss if not s.mated and len(s.distances) and accept(s))
    return miss, sum(1 for s in ss if s.mated), fp, sum(1 for s in ss if not s.mated)


def det(ss: list[Search], values) -> tuple[np.ndarray, np.ndarray]:
    """FPIR and FNIR for every threshold on `values(search)` (higher = accept), for a DET curve."""
    mated = [s for s in ss if s.mated]
    non = [s for s in ss if not s.mated]
    mv = np.array([values(s) if len(s.distances) and s.rank1_is_mate else -np.inf for s in mated])
    nv = np.array([values(s) if len(s.distances) else -np.inf for s in non])
    thresholds = np.unique(np.concatenate([mv[np.isfinite(mv)], nv[np.isfinite(nv)]]))[::-1]
    fpir = np.array([(nv >= t).mean() for t in thresholds])
    fnir = np.array([1 - (mv >= t).mean() for t in thresholds])
    return fpir, fnir


def fnir_at(ss: list[Search], values, target: float) -> tuple[int, int, int, int, float]:
    """The best threshold on `values` with observed FPIR <= target: (misses, mated, fps, non-mated, threshold)."""
    non = np.sort(np.array([values(s) for s in ss if not s.mated and len(s.distances)]))[::-1]
    n_non = sum(1 for s in ss if not s.mated)
    allowed = math.floor(target * n_non)
    t = non[allowed] if allowed < len(non) else -np.inf
    # accept strictly above the (allowed+1)-th largest non-mated value
    miss, n_m, fp, n_n = decide(ss, lambda s: values(s) > t)
    return miss, n_m, fp, n_n, float(t)


REFERENCE_SIZES = (2, 3, 5, 10, 15, 20, 30, 50, 75, 100, 150, 199)


def write_reference(dev: devset.DevSet, enc: dict, *, per_size: int = 10000, seed: int = 2026) -> Path:
    """bot/faces/reference.npz: leave-one-out null scores of random dev-set galleries of each REFERENCE_SIZES
    size (one photo per identity), about `per_size` scores each; what a gallery too small to calibrate on
    itself uses."""
    vectors = {}
    for path, r in enc.items():
        if "enc" in r:
            vectors.setdefault(Path(path).stem.rsplit("_", 1)[0], r["enc"])
    matrix = np.stack(list(vectors.values())).astype(np.float32)
    rng = np.random.default_rng(seed)
    tables = []
    for size in REFERENCE_SIZES:
        scores: list[np.ndarray] = []
        while sum(len(x) for x in scores) < per_size:
            pick = matrix[rng.choice(len(matrix), size=size, replace=False)]
            scores.append(calibration.null_scores(pick, squared_norms(pick), np.arange(size, dtype=np.int32)))
        tables.append(np.sort(np.concatenate(scores)))
        print(f"  reference size {size}: {len(tables[-1])} null scores, 99th percentile "
              f"{np.quantile(tables[-1], 0.99):.4f}")
    ref = calibration.Calibration(tuple(tables), calibration.METHOD_REFERENCE, len(matrix), -1,
                                  calibration.now_iso())
    ref.save(calibration.REFERENCE_PATH)
    return calibration.REFERENCE_PATH


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-reference", action="store_true",
                        help="write bot/faces/reference.npz from the fold galleries' null scores")
    parser.add_argument("--plot", type=Path, default=OUT / "det.png")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    dev = devset.load(devset.dev_root())
    started = time.perf_counter()
    enc = devset.encodings(dev, workers=args.workers)
    plain = devset.encodings(dev, workers=args.workers, plain=True)
    print(f"dev set: {len(dev.people)} people, {len(dev.singles)} singles; encodings ready in "
          f"{time.perf_counter() - started:.1f} s")
    if args.write_reference:
        print(f"wrote {write_reference(dev, enc)}")
    bot_ss, galleries = searches(dev, enc, "enc")
    plain_ss, _ = searches(dev, plain, "enc", calibrate=False)
    print(f"gallery per fold: {[len(g.subjects) for g in galleries]} subjects")
    return report(dev, bot_ss, plain_ss, galleries, args)


def report(dev, bot_ss, plain_ss, galleries, args) -> int:
    ho = [s for s in bot_ss if held_out(s, dev)]
    pho = [s for s in plain_ss if held_out(s, dev)]
    score1 = lambda s: calibration.score(s.distances)[0]
    neg_d1 = lambda s: -s.distances[0]
    margin = lambda s: s.distances[1] - s.distances[0]
    print("\nheld out (folds 1-2; mated: the two thirds of the people no constant saw)")
    print("| FPIR target | bot score | margin alone | bot distance | plain face_recognition distance |")
    print("|---|---|---|---|---|")
    for t in TARGETS:
        cells = []
        for ss, f in ((ho, score1), (ho, margin), (ho, neg_d1), (pho, neg_d1)):
            miss, n_m, fp, n_n, _ = fnir_at(ss, f, t)
            cells.append(f"FNIR {rate(miss, n_m)}; FPIR {fp}/{n_n}")
        print(f"| {t:.1%} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
