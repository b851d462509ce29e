"""Bring-your-own data: a dataset built from a config block pointing at any interactions CSV.

Example (YAML):

    name: my-shop
    interactions: data/events.csv          # local path or http(s) URL
    interactions_sha256: 3f1c...            # optional; pins the content
    columns: {user: customer, item: sku, timestamp: ts}
    timestamp_unit: s                       # s | ms | datetime (ISO-8601 or any pandas-parsable)
    items: data/products.csv                # optional: item id column + any text columns
    item_columns: {item: sku, text: [name, category]}
    domain: products                        # movies | products | generic (prompt template)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark.data.spec import DataFile, DatasetSpec, Domain, Files
from benchmark.data.table import read_table
from benchmark.errors import DataError, describe_validation_error


class InteractionColumns(BaseModel):
    """Column names of the interactions file."""

    model_config = ConfigDict(extra="forbid")
    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    rating: str | None = None


class ItemColumns(BaseModel):
    """Column names of the optional items file; `text` defaults to every other column."""

    model_config = ConfigDict(extra="forbid")
    item: str = "item"
    text: list[str] | None = None


class GenericCSVConfig(BaseModel):
    """Validated configuration of a generic CSV dataset."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    interactions: str
    interactions_sha256: str | None = None
    items: str | None = None
    items_sha256: str | None = None
    sep: str = ","
    columns: InteractionColumns = InteractionColumns()
    item_columns: ItemColumns = ItemColumns()
    timestamp_unit: Literal["s", "ms", "datetime"] = "s"
    domain: Domain = "generic"
    description: str = ""


def load_config(path: Path) -> GenericCSVConfig:
    """Read and validate a dataset YAML; relative file paths are taken relative to the YAML's folder."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise DataError(f"{path}: cannot read dataset config ({error})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a dataset config must be a mapping, got {type(raw).__name__}")
    for key in ("interactions", "items"):
        value = raw.get(key)
        if isinstance(value, str) and not _is_url(value) and not Path(value).is_absolute():
            raw[key] = str(path.parent / value)
    return validate_config(raw, source=str(path))


def validate_config(raw: dict, *, source: str = "dataset config") -> GenericCSVConfig:
    """Validate a config mapping; errors name the bad key and value."""
    try:
        return GenericCSVConfig.model_validate(raw)
    except ValidationError as error:
        raise DataError(f"{source}: {describe_validation_error(error)}") from None


def make_spec(config: GenericCSVConfig) -> DatasetSpec:
    """Build a DatasetSpec whose parsers follow `config`."""
    files = [_data_file("interactions", config.interactions, config.interactions_sha256)]
    if config.items is not None:
        files.append(_data_file("items", config.items, config.items_sha256))

    def load_interactions(resolved: Files) -> pd.DataFrame:
        cols = config.columns
        wanted = [cols.user, cols.item, cols.timestamp] + ([cols.rating] if cols.rating else [])
        path = resolved["interactions"]
        frame = read_table(path, sep=config.sep, columns=wanted,
                           integer_columns=[cols.timestamp] if config.timestamp_unit != "datetime" else [],
                           float_columns=[cols.rating] if cols.rating else [])
        out = pd.DataFrame({"user": frame[cols.user], "item": frame[cols.item],
                            "timestamp": _to_seconds(frame[cols.timestamp], config.timestamp_unit, path)})
        if cols.rating:
            out["rating"] = frame[cols.rating]
        return out

    def load_item_text(resolved: Files) -> pd.DataFrame:
        if "items" not in resolved:
            return pd.DataFrame({"item": pd.Series(dtype=str)})
        path = resolved["items"]
        items = read_table(path, sep=config.sep, columns=[config.item_columns.item, *(config.item_columns.text or [])])
        text_columns = config.item_columns.text or [c for c in items.columns if c != config.item_columns.item]
        out = items[[config.item_columns.item, *text_columns]].rename(columns={config.item_columns.item: "item"})
        return out.drop_duplicates("item")

    return DatasetSpec(
        name=config.name, domain=config.domain,
        description=config.description or f"generic CSV dataset from {config.interactions}",
        files=tuple(files), load_interactions=load_interactions, load_item_text=load_item_text,
        folder=config.name,
    )


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _data_file(role: str, location: str, sha256: str | None) -> DataFile:
    if _is_url(location):
        return DataFile(role, sha256, url=location)
    return DataFile(role, sha256, path=Path(location))


def _to_seconds(values: pd.Series, unit: str, path: Path) -> pd.Series:
    if unit == "s":
        return values.astype("int64")
    if unit == "ms":
        return (values // 1000).astype("int64")
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(f"{path}: line {row + 2}, timestamp value {values.iloc[row]!r} is not a date/time")
    return (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
