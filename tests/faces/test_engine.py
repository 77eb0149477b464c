"""The face engine on real faces: counts, numbering, quality, encodings, and the process pool."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.config import ImageSettings
from bot.faces import detection
from bot.faces import engine as engine_mod
from bot.faces.engine import (
    CROP_PX,
    MODEL_NAME,
    Box,
    FaceEngine,
    Probe,
    analyse_bytes,
    face_thumbnail,
    find_faces,
    model_info,
)
from bot.faces.images import ImageError, decode_image, sha256_hex

IMAGES = ImageSettings()
LIMITS = {"max_bytes": IMAGES.max_bytes, "max_pixels": IMAGES.max_pixels}


def _person(path: Path) -> str:
    return path.parent.name


@pytest.fixture(scope="session")
def engine():
    eng = FaceEngine(IMAGES, workers=2)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def people(faces_dir: Path) -> dict[Path, Probe]:
    """Every photo in people/, analysed once for the session (in-process: the pool's workers are niced
    and crawl when other jobs share the machine)."""
    paths = sorted(p for p in (faces_dir / "people").glob("*/*") if p.is_file())
    return {p: analyse_bytes(p.read_bytes(), IMAGES) for p in paths}


def test_every_people_photo_yields_exactly_one_face(people: dict[Path, Probe]):
    for path, probe in people.items():
        assert isinstance(probe, Probe), f"{path}: {probe}"
        assert len(probe.faces) == 1, f"{path.name}: {len(probe.faces)} faces"
        face = probe.faces[0]
        assert face.index == 1
        assert face.encoding.dtype == np.float32 and face.encoding.shape == (128,)
        # Boxes are in pixels of the full image, clipped to it.
        b = face.box
        assert 0 <= b.left < b.right <= probe.width and 0 <= b.top < b.bottom <= probe.height
        assert face.size == b.right - b.left


def test_probe_records_hash_and_dimensions(faces_dir: Path, people: dict[Path, Probe]):
    path = faces_dir / "people" / "obama" / "obama-1080p.jpg"
    probe = people[path]
    assert probe.sha256 == sha256_hex(path.read_bytes())
    assert (probe.width, probe.height) == (1920, 1080)


def test_same_person_is_closer_than_different_people(people: dict[Path, Probe]):
    same, different = [], []
    for (a, pa), (b, pb) in itertools.combinations(people.items(), 2):
        d = float(np.linalg.norm(pa.faces[0].encoding - pb.faces[0].encoding))
        (same if _person(a) == _person(b) else different).append(d)
    assert same and different
    assert max(same) < min(different)


@pytest.mark.parametrize(
    "name", ["people/kit_harington/john2.jpeg", "people/obama/obama-480p.jpg", "group/kit_with_rose.jpg"]
)
def test_encodings_match_plain_face_recognition(name: str, faces_dir: Path):
    """Same faces as plain face_recognition, and encodings within 0.2 of its: ours average the face and its
    mirror image and the boxes differ slightly (same-person distances here reach ~0.5, others start ~0.7)."""
    face_recognition = plain_face_recognition()
    path = faces_dir / name
    plain_img = face_recognition.load_image_file(path)
    plain = face_recognition.face_encodings(plain_img, face_recognition.face_locations(plain_img))
    ours = find_faces(decode_image(path.read_bytes(), **LIMITS), model="dlib-resnet")
    assert len(ours) == len(plain)
    for face in ours:
        assert float(np.min(np.linalg.norm(np.asarray(plain) - face.encoding, axis=1))) < 0.2


@pytest.mark.parametrize(
    "name, count", [("two_people.jpg", 2), ("kit_with_rose.jpg", 2), ("obama_and_biden.jpg", 3)]
)
def test_group_photos_number_faces_left_to_right(name: str, count: int, faces_dir: Path):
    rgb = decode_image((faces_dir / "group" / name).read_bytes(), **LIMITS)
    faces = find_faces(rgb)
    assert len(faces) == count
    assert [f.index for f in faces] == list(range(1, count + 1))
    lefts = [f.box.left for f in faces]
    assert lefts == sorted(lefts)
    entry = faces[0].as_dict()
    assert set(entry) == {"index", "box", "size", "quality"}  # never the encoding
    assert set(entry["box"]) == {"top", "right", "bottom", "left"}


def test_kit_and_rose_are_told_apart_in_their_group_photo(faces_dir: Path, people: dict[Path, Probe]):
    """Face 1 (left) and face 2 (right) of kit_with_rose each match their own person best."""
    rgb = decode_image((faces_dir / "group" / "kit_with_rose.jpg").read_bytes(), **LIMITS)
    faces = find_faces(rgb)
    refs = {_person(p): probe.faces[0].encoding for p, probe in people.items()}
    best = [min(refs, key=lambda who: float(np.linalg.norm(refs[who] - f.encoding))) for f in faces]
    assert sorted(best) == ["kit_harington", "rose_leslie"]


def test_small_face_is_found_by_upsampling_and_marked_too_small(faces_dir: Path):
    im = Image.open(faces_dir / "people" / "kit_harington" / "john2.jpeg").convert("RGB")
    small = np.asarray(im.resize((140, 83), Image.Resampling.LANCZOS))  # face ~40 px wide
    assert len(detection.hog()(small, 0)) == 0  # so only the upsampling retry finds it
    faces = find_faces(small, min_face_px=60)
    assert len(faces) == 1
    assert faces[0].size < 60 and faces[0].level == "too_small"
    # Over the size limit it is no longer "too_small", but 15 px between the eyes is still low quality.
    assert find_faces(small, min_face_px=30)[0].level == "low"


def test_large_photo_is_detected_on_a_reduced_copy_with_full_resolution_boxes(faces_dir: Path):
    rgb = decode_image((faces_dir / "people" / "obama" / "obama3.jpg").read_bytes(), **LIMITS)
    assert max(rgb.shape[:2]) > 1024
    faces = find_faces(rgb, detect_max_side=512)
    (face,) = faces
    # The box is in full-resolution pixels: it agrees with the box found at a larger detection size.
    (ref,) = find_faces(rgb, detect_max_side=1024)
    assert abs(face.box.left - ref.box.left) < ref.size * 0.2
    assert abs(face.size - ref.size) < ref.size * 0.3


def test_no_face_yields_an_empty_probe():
    blank = np.full((300, 400, 3), 200, np.uint8)
    probe = analyse_bytes(_jpeg(blank), IMAGES)
    assert probe.faces == () and (probe.width, probe.height) == (400, 300)


def test_exif_rotated_probe_has_upright_boxes(faces_dir: Path):
    im = Image.open(faces_dir / "people" / "kit_harington" / "john2.jpeg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    probe = analyse_bytes(buf.getvalue(), IMAGES)
    assert (probe.width, probe.height) == im.size
    assert len(probe.faces) == 1
    assert probe.faces[0].box.right <= im.width and probe.faces[0].box.bottom <= im.height


def test_analyse_bytes_raises_image_error_for_bad_bytes():
    with pytest.raises(ImageError) as info:
        analyse_bytes(b"<html><body>Sign in</body></html>", IMAGES)
    assert info.value.code == "not_image"


def test_face_thumbnail_is_a_jpeg_of_the_face(faces_dir: Path, people: dict[Path, Probe]):
    path = faces_dir / "people" / "obama" / "obama-1080p.jpg"
    rgb = decode_image(path.read_bytes(), **LIMITS)
    data = face_thumbnail(rgb, people[path].faces[0].box)
    thumb = Image.open(io.BytesIO(data))
    assert thumb.format == "JPEG" and max(thumb.size) == CROP_PX == 320
    # The thumbnail holds the face: it is found again in it.
    assert len(find_faces(np.asarray(thumb.convert("RGB")), min_face_px=1)) == 1


def test_enrollment_crops_scale_a_small_face_up_to_320_px():
    """Every crop has its longer side at exactly 320 px: a face smaller than that is scaled up (LANCZOS), so
    an examiner sees every gallery face at the same scale; the aspect of the clipped region is kept."""
    rgb = np.zeros((200, 200, 3), np.uint8)
    rgb[:, 100:] = 255
    small = Image.open(io.BytesIO(face_thumbnail(rgb, Box(top=80, right=120, bottom=120, left=80))))
    assert small.size == (320, 320)  # a 40 px box + 25 % each side: 60x60, scaled up
    pixels = np.asarray(small.convert("L")).astype(int)
    assert pixels[:, :150].mean() < 10 and pixels[:, 170:].mean() > 245  # the left/right halves, not blurred away
    tall = Image.open(io.BytesIO(face_thumbnail(rgb, Box(top=0, right=60, bottom=200, left=40))))
    assert tall.size == (48, 320)  # 30x200 after the margin (clipped), longer side 320


def test_face_thumbnail_at_the_image_edge_is_clipped():
    rgb = np.zeros((100, 100, 3), np.uint8)
    thumb = Image.open(io.BytesIO(face_thumbnail(rgb, Box(top=0, right=100, bottom=40, left=60), size=64)))
    assert max(thumb.size) <= 64
    with pytest.raises(ValueError):
        face_thumbnail(rgb, Box(top=200, right=300, bottom=260, left=240))


def test_model_info_names_model_and_versions():
    info = model_info("dlib-resnet")
    assert info["model"] == MODEL_NAME
    assert info["face_recognition"] and info["dlib"] and info["bot"]
    assert model_info()["model"].startswith("sface ")  # the default model


def test_importing_the_engine_leaves_truncated_images_refused():
    """The engine never imports face_recognition, so PIL's LOAD_TRUNCATED_IMAGES stays False."""
    code = (
        "import bot.faces.engine as e; e.load_model(); "
        "from PIL import ImageFile; print(ImageFile.LOAD_TRUNCATED_IMAGES)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pool_is_lazy_and_close_is_idempotent():
    eng = FaceEngine(IMAGES, workers=1)
    assert eng._pool is None  # no process started until first use
    eng.close()
    eng.close()
    assert FaceEngine(IMAGES).workers == (os.cpu_count() or 1)


def test_workers_run_niced_with_one_blas_thread(engine: FaceEngine):
    parent = os.nice(0)
    assert engine._schedule(os.nice, 0).result() == min(parent + engine_mod.WORKER_NICE, 19)
    assert engine._schedule(os.getenv, "OPENBLAS_NUM_THREADS").result() == "1"
    assert engine._schedule(os.getpid).result() != os.getpid()


async def test_async_analyse_matches_sync_and_keeps_the_loop_running(engine: FaceEngine, faces_dir: Path):
    data = (faces_dir / "group" / "two_people.jpg").read_bytes()
    engine.start()  # workers up and models loaded, as the server does at start
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        probe = await engine.analyse(data)
    finally:
        task.cancel()
    assert ticks >= 2  # the loop kept serving other tasks while the face work ran elsewhere
    sync = engine.analyse_sync(data)
    assert probe.sha256 == sync.sha256 and len(probe.faces) == len(sync.faces) == 2
    for a, b in zip(probe.faces, sync.faces):
        assert a.box == b.box and a.quality == b.quality
        assert np.allclose(a.encoding, b.encoding, atol=1e-5)


async def test_async_analyse_raises_image_error(engine: FaceEngine):
    with pytest.raises(ImageError) as info:
        await engine.analyse(b"%PDF-1.4\n")
    assert info.value.code == "not_image"


def test_analyse_many_reports_a_bad_file_without_failing_the_rest(engine: FaceEngine, faces_dir: Path):
    good = (faces_dir / "people" / "obama" / "obama_small.jpg").read_bytes()
    items = [
        ("good1", good),
        ("truncated", good[: len(good) // 3]),
        ("good2", good),
        ("html", b"<html></html>"),
    ]
    results = dict(engine.analyse_many(items, thumbnails=True))
    assert set(results) == {"good1", "truncated", "good2", "html"}
    assert isinstance(results["good1"], Probe) and len(results["good1"].faces) == 1
    # The worker cut the face thumbnail from the pixels it already had.
    (thumb,) = results["good1"].thumbnails
    assert Image.open(io.BytesIO(thumb)).format == "JPEG"
    assert isinstance(results["good2"], Probe)
    assert isinstance(results["truncated"], ImageError) and results["truncated"].code == "corrupt"
    assert isinstance(results["html"], ImageError) and results["html"].code == "not_image"


def plain_face_recognition():
    """Import face_recognition for comparisons, then undo its LOAD_TRUNCATED_IMAGES side effect."""
    import warnings

    from PIL import ImageFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
        import face_recognition
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    return face_recognition


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG")
    return buf.getvalue()


async def test_a_dead_worker_costs_one_photo_not_the_engine(faces_dir: Path):
    """If a worker dies mid-photo (say, killed for memory), that photo fails with a clear error and the next
    one is analysed by a fresh worker."""
    import signal
    import time as _time

    data = (faces_dir / "people" / "obama" / "obama_small.jpg").read_bytes()
    eng = FaceEngine(IMAGES, workers=1)
    try:
        [pid] = eng.start()
        slow = eng._schedule(_time.sleep, 30)
        for _ in range(100):  # until a worker has taken the task (bounded)
            if slow.running():
                break
            await asyncio.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ImageError) as info:
            eng._outcome(slow)
        assert info.value.code == engine_mod.WORKER_DIED and "stopped the face worker" in info.value.message
        probe = await eng.analyse(data)
        assert len(probe.faces) == 1 and eng.worker_pids() != [pid]
    finally:
        eng.close()


def _big_photo(faces_dir: Path, side: int = 5000) -> bytes:
    """A slow but valid input: a real face upscaled to side×side (decode, reduce and detect take a while)."""
    im = Image.open(faces_dir / "people" / "obama" / "obama.jpg").convert("RGB").resize((side, side))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


async def test_a_photo_past_the_deadline_stops_its_worker_and_fails_clearly(faces_dir: Path):
    """The deadline is enforced by stopping the worker: the photo fails as "too slow", the worker that ran it
    is gone, and the engine goes on with the next photo (no timing is asserted: the deadline is far below
    what this photo needs, whatever the machine)."""
    big = _big_photo(faces_dir)
    small = (faces_dir / "people" / "obama" / "obama_small.jpg").read_bytes()
    eng = FaceEngine(IMAGES, workers=1, deadline=0.05)
    try:
        [pid] = eng.start()
        with pytest.raises(ImageError) as info:
            await eng.analyse(big)
        assert info.value.code == engine_mod.TOO_SLOW and "takes too long to read" in info.value.message
        eng.deadline = 60.0
        assert len((await eng.analyse(small)).faces) == 1
        assert pid not in eng.worker_pids()  # the stopped worker was replaced
        # Enrollment gets the same: the slow file is reported, the others enrolled.
        eng.deadline = 0.05
        results = dict(eng.analyse_many([("big", big)]))
        assert isinstance(results["big"], ImageError) and results["big"].code == engine_mod.TOO_SLOW
    finally:
        eng.close()


def test_workers_die_with_the_process_that_started_them(tmp_path: Path):
    """kill -9 of the parent (the server) leaves no face worker burning CPU."""
    import signal
    import time as _time

    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from bot.config import ImageSettings\n"
        "from bot.faces.engine import FaceEngine\n"
        "if __name__ == '__main__':\n"
        "    eng = FaceEngine(ImageSettings(), workers=2)\n"
        "    eng.start()\n"
        "    for _ in range(100):\n"
        "        if len(eng.worker_pids()) == 2:\n"
        "            break\n"
        "        time.sleep(0.1)\n"
        "    print(' '.join(map(str, eng.worker_pids())), flush=True)\n"
        "    time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        for _ in range(100):  # bounded: up to 10 s for the kernel to deliver the death signal
            if not any(_alive(p) for p in pids):
                break
            _time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return False


def test_close_stops_workers_even_mid_analysis(faces_dir: Path):
    """Shutdown abandons running work: close() returns promptly although a photo is still being analysed."""
    import time as _time

    eng = FaceEngine(IMAGES, workers=1, deadline=600)
    pids = eng.start()
    running = eng._schedule(_time.sleep, 300)
    _time.sleep(0.2)
    eng.close()
    assert running.done() and not any(_alive(p) for p in pids)


@pytest.mark.parametrize("tight", [False, True], ids=["photo", "tight-crop"])
def test_faces_found_first_and_encoded_after_give_the_benchmarked_encoding(faces_dir: Path, tight: bool):
    """The Slack flow finds faces before the attestation (no encoding) and encodes the chosen one after it,
    from the same bytes and stored box: the encoding is the one find_faces gives (what bench.accuracy measures),
    also for a tight crop whose face was found on the padded copy."""
    import io

    from PIL import Image

    data = (faces_dir / "people/obama/obama3.jpg").read_bytes()
    if tight:
        rgb = decode_image(data, **LIMITS)
        box = find_faces(rgb)[0].box
        shrink = round(box.width * 0.2)  # brows to lips: HOG alone misses it, the padded copy finds it
        crop = Image.fromarray(np.ascontiguousarray(
            rgb[box.top + shrink:box.bottom - shrink, box.left + shrink:box.right - shrink]))
        buf = io.BytesIO()
        crop.save(buf, "PNG")
        data = buf.getvalue()
    probe = engine_mod.detect_rgb(decode_image(data, **LIMITS), data, IMAGES)
    assert probe.faces and all(f.encoding is None for f in probe.faces) and probe.padded is tight
    whole = find_faces(decode_image(data, **LIMITS), min_face_px=IMAGES.min_face_px,
                       detect_max_side=IMAGES.detect_max_side)
    for face, box in zip(probe.faces, probe.encode_boxes):
        later = engine_mod.encode_bytes(data, IMAGES, probe.sha256, box.as_dict(), probe.padded)
        assert np.array_equal(later, whole[face.index - 1].encoding)
    with pytest.raises(engine_mod.ImageError):
        engine_mod.encode_bytes(data + b"x", IMAGES, probe.sha256, probe.encode_boxes[0].as_dict(), probe.padded)
