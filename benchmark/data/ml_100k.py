"""MovieLens 100K (GroupLens release layout), with optional one-sentence Wikipedia plot summaries."""

from __future__ import annotations

import pandas as pd

from benchmark.data.movies import join_genres, split_title_year
from benchmark.data.spec import DataFile, DatasetSpec, Files
from benchmark.data.table import read_table

_ARCHIVE = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"


def load_interactions(files: Files) -> pd.DataFrame:
    """u.data: user, item, rating, unix timestamp (tab-separated, no header)."""
    frame = read_table(
        files["u.data"], sep="\t", names=["user", "item", "rating", "timestamp"],
        columns=["user", "item", "rating", "timestamp"],
        integer_columns=["user", "item", "timestamp"], float_columns=["rating"],
    )
    return frame[["user", "item", "timestamp", "rating"]]


def load_item_text(files: Files) -> pd.DataFrame:
    """Title and year from u.item, genre names from u.genre + the 19 flags, wiki summary if present."""
    genres = read_table(files["u.genre"], sep="|", names=["genre", "index"], columns=["genre", "index"],
                        integer_columns=["index"], encoding="latin-1")
    genre_names = genres.sort_values("index")["genre"].tolist()
    items = read_table(
        files["u.item"], sep="|", encoding="latin-1",
        names=["item", "raw_title", "release", "video_release", "imdb", *genre_names],
        columns=["item", *genre_names], integer_columns=["item", *genre_names],
    )
    flags = items[genre_names].to_numpy(dtype=bool)
    joined = pd.Series(["|".join(n for n, on in zip(genre_names, row) if on) for row in flags])
    text = pd.concat([items[["item"]], split_title_year(items["raw_title"].fillna("unknown"))], axis=1)
    text["genres"] = join_genres(joined)
    if "movie_wiki.csv" in files:
        wiki = read_table(files["movie_wiki.csv"], columns=["movie_title", "wiki_summary"])
        summaries = wiki.drop_duplicates("movie_title").set_index("movie_title")["wiki_summary"]
        text["summary"] = items["raw_title"].map(summaries)
    return text


SPEC = DatasetSpec(
    name="ml-100k",
    domain="movies",
    description="MovieLens 100K ratings (GroupLens, 1998): 943 users, 1,682 movies, 1997-09..1998-04",
    files=(
        DataFile("u.data", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                 f"{_ARCHIVE}#ml-100k/u.data"),
        DataFile("u.item", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
                 f"{_ARCHIVE}#ml-100k/u.item"),
        DataFile("u.genre", "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
                 f"{_ARCHIVE}#ml-100k/u.genre"),
        DataFile("movie_wiki.csv", "ddb21dab0e0aa434f9e476e0b14525985cf5718244b312e7480e26dcb17c0c72",
                 optional=True, folder="ml-100k-wiki"),
    ),
    load_interactions=load_interactions,
    load_item_text=load_item_text,
)
