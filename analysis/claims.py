"""Published claims as data (`analysis/claims.yaml`), the verdict of a table's paired comparison on each
(is the claimed relative gain inside the 95% CI of the observed relative gain, below it or above it), and
the equivalence margins derived from them: a comparison of a backbone's variants is "equivalent" only
within ± the smallest gain claimed over that backbone (+4.9% for SASRec, +19.6% for BERT4Rec), so an
"equivalent" verdict rules out the published effect."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from benchmark.errors import DataError, describe_validation_error

CLAIMS_FILE = Path(__file__).parent / "claims.yaml"


class Claim(BaseModel):
    """A gain a paper reports: `model` over `reference` in `metric` on `dataset`, as a relative difference."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    suite: str
    dataset: str
    model: str
    reference: str
    metric: str
    relative_gain: float
    source: str


@cache
def load_claims(path: Path = CLAIMS_FILE) -> tuple[Claim, ...]:
    """The claims of a claims file; errors name the file and the entry."""
    try:
        items = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as error:
        raise DataError(f"{path}: cannot read claims ({error})") from None
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a list of claims, got {type(items).__name__}")
    claims = []
    for index, item in enumerate(items):
        try:
            claims.append(Claim.model_validate(item))
        except ValidationError as error:
            raise DataError(f"{path}: claim {index}: {describe_validation_error(error)}") from None
    return tuple(claims)


def smallest_claimed_gain(claims: tuple[Claim, ...]) -> float:
    """The smallest positive gain any claim reports (the effect a comparison must be able to resolve)."""
    gains = [c.relative_gain for c in claims if c.relative_gain > 0]
    if not gains:
        raise DataError(f"{CLAIMS_FILE}: no claim with a positive relative_gain to derive margins from")
    return min(gains)


def equivalence_margin(claims: tuple[Claim, ...], backbone: str, override: float | None = None) -> float:
    """The relative equivalence margin of comparisons among `backbone`'s variants: `override` if given
    (a suite's `equivalence_margin`), else the smallest positive gain claimed over that backbone, else
    the smallest claimed over any."""
    if override is not None:
        return override
    own = [c.relative_gain for c in claims if c.reference == backbone and c.relative_gain > 0]
    return min(own) if own else smallest_claimed_gain(claims)


def verdict(claimed: float, low: float, high: float) -> str:
    """Where a claimed relative gain lies against the observed 95% CI [low, high]."""
    if claimed < low:
        return "the observed gain is larger"
    if claimed > high:
        return "rejected: the observed gain is smaller"
    return "consistent"


def claim_rows(claims: tuple[Claim, ...], suite: str, dataset: str, compared: pd.DataFrame) -> list[dict[str, str]]:
    """One row per claim on this table that it has a paired test for: the comparison, the metric, the
    claimed and the observed relative gain with its CI, the verdict and the claim's source."""
    rows = []
    for claim in (c for c in claims if (c.suite, c.dataset) == (suite, dataset)):
        match = compared[(compared["model"] == claim.model) & (compared["reference"] == claim.reference)
                         & (compared["metric"] == claim.metric)]
        if match.empty:
            continue
        test = match.iloc[0]
        low, high = test["ci_low"] / test["reference_mean"], test["ci_high"] / test["reference_mean"]
        rows.append({"comparison": f"{claim.model} vs {claim.reference}", "metric": claim.metric.upper(),
                     "claimed": f"{claim.relative_gain:+.1%}",
                     "observed": f"{test['relative_gain']:+.1%} [{low:+.1%}, {high:+.1%}]",
                     "verdict": verdict(claim.relative_gain, low, high), "source": claim.source})
    return rows


CLAIM_COLUMNS = ("comparison", "metric", "claimed", "observed [95% CI]", "verdict", "source")


def claims_lines(claims: tuple[Claim, ...], suite: str, dataset: str, compared: pd.DataFrame) -> list[str]:
    """Markdown lines comparing the table's paired tests with the claims on it (none without a match)."""
    rows = claim_rows(claims, suite, dataset, compared)
    if not rows:
        return []
    return ["Against the published claims (relative gain; CI: the paired difference's 95% CI over the "
            "reference's mean):", "", "| " + " | ".join(CLAIM_COLUMNS) + " |", "|---|---|---|---|---|---|",
            *("| " + " | ".join(row.values()) + " |" for row in rows), ""]
