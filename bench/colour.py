"""Colour photos ($BOT_TEST_FACES, ../shared/faces) per face model: faces found, and photo pairs matched at each
model's default ceiling.

    BOT_TEST_FACES=/abs/shared/faces .venv/bin/python -m bench.colour

The dev set is grayscale; these photos are colour (one a 32-bit RGBA PNG), from 320×240 to 1080p, one to three
faces. Each model runs the bot's whole probe pipeline (bot.faces.engine.analyse_bytes: decode guards, EXIF
orientation, detection with its retries, alignment, the template, quality), in this process; plain
face_recognition (load_image_file, face_locations, face_encodings: its README's way) runs beside it for
reference.

- Faces found, per folder (people/, group/, odd/): how many faces each found, and in how many photos the `sface`
  model found dlib-resnet's faces (today's: the same number of faces, each overlapping by box IoU >= 0.5:
  bench.model_pipeline.same_faces).
- Pairs: every two photos of people/ (each one person's photo; the largest face), except two sizes of one shot
  (bench.sface_choice.shot_key), among the photos where every matcher found a face. A pair matches when the
  distance is at most the model's default hard ceiling (bot.config SearchSettings().threshold_for; plain
  face_recognition at its default tolerance 0.6, and 0.55): same-person pairs should match, different-person
  pairs should not. A 1:1 reading of the ceiling alone; the bot's search adds the calibrated decision on top.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

from bench.model_pipeline import MODELS, faces_root, same_faces
from bench.sface_choice import shot_key
from bot.config import ImageSettings, SearchSettings
from bot.faces import models
from bot.faces.engine import Probe, analyse_bytes, load_model

FOLDERS = ("people", "group", "odd")
PLAIN = "plain face_recognition"
PLAIN_TOLERANCES = (0.6, 0.55)


def photos(root: Path, folder: str) -> list[Path]:
    """The photos of one folder of the shared faces (people/ has one folder per person)."""
    pattern = "*/*" if folder == "people" else "*"
    return sorted(p for p in (root / folder).glob(pattern) if p.is_file())


def plain_faces(path: Path) -> tuple[int, np.ndarray | None]:
    """Plain face_recognition on one photo: (faces found, the largest face's encoding or None)."""
    import face_recognition

    img = face_recognition.load_image_file(str(path))
    locations = face_recognition.face_locations(img)
    if not locations:
        return 0, None
    largest = max(locations, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    return len(locations), np.asarray(face_recognition.face_encodings(img, [largest])[0], dtype=np.float32)


def largest(probe: Probe) -> np.ndarray | None:
    """The template of a probe's largest face."""
    if not probe.faces:
        return None
    return max(probe.faces, key=lambda f: f.box.width * f.box.height).encoding


def found_table(root: Path, images: ImageSettings) -> dict[Path, dict[str, np.ndarray | None]]:
    """Prints the faces-found table; returns each people/ photo's largest-face template per matcher."""
    print("### Faces found on the colour photos\n")
    print(f"| folder | photos | {' | '.join(f'faces, {m}' for m in MODELS)} | faces, {PLAIN} | "
          "sface finds dlib-resnet's faces (IoU >= 0.5) |")
    print("|---|---:|" + "---:|" * (len(MODELS) + 1) + "---|")
    templates: dict[Path, dict[str, np.ndarray | None]] = {}
    notes = []
    for folder in FOLDERS:
        paths = photos(root, folder)
        counts = {m: 0 for m in (*MODELS, PLAIN)}
        same = same_count = 0
        for path in paths:
            data = path.read_bytes()
            probes = {m: analyse_bytes(data, images, model=m) for m in MODELS}
            n_plain, plain_template = plain_faces(path)
            for m in MODELS:
                counts[m] += len(probes[m].faces)
            counts[PLAIN] += n_plain
            if same_faces(probes["dlib-resnet"], probes["sface"]):
                same += 1
                same_count += len(probes["dlib-resnet"].faces)
            found = {m: len(probes[m].faces) for m in MODELS} | {PLAIN: n_plain}
            if len(set(found.values())) > 1 or not same_faces(probes["dlib-resnet"], probes["sface"]):
                by = ",".join(f.found_by for f in probes["sface"].faces) or "none"
                notes.append(f"{folder}/{path.relative_to(root / folder)}: "
                             + ", ".join(f"{k} {v}" for k, v in found.items()) + f" (sface found by {by})")
            if folder == "people":
                templates[path] = {m: largest(probes[m]) for m in MODELS} | {PLAIN: plain_template}
        print(f"| {folder}/ | {len(paths)} | " + " | ".join(str(counts[m]) for m in (*MODELS, PLAIN))
              + f" | {same}/{len(paths)} photos ({same_count} faces) |")
    if notes:
        print("\nWhere the matchers differ:\n" + "\n".join(f"- {n}" for n in notes))
    return templates


def pairs_table(templates: dict[Path, dict[str, np.ndarray | None]]) -> None:
    """Prints same-person and different-person pairs of people/ matched at each default ceiling."""
    usable = [p for p, t in templates.items() if all(v is not None for v in t.values())]
    pairs = [(a, b) for a, b in itertools.combinations(usable, 2) if shot_key(a) != shot_key(b)]
    n_same = sum(1 for a, b in pairs if a.parent == b.parent)
    settings = SearchSettings()
    rows = [(m, settings.threshold_for(m), models.get(m).distance) for m in MODELS]
    rows += [(PLAIN, t, lambda many, one: np.linalg.norm(many - one, axis=1)) for t in PLAIN_TOLERANCES]
    print(f"\n### Pairs of people/ photos at each default ceiling\n\n{len(usable)} of {len(templates)} photos with a "
          f"face for every matcher; {len(pairs)} pairs ({n_same} same-person, {len(pairs) - n_same} "
          "different-person; two sizes of one shot are not paired).\n")
    print("| matcher | ceiling | same-person pairs matched | different-person pairs kept apart | same-person: "
          "largest distance | different-person: smallest distance |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ceiling, distance in rows:
        same, diff = [], []
        for a, b in pairs:
            d = float(distance(np.asarray([templates[a][name]]), np.asarray(templates[b][name]))[0])
            (same if a.parent == b.parent else diff).append(d)
        print(f"| {name} | {ceiling:g} | {sum(d <= ceiling for d in same)}/{len(same)} | "
              f"{sum(d > ceiling for d in diff)}/{len(diff)} | {max(same):.3f} | {min(diff):.3f} |")


def main(argv: list[str] | None = None) -> int:
    """Print both tables (markdown)."""
    import cv2

    cv2.setNumThreads(1)
    root = faces_root()
    if not (root / "people").is_dir():
        sys.exit(f"no people/ under {root}: set BOT_TEST_FACES to the shared faces folder")
    for m in MODELS:
        load_model(m)
    templates = found_table(root, ImageSettings())
    pairs_table(templates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
