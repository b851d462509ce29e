"""Item text for MovieLens-style catalogs: clean title, release year and genres."""

from __future__ import annotations

import pandas as pd

_TITLE_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$"
_TRAILING_ARTICLE = r"^(?P<rest>.+), (?P<article>The|A|An)(?P<tail>(?: \(.*\))?)$"


def split_title_year(raw_titles: pd.Series) -> pd.DataFrame:
    """Split 'Shawshank Redemption, The (1994)' into title 'The Shawshank Redemption' and year 1994.

    Titles without a year keep their text and get a missing year; MovieLens moves leading articles
    to the end ('..., The'), which reads badly in a prompt, so they are moved back.
    """
    parts = raw_titles.str.strip().str.extract(_TITLE_YEAR)
    titles = parts["title"].fillna(raw_titles.str.strip())
    articles = titles.str.extract(_TRAILING_ARTICLE)
    moved = articles["article"] + " " + articles["rest"] + articles["tail"]
    titles = moved.where(articles["article"].notna(), titles)
    return pd.DataFrame({"title": titles, "year": pd.to_numeric(parts["year"]).astype("Int64")})


def join_genres(genre_lists: pd.Series) -> pd.Series:
    """'Animation|Children's|Comedy' -> "Animation, Children's, Comedy"; '(no genres listed)' -> missing."""
    cleaned = genre_lists.str.replace("|", ", ", regex=False)
    return cleaned.mask(cleaned.isin(["(no genres listed)", "unknown", ""]))
