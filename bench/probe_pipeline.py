"""Probe pipeline: plain face_recognition vs ours, side by side on every photo in people/ (and the groups).

    .venv/bin/python -m bench.probe_pipeline [--repeats 3] [--detect-max-side N]

plain = `load_image_file(path)` + `face_locations(img)` + `face_encodings(img, locations)`, all defaults
(HOG upsampled once on the full image). ours = read the bytes + `analyse_bytes` (guards, EXIF orientation,
HOG on a copy of at most `detect_max_side` px, encodings from full resolution). Both run in this process,
one after the other on each photo, `--repeats` times; per photo the median, then the median over photos.
"Same faces" compares the face counts, and the largest encoding distance between our face and plain's
nearest one (small when the boxes agree). The 1080p shot is reported on its own line as well.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import ImageFile

from bot.config import ImageSettings
from bot.faces.engine import analyse_bytes

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 250


def faces_root() -> Path:
    """$BOT_TEST_FACES, else ../shared/faces next to the repository."""
    return Path(os.environ.get("BOT_TEST_FACES") or ROOT.parent / "shared" / "faces")


def _plain():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
        import face_recognition
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # its import flips this for the process
    return face_recognition


def _time(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - start) * 1000, out


def measure(paths: list[Path], images: ImageSettings, repeats: int) -> list[dict]:
    """Per photo: median ms of each pipeline, face counts and the largest encoding distance."""
    fr = _plain()

    def plain(path: Path):
        img = fr.load_image_file(path)
        return fr.face_encodings(img, fr.face_locations(img))

    def ours(path: Path):
        return analyse_bytes(path.read_bytes(), images)

    # Load both model sets before timing anything.
    plain(paths[0])
    ours(paths[0])
    rows = []
    for path in paths:
        plain_ms, ours_ms = [], []
        for _ in range(repeats):  # interleaved, so load from other jobs hits both alike
            ms, plain_out = _time(plain, path)
            plain_ms.append(ms)
            ms, probe = _time(ours, path)
            ours_ms.append(ms)
        dist = None
        if plain_out and probe.faces:
            ref = np.asarray(plain_out)
            dist = max(float(np.min(np.linalg.norm(ref - f.encoding, axis=1))) for f in probe.faces)
        rows.append(
            {
                "image": f"{path.parent.name}/{path.name}",
                "plain_ms": statistics.median(plain_ms),
                "ours_ms": statistics.median(ours_ms),
                "plain_faces": len(plain_out),
                "ours_faces": len(probe.faces),
                "dist": dist,
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    """The per-photo markdown table."""
    lines = [
        "| image | plain ms | ours ms | speed-up | faces plain / ours | max enc. distance |",
        "|---|---:|---:|---:|:---:|---:|",
    ]
    for r in rows:
        dist = "–" if r["dist"] is None else f"{r['dist']:.3f}"
        same = "" if r["plain_faces"] == r["ours_faces"] else " ✗"
        lines.append(
            f"| {r['image']} | {r['plain_ms']:.0f} | {r['ours_ms']:.0f} | {r['plain_ms'] / r['ours_ms']:.1f}× "
            f"| {r['plain_faces']} / {r['ours_faces']}{same} | {dist} |"
        )
    return "\n".join(lines)


def summary(label: str, rows: list[dict], target: bool = True) -> str:
    """One summary line: medians over the photos, ratio, target check, same face counts."""
    plain = statistics.median(r["plain_ms"] for r in rows)
    ours = statistics.median(r["ours_ms"] for r in rows)
    same = sum(r["plain_faces"] == r["ours_faces"] for r in rows)
    verdict = ("meets" if ours <= TARGET_MS else "MISSES") + f" ≤ {TARGET_MS} ms" if target else "–"
    return (
        f"| {label} | {len(rows)} | {plain:.0f} | {ours:.0f} | {plain / ours:.1f}× "
        f"| {verdict} | {same}/{len(rows)} |"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print markdown tables; returns 1 when face counts differ anywhere."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.probe_pipeline", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--detect-max-side", type=int, default=None, help="default: ImageSettings()")
    args = parser.parse_args(argv)
    images = ImageSettings()
    if args.detect_max_side:
        images = replace(images, detect_max_side=args.detect_max_side)

    root = faces_root()
    people = sorted(p for p in (root / "people").glob("*/*") if p.is_file())
    groups = sorted(p for p in (root / "group").glob("*") if p.is_file())
    if not people:
        raise SystemExit(f"no photos under {root / 'people'}: set BOT_TEST_FACES to the shared faces folder")

    print(
        f"detect_max_side={images.detect_max_side}, repeats={args.repeats}, cpus={os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f} at start\n"
    )
    rows = measure(people, images, args.repeats)
    group_rows = measure(groups, images, args.repeats) if groups else []
    hd = [r for r in rows if r["image"].endswith("obama-1080p.jpg")]

    print(table(rows + group_rows))
    print()
    print("| set | photos | plain median ms | ours median ms | speed-up | target | same face count |")
    print("|---|---:|---:|---:|---:|---|---:|")
    print(summary("people/", rows))
    if hd:
        print(summary("1080p (obama-1080p.jpg)", hd))
    if group_rows:
        print(summary("group/ (no target: several faces to encode)", group_rows, target=False))
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (2 cores: above ~1 means other jobs competed)")
    return 0 if all(r["plain_faces"] == r["ours_faces"] for r in rows + group_rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
