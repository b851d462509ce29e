"""MovieLens 1M: the official release (`ratings.dat`) and the mirror's 5-core variant without ratings.

Both share `movies.dat` for item text. The 5-core variant (`interactions.csv.xz`, original
MovieLens ids, 598 interactions on items with < 5 ratings removed) is what the local mirror holds;
after the default 5-core filter both variants describe the same interactions.
"""

from __future__ import annotations

import pandas as pd

from benchmark.data.movies import join_genres, split_title_year
from benchmark.data.spec import DataFile, DatasetSpec, Files
from benchmark.data.table import read_table

_ARCHIVE = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
_MOVIES = DataFile("movies.dat", "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
                   f"{_ARCHIVE}#ml-1m/movies.dat")


def load_official_interactions(files: Files) -> pd.DataFrame:
    """ratings.dat: UserID::MovieID::Rating::Timestamp."""
    frame = read_table(
        files["ratings.dat"], sep="::", names=["user", "item", "rating", "timestamp"],
        columns=["user", "item", "rating", "timestamp"],
        integer_columns=["user", "item", "timestamp"], float_columns=["rating"], encoding="latin-1",
    )
    return frame[["user", "item", "timestamp", "rating"]]


def load_5core_interactions(files: Files) -> pd.DataFrame:
    """interactions.csv.xz: user_id,movie_id,timestamp (header, no ratings)."""
    frame = read_table(
        files["interactions.csv.xz"], columns=["user_id", "movie_id", "timestamp"],
        integer_columns=["user_id", "movie_id", "timestamp"],
    )
    return frame.rename(columns={"user_id": "user", "movie_id": "item"})[["user", "item", "timestamp"]]


def load_item_text(files: Files) -> pd.DataFrame:
    """movies.dat: MovieID::Title (Year)::Genre|Genre."""
    movies = read_table(files["movies.dat"], sep="::", names=["item", "raw_title", "genres"],
                        columns=["item", "raw_title"], integer_columns=["item"], encoding="latin-1")
    text = pd.concat([movies[["item"]], split_title_year(movies["raw_title"])], axis=1)
    text["genres"] = join_genres(movies["genres"].fillna(""))
    return text


SPEC = DatasetSpec(
    name="ml-1m",
    domain="movies",
    description="MovieLens 1M ratings, official release (GroupLens, 2003): 6,040 users, 3,706 movies",
    files=(
        # The official ratings.dat is not pinned yet: no verified copy was available when this was
        # written. The loader reports its SHA-256 on first use so it can be pinned here.
        DataFile("ratings.dat", None, f"{_ARCHIVE}#ml-1m/ratings.dat"),
        _MOVIES,
    ),
    load_interactions=load_official_interactions,
    load_item_text=load_item_text,
)

SPEC_5CORE = DatasetSpec(
    name="ml-1m-5core",
    domain="movies",
    description="MovieLens 1M, 5-core, without star ratings (SeqRecBench preprocessing, original ids)",
    folder="ml-1m",
    files=(
        DataFile("interactions.csv.xz", "f7aef84ad8bdbb2fe07b935cd6d738bb79e90040bb605279acd12f27ae466aa3"),
        _MOVIES,
    ),
    load_interactions=load_5core_interactions,
    load_item_text=load_item_text,
)
