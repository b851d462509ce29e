"""How a configuration dataclass enters run, cache and study keys."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def key_fields(config: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config dataclass's fields as they enter run keys: all but `exclude`, and without the fields added
    after runs were first published (marked `omit_if_default`) while they hold their default, so that
    those runs keep their keys."""
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in exclude
            and not (f.metadata.get("omit_if_default") and getattr(config, f.name) == f.default)}
