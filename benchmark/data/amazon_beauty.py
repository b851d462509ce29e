"""Amazon reviews 2014, Beauty, 5-core (McAuley et al.), in the mirror's CSV layout.

Timestamps are whole days, so many events of a user share one timestamp; the file's row order within
a user is the true sequence order and preprocessing keeps it as the tie-break. No public download
exists in this layout: place the two files in `<data-dir>/amazon-beauty/`.
"""

from __future__ import annotations

import html

import pandas as pd

from benchmark.data.spec import DataFile, DatasetSpec, Files
from benchmark.data.table import read_table


def load_interactions(files: Files) -> pd.DataFrame:
    """interactions.csv.gz: user_id,item_id,timestamp."""
    frame = read_table(files["interactions.csv.gz"], columns=["user_id", "item_id", "timestamp"],
                       integer_columns=["timestamp"])
    return frame.rename(columns={"user_id": "user", "item_id": "item"})[["user", "item", "timestamp"]]


def load_item_text(files: Files) -> pd.DataFrame:
    """items.csv: item_id,title, with HTML entities unescaped ('&amp;' -> '&')."""
    items = read_table(files["items.csv"], columns=["item_id"])
    titles = items["title"].fillna("").map(html.unescape).str.strip()
    return pd.DataFrame({"item": items["item_id"], "title": titles.mask(titles == "")})


SPEC = DatasetSpec(
    name="amazon-beauty",
    domain="products",
    description="Amazon reviews 2014, Beauty category, 5-core: 22,332 users, 12,086 products, 2002..2014",
    files=(
        DataFile("interactions.csv.gz", "0f0f723518d8ba75b7e5d330237a0b5d762062d13af45ce78a72d77346177b40"),
        DataFile("items.csv", "5c0bea7bdd3f7f0989cdda1e100020af79e2b1c8ecd00cd44a4c6a4f35e63a1c"),
    ),
    load_interactions=load_interactions,
    load_item_text=load_item_text,
)
