"""The LLM backends with a real model: SmolLM2 in process and in worker processes, and behind a real OpenAI-compatible server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.data.dataset import load_dataset
from benchmark.profiles.backends import GenerationParams
from benchmark.profiles.generate import generate_profiles
from benchmark.profiles.prompts import build_prompts
from benchmark.profiles.store import Store
from benchmark.profiles.weights import materialize
from benchmark.records import read_record
from benchmark.split import SplitConfig
from tests.benchmark.profiles.fakes import ROOT


@pytest.fixture(scope="module")
def smollm2_directory():
    from benchmark.profiles.weights import LLMS, transformers_directory

    source = LLMS["smollm2-135m-instruct"]
    return transformers_directory(materialize(source), source), source


@pytest.mark.slow
def test_smollm2_writes_on_topic_profiles(smollm2_directory, mirror, tmp_path):
    from benchmark.profiles.backends import TransformersBackend

    directory, source = smollm2_directory
    backend = TransformersBackend(directory, source.id, batch_size=2)
    split = SplitConfig().apply(load_dataset("ml-100k", data_dir=mirror))
    users = [p.user for p in build_prompts(split)[:2]]
    profiles, summary = generate_profiles(split, backend, Store(tmp_path / "s.sqlite"), users=users,
                                          params=GenerationParams(max_new_tokens=60), progress=False)
    assert summary.generated == 2 and len(profiles.texts) == 2
    for text in profiles.texts.values():
        assert len(text.split()) >= 10


@pytest.mark.slow
def test_worker_processes_return_each_prompts_own_profile(smollm2_directory):
    from benchmark.profiles.backends import TransformersBackend

    directory, source = smollm2_directory
    conversations = [[{"role": "user", "content": f"Write one sentence about {topic}."}]
                     for topic in ("cats", "the sea", "trains in winter", "a very old library with dusty books")]
    params = GenerationParams(max_new_tokens=20)
    single = TransformersBackend(directory, source.id, batch_size=1, dtype="float32").generate(conversations, params)
    pooled = TransformersBackend(directory, source.id, batch_size=1, dtype="float32", workers=2)
    try:
        parallel = pooled.generate(conversations, params)
    finally:
        pooled.close()
    assert [r.text for r in parallel] == [r.text for r in single]
    assert len({r.text for r in single}) == 4


WORKER_OWNER = """
import sys, time
from pathlib import Path
from benchmark.profiles.backends import GenerationParams, TransformersBackend
backend = TransformersBackend(Path(sys.argv[1]), "smollm2", batch_size=1, workers=2)
backend.generate([[{"role": "user", "content": f"Say {w}."}] for w in ("yes", "no")], GenerationParams(max_new_tokens=2))
print(" ".join(str(pid) for pid in backend._pool._processes), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_generator_workers_die_with_a_killed_parent(smollm2_directory):
    directory, _ = smollm2_directory
    owner = subprocess.Popen([sys.executable, "-c", WORKER_OWNER, str(directory)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    workers = [int(pid) for pid in owner.stdout.readline().split()]
    assert len(workers) == 2
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0]
    assert not alive


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def transformers_server(smollm2_directory):
    """A real `transformers serve` of SmolLM2-135M-Instruct on 127.0.0.1: (base URL, model name)."""
    import urllib.request

    directory, _ = smollm2_directory
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "transformers"), "serve", str(directory),
                               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                              env=os.environ | {"HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1", str(directory)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_openai_backend_against_a_real_local_server(transformers_server):
    from benchmark.profiles.backends import OpenAIBackend

    url, model = transformers_server
    backend = OpenAIBackend(url, model, concurrency=2, requests_per_second=20)
    conversations = [[{"role": "user", "content": f"Name {n} fruits, one per line."}] for n in (2, 3, 4)]
    results = backend.generate(conversations, GenerationParams(max_new_tokens=30))
    assert all(r.error is None and r.text and r.completion_tokens > 0 for r in results)
    unreachable = OpenAIBackend(f"http://127.0.0.1:{_free_port()}/v1", "x", timeout=2, max_retries=1)
    failed = unreachable.generate(conversations[:1], GenerationParams(max_new_tokens=5))
    assert failed[0].text is None and "Connection" in failed[0].error


@pytest.mark.slow
def test_a_suite_takes_its_profiles_from_a_real_openai_compatible_server(transformers_server, tmp_path):
    """A suite names the generator backend, server and model: its distilled model's profiles come from a
    real `transformers serve`, under a profile identity that names that server and model."""
    from benchmark.run import main as run_cli

    url, model = transformers_server
    (tmp_path / "events.csv").write_text("customer,sku,when\n" + "".join(
        f"c{u},p{(u * 3 + d) % 9},{1_700_000_000 + 86400 * d + u}\n" for u in range(8) for d in range(6)))
    (tmp_path / "items.csv").write_text("sku,name\n" + "".join(f"p{i},Product number {i}\n" for i in range(9)))
    (tmp_path / "shop.yaml").write_text("name: shop\ninteractions: events.csv\ntimestamp_unit: s\n"
                                        "columns: {user: customer, item: sku, timestamp: when}\n"
                                        "items: items.csv\nitem_columns: {item: sku, text: [name]}\n"
                                        "domain: products\n")
    suite = tmp_path / "served.yaml"
    suite.write_text(f"name: served\ndatasets: [{{name: {tmp_path / 'shop.yaml'}, preprocessing: "
                     "{min_user_interactions: 1, min_item_interactions: 1}}]\n"
                     "splits: [{quantile: 0.7, target: last, validation: last_train_item}]\n"
                     "models:\n  - {name: sasrec-kd, params: {dim: 8, blocks: 1, heads: 1, max_len: 8, max_epochs: 2, "
                     f"distil_epochs: 1, max_new_tokens: 24, generator_backend: openai, generator_url: '{url}', "
                     f"generator: '{model}', generator_concurrency: 2}}}}\n")
    assert run_cli(["--suite", str(suite), "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "runs")]) == 0
    record = read_record(next((tmp_path / "runs").rglob("sasrec-kd-*.json")))
    assert record.spec.profiles.startswith(f"openai:{url}:{model}|")
    assert record.fit["users_with_target"] >= 6


def test_no_repeat_ngram_processor_bans_what_transformers_bans():
    import torch
    from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

    from benchmark.profiles.backends import NoRepeatNGram

    generator = torch.Generator().manual_seed(0)
    for size in (2, 3, 4):
        for length in (1, 3, 5, 60):
            ids = torch.randint(0, 6, (7, length), generator=generator)
            scores = torch.randn(7, 9, generator=generator)
            expected = NoRepeatNGramLogitsProcessor(size)(ids, scores.clone())
            assert torch.equal(NoRepeatNGram(size)(ids, scores.clone()), expected)
    # a concrete case: after "1 2 3 ... 1 2" the token 3 would repeat the trigram "1 2 3"
    banned = NoRepeatNGram(3)(torch.tensor([[1, 2, 3, 4, 1, 2]]), torch.zeros(1, 6))
    assert banned[0].isinf().tolist() == [False, False, False, True, False, False]
