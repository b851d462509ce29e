"""Generating profiles away from the suite: a jobs file in, a results file out.

`python -m benchmark.profiles export-jobs` writes the conversations a split still lacks (with their
cache keys) to a compressed JSON-lines file; this module generates them on any machine that has torch
and transformers (a GPU box, say) without the rest of the suite; `python -m benchmark.profiles
import-results` puts the results into the cache, where the suite finds them under the same keys.
The cleaning (complete sentences, retries with sampling) is the one the suite applies itself.

    python -m benchmark.profiles.worker jobs.jsonl.xz results.jsonl.xz --model-dir DIR [--device cuda]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from benchmark.cli import run_command
from benchmark.profiles.lines import JOBS_FORMAT, RESULTS_FORMAT, read_lines, write_lines
from benchmark.profiles.store import StoredProfile

if TYPE_CHECKING:  # the backends (torch, transformers) are imported where used: `--help` answers at once
    from benchmark.profiles.backends import Backend, Conversation, GenerationParams, Result

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def complete_sentences(text: str) -> str:
    """`text` up to its last sentence end or line break (all of it when it has none)."""
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].strip() if ends else text


def generate_with_retries(conversations: Sequence[Conversation], backend: Backend, params: GenerationParams,
                          retries: int) -> list[Result]:
    """Results for `conversations`; empty or failed ones are retried with sampling (a greedy retry would
    repeat itself), each retry with its own seed."""
    results = backend.generate(conversations, params)
    for attempt in range(1, retries + 1):
        bad = [i for i, r in enumerate(results) if r.error is not None or not r.text]
        if not bad:
            break
        retry_params = replace(params, temperature=max(params.temperature, 0.7), seed=params.seed + attempt)
        for i, result in zip(bad, backend.generate([conversations[i] for i in bad], retry_params), strict=True):
            results[i] = result
    return results


def stored_row(key: str, result: Result, seconds: float, backend_id: str) -> StoredProfile:
    """The cache row of one generation: the text (cut to complete sentences when it ran out of tokens),
    or 'failed' with the reason."""
    text = complete_sentences(result.text) if result.finish_reason == "length" and result.text else result.text
    ok = result.error is None and bool(text)
    return StoredProfile(key, "ok" if ok else "failed", text if ok else None,
                         None if ok else (result.error or "empty generation"),
                         result.prompt_tokens, result.completion_tokens, seconds, backend_id)


def work(jobs: Path, results: Path, model_dir: Path, *, device: str, batch_size: int, block: int = 2048,
         retries: int = 2, time_limit: float | None = None) -> int:
    """Generate the jobs of `jobs` into `results`; returns the number of failed generations.

    With `time_limit` (seconds), no block is started that would, at the slowest block's pace, end after
    it: the results file then holds the finished blocks (a later jobs export lists the rest)."""
    import torch

    from benchmark.profiles.backends import GenerationParams, TransformersBackend

    header, rows = read_lines(jobs, JOBS_FORMAT)
    params = GenerationParams(**header["params"])
    backend = TransformersBackend(model_dir, header["model"], batch_size=batch_size, dtype=header["dtype"],
                                  device=device)
    if backend.id != header["backend"]:
        raise ValueError(f"{jobs}: jobs are for {header['backend']}, this model is {backend.id}")
    rows.sort(key=lambda row: sum(len(m["content"]) for m in row["messages"]))  # similar lengths share batches
    out: list[dict[str, Any]] = []
    started = time.perf_counter()
    slowest = 0.0
    for start in tqdm(range(0, len(rows), block), desc=f"profiles on {device}", unit="block"):
        if time_limit is not None and time.perf_counter() - started + slowest > time_limit:
            print(f"time limit: stopping after {len(out)} of {len(rows)} jobs", file=sys.stderr)
            break
        part = rows[start:start + block]
        block_started = time.perf_counter()
        generated = generate_with_retries([row["messages"] for row in part], backend, params, retries)
        slowest = max(slowest, time.perf_counter() - block_started)
        seconds = (time.perf_counter() - block_started) / len(part)
        out += [asdict(stored_row(row["key"], result, seconds, backend.id)) for row, result in zip(part, generated)]
    where = torch.cuda.get_device_name() if device == "cuda" else device
    write_lines(results, {"format": RESULTS_FORMAT, "backend": backend.id, "device": where, "jobs": len(rows),
                          "seconds": round(time.perf_counter() - started, 1)}, out)
    return sum(row["status"] != "ok" for row in out)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.profiles.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", type=Path)
    parser.add_argument("results", type=Path)
    parser.add_argument("--model-dir", type=Path, required=True, help="a transformers model directory")
    parser.add_argument("--device", default="auto", help="cuda, cpu, ... (auto: the GPU if torch sees one)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--time-limit", type=float, help="seconds; start no block that would end later")
    args = parser.parse_args(argv)
    return run_command(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from benchmark.profiles.backends import default_device

    device = default_device() if args.device == "auto" else args.device
    failed = work(args.jobs, args.results, args.model_dir, device=device, batch_size=args.batch_size,
                  time_limit=args.time_limit)
    print(f"{args.results}: written, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
