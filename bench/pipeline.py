"""Pipeline choices by measurement: what each alternative does to FNIR at the operating point, and its cost.

    BOT_DEV_FACES=/abs/path/shared/faces-dev .venv/bin/python -m bench.pipeline [--workers 2]

On every dev-set photo, for the face the bot's detector finds nearest the centre, it computes the encoding
several ways, timing each: one pass of the network (plain face_recognition's way), the mirror average (the
bot's), dlib's random jitter (5 passes), 68-point alignment, detection always upsampled once (plain
face_recognition's default), and the CNN detector where HOG found nothing. Each variant is then searched with
the protocol and the calibrated decision of bench/accuracy.py (every gallery calibrated on itself) at
target FPIR 1 %. Cached in bench/out/ like bench/devset.py.
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench import devset

VERSION = "1"
VARIANTS = {
    "single": "one network pass (plain face_recognition's encoding)",
    "mirror": "mirror-averaged (the bot's default)",
    "jitter5": "dlib's random jitter, 5 passes (not reproducible)",
    "lm68": "68-point alignment, mirror-averaged",
    "up1": "detection always upsampled once, mirror-averaged",
    "cnn": "mirror-averaged, plus the CNN detector where HOG finds nothing",
}
_extra: dict = {}


def _model(name: str):
    if name not in _extra:
        import warnings

        import dlib
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import face_recognition_models as frm
        _extra["lm68"] = dlib.shape_predictor(frm.pose_predictor_model_location())
        _extra["cnn"] = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
    return _extra[name]


def variants_one(path: str) -> dict:
    """Every variant's encoding of one photo's central face, and what each stage cost (seconds)."""
    import dlib

    from bot.faces import detection
    from bot.faces.images import decode_image
    from bot.faces.models import dlib_resnet

    models = dlib_resnet.load()
    rgb = decode_image(Path(path).read_bytes(), max_bytes=1 << 30, max_pixels=1 << 30)
    out: dict = {"path": path, "t": {}}

    def chip_of(image, shape):
        return dlib.get_face_chip(image, shape, size=dlib_resnet.CHIP_SIZE, padding=dlib_resnet.CHIP_PADDING)

    def mirror(chip):
        return dlib_resnet.mirror_averaged(chip[None])[0]

    t = time.perf_counter()
    found = detection.find_boxes(rgb)
    out["t"]["detect"] = time.perf_counter() - t
    t = time.perf_counter()
    up = detection.hog()(rgb, 1)
    out["t"]["detect_up1"] = time.perf_counter() - t
    if not found.boxes:
        t = time.perf_counter()
        cnn = _model("cnn")(rgb, 1 if max(rgb.shape[:2]) < 800 else 0)
        out["t"]["cnn"] = time.perf_counter() - t
        if len(cnn):
            r = max(cnn, key=lambda d: d.confidence).rect
            shape = models.landmarks(rgb, r)
            out["cnn"] = mirror(chip_of(rgb, shape))
        return out
    boxes = found.encode_boxes
    b = boxes[devset._central(boxes, found.pixels.shape[1], found.pixels.shape[0])]
    rect = dlib.rectangle(b.left, b.top, b.right, b.bottom)
    pixels = found.pixels
    shape = models.landmarks(pixels, rect)
    chip = chip_of(pixels, shape)
    t = time.perf_counter()
    out["single"] = models.encoder.descriptors(chip[None])[0]
    out["t"]["single"] = time.perf_counter() - t
    t = time.perf_counter()
    out["mirror"] = mirror(chip)
    out["t"]["mirror"] = time.perf_counter() - t
    out["cnn"] = out["mirror"]
    t = time.perf_counter()
    out["jitter5"] = models.encoder.descriptors(np.stack(dlib.jitter_image(chip, 5))).mean(axis=0)
    out["t"]["jitter5"] = time.perf_counter() - t
    t = time.perf_counter()
    out["lm68"] = mirror(chip_of(pixels, _model("lm68")(pixels, rect)))
    out["t"]["lm68"] = time.perf_counter() - t  # landmarks + chip + two passes
    if len(up):
        r = min(up, key=lambda r: (r.center().x - rgb.shape[1] / 2) ** 2 + (r.center().y - rgb.shape[0] / 2) ** 2)
        out["up1"] = mirror(chip_of(rgb, models.landmarks(rgb, r)))
    return out


def measure(dev: devset.DevSet, workers: int = 2) -> dict[str, dict]:
    """{path: variants_one(path)}, cached in bench/out/."""
    paths = dev.all_paths()
    key = hashlib.sha256((VERSION + devset.CACHE_VERSION + "".join(map(str, paths))).encode()).hexdigest()[:16]
    return devset.cached_map(devset.OUT / f"pipeline-{key}.pkl", variants_one, paths, workers=workers)


def main() -> int:
    from bench import accuracy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    dev = devset.load(devset.dev_root())
    started = time.perf_counter()
    res = measure(dev, args.workers)
    print(f"{len(res)} photos measured ({time.perf_counter() - started:.0f} s, cached after the first run)\n")

    def ms(name: str) -> str:
        values = [r["t"][name] for r in res.values() if name in r["t"]]
        return f"{1000 * statistics.median(values):.1f}" if values else "-"

    cost = {"single": ms("single"), "mirror": ms("mirror"), "jitter5": ms("jitter5"),
            "lm68": ms("lm68"), "up1": f"{ms('detect_up1')} (detection; HOG without upsampling {ms('detect')})",
            "cnn": f"{ms('cnn')} per photo HOG missed"}
    print("| variant | FNIR at the default (target FPIR 1 %), all folds | observed FPIR | median ms |")
    print("|---|---|---|---|")
    for name, label in VARIANTS.items():
        enc = {p: ({"enc": r[name]} if name in r else {}) for p, r in res.items()}
        ss, _ = accuracy.searches(dev, enc, "enc")
        miss, n_m, fp, n_n = accuracy.at_default(ss)
        print(f"| {label} | {accuracy.rate(miss, n_m)} | {accuracy.rate(fp, n_n)} | {cost[name]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
