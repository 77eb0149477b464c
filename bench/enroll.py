"""Enrollment throughput: bot.faces.enroll.enroll vs the `face_recognition --cpus 2` CLI, on the same photos.

    BOT_TEST_FACES=/abs/shared/faces BOT_DEV_FACES=/abs/shared/faces-dev .venv/bin/python -m bench.enroll \
        [--runs 2] [--workers 2] [--dev 600] [--no-rebuild | --only-rebuild]

Each image is encoded once by each side. The CLI is given one known photo and every image as its unknown
folder (flattened, one file per image), so it encodes each image once (plus the one known photo), as a user
of face_recognition would check a folder against a gallery; its wall time includes its own start and model
loading. enroll() runs into a fresh temp data dir each time (nothing is skipped as already enrolled); it is
timed including the face-worker start ("cold", as a `gallery enroll` command runs) and with the workers
already started ("warm"). Two sets: the shared people/ photos (large, varied) and, with BOT_DEV_FACES,
`--dev` dev-set crops (560×560, like mugshots). Throughput = images / wall time.

Then (with BOT_DEV_FACES, unless --no-rebuild) the `--dev` crops are enrolled once by `python -m bot gallery
enroll` into a temp data dir (BOT_DATA_DIR), their crops made what enrollment kept before the 320 px ones
(160 px, JPEG q85), and `python -m bot gallery thumbnails --rebuild` timed as a command (start, models, the
workers of the default settings, one audit entry per crop), the crops shrunk again before each run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bot.config import ImageSettings
from bot.faces.engine import FaceEngine
from bot.faces.enroll import enroll
from bot.faces.gallery import GALLERY_DIR, Gallery

REPO = Path(__file__).resolve().parent.parent


def _people_dir() -> Path:
    root = os.environ.get("BOT_TEST_FACES")
    if not root or not (Path(root) / "people").is_dir():
        sys.exit("set BOT_TEST_FACES to the shared faces folder (it must hold people/)")
    return Path(root) / "people"


def _dev_dir(count: int, dest: Path) -> Path | None:
    """dest/<person>/<photo> links to the first `count` dev-set photos (people/ then singles/), or None."""
    root = os.environ.get("BOT_DEV_FACES")
    if not root or count <= 0:
        return None
    photos = sorted(Path(root, "people").glob("*/*.jpg")) + sorted(Path(root, "singles").glob("*.jpg"))
    for photo in photos[:count]:
        folder = dest / photo.stem.rsplit("_", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(photo, folder / photo.name)
    return dest


def _flatten(people: Path, dest: Path) -> int:
    """Link people/<person>/<file> as dest/<person>__<file>; returns the image count."""
    dest.mkdir(parents=True)
    count = 0
    for path in sorted(people.glob("*/*")):
        if path.is_file():
            os.symlink(path.resolve(), dest / f"{path.parent.name}__{path.name}")
            count += 1
    return count


def run_cli(known: Path, unknown: Path) -> float:
    """Wall time of `face_recognition --cpus 2 known unknown` (the console script next to this Python)."""
    exe = Path(sys.executable).with_name("face_recognition")
    started = time.perf_counter()
    done = subprocess.run([str(exe), "--cpus", "2", str(known), str(unknown)],
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"face_recognition CLI failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def run_enroll(people: Path, workers: int, engine: FaceEngine | None) -> tuple[float, int]:
    """Wall time of one enroll() into a fresh data dir (starting a pool when `engine` is None); images added."""
    with tempfile.TemporaryDirectory(prefix="bench_enroll_") as tmp:
        started = time.perf_counter()
        own = engine is None
        eng = FaceEngine(ImageSettings(), workers=workers) if own else engine
        try:
            report = enroll(Gallery(Path(tmp) / "data"), eng, people, progress=False)
        finally:
            if own:
                eng.close()
        return time.perf_counter() - started, report.added


def compare(people: Path, label: str, runs: int, workers: int) -> None:
    """Both sides on one folder of <person>/<photos>; prints a markdown table."""
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        known, unknown = Path(tmp) / "known", Path(tmp) / "unknown"
        images = _flatten(people, unknown)
        known.mkdir()
        first = min(unknown.iterdir())
        shutil.copy(first, known / first.name)
        cli = statistics.median(run_cli(known, unknown) for _ in range(runs))

    cold_runs, added = [], 0
    for _ in range(runs):
        seconds, added = run_enroll(people, workers, None)
        cold_runs.append(seconds)
    cold = statistics.median(cold_runs)
    with FaceEngine(ImageSettings(), workers=workers) as engine:
        engine.start()
        warm = statistics.median(run_enroll(people, workers, engine)[0] for _ in range(runs))

    print(f"\n### Enrollment, {images} {label} (median of {runs} runs)\n")
    print("| method | wall time | images/s | vs CLI |")
    print("|---|---:|---:|---:|")
    print(f"| `face_recognition --cpus 2 known/ unknown/` (each image once) | {cli:.1f} s | {images / cli:.2f} | ×1 |")
    print(f"| `enroll()`, {workers} workers, incl. worker start | {cold:.1f} s | {images / cold:.2f} | "
          f"×{cli / cold:.1f} |")
    print(f"| `enroll()`, {workers} workers already started | {warm:.1f} s | {images / warm:.2f} | "
          f"×{cli / warm:.1f} |")
    print(f"\nenroll() added {added} of {images} images per run.")


def _bot(args: list[str], data_dir: Path) -> tuple[float, str]:
    """Wall time and summary line of `python -m bot ARGS` on `data_dir`; exits if it fails."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "BOT_DATA_DIR": str(data_dir),
                               # The bench's data dir is its runner's own, a shared account to the CLI
                               # (bot.request.identity): with no person behind it, the bench names itself.
                               "SUDO_USER": os.environ.get("SUDO_USER") or "bench"}, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-2000:]
        sys.exit(f"python -m bot {' '.join(args)} failed ({done.returncode}): {output}")
    return elapsed, done.stdout.strip().splitlines()[0]


def _shrink_crops(data_dir: Path) -> int:
    """Make a gallery's crops what enrollment kept before the 320 px ones (160 px, q85); returns how many."""
    paths = sorted((data_dir / GALLERY_DIR / "thumbs").glob("*.jpg"))
    for path in paths:
        with Image.open(path) as im:
            small = im.convert("RGB")
        small.thumbnail((160, 160))
        small.save(path, "JPEG", quality=85)
    return len(paths)


def rebuild(people: Path, label: str, runs: int) -> None:
    """`gallery enroll` once, then `gallery thumbnails --rebuild` of its shrunk crops, `runs` times."""
    images = sum(1 for path in people.glob("*/*") if path.is_file())
    with tempfile.TemporaryDirectory(prefix="bench_rebuild_") as tmp:
        data = Path(tmp) / "data"
        enrolled, enroll_line = _bot(["gallery", "enroll", str(people), "--no-progress"], data)
        walls, line, crops = [], "", 0
        for _ in range(runs):
            crops = _shrink_crops(data)
            seconds, line = _bot(["gallery", "thumbnails", "--rebuild", "--no-progress"], data)
            walls.append(seconds)
        wall = statistics.median(walls)

    print(f"\n### `gallery thumbnails --rebuild`, {label} (median of {runs} runs)\n")
    print("| command | wall time | images/s |")
    print("|---|---:|---:|")
    print(f"| `gallery enroll`, {images} images (once, to make the gallery) | {enrolled:.1f} s | "
          f"{images / enrolled:.2f} |")
    print(f"| `gallery thumbnails --rebuild`, {crops} crops of 160 px | {wall:.1f} s | {crops / wall:.2f} |")
    print(f"\nenroll: {enroll_line}\nrebuild (last run): {line}")


def main(argv: list[str] | None = None) -> None:
    """Run both side by side on the shared photos and on dev-set crops."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each (the median is reported)")
    parser.add_argument("--workers", type=int, default=2, help="enroll() face workers (the CLI gets --cpus 2)")
    parser.add_argument("--dev", type=int, default=600, help="dev-set crops to enroll too (0: none)")
    parser.add_argument("--rebuild", action=argparse.BooleanOptionalAction, default=True,
                        help="then time `gallery thumbnails --rebuild` on a gallery of the --dev crops")
    parser.add_argument("--only-rebuild", action="store_true", help="the --rebuild timing alone")
    args = parser.parse_args(argv)
    timed_rebuild = args.rebuild or args.only_rebuild
    if args.only_rebuild and not (os.environ.get("BOT_DEV_FACES") and args.dev > 0):
        sys.exit("--only-rebuild needs BOT_DEV_FACES and --dev > 0")
    if not args.only_rebuild:
        compare(_people_dir(), "shared people/ photos", args.runs, args.workers)
    with tempfile.TemporaryDirectory(prefix="bench_dev_") as tmp:
        dev = _dev_dir(args.dev, Path(tmp) / "dev")
        if dev is not None and not args.only_rebuild:
            compare(dev, "dev-set crops (560×560)", args.runs, args.workers)
        if dev is not None and timed_rebuild:
            rebuild(dev, f"{args.dev} dev-set crops (560×560)", args.runs)


if __name__ == "__main__":
    main()
