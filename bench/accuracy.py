"""Open-set 1:N accuracy on the development set, per face model: FNIR at fixed FPIR and at the defaults.

    BOT_DEV_FACES=/abs/path/shared/faces-dev .venv/bin/python -m bench.accuracy [--plot P]
        [--write-reference [--model ID]]

Protocol (NIST FRTE open-set terms). Gallery: the first photo of every person in people/ plus 1,000 singles;
mated probes: each person's second photo; non-mated probes: the other 500 singles, rotated across 3 folds
(each fold enrolls a different 1,000 singles), so FPIR rests on 1,500 non-mated searches.
- FNIR: share of mated probes whose mate is not returned as the rank-1 candidate.
- FPIR: share of non-mated probes that get any candidate.
Constants (the score's weights, the quality limits, each model's choices) are chosen on fold 0 and its first
third of the people; every figure reported as "held out" comes from folds 1 and 2 with the other two thirds of
the people, which no constant saw. Every system runs in the same process on the same photos, side by side: the
bot with each face model (`dlib-resnet`, `sface`: its own pipeline and calibrated decision, bot.faces.calibration
on the model's Scale, the gallery calibrated on itself exactly as the server does, at the defaults of
bot.config.SearchSettings: target FPIR and the model's hard ceiling), and plain face_recognition
(load_image_file + face_locations + face_encodings) with a distance threshold (its own default tolerance 0.6,
and 0.55).

Printed (markdown): the operating points at the defaults; FNIR at FPIR 0.5/1/2/5/10 % read off the held-out
searches (a DET reading) for each model's score and distance and plain face_recognition's distance; the score
against its parts; per model, the estimate against what happened (non-mated searches of all folds: the observed
share reaching each estimate, and whether its 95 % interval overlaps [p/1.5, 1.5p]); the issue's targets as
met or missed (measurements, never test assertions); FNIR by probe quality. The DET plot (every curve, the
default operating points marked) goes to bench/out/det.png (git-ignored; generated images stay out of the
repository).

Encodings are cached per model (bench/devset.py), so a run takes seconds once they exist.
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
from bot.config import SearchSettings
from bot.faces import calibration, models
from bot.faces.search import squared_norms

TARGETS = (0.005, 0.01, 0.02, 0.05, 0.1)
# The estimate cuts checked against what happened, and those the target names (CONTRACTS ### 12:
# "agree within 1.5x" = the observed 95 % interval overlaps [p/1.5, 1.5p]).
ESTIMATE_CUTS = (0.005, 0.01, 0.02, 0.05, 0.1)
AGREEMENT_TARGETS = (0.01, 0.05)
AGREEMENT_FACTOR = 1.5
# The accuracy target: at the defaults, held out, FPIR <= 1 % with FNIR <= 12 %.
TARGET_FPIR_MAX = 0.01
TARGET_FNIR_MAX = 0.12
MODELS = ("dlib-resnet", "sface")
# Plain face_recognition's own default tolerance (compare_faces, the CLI), and the 0.55 the tables always had.
PLAIN_TOLERANCES = (0.6, 0.55)
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


def agrees(k: int, n: int, p: float, factor: float = AGREEMENT_FACTOR) -> bool:
    """An observed k/n agrees with a predicted p within `factor`: its 95 % Wilson interval overlaps
    [p / factor, p * factor] (CONTRACTS ### 12)."""
    lo, hi = wilson(k, n)
    return hi >= p / factor and lo <= p * factor


DEFAULT_TARGET = SearchSettings().target_fpir
DEFAULT_THRESHOLD = SearchSettings().threshold_for("dlib-resnet")  # searches' default scale is dlib-resnet's


@dataclass
class Search:
    """One probe's search of one fold's gallery."""

    fold: int
    mated: bool
    person: str | None  # the mate's subject id (mated probes)
    distances: np.ndarray  # closest per-subject distances, ascending; empty when no face was found
    rank1_is_mate: bool
    quality: dict = field(default_factory=dict)
    horizon: float = calibration.HORIZON  # the model's (its Scale's): where the score censors distances
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
             scale: calibration.Scale = calibration.DLIB_RESNET, threshold: float = DEFAULT_THRESHOLD,
             target: float = DEFAULT_TARGET) -> tuple[list[Search], list[FoldGallery]]:
    """Every mated and non-mated search of every fold, distances on `scale`; with calibrate, each fold's gallery
    is calibrated on itself (bot.faces.calibration.calibrate, as the server does) and the decision at `target`
    FPIR under the hard ceiling `threshold` (in the model's distance) applied."""
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
            s = Search(fold.index, mated, name, dists[j], mated and ids[nearest[j]] == name, r.get("quality", {}),
                       horizon=scale.horizon)
            if cal is not None:
                decided = calibration.decide(dists[j], rows[j], cal, target_fpir=target,
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
    """The bot's decision as `searches` applied it (calibrated, at the target and ceiling it was given)."""
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
    """The rank-1 candidate's score (on the search's own model's horizon)."""
    return float(calibration.score(s.distances, s.horizon)[0])


def neg_distance(s: Search) -> float:
    """The rank-1 distance, negated (higher = accept)."""
    return -float(s.distances[0])


def margin(s: Search) -> float:
    """How far the second subject stands behind the first (censored at the model's horizon)."""
    return float(min(s.distances[1], s.horizon) - s.distances[0])


def within(tolerance: float):
    """A plain distance rule: accept the rank-1 candidate at distance <= tolerance."""
    return lambda s: s.distances[0] <= tolerance


def plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]],
         points: dict[str, tuple[float, float, str]], title: str,
         styles: dict[str, tuple[str, str]] | None = None) -> Path:
    """A DET plot (FNIR against FPIR, log FPIR axis) as PNG; `styles` gives a curve (colour, line style), and
    each point (fpir, fnir, curve label) is drawn in its curve's colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 5.4), dpi=120)
    colours = {}
    for label, (fpir, fnir) in curves.items():
        keep = fpir > 0
        colour, style = (styles or {}).get(label, (None, "-"))
        (line,) = ax.plot(fpir[keep], fnir[keep], label=label, linewidth=1.6, linestyle=style, color=colour)
        colours[label] = line.get_color()
    for (label, (x, y, curve)), marker in zip(points.items(), ("o", "s", "^", "v", "D")):
        ax.plot([max(x, 1e-4)], [y], marker=marker, markersize=7, linestyle="none", label=label,
                color=colours.get(curve, "black"), markeredgecolor="black")
    ax.set_xscale("log")
    ax.set_xlim(5e-4, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("FPIR (share of people not enrolled who get a candidate)")
    ax.set_ylabel("FNIR (share of enrolled people whose mate is not rank 1)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # No timestamp in the file: the same figures give the same bytes.
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


REFERENCE_SIZES = (2, 3, 5, 10, 15, 20, 30, 50, 75, 100, 150, 199)


def write_reference(dev: devset.DevSet, enc: dict, *, per_size: int = 10000, seed: int = 2026,
                    scale: calibration.Scale = calibration.DLIB_RESNET) -> Path:
    """The model's reference tables (`scale.reference_path`, bot/faces/reference*.npz): leave-one-out null scores
    of random dev-set galleries of each REFERENCE_SIZES size (one photo per identity), about `per_size` scores
    each; what a gallery too small to calibrate on itself uses."""
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


@dataclass
class System:
    """One system of the comparison: a face model with the bot's calibrated decision, or plain face_recognition."""

    label: str
    ss: list[Search]
    galleries: list[FoldGallery]
    model: str | None = None  # None: plain face_recognition
    threshold: float | None = None  # the bot's hard ceiling for this model (its distance)

    def held_out(self, dev: devset.DevSet) -> list[Search]:
        return [s for s in self.ss if held_out(s, dev)]


def bots(systems: list[System]) -> list[System]:
    """The systems that are the bot with a face model (not plain face_recognition)."""
    return [s for s in systems if s.model]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-reference", action="store_true",
                        help="write the reference tables (bot/faces/reference*.npz) of --model, or of both models")
    parser.add_argument("--model", choices=MODELS, help="with --write-reference: only this model's tables")
    parser.add_argument("--plot", type=Path, default=OUT / "det.png")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    dev = devset.load(devset.dev_root())
    started = time.perf_counter()
    enc = {m: devset.encodings(dev, workers=args.workers, model=m) for m in MODELS}
    plain = devset.encodings(dev, workers=args.workers, plain=True)
    print(f"dev set: {len(dev.people)} people, {len(dev.singles)} singles, {len(dev.all_paths())} photos; "
          f"encodings ready in {time.perf_counter() - started:.1f} s")
    if args.write_reference:
        for m in [args.model] if args.model else MODELS:
            print(f"wrote {write_reference(dev, enc[m], scale=models.get(m).scale)}")
    settings = SearchSettings()
    started = time.perf_counter()
    systems = []
    for m in MODELS:
        model = models.get(m)
        ss, galleries = searches(dev, enc[m], scale=model.scale, threshold=settings.threshold_for(m),
                                 target=settings.target_fpir)
        systems.append(System(f"bot {m}", ss, galleries, m, settings.threshold_for(m)))
    ss, galleries = searches(dev, plain, calibrate=False)
    systems.append(System("plain face_recognition", ss, galleries))
    print(f"searched (and calibrated) 3 folds of {len(systems)} systems in {time.perf_counter() - started:.1f} s")
    for system, encoded in zip(systems, [enc[m] for m in MODELS] + [plain]):
        found = sum(1 for r in encoded.values() if "enc" in r)
        print(f"- {system.label}: a face in {found:,} of {len(encoded):,} photos; gallery per fold "
              f"{', '.join(f'{len(g.subjects):,}' for g in system.galleries)} subjects")
    return report(dev, systems, settings.target_fpir, args)


def _pct(x: float) -> str:
    return f"{100 * x:g} %"


def defaults_table(dev: devset.DevSet, systems: list[System], target: float) -> None:
    """The operating points at the defaults, held out and on all folds."""
    bots = ", ".join(f"{s.model} {s.threshold:g}" for s in systems if s.model)
    print(f"\n### At the defaults\n\nBot: the calibrated decision at target FPIR {_pct(target)} under each model's "
          f"hard ceiling (bot.config defaults, in the model's distance: {bots}); plain face_recognition: rank-1 "
          f"distance <= tolerance ({' and '.join(f'{t:g}' for t in PLAIN_TOLERANCES)}, its own default first). "
          "Held out: folds 1-2, mated probes of the people outside the first third. Galleries (one row per subject "
          "with a face; folds 0, 1, 2): " + "; ".join(f"{s.label} {', '.join(f'{len(g.subjects):,}' for g in s.galleries)}"
                                                    for s in systems) + ".\n")
    print("| system | folds | searches | FNIR [95 % CI] | FPIR [95 % CI] |")
    print("|---|---|---|---|---|")
    for scope in ("held out", "all folds"):
        for system in systems:
            ss = system.held_out(dev) if scope == "held out" else system.ss
            rules = ([("calibrated", None)] if system.model else
                     [(f"distance <= {t:g}", within(t)) for t in PLAIN_TOLERANCES])
            for label, rule in rules:
                miss, n_m, fp, n_n = at_default(ss) if rule is None else decide(ss, rule)
                name = f"**{system.label}**" if system.model and scope == "held out" else system.label
                print(f"| {name}, {label} | {scope} | {n_m:,} mated, {n_n:,} non-mated | {rate(miss, n_m)} | "
                      f"{rate(fp, n_n)} |")


def fixed_fpir_table(dev: devset.DevSet, systems: list[System]) -> None:
    """FNIR at fixed FPIR, held out: each rule's threshold read off the held-out non-mated searches."""
    columns = []
    for system in systems:
        if system.model:
            columns.append((f"{system.model} score (bot)", system.held_out(dev), score1))
    for system in systems:
        columns.append((f"{system.model or system.label} distance", system.held_out(dev), neg_distance))
    print("\n### FNIR at fixed FPIR, held out\n\nEach rule's threshold read off the held-out non-mated searches "
          "(a DET reading: the FPIR reached, never above the column's, in brackets after the FNIR). Cells: FNIR "
          "misses/mated = % [95 % CI].\n")
    print("| FPIR | " + " | ".join(label for label, _, _ in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for t in TARGETS:
        cells = []
        for _, ss, f in columns:
            miss, n_m, fp, n_n = fnir_at(ss, f, t)
            cells.append(f"{rate(miss, n_m)} (FPIR {fp}/{n_n:,})")
        print(f"| {_pct(t)} | " + " | ".join(cells) + " |")


def parts_table(dev: devset.DevSet, systems: list[System]) -> None:
    """The score against its parts (margin, distance), per model, held out."""
    print("\n### The score against its parts, held out (FNIR at fixed FPIR)\n")
    print("| model | FPIR | score | margin alone | distance alone |")
    print("|---|---|---|---|---|")
    for system in bots(systems):
        ho = system.held_out(dev)
        for t in (0.01, 0.05):
            cells = [rate(*fnir_at(ho, f, t)[:2]) for f in (score1, margin, neg_distance)]
            print(f"| {system.model} | {_pct(t)} | " + " | ".join(cells) + " |")


def estimate_table(systems: list[System]) -> dict[str, dict[float, bool]]:
    """Per model, the rank-1 estimate against what happened: {model: {cut: agrees}}."""
    print("\n### The estimate against what happened, per model\n\nNon-mated searches of all folds: the share whose "
          "rank-1 candidate's estimate (fpir_estimate) was at most p, against p. Agrees within 1.5x: the observed "
          "95 % interval overlaps [p/1.5, 1.5p].\n")
    print("| model | estimate at most p | observed: non-mated searches reaching it | agrees within 1.5x |")
    print("|---|---|---|---|")
    verdicts: dict[str, dict[float, bool]] = {}
    for system in bots(systems):
        non = [s for s in system.ss if not s.mated and len(s.distances)]
        n_non = sum(1 for s in system.ss if not s.mated)
        verdicts[system.model] = {}
        for cut in ESTIMATE_CUTS:
            k = sum(1 for s in non if s.estimate <= cut)
            ok = agrees(k, n_non, cut)
            verdicts[system.model][cut] = ok
            print(f"| {system.model} | {_pct(cut)} | {rate(k, n_non)} | {'yes' if ok else '**no**'} |")
    return verdicts


def targets(dev: devset.DevSet, systems: list[System], verdicts: dict[str, dict[float, bool]]) -> None:
    """The issue's targets, met or missed (measured once, never asserted in tests: CONTRACTS ### 12)."""
    print("\n### Targets (issue 16)\n")
    for system in bots(systems):
        miss, n_m, fp, n_n = at_default(system.held_out(dev))
        met = fp / n_n <= TARGET_FPIR_MAX and miss / n_m <= TARGET_FNIR_MAX
        print(f"- {system.model}: Dev set, held-out folds, at the defaults: FPIR <= {_pct(TARGET_FPIR_MAX)} with "
              f"FNIR <= {_pct(TARGET_FNIR_MAX)}: **{'met' if met else 'missed'}** (FPIR {100 * fp / n_n:.1f} %, "
              f"FNIR {100 * miss / n_m:.1f} %)")
    for model, cuts in verdicts.items():
        met = all(cuts[t] for t in AGREEMENT_TARGETS)
        detail = ", ".join(f"{_pct(t)}: {'agrees' if cuts[t] else 'does not agree'}" for t in AGREEMENT_TARGETS)
        print(f"- {model}: predicted and observed FPIR agree within {AGREEMENT_FACTOR:g}x at "
              f"{' and '.join(_pct(t) for t in AGREEMENT_TARGETS)}: **{'met' if met else 'missed'}** ({detail})")


def quality_table(systems: list[System]) -> None:
    """FNIR at the defaults by the mated probe's quality level, per model, all folds."""
    print("\n### Probe quality (mated probes, all folds, the default decision)\n")
    print("| model | probe quality | FNIR |")
    print("|---|---|---|")
    for system in bots(systems):
        mated = [s for s in system.ss if s.mated and len(s.distances)]
        for level in ("ok", "low"):
            group = [s for s in mated if (s.quality or {}).get("level", "ok") == level]
            if group:
                miss, n_m, _, _ = at_default(group)
                print(f"| {system.model} | {level} | {rate(miss, n_m)} |")


def det_plot(dev: devset.DevSet, systems: list[System], target: float, args) -> Path:
    """Every curve (each model's score and distance, plain face_recognition's distance) and the default
    operating points, held out."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    points: dict[str, tuple[float, float, str]] = {}
    styles: dict[str, tuple[str, str]] = {}
    # One colour per system: a model's score solid, its distance alone dashed.
    for system, colour in zip(systems, ("tab:blue", "tab:orange", "tab:purple")):
        if system.model:
            curves[f"bot {system.model} score"] = det(system.held_out(dev), score1)
            styles[f"bot {system.model} score"] = (colour, "-")
        label = f"{system.model} distance alone" if system.model else f"{system.label} distance"
        curves[label] = det(system.held_out(dev), neg_distance)
        styles[label] = (colour, "--" if system.model else "-")
    for system in systems:
        ho = system.held_out(dev)
        if system.model:
            miss, n_m, fp, n_n = at_default(ho)
            points[f"{system.model} default (target {_pct(target)}, ceiling {system.threshold:g})"] = (
                fp / n_n, miss / n_m, f"bot {system.model} score")
        else:
            for t in PLAIN_TOLERANCES:
                miss, n_m, fp, n_n = decide(ho, within(t))
                points[f"{system.label} at {t:g}"] = (fp / n_n, miss / n_m, f"{system.label} distance")
    ho = systems[0].held_out(dev)
    n_m, n_n = sum(1 for s in ho if s.mated), sum(1 for s in ho if not s.mated)
    sizes = sorted(len(g.subjects) for s in systems for g in s.galleries)
    return plot(args.plot, curves, points, f"Dev set, held out: {n_m:,} mated / {n_n:,} non-mated searches, "
                f"galleries of {sizes[0]:,}-{sizes[-1]:,} subjects", styles)


def report(dev: devset.DevSet, systems: list[System], target: float, args) -> int:
    """Every table, then the DET plot."""
    defaults_table(dev, systems, target)
    fixed_fpir_table(dev, systems)
    parts_table(dev, systems)
    verdicts = estimate_table(systems)
    targets(dev, systems, verdicts)
    quality_table(systems)
    path = det_plot(dev, systems, target, args)
    print(f"\nDET plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
