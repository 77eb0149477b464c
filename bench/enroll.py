"""Enrollment throughput per face model, cold: `python -m bot gallery enroll --model ID` against the
`face_recognition --cpus 2` CLI, on the same images, each encoded once by each.

    BOT_TEST_FACES=/abs/shared/faces BOT_DEV_FACES=/abs/shared/faces-dev .venv/bin/python -m bench.enroll \
        [--runs 5] [--workers 2] [--dev 600] [--no-people] [--no-warm] [--no-rebuild | --only-rebuild]

Cold (CONTRACTS ### 12): every run is a fresh process on each side and its whole wall time counts: the bot's
command with its start, imports, face workers (`--workers`, 2 by default, through a copy of
config/settings.toml with `[faces] workers` set), weights, gallery commit, calibration and audit entries, into
a fresh temp data dir (nothing is skipped as already enrolled); the CLI with its own start and model loading,
given one known photo and every image as its unknown folder (flattened, one file per image), so it encodes
each image once (plus the one known photo), as a user of face_recognition would check a folder against a
gallery. The sides run in rounds, interleaved (the order rotates each round), so load from other jobs on the
shared cores hits all alike; the ratio is reported as the ratio of the medians and per round. Throughput =
images / wall time. The target (issue 16): the bot's enrollment at least 4x the CLI's throughput.

Sets: `--dev` dev-set photos (the first ones of people/ then singles/: 560x560 crops, like mugshots) when
BOT_DEV_FACES is set, and the shared people/ photos (large, varied; --no-people leaves them out). With --warm
(the default), each model's enroll() is also timed with its face workers already started, for where the time
goes (no target).

Then (with BOT_DEV_FACES, unless --no-rebuild) the `--dev` crops are enrolled once by `python -m bot gallery
enroll` into a temp data dir (BOT_DATA_DIR), their crops made what enrollment kept before the 320 px ones
(160 px, JPEG q85), and `python -m bot gallery thumbnails --rebuild` timed as a command (start, models, the
workers of the default settings, one audit entry per crop), the crops shrunk again before each run.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bot.config import FACE_MODELS, ImageSettings
from bot.faces.engine import FaceEngine
from bot.faces.enroll import enroll
from bot.faces.gallery import GALLERY_DIR, Gallery

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 4.0


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


def run_enroll(people: Path, engine: FaceEngine) -> tuple[float, int]:
    """Wall time of one enroll() with `engine`'s workers already started, into a fresh data dir; images added."""
    with tempfile.TemporaryDirectory(prefix="bench_enroll_") as tmp:
        started = time.perf_counter()
        report = enroll(Gallery(Path(tmp) / "data"), engine, people, progress=False)
        return time.perf_counter() - started, report.added


def workers_config(workers: int, dest: Path) -> Path:
    """A copy of config/settings.toml with `[faces] workers = N` (what `gallery enroll` starts), at `dest`."""
    text = (REPO / "config" / "settings.toml").read_text()
    text, n = re.subn(r"(?m)^workers = \d+$", f"workers = {workers}", text, count=1)
    if n != 1:
        sys.exit("config/settings.toml has no `workers = N` line under [faces] to set for the bench")
    dest.write_text(text)
    return dest


def run_bot_enroll(people: Path, model: str, config: Path) -> tuple[float, str]:
    """Wall time and summary line of `python -m bot gallery enroll DIR --model ID` into a fresh data dir."""
    with tempfile.TemporaryDirectory(prefix="bench_enroll_") as tmp:
        return _bot(["gallery", "enroll", str(people), "--model", model, "--no-progress"], Path(tmp) / "data",
                    config=config)


def compare(people: Path, label: str, runs: int, workers: int, model_ids: list[str], warm: bool) -> list[str]:
    """The CLI and each model's cold `gallery enroll` on one folder of <person>/<photos>, in interleaved rounds;
    prints a markdown table and returns the target lines."""
    sides = ["cli", *model_ids]
    walls: dict[str, list[float]] = {side: [] for side in sides}
    lines: dict[str, str] = {}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        known, unknown = Path(tmp) / "known", Path(tmp) / "unknown"
        images = _flatten(people, unknown)
        known.mkdir()
        first = min(unknown.iterdir())
        shutil.copy(first, known / first.name)
        config = workers_config(workers, Path(tmp) / "settings.toml")
        for r in range(runs):
            for side in sides[r % len(sides):] + sides[:r % len(sides)]:  # the order rotates each round
                if side == "cli":
                    walls[side].append(run_cli(known, unknown))
                else:
                    seconds, lines[side] = run_bot_enroll(people, side, config)
                    walls[side].append(seconds)
    warm_walls: dict[str, float] = {}
    if warm:
        for m in model_ids:
            with FaceEngine(ImageSettings(), workers=workers, model=m) as engine:
                engine.start()
                warm_walls[m] = statistics.median(run_enroll(people, engine)[0] for _ in range(runs))
    load_end = os.getloadavg()[0]

    cli = statistics.median(walls["cli"])
    print(f"\n### Enrollment, {images} {label}, cold (median of {runs} interleaved rounds; load average "
          f"{load_start:.1f} at start, {load_end:.1f} at end; {os.cpu_count()} CPUs)\n")
    print("| method | wall time | images/s | vs CLI (ratio of medians) | per round |")
    print("|---|---:|---:|---:|---|")
    print(f"| `face_recognition --cpus 2 known/ unknown/` (each image once) | {cli:.1f} s | {images / cli:.2f} | "
          f"×1 | {', '.join(f'{w:.1f} s' for w in walls['cli'])} |")
    targets = []
    for m in model_ids:
        wall = statistics.median(walls[m])
        per_round = [c / w for c, w in zip(walls["cli"], walls[m])]
        print(f"| `python -m bot gallery enroll --model {m}`, {workers} workers | {wall:.1f} s | "
              f"{images / wall:.2f} | ×{cli / wall:.2f} | {', '.join(f'×{x:.2f}' for x in per_round)} "
              f"(median ×{statistics.median(per_round):.2f}) |")
        met = cli / wall >= TARGET_RATIO
        targets.append(f"- {m}, {images} {label}: enrollment >= {TARGET_RATIO:g}x the throughput of "
                       f"`face_recognition --cpus 2`, cold: **{'met' if met else 'missed'}** (×{cli / wall:.2f}; "
                       f"rounds ×{min(per_round):.2f}–×{max(per_round):.2f})")
    for m, wall in warm_walls.items():
        print(f"| `enroll()`, {m}, {workers} workers already started (no target) | {wall:.1f} s | "
              f"{images / wall:.2f} | ×{cli / wall:.2f} | |")
    for m in model_ids:
        print(f"\n`gallery enroll --model {m}` (last round): {lines[m]}")
    return targets


def _bot(args: list[str], data_dir: Path, config: Path | None = None) -> tuple[float, str]:
    """Wall time and summary line of `python -m bot ARGS` on `data_dir` (and the settings file `config`); exits
    if it fails."""
    extra = {"BOT_CONFIG": str(config)} if config is not None else {}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **extra, "BOT_DATA_DIR": str(data_dir),
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
    """Each model's enrollment against the CLI on dev-set crops and the shared photos, then the crop rebuild."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds (the median is reported)")
    parser.add_argument("--workers", type=int, default=2, help="the bot's face workers (the CLI gets --cpus 2)")
    parser.add_argument("--model", action="append", choices=FACE_MODELS,
                        help="a face model to time (repeatable; default: every model)")
    parser.add_argument("--dev", type=int, default=600, help="dev-set crops to enroll (0: none)")
    parser.add_argument("--people", action=argparse.BooleanOptionalAction, default=True,
                        help="the shared people/ photos too")
    parser.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                        help="also time enroll() with its workers already started")
    parser.add_argument("--rebuild", action=argparse.BooleanOptionalAction, default=True,
                        help="then time `gallery thumbnails --rebuild` on a gallery of the --dev crops")
    parser.add_argument("--only-rebuild", action="store_true", help="the --rebuild timing alone")
    args = parser.parse_args(argv)
    model_ids = args.model or list(FACE_MODELS)
    timed_rebuild = args.rebuild or args.only_rebuild
    if args.only_rebuild and not (os.environ.get("BOT_DEV_FACES") and args.dev > 0):
        sys.exit("--only-rebuild needs BOT_DEV_FACES and --dev > 0")
    targets: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_dev_") as tmp:
        dev = _dev_dir(args.dev, Path(tmp) / "dev")
        if dev is not None and not args.only_rebuild:
            targets += compare(dev, "dev-set crops (560×560)", args.runs, args.workers, model_ids, args.warm)
        if args.people and not args.only_rebuild:
            targets += compare(_people_dir(), "shared people/ photos", args.runs, args.workers, model_ids,
                               args.warm)
        if targets:
            print("\n### Target (issue 16)\n\n" + "\n".join(targets))
        if dev is not None and timed_rebuild:
            rebuild(dev, f"{args.dev} dev-set crops (560×560)", args.runs)


if __name__ == "__main__":
    main()
