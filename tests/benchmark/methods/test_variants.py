"""The distilled variants, controls and LLMEmb: targets use only fit-period data, every variant trains
end to end on ML-100K, and every trained model is a plain backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.sasrec import SASRec, SASRecConfig
from benchmark.data.dataset import load_dataset
from benchmark.methods.base import FitContext
from benchmark.methods.targets import TARGETS, build_targets, random_targets, shuffled, side_info_texts
from benchmark.metrics import evaluate
from benchmark.profiles.prompts import PromptConfig
from benchmark.profiles.settings import ProfileResources, ProfileSettings
from benchmark.registry import MODELS, get_model
from benchmark.split import SplitConfig
from benchmark.trainer import TrainingPaused, checkpoint_progress, companion_checkpoint, remove_checkpoint
from tests.conftest import seed_profile_cache

TINY = {"dim": 16, "blocks": 2, "heads": 1, "max_len": 20, "max_epochs": 2, "distil_epochs": 1, "layer": 1}


@pytest.fixture(scope="module")
def split(mirror):
    return SplitConfig(quantile=0.9, target="last").apply(load_dataset("ml-100k", data_dir=mirror))


@pytest.fixture(scope="module")
def cache(tmp_path_factory, split):
    """A cache directory whose profile store already holds (canned) profiles under the default generator."""
    directory = tmp_path_factory.mktemp("cache")
    seed_profile_cache(split, directory)
    return directory


def test_side_info_texts_hold_only_fit_rows(split):
    texts = side_info_texts(split)
    fit_rows = split.validation.train_rows
    log = split.log
    for user, text in list(texts.items())[:100]:
        own = fit_rows[log.user[fit_rows] == user]
        assert text.count("\n") + 1 == min(PromptConfig().max_items, len(own))
        last_title = log.item_text.loc[log.item[own[-1]], "title"]
        assert text.splitlines()[-1].startswith(last_title)
    after_fit = np.setdiff1d(np.arange(len(log.item)), fit_rows)
    assert len(after_fit) > 0


def test_random_and_shuffled_controls(split, cache):
    resources = ProfileResources(ProfileSettings(), cache)
    llm = build_targets(split, "llm", resources, seed=0, progress=False)
    mixed = shuffled(llm, seed=1)
    rows = np.flatnonzero(llm.has_target)
    assert sorted(map(tuple, mixed.matrix[rows].round(5))) == sorted(map(tuple, llm.matrix[rows].round(5)))
    assert (mixed.matrix[rows] != llm.matrix[rows]).any(1).mean() > 0.5
    noise = random_targets(split, 384, seed=0)
    assert np.allclose(np.linalg.norm(noise.matrix[noise.has_target], axis=1), 1.0, atol=1e-5)
    assert (noise.has_target == llm.has_target).all()


def test_oracle_texts_hold_exactly_the_test_period_items(split):
    """The leaky upper bound is built from the interactions after the cutoff and from nothing else."""
    from benchmark.methods.targets import oracle_texts

    texts = oracle_texts(split, PromptConfig(max_items=None))
    log = split.log
    later = np.flatnonzero(log.timestamp > split.cutoff)
    assert sorted(texts) == sorted(np.unique(log.user[later]).tolist())
    for user in list(texts)[:50]:
        rows = later[log.user[later] == user]
        titles = [log.item_text.loc[log.item[row], "title"] for row in rows]
        lines = texts[user].splitlines()
        assert len(lines) == len(rows) and all(line.startswith(t) for line, t in zip(lines, titles))


def test_leaky_rows_are_marked_in_the_leaderboard():
    import pandas as pd

    from analysis.leaderboard import main_table

    summary = pd.DataFrame({"seeds": [1, 1], "leaky": [False, True], "ndcg@10": [0.1, 0.3]},
                           index=pd.Index(["sasrec-kd", "sasrec-kd-oracle"]))
    table = main_table(summary, pd.DataFrame(columns=["model", "metric", "kind", "randomization_p_holm"]))
    assert "| sasrec-kd | 1 |" in table and "| sasrec-kd-oracle † | 1 |" in table and "† leaky" in table


VARIANTS = [("sasrec-kd", {"target": target}) for target in TARGETS] + \
    [(name, {}) for name, spec in MODELS.items() if spec.method and spec.method != "kd" or name == "bert4rec-kd"]


@pytest.mark.parametrize("name,extra", VARIANTS, ids=[f"{n}{'-' + e['target'] if e else ''}" for n, e in VARIANTS])
def test_variant_trains_end_to_end_and_is_a_plain_backbone(name, extra, split, cache):
    spec = get_model(name)
    params = {k: v for k, v in TINY.items() if spec.method == "kd" or k not in ("distil_epochs", "layer")} | extra
    fitted = spec.fit(split, params, FitContext(seed=0, progress=False, cache_dir=cache))
    plain = get_model(spec.backbone).fit(
        split, {k: v for k, v in params.items() if k not in ("distil_epochs", "layer", "target")},
        FitContext(seed=0, progress=False, cache_dir=cache)).model
    if spec.method != "llmemb":  # LLMEmb's model keeps its adapted item table, as in LLMEmb
        assert {k: v.shape for k, v in fitted.model.state_dict().items()} == \
            {k: v.shape for k, v in plain.state_dict().items()}
    assert type(fitted.model) is type(plain)
    metrics = evaluate(fitted.model, split.log, split.test, max_len=fitted.model.max_len).means
    assert 0 <= metrics["ndcg@10"] <= 1
    if spec.method == "kd":
        # the oracle has a target only for users with test-period interactions
        assert fitted.info["users_with_target"] > (100 if extra.get("target") == "oracle" else 700)
        assert "train_distil_loss" in fitted.info["history"][0]
        assert "train_distil_loss" not in fitted.info["history"][1]


def test_llmemb_frozen_adapter_trains_only_the_adapter(split, cache):
    from baselines.llmemb import AdaptedItemEmbedding

    fitted = get_model("bert4rec-textinit").fit(
        split, {"dim": 16, "blocks": 1, "heads": 1, "max_len": 20, "max_epochs": 2, "llmemb_mode": "frozen"},
        FitContext(seed=0, progress=False, cache_dir=cache))
    items = fitted.model.embedding.items
    assert isinstance(items, AdaptedItemEmbedding) and items.weight.shape == (split.log.n_items + 2, 16)
    assert not items.text.requires_grad and items.adapter.weight.requires_grad
    resources = ProfileResources(ProfileSettings(), cache)
    from benchmark.profiles.encode import encode_cached
    from benchmark.profiles.prompts import catalog_texts

    expected = encode_cached(resources.encoder, catalog_texts(split.log), resources.store, progress=False)
    assert np.allclose(items.text.numpy(), expected)  # the text vectors stayed frozen
    assert torch.equal(items.weight[0], torch.zeros(16))
    assert fitted.model(split.inputs(split.test, 20)[:3]).shape == (3, split.log.n_items + 1)


def test_llmemb_initialisation_uses_item_text(split, cache):
    from baselines.llmemb import initialise_item_embeddings

    model = SASRec(split.log.n_items, SASRecConfig(dim=16, blocks=1, heads=1, max_len=20))
    before = model.embedding.items.weight.detach().clone()
    vectors = np.random.default_rng(0).normal(size=(split.log.n_items, 384)).astype(np.float32)
    initialise_item_embeddings(model.embedding.items, vectors)
    after = model.embedding.items.weight.detach()
    assert torch.equal(after[0], before[0])  # padding row untouched
    assert after[1:].std().item() == pytest.approx(before[1:].std().item(), rel=1e-3)
    with pytest.raises(ValueError, match="item texts"):
        initialise_item_embeddings(model.embedding.items, np.zeros((split.log.n_items + 5, 384), np.float32))


def test_the_alignment_loss_is_llmembs_soft_contrastive_loss():
    from benchmark.methods.alignment import soft_contrastive

    rng = np.random.default_rng(0)
    x, y, tau = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), 2.0

    def log_softmax(a):
        a = a - a.max(1, keepdims=True)
        return a - np.log(np.exp(a).sum(1, keepdims=True))

    targets = np.exp(log_softmax((x @ x.T + y @ y.T) / 2 * tau))
    logits = x @ y.T / tau
    expected = ((-(targets * log_softmax(logits)).sum(1) - (targets.T * log_softmax(logits.T)).sum(1)) / 2).mean()
    got = soft_contrastive(torch.tensor(x), torch.tensor(y), tau)
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_llmemb_adapts_frozen_item_text_and_aligns_it_with_a_pretrained_sasrec(split, cache):
    from baselines.llmemb import AdaptedItemEmbedding

    params = {"dim": 16, "blocks": 1, "heads": 1, "max_len": 20, "max_epochs": 3, "align_weight": 1.0}
    fitted = get_model("sasrec-llmemb").fit(split, params, FitContext(seed=0, progress=False, cache_dir=cache))
    items = fitted.model.embedding.items
    assert isinstance(items, AdaptedItemEmbedding) and not items.text.requires_grad
    assert [layer.weight.shape for layer in items.adapter] == [(192, 384), (16, 192)]  # text dim -> half -> model
    assert 0 < fitted.info["pretrained_sasrec_best_val"] <= 1
    assert all(np.isfinite(epoch["train_align_loss"]) for epoch in fitted.info["history"])


def test_a_paused_llmemb_run_resumes_its_teacher_from_a_checkpoint_instead_of_training_it_again(split, cache, tmp_path):
    params = {"dim": 16, "blocks": 1, "heads": 1, "max_len": 20, "max_epochs": 3, "align_weight": 1.0}
    whole = get_model("sasrec-llmemb").fit(split, params, FitContext(seed=0, progress=False, cache_dir=cache,
                                                                    checkpoint=tmp_path / "whole.ckpt"))
    run = tmp_path / "paused.ckpt"
    with pytest.raises(TrainingPaused):  # the run's own checkpoint appears after the student's first epoch
        get_model("sasrec-llmemb").fit(split, params, FitContext(seed=0, progress=False, cache_dir=cache,
                                                                 checkpoint=run, pause_when=run.is_file))
    assert companion_checkpoint(run, "teacher").is_file()
    teacher_epochs, teacher_seconds = checkpoint_progress(companion_checkpoint(run, "teacher"))
    epochs, seconds = checkpoint_progress(run)  # the finished teacher's training and the student's first epoch
    assert teacher_epochs > 0 and epochs == teacher_epochs + 1 and seconds > teacher_seconds > 0
    epochs_asked: list[bool] = []  # pause_when is asked before every epoch of either model
    resumed = get_model("sasrec-llmemb").fit(split, params, FitContext(
        seed=0, progress=False, cache_dir=cache, checkpoint=run, pause_when=lambda: epochs_asked.append(False) or False))
    assert len(epochs_asked) == 2  # the student's last two epochs; the teacher had finished
    assert resumed.info["resumed_from"] == 0
    assert resumed.info["pretrained_sasrec_best_val"] == whole.info["pretrained_sasrec_best_val"]
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(weight, resumed.model.state_dict()[name]), name
    remove_checkpoint(run)
    assert list(tmp_path.glob("paused*")) == []


def test_the_alignment_loss_pulls_the_adapted_items_towards_the_pretrained_ones():
    from baselines.llmemb import LLMEmbConfig
    from benchmark.interfaces import SequenceBatch
    from benchmark.methods.alignment import AlignmentObjective

    torch.manual_seed(0)
    teacher = torch.randn(41, 8) * 2  # a pre-trained table at a trained model's scale
    model = SASRec(40, SASRecConfig(dim=8, blocks=1, heads=1, max_len=6, dropout=0.0))
    objective = AlignmentObjective(teacher, LLMEmbConfig(align_weight=1.0, align_positions=64))
    batch = SequenceBatch(torch.arange(8), torch.randint(1, 41, (8, 6)), torch.randint(1, 41, (8, 6)))
    optimiser = torch.optim.Adam(model.embedding.items.parameters(), lr=0.05)
    first = None
    for _ in range(60):
        loss, logs = objective(model, batch, 0, torch.Generator().manual_seed(0))
        first = first if first is not None else logs["align_loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert logs["align_loss"] < first - 0.5
