"""Face models by id: each a named, versioned matcher (bot.faces.models.base.Model) in its own module.

- `sface` (bot.faces.models.sface), the default: HOG (YuNet where HOG finds nothing), 68-point alignment, SFace,
  1 - cosine.
- `dlib-resnet` (bot.faces.models.dlib_resnet): the model before; HOG, dlib's 5 points, mirror-averaged ResNet,
  Euclidean.

A process works with one model at a time: a face worker activates its engine's model as it starts (its weights
load once), and per-photo functions called without a model use the active one; in any other process that is
DEFAULT until something activates another.
"""
from __future__ import annotations

from bot import wording
from bot.faces.models import dlib_resnet, sface
from bot.faces.models.base import Model, WeightsError

__all__ = ["DEFAULT", "IDS", "Model", "WeightsError", "activate", "active", "get", "id_of_stored", "name_in_entry", "record"]

# The model that won on the dev set's held-out folds within the speed budget (bench/accuracy.py): what a new
# gallery is enrolled with unless [faces] model says otherwise. A gallery keeps the model it was enrolled with.
DEFAULT = sface.ID
_BY_ID: dict[str, Model] = {m.id: m for m in (sface.MODEL, dlib_resnet.MODEL)}
IDS: tuple[str, ...] = tuple(_BY_ID)
_active = DEFAULT


def get(model_id: str | None = None) -> Model:
    """The model called `model_id` (None: this process's active model); ValueError, a sentence, when unknown."""
    key = _active if model_id is None else model_id
    try:
        return _BY_ID[key]
    except (KeyError, TypeError):
        raise ValueError(wording.model_unknown(str(key), IDS)) from None


def active() -> str:
    """The id of the model per-photo functions use when given none."""
    return _active


def activate(model_id: str) -> Model:
    """Make `model_id` this process's model and load its weights (once; WeightsError when a file is refused)."""
    global _active
    model = get(model_id)
    model.load()
    _active = model.id
    return model


def id_of_stored(name: str) -> str:
    """The model id of what a gallery recorded: today's galleries stored dlib's long model name (it reads as
    `dlib-resnet`, CONTRACTS); "" while a gallery is empty; an unknown name is returned as it is."""
    if name in _BY_ID or not name:
        return name
    if name == dlib_resnet.MODEL_NAME:
        return dlib_resnet.ID
    first = name.split()[0]
    return first if first in _BY_ID else name


def name_in_entry(model: object) -> str:
    """A search entry's model as a report names it: "id version" from its record; an entry written before models
    had ids (a long name, or none) reads as that model's id (CONTRACTS: dlib-resnet)."""
    if isinstance(model, dict):
        return f"{model.get('id')} {model.get('version')}"
    return id_of_stored(str(model or dlib_resnet.MODEL_NAME))


def record(model_id: str | None = None) -> dict:
    """{id, version, weights_sha256, runtime} of a model (None: the active one), as search entries name it."""
    return get(model_id).record()
