"""The dataset registry: name -> DatasetSpec. Adding a dataset = one module + one line here."""

from __future__ import annotations

from pathlib import Path

from benchmark.data import amazon_beauty, generic_csv, ml_1m, ml_100k, ml_latest_small
from benchmark.data.spec import DatasetSpec
from benchmark.errors import DataError

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (ml_100k.SPEC, ml_1m.SPEC, ml_1m.SPEC_5CORE, ml_latest_small.SPEC, amazon_beauty.SPEC)
}


def get_spec(name_or_config: str | Path | dict) -> DatasetSpec:
    """A registered dataset by name, a generic CSV dataset from a YAML file path, or from a config mapping."""
    if isinstance(name_or_config, dict):
        return generic_csv.make_spec(generic_csv.validate_config(name_or_config))
    if str(name_or_config) in DATASETS:
        return DATASETS[str(name_or_config)]
    path = Path(name_or_config)
    if path.suffix in (".yaml", ".yml"):
        return generic_csv.make_spec(generic_csv.load_config(path))
    raise DataError(f"unknown dataset '{name_or_config}'; registered: {sorted(DATASETS)}, "
                    "or give the path of a generic CSV dataset YAML")


def locally_available(spec: DatasetSpec, data_dir: Path | None) -> bool:
    """Whether every required file of `spec` is present in the mirror folder (no download needed)."""
    if data_dir is None:
        return False
    return all((data_dir / (f.folder or spec.mirror_folder) / f.name).is_file() for f in spec.files if not f.optional)
