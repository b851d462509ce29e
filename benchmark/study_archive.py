"""Optuna studies as small committed files, so tuning outlives the machine.

After every finished trial the executor writes the whole study (each trial's number, state, parameters
with their distributions, value, per-epoch intermediate values, user attributes and times) to
`<archive>/<study name>.json`: `results/studies/` for the published suites, else `<cache>/studies/`.
When a storage does not hold a study that has an archive file (a fresh machine, a new PostgreSQL
server), the study is rebuilt from the file first, trial by trial with the same numbers, so tuning
continues where it stopped and the final runs take the same best parameters. A trial number missing
from the file (still running when it was written) is restored as a failed trial marked
`missing_from_archive`, which keeps the numbering.

`python -m benchmark.study_archive rebuild --suite NAME` writes the files of studies that only the
suite's final-run records remember (their storage was lost before studies were archived): the best
trial as the records give it (number, value, the searched parameters the final runs used) and, for
every other trial number up to the count the records give, a failed trial marked `lost`. A lost trial
counts towards the trial budget (so tuning does not start over) but can never be the best.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

from benchmark import paths
from benchmark.cli import run_command
from benchmark.files import atomic_output
from benchmark.records import RunRecord, read_records

if TYPE_CHECKING:  # the harness (torch) is imported where used: `--help` answers at once
    from benchmark.suite import ParamRange, Suite

LOST = "lost"  # a trial known to have finished whose details were lost (`rebuild` writes them)
MISSING = "missing_from_archive"  # a trial number absent from the file (it was running when written)
REBUILT = "rebuilt_from"  # the best trial as the final-run record (its key) gives it
# Trials known only by these marks have no real times: the file keeps them null, so that restoring a
# study and exporting it again writes the same file.
UNTIMED = (LOST, MISSING, REBUILT)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def archive_dir(suite: str, cache: str | Path | None = None) -> Path:
    """Where a suite's study files live: results/studies for a published suite, else <cache>/studies."""
    return paths.RESULTS_DIR / "studies" if suite in paths.PUBLISHED_SUITES else paths.cache_dir(cache) / "studies"


def archive_path(archive: Path, study: str) -> Path:
    """The file of study `study` (its name's `/`-separated parts become folders)."""
    return archive / f"{study}.json"


TRIAL_FIELDS = ("number", "state", "value", "params", "distributions", "intermediate_values", "user_attrs",
                "datetime_start", "datetime_complete")


def _trial_json(trial: FrozenTrial) -> dict[str, Any]:
    return {"number": trial.number, "state": trial.state.name, "value": trial.value,
            "params": trial.params,
            "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
            "intermediate_values": {str(step): value for step, value in trial.intermediate_values.items()},
            "user_attrs": trial.user_attrs,
            "datetime_start": _moment_json(trial, trial.datetime_start),
            "datetime_complete": _moment_json(trial, trial.datetime_complete)}


def _moment_json(trial: FrozenTrial, moment: datetime.datetime | None) -> str | None:
    return None if moment is None or any(trial.user_attrs.get(mark) for mark in UNTIMED) else moment.isoformat()


def export_study(study: optuna.Study, archive: Path) -> Path:
    """Write the study's finished trials to its archive file (atomically); returns the file."""
    trials = sorted(study.get_trials(deepcopy=False, states=FINISHED), key=lambda t: t.number)
    path = archive_path(archive, study.study_name)
    _write(path, study.study_name, study.direction.name, [_trial_json(t) for t in trials])
    return path


def _write(path: Path, study: str, direction: str, trials: list[dict[str, Any]]) -> None:
    """Write an archive file atomically, each trial's fields in one order, so that restoring a file and
    exporting it again (rebuilt files included) gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = [{key: trial[key] for key in TRIAL_FIELDS} for trial in trials]
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps({"study": study, "direction": direction, "trials": ordered}, indent=1,
                                        default=str))


def _frozen(trial: dict[str, Any]) -> FrozenTrial:
    def moment(text: str | None) -> datetime.datetime:  # unknown times (lost or missing trials): now
        return datetime.datetime.fromisoformat(text) if text else datetime.datetime.now()

    state = TrialState[trial["state"]]
    return FrozenTrial(
        number=trial["number"], state=state, value=trial["value"] if state != TrialState.FAIL else None,
        datetime_start=moment(trial["datetime_start"]), datetime_complete=moment(trial["datetime_complete"]),
        params=trial["params"], distributions={k: json_to_distribution(d) for k, d in trial["distributions"].items()},
        user_attrs=trial["user_attrs"], system_attrs={}, trial_id=0,
        intermediate_values={int(step): value for step, value in trial["intermediate_values"].items()})


def restore_study(archive: Path, name: str, storage: optuna.storages.BaseStorage) -> bool:
    """Rebuild study `name` in `storage` from its archive file, if the storage lacks it and the file exists
    (True when it did)."""
    path = archive_path(archive, name)
    if not path.is_file() or name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        return False
    saved = json.loads(path.read_text())
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction=saved["direction"].lower())
    except optuna.exceptions.DuplicatedStudyError:  # another worker restored it first
        return False
    by_number = {trial["number"]: trial for trial in saved["trials"]}
    for number in range(max(by_number, default=-1) + 1):
        trial = by_number.get(number) or {"number": number, "state": "FAIL", "params": {}, "distributions": {},
                                          "intermediate_values": {}, "value": None, "datetime_start": None,
                                          "datetime_complete": None, "user_attrs": {MISSING: True}}
        study.add_trial(_frozen(trial))
    return True


def distribution(spec: ParamRange) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution `suggest` samples one parameter's range from."""
    if spec.choices is not None:
        return optuna.distributions.CategoricalDistribution(spec.choices)
    if spec.is_int:
        return optuna.distributions.IntDistribution(int(spec.low), int(spec.high), step=int(spec.step or 1))
    return optuna.distributions.FloatDistribution(float(spec.low), float(spec.high), log=spec.log, step=spec.step)


def rebuilt_trials(record: RunRecord, suite: Suite) -> list[dict[str, Any]]:
    """The archive trials of the study a record's tuning names, as far as the record knows them."""
    tuning = record.tuning
    assert tuning is not None, "a record without tuning names no study"
    label = tuning.study.rsplit("/", 1)[1].rsplit("@", 1)[0]
    space = suite.model(label).search
    best = {"number": tuning.best_trial, "state": "COMPLETE", "value": tuning.best_value,
            "params": {k: record.spec.params[k] for k in space},
            "distributions": {k: distribution_to_json(distribution(spec)) for k, spec in space.items()},
            "intermediate_values": {}, "datetime_start": None, "datetime_complete": None,
            "user_attrs": {REBUILT: record.key}}
    lost = [{"number": n, "state": "FAIL", "value": None, "params": {}, "distributions": {}, "intermediate_values": {},
             "datetime_start": None, "datetime_complete": None, "user_attrs": {LOST: True}}
            for n in range(tuning.trials) if n != best["number"]]
    return sorted([best, *lost], key=lambda trial: trial["number"])


def rebuild(suite: Suite, records: Path, archive: Path) -> list[Path]:
    """Write the archive file of every study the suite's records name that has none; returns the files."""
    written = []
    for _, record in read_records(records):
        if record.tuning is None or archive_path(archive, record.tuning.study).is_file():
            continue
        path = archive_path(archive, record.tuning.study)
        _write(path, record.tuning.study, "MAXIMIZE", rebuilt_trials(record, suite))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.study_archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rebuilder = commands.add_parser("rebuild", help="archive files of studies that only the final-run records know")
    rebuilder.add_argument("--suite", required=True)
    rebuilder.add_argument("--cache-dir")
    args = parser.parse_args(argv)

    def body() -> int:
        from benchmark.suite import load_suite

        suite = load_suite(args.suite)
        written = rebuild(suite, paths.records_dir(suite.name, args.cache_dir), archive_dir(suite.name, args.cache_dir))
        print("\n".join(str(path) for path in written) or "every study named by the records has its file")
        return 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
