"""The development face set ($BOT_DEV_FACES): its layout, the open-set folds, and cached encodings.

    BOT_DEV_FACES=/abs/path/shared/faces-dev .venv/bin/python -m bench.devset [--workers 2]

Encodes every photo once with the bot's own pipeline (bot.faces.engine.find_faces: HOG detection, upsampling
only when nothing is found, a padded copy when even that finds nothing, 5-point alignment, the mirror-averaged
ResNet descriptor), and once with plain face_recognition (load_image_file, face_locations, face_encodings),
keeping the time of each stage. The caches live in bench/out/ (git-ignored) and are reused while the file list
and CACHE_VERSION match, so a sweep of decision rules takes seconds. bench/pipeline.py measures the
alternatives (jitter, 68-point alignment, the CNN detector) on the same photos.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_VERSION = "3"  # change with the pipeline (bot.faces.engine)
PLAIN_VERSION = "1"  # plain face_recognition's cache: changes only with this file's encode_plain
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


def encode_one(path: str, model: str = "dlib-resnet") -> dict:
    """The bot's own pipeline (bot.faces.engine.find_faces with `model`) on one photo: the face nearest the
    centre, its encoding, quality and how it was found, and the time of each stage."""
    from bot.faces import engine
    from bot.faces.images import decode_image

    out: dict = {"path": path}
    t0 = time.perf_counter()
    data = Path(path).read_bytes()
    rgb = decode_image(data, max_bytes=1 << 30, max_pixels=1 << 30)
    t1 = time.perf_counter()
    faces = engine.find_faces(rgb, model=model)
    t2 = time.perf_counter()
    out.update(t_decode=t1 - t0, t_faces=t2 - t1, n_faces=len(faces))
    if faces:
        face = faces[_central([f.box for f in faces], rgb.shape[1], rgb.shape[0])]
        out.update(box=(face.box.top, face.box.right, face.box.bottom, face.box.left), enc=face.encoding,
                   quality=face.quality.as_dict(), found_by=face.found_by)
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


def _init(model: str = "dlib-resnet") -> None:
    import warnings
    warnings.simplefilter("ignore")
    from bot.faces import engine
    engine._init_worker(model)


def _cache_key(paths: list[Path], version: str = CACHE_VERSION) -> str:
    h = hashlib.sha256(version.encode())
    for p in paths:
        h.update(str(p).encode())
        h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def cached_map(cache: Path, work, paths: list[Path], *, workers: int = 2, progress: bool = True,
               model: str = "dlib-resnet") -> dict[str, dict]:
    """{path: work(path)} for every path, computed in spawned bot face workers and pickled to `cache`; read
    from `cache` when it exists (the callers put a key of the inputs into its name)."""
    import pickle

    if cache.exists():
        return pickle.loads(cache.read_bytes())
    OUT.mkdir(exist_ok=True)
    os.environ.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    results: dict[str, dict] = {}
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                             initargs=(model,)) as pool:
        for i, r in enumerate(pool.map(work, [str(p) for p in paths], chunksize=8), start=1):
            results[r["path"]] = r
            if progress and i % 200 == 0:
                print(f"  {i}/{len(paths)} photos ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    tmp = cache.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(results))
    os.replace(tmp, cache)
    return results


def encodings(dev: DevSet, *, workers: int = 2, progress: bool = True, plain: bool = False,
              model: str = "dlib-resnet") -> dict[str, dict]:
    """{path: encode_one(path, model)} (or encode_plain with plain=True) for every photo of the dev set, from the
    cache when it is current (one cache per model and model version)."""
    from bot.faces import models

    paths = dev.all_paths()
    if plain:
        return cached_map(OUT / f"devset-plain-{_cache_key(paths, PLAIN_VERSION)}.pkl", encode_plain, paths,
                          workers=workers, progress=progress)
    m = models.get(model)
    # dlib-resnet keeps the cache name it always had; another model's cache carries its id and version.
    version = CACHE_VERSION if m.id == "dlib-resnet" else f"{CACHE_VERSION}-{m.id}-{m.version}"
    cache = OUT / (f"devset-{_cache_key(paths)}.pkl" if m.id == "dlib-resnet"
                   else f"devset-{m.id}-{_cache_key(paths, version)}.pkl")
    return cached_map(cache, functools.partial(encode_one, model=m.id), paths, workers=workers, progress=progress,
                      model=m.id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default="dlib-resnet", help="the bot's face model to encode with")
    args = parser.parse_args()
    dev = load(dev_root())
    started = time.perf_counter()
    res = encodings(dev, workers=args.workers, model=args.model)
    plain = encodings(dev, workers=args.workers, plain=True)
    print(f"plain face_recognition: a face in {sum(1 for r in plain.values() if 'enc' in r)}")
    found = sum(1 for r in res.values() if "enc" in r)
    by: dict[str, int] = {}
    for r in res.values():
        key = r.get("found_by", "none") if "enc" in r else "none"
        by[key] = by.get(key, 0) + 1
    print(f"{len(res)} photos, a face in {found}; found by {by}; {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
