"""Probe pipeline per face model: `analyse_bytes` with dlib-resnet and with sface, side by side on every photo
in people/ (and the groups), as a face worker runs it (one BLAS thread, one OpenCV thread).

    BOT_TEST_FACES=../shared/faces .venv/bin/python -m bench.model_pipeline [--repeats 3]

Each photo is read from its bytes through the whole probe pipeline (decode guards, EXIF orientation, detection
with its retries, every face aligned and encoded, quality), the models interleaved `--repeats` times; per photo
the median, then the median over photos, against the issue's target (<= 150 ms on people/). "Same faces": each
of dlib-resnet's faces (today's) has an sface face of the same number whose box overlaps it by >= 0.5
(intersection over union), and no face is added.
"""
from __future__ import annotations

import os

# As in a face worker (bot.faces.engine.WORKER_ENV): numpy's BLAS reads these when it loads, so before the
# imports below; with more threads on 2 shared cores the ResNet's times swing several-fold.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse
import statistics
import time
from pathlib import Path

from bot.config import ImageSettings
from bot.faces import models
from bot.faces.engine import Probe, analyse_bytes, load_model

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150
MODELS = ("dlib-resnet", "sface")


def faces_root() -> Path:
    """$BOT_TEST_FACES, else ../shared/faces next to the repository."""
    return Path(os.environ.get("BOT_TEST_FACES") or ROOT.parent / "shared" / "faces")


def _iou(a, b) -> float:
    iw = max(0, min(a.right, b.right) - max(a.left, b.left))
    ih = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = iw * ih
    return inter / (a.width * a.height + b.width * b.height - inter)


def same_faces(today: Probe, other: Probe) -> bool:
    """The same number of faces, each of today's overlapped >= 0.5 by the other's face of the same number."""
    return len(today.faces) == len(other.faces) and all(
        _iou(a.box, b.box) >= 0.5 for a, b in zip(today.faces, other.faces))


def measure(paths: list[Path], images: ImageSettings, repeats: int) -> list[dict]:
    """Per photo: median ms per model, its faces, how they were found, and whether sface found today's."""
    rows = []
    for path in paths:
        data = path.read_bytes()
        ms: dict[str, list[float]] = {m: [] for m in MODELS}
        probes: dict[str, Probe] = {}
        for _ in range(repeats):  # interleaved, so load from other jobs hits both alike
            for m in MODELS:
                start = time.perf_counter()
                probes[m] = analyse_bytes(data, images, model=m)
                ms[m].append((time.perf_counter() - start) * 1000)
        rows.append({"image": f"{path.parent.name}/{path.name}", **{m: statistics.median(ms[m]) for m in MODELS},
                     "faces": {m: len(probes[m].faces) for m in MODELS},
                     "found_by": ",".join(f.found_by for f in probes["sface"].faces) or "–",
                     "same": same_faces(probes["dlib-resnet"], probes["sface"])})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| image | dlib-resnet ms | sface ms | faces dlib / sface | sface found by | same faces |",
             "|---|---:|---:|:---:|---|:---:|"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['dlib-resnet']:.0f} | {r['sface']:.0f} | {r['faces']['dlib-resnet']} / "
                     f"{r['faces']['sface']} | {r['found_by']} | {'yes' if r['same'] else 'NO'} |")
    return "\n".join(lines)


def summary(label: str, rows: list[dict], target: bool = True) -> str:
    med = {m: statistics.median(r[m] for r in rows) for m in MODELS}
    verdict = ("meets" if med["sface"] <= TARGET_MS else "MISSES") + f" ≤ {TARGET_MS} ms" if target else "–"
    same = sum(r["same"] for r in rows)
    return (f"| {label} | {len(rows)} | {med['dlib-resnet']:.0f} | {med['sface']:.0f} | {verdict} | "
            f"{same}/{len(rows)} photos, {sum(r['faces']['dlib-resnet'] for r in rows if r['same'])} faces |")


def main(argv: list[str] | None = None) -> int:
    """Print the tables; returns 1 when sface misses a face today's engine finds."""
    parser = argparse.ArgumentParser(prog="python -m bench.model_pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    images = ImageSettings()
    root = faces_root()
    people = sorted(p for p in (root / "people").glob("*/*") if p.is_file())
    groups = sorted(p for p in (root / "group").glob("*") if p.is_file())
    if not people:
        raise SystemExit(f"no photos under {root / 'people'}: set BOT_TEST_FACES to the shared faces folder")
    for m in MODELS:  # weights loaded, and each model's first call made, before anything is timed
        load_model(m)
        analyse_bytes(people[0].read_bytes(), images, model=m)
    print(f"repeats={args.repeats}, cpus={os.cpu_count()}, one BLAS and one OpenCV thread (as a face worker), "
          f"load average {os.getloadavg()[0]:.1f} at start")
    for m in MODELS:
        r = models.record(m)
        print(f"- {m}: version {r['version']}, runtime {r['runtime']}, weights SHA-256 {r['weights_sha256'][:16]}…")
    print()
    rows = measure(people, images, args.repeats)
    group_rows = measure(groups, images, args.repeats) if groups else []
    print(table(rows + group_rows))
    print()
    print("| set | photos | dlib-resnet median ms | sface median ms | target (sface) | same faces found |")
    print("|---|---:|---:|---:|---|---|")
    print(summary("people/", rows))
    if group_rows:
        print(summary("group/ (no target: several faces to encode)", group_rows, target=False))
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (2 cores: above ~1 means other jobs competed)")
    return 0 if all(r["same"] for r in rows + group_rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
