"""One run = one (dataset, split, model, seed) combination, identified by a hash of everything it depends on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import benchmark
from benchmark.files import atomic_output


def key_fields(config: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config dataclass's fields as they enter run keys: all but `exclude`, and without the fields added
    after runs were first published (marked `omit_if_default`) while they hold their default, so that
    those runs keep their keys."""
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in exclude
            and not (f.metadata.get("omit_if_default") and getattr(config, f.name) == f.default)}


@dataclass(frozen=True)
class RunSpec:
    """The fully resolved configuration of a run."""

    suite: str
    dataset: str
    data_fingerprint: str
    split: dict[str, Any]
    evaluation: dict[str, Any]
    model: str
    label: str
    params: dict[str, Any]
    seed: int
    profiles: str | None = None  # identity of the profile generator + encoder, for models that distil

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form, including the code version that enters the key."""
        plain = {"suite": self.suite, "dataset": self.dataset, "data_fingerprint": self.data_fingerprint,
                 "split": self.split, "evaluation": self.evaluation, "model": self.model,
                 "label": self.label, "params": self.params, "seed": self.seed, "code_version": benchmark.__version__}
        return plain | ({"profiles": self.profiles} if self.profiles else {})

    @property
    def key(self) -> str:
        """Stable hash of the resolved configuration + data fingerprint + profile identity + code version
        (not the label)."""
        identity = {k: v for k, v in self.as_dict().items() if k != "label"}
        canonical = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def result_path(output: Path, spec: RunSpec) -> Path:
    """Where a finished run's record lives; its presence means the run is done."""
    return output / spec.dataset / f"{spec.label}-{spec.key}.json"


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON so that a reader never sees a partial file (a killed run leaves no record)."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, default=str))
