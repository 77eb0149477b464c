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

TARGETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
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


DEFAULT_TARGET = 0.01
DEFAULT_THRESHOLD = 0.55


@dataclass
class Search:
    """One probe's search of one fold's gallery."""

    fold: int
    mated: bool
    person: str | None  # the mate's subject id (mated probes)
    distances: np.ndarray  # closest per-subject distances, ascending; empty when no face was found
    rank1_is_mate: bool
    quality: dict = field(default_factory=dict)
    estimate: float = 1.0  # the rank-1 candidate's fpir_estimate (calibrated runs)
    accepted: bool = False  # the bot's default decision returns a rank-1 candidate


@dataclass
class FoldGallery:
    matrix: np.ndarray
    subjects: list[str]
    calibration: calibration.Calibration | None


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


def searches(dev: devset.DevSet, enc: dict, key: str = "enc", *, calibrate: bool = True,
             scale: calibration.Scale = calibration.DLIB_RESNET, threshold: float = 0.55
             ) -> tuple[list[Search], list[FoldGallery]]:
    """Every mated and non-mated search of every fold; with calibrate, each fold's gallery is calibrated on
    itself (bot.faces.calibration.calibrate, as the server does) and the default decision applied."""
    out: list[Search] = []
    galleries = []
    k = calibration.COHORT + 1
    for fold in devset.folds(dev):
        matrix, ids = _gallery(dev, fold, enc, key)
        sq = squared_norms(matrix)
        row_subject = np.arange(len(ids), dtype=np.int32)
        cal = (calibration.calibrate(matrix, sq, row_subject, generation=0, subjects=len(ids), scale=scale)
               if calibrate else None)
        galleries.append(FoldGallery(matrix, ids, cal))
        probes = [(True, name, dev.people[name][1]) for name in sorted(dev.people)]
        probes += [(False, None, dev.singles[i]) for i in fold.probe_singles]
        found = [(m, n, enc[str(p)]) for m, n, p in probes]
        with_face = [f for f in found if key in f[2]]
        vecs = np.stack([f[2][key] for f in with_face]).astype(np.float32)
        dists, rows = calibration.neighbours(matrix, sq, row_subject, vecs, k=k, scale=scale)
        # The closest subject outright (it may lie beyond HORIZON, where `neighbours` stops looking).
        nearest = np.argmin(sq[None, :] - 2.0 * (vecs @ matrix.T), axis=1)
        j = 0
        for mated, name, r in found:
            if key not in r:
                out.append(Search(fold.index, mated, name, np.zeros(0), False))
                continue
            s = Search(fold.index, mated, name, dists[j], mated and ids[nearest[j]] == name, r.get("quality", {}))
            if cal is not None:
                decided = calibration.decide(dists[j], rows[j], cal, target_fpir=DEFAULT_TARGET,
                                             threshold=threshold, max_candidates=1, horizon=scale.horizon)
                s.estimate = cal.fpir(float(calibration.score(dists[j], scale.horizon)[0]))
                s.accepted = bool(decided)
            out.append(s)
            j += 1
    return out, galleries


def held_out(s: Search, dev: devset.DevSet) -> bool:
    """Folds 1-2, and for mated probes the people outside the first third (those tuned nothing)."""
    if s.fold == 0:
        return False
    if not s.mated:
        return True
    names = sorted(dev.people)
    return names.index(s.person) >= len(names) // 3


def decide(ss: list[Search], accept) -> tuple[int, int, int, int]:
    """(mated misses, mated total, non-mated with a candidate, non-mated total) under `accept(search) -> bool`."""
    miss = sum(1 for s in ss if s.mated and not (len(s.distances) and s.rank1_is_mate and accept(s)))
    fp = sum(1 for s in ss if not s.mated and len(s.distances) and accept(s))
    return miss, sum(1 for s in ss if s.mated), fp, sum(1 for s in ss if not s.mated)


def at_default(ss: list[Search]) -> tuple[int, int, int, int]:
    """The bot's own default decision (calibrated, target 1 %, distance ceiling 0.55)."""
    return decide(ss, lambda s: s.accepted)


def det(ss: list[Search], values) -> tuple[np.ndarray, np.ndarray]:
    """FPIR and FNIR at every threshold on `values(search)` (higher = accept), for a DET curve."""
    mv = np.array([values(s) if len(s.distances) and s.rank1_is_mate else -np.inf for s in ss if s.mated])
    nv = np.array([values(s) if len(s.distances) else -np.inf for s in ss if not s.mated])
    thresholds = np.unique(np.concatenate([mv[np.isfinite(mv)], nv[np.isfinite(nv)]]))[::-1]
    fpir = np.array([(nv >= t).mean() for t in thresholds])
    fnir = np.array([1 - (mv >= t).mean() for t in thresholds])
    return fpir, fnir


def fnir_at(ss: list[Search], values, target: float) -> tuple[int, int, int, int]:
    """The threshold on `values` that lets at most `target` of the non-mated searches through, read off the
    searches themselves (a DET curve's FNIR at that FPIR): (misses, mated, fps, non-mated)."""
    non = np.sort(np.array([values(s) for s in ss if not s.mated and len(s.distances)]))[::-1]
    n_non = sum(1 for s in ss if not s.mated)
    allowed = int(target * n_non)
    t = non[allowed] if allowed < len(non) else -np.inf
    return decide(ss, lambda s: values(s) > t)


def score1(s: Search) -> float:
    return float(calibration.score(s.distances)[0])


def neg_distance(s: Search) -> float:
    return -float(s.distances[0])


def margin(s: Search) -> float:
    return float(min(s.distances[1], calibration.HORIZON) - s.distances[0])


def plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], points: dict[str, tuple[float, float]],
         title: str) -> Path:
    """A DET plot (FNIR against FPIR, log FPIR axis) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    for label, (fpir, fnir) in curves.items():
        keep = fpir > 0
        ax.plot(fpir[keep], fnir[keep], label=label, linewidth=1.6)
    for label, (x, y) in points.items():
        ax.plot([max(x, 1e-4)], [y], marker="o", linestyle="none", label=label)
    ax.set_xscale("log")
    ax.set_xlim(5e-4, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("FPIR (share of people not enrolled who get a candidate)")
    ax.set_ylabel("FNIR (share of enrolled people whose mate is not rank 1)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


REFERENCE_SIZES = (2, 3, 5, 10, 15, 20, 30, 50, 75, 100, 150, 199)


def write_reference(dev: devset.DevSet, enc: dict, *, per_size: int = 10000, seed: int = 2026,
                    scale: calibration.Scale = calibration.DLIB_RESNET) -> Path:
    """The model's reference tables (bot/faces/reference*.npz, `scale.reference_path`): leave-one-out null scores of random dev-set galleries of each REFERENCE_SIZES
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
            scores.append(calibration.null_scores(pick, squared_norms(pick), np.arange(size, dtype=np.int32),
                                                  scale=scale))
        tables.append(np.sort(np.concatenate(scores)))
        print(f"  reference size {size}: {len(tables[-1])} null scores, 99th percentile "
              f"{np.quantile(tables[-1], 0.99):.4f}")
    ref = calibration.Calibration(tuple(tables), calibration.METHOD_REFERENCE, len(matrix), -1,
                                  calibration.now_iso(), version=scale.version, sizes=REFERENCE_SIZES)
    ref.save(scale.reference_path)
    return scale.reference_path


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
    started = time.perf_counter()
    bot_ss, galleries = searches(dev, enc, "enc")
    plain_ss, _ = searches(dev, plain, "enc", calibrate=False)
    print(f"searched and calibrated 3 folds in {time.perf_counter() - started:.1f} s")
    print(f"gallery per fold: {[len(g.subjects) for g in galleries]} subjects")
    return report(dev, bot_ss, plain_ss, galleries, args)


def report(dev, bot_ss, plain_ss, galleries, args) -> int:
    ho = [s for s in bot_ss if held_out(s, dev)]
    pho = [s for s in plain_ss if held_out(s, dev)]
    plain_055 = lambda s: s.distances[0] <= DEFAULT_THRESHOLD
    print(f"\nOperating point at the defaults (bot: calibrated, target FPIR {DEFAULT_TARGET:.0%}, distance "
          f"ceiling {DEFAULT_THRESHOLD}; plain face_recognition: distance <= {DEFAULT_THRESHOLD})")
    print("| system | searches | FNIR [95 % CI] | FPIR [95 % CI] |")
    print("|---|---|---|---|")
    for label, ss, rule in (("bot, held out", ho, None), ("bot, all folds", bot_ss, None),
                            ("plain face_recognition 0.55, held out", pho, plain_055),
                            ("plain face_recognition 0.55, all folds", plain_ss, plain_055)):
        miss, n_m, fp, n_n = at_default(ss) if rule is None else decide(ss, rule)
        print(f"| {label} | {n_m} mated, {n_n} non-mated | {rate(miss, n_m)} | {rate(fp, n_n)} |")

    print("\nFNIR at fixed FPIR, held out (each rule's threshold read off the held-out searches: a DET reading)")
    print("| FPIR | bot score | margin alone | bot distance | plain face_recognition distance |")
    print("|---|---|---|---|---|")
    for t in TARGETS:
        cells = []
        for ss, f in ((ho, score1), (ho, margin), (ho, neg_distance), (pho, neg_distance)):
            miss, n_m, fp, n_n = fnir_at(ss, f, t)
            cells.append(rate(miss, n_m))
        print(f"| {t:.1%} | " + " | ".join(cells) + " |")

    print("\nDoes the estimate say what happens? Non-mated searches, all folds: predicted vs observed FPIR")
    print("| estimate at most | non-mated searches reaching it (observed) |")
    print("|---|---|")
    non = [s for s in bot_ss if not s.mated and len(s.distances)]
    n_non = sum(1 for s in bot_ss if not s.mated)
    for cut in (0.001, 0.005, 0.01, 0.02, 0.05, 0.1):
        k = sum(1 for s in non if s.estimate <= cut)
        print(f"| {cut:.1%} | {rate(k, n_non)} |")

    print("\nProbe quality (mated probes, all folds, bot default decision)")
    print("| probe | FNIR |")
    print("|---|---|")
    mated = [s for s in bot_ss if s.mated and len(s.distances)]
    for level in ("ok", "low"):
        group = [s for s in mated if (s.quality or {}).get("level", "ok") == level]
        if group:
            miss, n_m, _, _ = at_default(group)
            print(f"| {level} | {rate(miss, n_m)} |")

    curves = {"bot score": det(ho, score1), "bot distance": det(ho, neg_distance),
              "plain face_recognition distance": det(pho, neg_distance)}
    miss, n_m, fp, n_n = at_default(ho)
    pmiss, pn_m, pfp, pn_n = decide(pho, plain_055)
    points = {"bot default (target 1 %)": (fp / n_n, miss / n_m),
              "plain face_recognition at 0.55": (pfp / pn_n, pmiss / pn_m)}
    sizes = sorted({len(g.subjects) for g in galleries})
    path = plot(args.plot, curves, points,
                f"Dev set, held out: {n_m} mated / {n_n} non-mated searches, gallery {sizes[0]:,} subjects")
    print(f"\nDET plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
