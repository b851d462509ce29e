"""MovieLens latest-small (GroupLens): ratings, movies with genres, and user-assigned free-text tags."""

from __future__ import annotations

import pandas as pd

from benchmark.data.movies import join_genres, split_title_year
from benchmark.data.spec import DataFile, DatasetSpec, Files
from benchmark.data.table import read_table

_ARCHIVE = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
_MAX_TAGS = 5


def load_interactions(files: Files) -> pd.DataFrame:
    """ratings.csv: userId,movieId,rating,timestamp."""
    frame = read_table(files["ratings.csv"], columns=["userId", "movieId", "rating", "timestamp"],
                       integer_columns=["userId", "movieId", "timestamp"], float_columns=["rating"])
    return frame.rename(columns={"userId": "user", "movieId": "item"})[["user", "item", "timestamp", "rating"]]


def load_item_text(files: Files) -> pd.DataFrame:
    """movies.csv title/year/genres plus the item's most frequent tags (tags.csv)."""
    movies = read_table(files["movies.csv"], columns=["movieId", "title", "genres"], integer_columns=["movieId"])
    text = pd.concat([movies[["movieId"]].rename(columns={"movieId": "item"}),
                      split_title_year(movies["title"])], axis=1)
    text["genres"] = join_genres(movies["genres"])
    if "tags.csv" in files:
        tags = read_table(files["tags.csv"], columns=["movieId", "tag"], integer_columns=["movieId"])
        counts = tags.assign(tag=tags["tag"].str.strip().str.lower()).value_counts(["movieId", "tag"], sort=False)
        top = (counts.reset_index(name="n").sort_values(["movieId", "n", "tag"], ascending=[True, False, True])
               .groupby("movieId").head(_MAX_TAGS).groupby("movieId")["tag"].agg(", ".join))
        text["tags"] = text["item"].map(top)
    return text


SPEC = DatasetSpec(
    name="ml-latest-small",
    domain="movies",
    description="MovieLens latest-small (GroupLens, 2018 snapshot): 610 users, 9,724 movies, 1996..2018",
    files=(
        DataFile("ratings.csv", "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
                 f"{_ARCHIVE}#ml-latest-small/ratings.csv"),
        DataFile("movies.csv", "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
                 f"{_ARCHIVE}#ml-latest-small/movies.csv"),
        DataFile("tags.csv", "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
                 f"{_ARCHIVE}#ml-latest-small/tags.csv", optional=True),
    ),
    load_interactions=load_interactions,
    load_item_text=load_item_text,
)
