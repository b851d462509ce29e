"""Prompts: a user's training-period history rendered into chat messages with a per-domain template.

Only `Split.histories()` is ever read here: interactions at or before the cutoff (`history: train`),
or just the rows the evaluated model is fitted on (`history: fit`, the default), so no later
interaction can reach a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from benchmark.data.dataset import Interactions
from benchmark.errors import DataError, describe_validation_error
from benchmark.split import HistoryScope, Split

TEMPLATES_FILE = Path(__file__).parent / "templates.yaml"
Message = dict[str, str]


class Template(BaseModel):
    """One domain's prompt texts; `{history}` marks where the item lines go."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    system: str
    item_fields: list[str]
    short: str
    long: str
    aggregate: str


@dataclass(frozen=True)
class PromptConfig:
    """How histories become prompts (plain data; part of every profile's cache key).

    `max_items` keeps the most recent items (None: the whole history); with `chunk_size`, the kept history is split into chunks
    of that many items, each profiled separately and merged by the `aggregate` prompt. `history`
    chooses the rows (see `Split.histories`).
    """

    style: Literal["short", "long"] = "short"
    history: HistoryScope = "fit"
    max_items: int | None = 15
    chunk_size: int | None = None
    templates: str = str(TEMPLATES_FILE)

    def __post_init__(self) -> None:
        if self.history not in ("fit", "train"):
            raise ValueError(f"prompts: history must be fit or train, got {self.history!r}")
        if self.style not in ("short", "long"):
            raise ValueError(f"prompts: style must be short or long, got {self.style!r}")
        if (self.max_items is not None and self.max_items < 1) or (self.chunk_size is not None and self.chunk_size < 1):
            raise ValueError("prompts: max_items and chunk_size must be >= 1")


def load_templates(path: str | Path = TEMPLATES_FILE) -> dict[str, Template]:
    """Read and validate a templates file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
        templates = {domain: Template.model_validate(value) for domain, value in raw.items()}
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise DataError(f"{path}: cannot read prompt templates ({error})") from None
    except ValidationError as error:
        raise DataError(f"{path}: {describe_validation_error(error)}") from None
    for domain, template in templates.items():
        for name in ("short", "long", "aggregate"):
            if "{history}" not in getattr(template, name):
                raise DataError(f"{path}: {domain}.{name} lacks the {{history}} placeholder")
    return templates


def template_for(domain: str, path: str | Path = TEMPLATES_FILE) -> Template:
    """The template of `domain` in a templates file; the error names the file and the domain."""
    template = load_templates(path).get(domain)
    if template is None:
        raise DataError(f"{path}: no template for domain '{domain}'")
    return template


@dataclass(frozen=True)
class UserPrompt:
    """The prompt(s) for one user: one conversation, or one per chunk plus the aggregation template."""

    user: int
    chunks: tuple[tuple[Message, ...], ...]
    n_items: int


def item_lines(log: Interactions, history: pd.DataFrame, fields: list[str]) -> list[str]:
    """One line per history row: the item's available text fields, and the user's rating if known."""
    text = log.item_text.reindex(history["item"].to_numpy())
    parts = []
    for field in fields:
        if field == "rating":
            if "rating" in history:
                values = history["rating"].map(lambda r: f"rated {r:g}/5")
                parts.append(pd.Series(values.to_numpy(), index=text.index))
            continue
        if field not in text:
            continue
        column = text[field]
        if field == "year":
            column = column.map(lambda y: f"({y})" if pd.notna(y) else None)
        parts.append(column.astype("object").where(column.notna(), None))
    lines = []
    for values in zip(*parts) if parts else [()] * len(text):
        present = [str(v) for v in values if v is not None and v == v and str(v).strip()]
        lines.append("- " + " ".join(_join_title_year(present)) if present else "- (no description)")
    return lines


def _join_title_year(values: list[str]) -> list[str]:
    """Title and '(year)' read as one phrase; other fields are separated by semicolons."""
    joined: list[str] = []
    for value in values:
        if value.startswith("(") and joined:
            joined[-1] = f"{joined[-1]} {value}"
        else:
            joined.append(value)
    return ["; ".join(joined)]


def recent_history(split: Split, config: PromptConfig) -> pd.DataFrame:
    """The rows a prompt shows: each user's last `max_items` interactions of the configured scope (all of them
    when `max_items` is None)."""
    histories = split.histories(config.history)
    if config.max_items is None:
        return histories
    return histories.groupby("user", sort=True).tail(config.max_items)


def catalog_texts(log: Interactions, templates: str = str(TEMPLATES_FILE)) -> list[str]:
    """One text per item (dense ids 1..n_items), built like a prompt line but without any user's rating."""
    template = template_for(log.domain, templates)
    fields = [f for f in template.item_fields if f != "rating"]
    lines = item_lines(log, pd.DataFrame({"item": np.arange(1, log.n_items + 1)}), fields)
    return [line[2:] for line in lines]


def build_prompts(split: Split, config: PromptConfig = PromptConfig()) -> list[UserPrompt]:
    """Prompts for every user with a training-period history, in user order."""
    log = split.log
    template = template_for(log.domain, config.templates)
    histories = recent_history(split, config)
    lines = np.asarray(item_lines(log, histories, template.item_fields), dtype=object)
    body = getattr(template, config.style)
    users = histories["user"].to_numpy()
    boundaries = np.flatnonzero(np.diff(users)) + 1
    prompts = []
    for user_lines, user in zip(np.split(lines, boundaries), users[np.r_[0, boundaries]], strict=True):
        size = config.chunk_size or len(user_lines)
        chunks = tuple(_conversation(template.system, body, list(user_lines[start:start + size]))
                       for start in range(0, len(user_lines), size))
        prompts.append(UserPrompt(int(user), chunks, len(user_lines)))
    return prompts


def aggregation_prompt(template: Template, chunk_profiles: list[str]) -> tuple[Message, ...]:
    """The conversation that merges chunk profiles (oldest first) into one profile."""
    lines = [f"Part {i}: {text}" for i, text in enumerate(chunk_profiles, start=1)]
    return _conversation(template.system, template.aggregate, lines)


def _conversation(system: str, body: str, lines: list[str]) -> tuple[Message, ...]:
    return ({"role": "system", "content": system},
            {"role": "user", "content": body.replace("{history}", "\n".join(lines))})
