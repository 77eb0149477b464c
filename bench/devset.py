"""The development face set ($BOT_DEV_FACES): its layout, the open-set folds, and cached encodings.

    BOT_DEV_FACES=/abs/path/shared/faces-dev .venv/bin/python -m bench.devset [--workers 2]

Encodes every photo once with the bot's own pipeline (bot.faces.engine: HOG detection, upsampling only when
nothing is found, the probe padded when it is a tight crop, 5-point alignment, one jitter) and, for the
pipeline comparison, the same face with 68-point alignment, and the CNN detector where HOG found nothing.
Per photo it keeps the timings of each stage. The cache lives in bench/out/ (git-ignored) and is reused
while the file list and the pipeline version match, so a sweep of decision rules takes seconds.
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_VERSION = "1"
OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class DevSet:
    """people: name -> photo paths (sorted, >= 2 each); singles: sorted photo paths of one-photo people."""

    root: Path
    people: dict[str, list[Path]]
    singles: list[Path]

    def all_paths(self) -> list[Path]:
        return [p for name in sorted(self.people) for p in self.people[name]] + list(self.singles)


def dev_root(required: bool = True) -> Path | None:
    """$BOT_DEV_FACES as a Path; exits (or returns None) when unset, raises when set but not a dev set."""
    value = os.environ.get("BOT_DEV_FACES")
    if not value:
        if required:
            sys.exit("set BOT_DEV_FACES to the absolute path of shared/faces-dev")
        return None
    root = Path(value)
    if not (root / "people").is_dir() or not (root / "singles").is_dir():
        raise RuntimeError(f"BOT_DEV_FACES={value} is set but holds no people/ and singles/ folders")
    return root


def load(root: Path) -> DevSet:
    """The folder layout as the dev set's README describes it."""
    people = {}
    for folder in sorted((root / "people").iterdir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if len(photos) >= 2:
            people[folder.name] = photos
    singles = sorted(p for p in (root / "singles").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return DevSet(root=root, people=people, singles=singles)


@dataclass(frozen=True)
class Fold:
    """One open-set split: which singles are enrolled as distractors and which are searched as strangers."""

    index: int
    enrolled_singles: list[int]  # indexes into DevSet.singles
    probe_singles: list[int]


def folds(dev: DevSet, n_folds: int = 3, enrolled: int = 1000) -> list[Fold]:
    """Rotate the singles: fold k searches block k (len/n_folds singles) and enrolls `enrolled` of the others."""
    n = len(dev.singles)
    size = n // n_folds
    out = []
    for k in range(n_folds):
        probes = list(range(k * size, (k + 1) * size))
        rest = [i for i in range(n) if not (k * size <= i < (k + 1) * size)]
        out.append(Fold(index=k, enrolled_singles=rest[:enrolled], probe_singles=probes))
    return out


# ---------------------------------------------------------------- encoding (in worker processes)


def _central(boxes, width: int, height: int) -> int:
    """Index of the box whose centre is closest to the photo's centre (the dev crops are centred)."""
    cx, cy = width / 2, height / 2
    return min(range(len(boxes)), key=lambda i: ((boxes[i].left + boxes[i].right) / 2 - cx) ** 2
               + ((boxes[i].top + boxes[i].bottom) / 2 - cy) ** 2)


def encode_one(path: str) -> dict:
    """Every measurement the accuracy and pipeline benchmarks need for one photo."""
    import dlib

    from bot.faces import engine, quality
    from bot.faces.images import decode_image

    out: dict = {"path": path}
    t0 = time.perf_counter()
    data = Path(path).read_bytes()
    rgb = decode_image(data, max_bytes=1 << 30, max_pixels=1 << 30)
    t1 = time.perf_counter()
    found = engine.find_boxes(rgb, 1024)
    t2 = time.perf_counter()
    out.update(t_decode=t1 - t0, t_detect=t2 - t1, n_faces=len(found.boxes), found_by=found.how)
    models = engine._models()
    boxes, pixels = found.encode_boxes, found.pixels
    if not boxes:
        # The CNN detector as a fallback: what it would add, and at what cost.
        t = time.perf_counter()
        cnn = _cnn()(rgb, 1 if max(rgb.shape[:2]) < 800 else 0)
        out["t_cnn"] = time.perf_counter() - t
        if len(cnn):
            r = max(cnn, key=lambda d: d.confidence).rect
            boxes = [engine.Box(top=max(r.top(), 0), right=min(r.right(), rgb.shape[1]),
                                bottom=min(r.bottom(), rgb.shape[0]), left=max(r.left(), 0))]
            out["found_by"] = "cnn"
    if not boxes:
        return out
    rgb = pixels
    box = boxes[_central(boxes, rgb.shape[1], rgb.shape[0])]
    rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
    t3 = time.perf_counter()
    shape = models.landmarks(rgb, rect)
    enc = np.asarray(models.encoder.compute_face_descriptor(rgb, shape, 1), dtype=np.float32)
    t4 = time.perf_counter()
    points = quality.landmark_points(shape)
    q = quality.measure(rgb, box, points, min_face_px=60)
    t5 = time.perf_counter()
    shape68 = _lm68()(rgb, rect)
    enc68 = np.asarray(models.encoder.compute_face_descriptor(rgb, shape68, 1), dtype=np.float32)
    t6 = time.perf_counter()
    out.update(box=(box.top, box.right, box.bottom, box.left), enc=enc, enc68=enc68, quality=q.as_dict(),
               t_encode=t4 - t3, t_quality=t5 - t4, t_encode68=t6 - t5)
    return out


def encode_plain(path: str) -> dict:
    """Plain face_recognition, as its README uses it: load_image_file, face_locations (HOG, one upsample),
    face_encodings; the face nearest the centre when there are several."""
    import face_recognition

    t0 = time.perf_counter()
    img = face_recognition.load_image_file(path)
    locations = face_recognition.face_locations(img)
    out: dict = {"path": path, "n_faces": len(locations)}
    if locations:
        boxes = [_BoxLike(*loc) for loc in locations]
        loc = locations[_central(boxes, img.shape[1], img.shape[0])]
        out["enc"] = np.asarray(face_recognition.face_encodings(img, [loc])[0], dtype=np.float32)
        out["box"] = tuple(loc)
    out["t_total"] = time.perf_counter() - t0
    return out


@dataclass(frozen=True)
class _BoxLike:
    top: int
    right: int
    bottom: int
    left: int


_extra: dict = {}


def _cnn():
    if "cnn" not in _extra:
        import dlib
        import face_recognition_models as frm
        _extra["cnn"] = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
    return _extra["cnn"]


def _lm68():
    if "lm68" not in _extra:
        import dlib
        import face_recognition_models as frm
        _extra["lm68"] = dlib.shape_predictor(frm.pose_predictor_model_location())
    return _extra["lm68"]


def _init() -> None:
    import warnings
    warnings.simplefilter("ignore")
    from bot.faces import engine
    engine._init_worker()


def _cache_key(paths: list[Path]) -> str:
    h = hashlib.sha256(CACHE_VERSION.encode())
    for p in paths:
        h.update(str(p).encode())
        h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def encodings(dev: DevSet, *, workers: int = 2, progress: bool = True, plain: bool = False) -> dict[str, dict]:
    """{path: encode_one(path)} (or encode_plain with plain=True) for every photo of the dev set, from the cache
    when it is current."""
    import pickle

    paths = dev.all_paths()
    OUT.mkdir(exist_ok=True)
    cache = OUT / f"devset-{'plain-' if plain else ''}{_cache_key(paths)}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    os.environ.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    results: dict[str, dict] = {}
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init) as pool:
        work = encode_plain if plain else encode_one
        for i, r in enumerate(pool.map(work, [str(p) for p in paths], chunksize=8), start=1):
            results[r["path"]] = r
            if progress and i % 200 == 0:
                print(f"  encoded {i}/{len(paths)} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    tmp = cache.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(results))
    os.replace(tmp, cache)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    dev = load(dev_root())
    started = time.perf_counter()
    res = encodings(dev, workers=args.workers)
    plain = encodings(dev, workers=args.workers, plain=True)
    print(f"plain face_recognition: a face in {sum(1 for r in plain.values() if 'enc' in r)}")
    found = sum(1 for r in res.values() if "enc" in r)
    by = {}
    for r in res.values():
        by[r.get("found_by", "none") if "enc" in r else "none"] = by.get(r.get("found_by", "none") if "enc" in r else "none", 0) + 1
    print(f"{len(res)} photos, a face in {found}; found by {by}; {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
