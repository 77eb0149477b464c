"""Slack's checks on message content, usable on their own: `block_errors` (Block Kit limits: 50 blocks,
3,000 characters per section text, 75 per button, ...) and `metadata_error` (message metadata)."""
from __future__ import annotations

import re
from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_HEADER_TEXT = 150
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_]+")


def metadata_error(metadata: Any) -> str | None:
    """Why Slack would refuse this message metadata, or None when it is valid."""
    if not isinstance(metadata, dict):
        return "metadata must be an object"
    event_type = metadata.get("event_type")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        return "event_type must match [A-Za-z0-9_]+"
    if not isinstance(metadata.get("event_payload"), dict):
        return "event_payload must be an object"
    return None


def _text_errors(obj: Any, where: str, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"must be a text object of type {' or '.join(kinds)} [json-pointer:{where}]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []


def _element_errors(el: Any, where: str) -> list[str]:
    if not isinstance(el, dict) or not isinstance(el.get("type"), str):
        return [f"missing required field: type [json-pointer:{where}]"]
    errors: list[str] = []
    if el["type"] == "button":
        errors += _text_errors(el.get("text"), f"{where}/text", MAX_BUTTON_TEXT, ("plain_text",))
        if len(str(el.get("value", ""))) > 2000:
            errors.append(f"must be less than 2001 characters [json-pointer:{where}/value]")
        if el.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be primary or danger [json-pointer:{where}/style]")
    elif el["type"] == "image":
        if not el.get("image_url") and not el.get("slack_file"):
            errors.append(f"missing required field: image_url [json-pointer:{where}]")
        if not isinstance(el.get("alt_text"), str):
            errors.append(f"missing required field: alt_text [json-pointer:{where}]")
    if len(str(el.get("action_id", ""))) > 255:
        errors.append(f"must be less than 256 characters [json-pointer:{where}/action_id]")
    return errors


def block_errors(blocks: list[Any]) -> list[str]:
    """Slack's Block Kit checks for a message (50 blocks, 3,000 characters per section text, 75 per
    button, ...), as messages in Slack's `[json-pointer:...]` style; [] when the blocks are valid."""
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"must provide no more than {MAX_BLOCKS} items [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255:
                errors.append(f"must be a string of at most 255 characters [json-pointer:{where}/block_id]")
            elif block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{where}/block_id]")
            else:
                block_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide text or fields [json-pointer:{where}]")
            if "text" in block:
                errors += _text_errors(block["text"], f"{where}/text", MAX_SECTION_TEXT)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                errors.append(f"must provide no more than 10 items [json-pointer:{where}/fields]")
            else:
                for j, f in enumerate(fields):
                    errors += _text_errors(f, f"{where}/fields/{j}", MAX_FIELD_TEXT)
            if "accessory" in block:
                errors += _element_errors(block["accessory"], f"{where}/accessory")
        elif kind == "header":
            errors += _text_errors(block.get("text"), f"{where}/text", MAX_HEADER_TEXT, ("plain_text",))
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                errors.append(f"must provide 1 to 10 elements [json-pointer:{where}/elements]")
            else:
                for j, el in enumerate(elements):
                    if isinstance(el, dict) and el.get("type") == "image":
                        errors += _element_errors(el, f"{where}/elements/{j}")
                    else:
                        errors += _text_errors(el, f"{where}/elements/{j}", MAX_SECTION_TEXT)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                errors.append(f"must provide 1 to 25 elements [json-pointer:{where}/elements]")
            else:
                action_ids: set[str] = set()
                for j, el in enumerate(elements):
                    errors += _element_errors(el, f"{where}/elements/{j}")
                    action_id = el.get("action_id") if isinstance(el, dict) else None
                    if action_id is not None and action_id in action_ids:
                        errors.append(f"duplicate action_id [json-pointer:{where}/elements/{j}/action_id]")
                    action_ids.add(action_id)
        elif kind == "image":
            errors += _element_errors(block, where)
            if "title" in block:
                errors += _text_errors(block["title"], f"{where}/title", 2000, ("plain_text",))
        elif kind not in ("divider", "rich_text", "markdown", "file", "video", "input"):
            errors.append(f"unsupported block type {kind!r} [json-pointer:{where}/type]")
    return errors
