"""The distillation objective: pooling ignores padding, the loss and schedule are as specified, and
the trained model is exactly a plain backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.bert4rec import BERT4Rec, BERT4RecConfig
from baselines.sasrec import SASRec, SASRecConfig
from benchmark.methods.distill import DistillationObjective, DistillConfig, aggregate, distance
from benchmark.trainer import Objective, TrainConfig, TrainingData, train


def test_mean_and_exp_pooling_ignore_padding():
    torch.manual_seed(0)
    states = torch.randn(2, 5, 3)
    real = torch.tensor([[False, False, True, True, True], [True] * 5])
    noisy = states.clone()
    noisy[0, :2] = 1000.0
    for how in ("mean", "exp"):
        assert torch.allclose(aggregate(states, real, how), aggregate(noisy, real, how))
    assert torch.allclose(aggregate(states, real, "mean")[0], states[0, 2:].mean(0))
    weights = torch.softmax(0.1 * torch.arange(3.0), 0)
    assert torch.allclose(aggregate(states, real, "exp", gamma=0.1)[0], (states[0, 2:] * weights[:, None]).sum(0))
    scorer = torch.nn.Linear(3, 1)
    assert torch.allclose(aggregate(states, real, "attention", scorer=scorer),
                          aggregate(noisy, real, "attention", scorer=scorer))


def test_distances():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert distance(a, b, "mse").item() == pytest.approx(2.5)
    assert distance(a, b, "rmse").item() == pytest.approx(2.5**0.5)
    assert distance(a, b, "cosine").item() == pytest.approx(1.0)


def small_setup(n_users=24, dim=16):
    torch.manual_seed(0)
    sequences = torch.randint(1, 21, (n_users, 9))
    sequences[: n_users // 2, :3] = 0
    targets = np.random.default_rng(0).normal(size=(n_users, 8)).astype(np.float32)
    return TrainingData(torch.arange(n_users), sequences), targets


@pytest.mark.parametrize("model_class,config_class", [(SASRec, SASRecConfig), (BERT4Rec, BERT4RecConfig)])
def test_loss_value_with_beta_equals_rec_loss_but_gradients_differ(model_class, config_class):
    data, targets = small_setup()
    model = model_class(20, config_class(dim=16, blocks=2, heads=2, max_len=8, dropout=0.0))
    objective = DistillationObjective(16, targets, np.ones(24, bool), DistillConfig(layer=1, alpha=0.4))
    generator = torch.Generator().manual_seed(0)
    batch = model.training_batch(data.users, data.sequences, generator)
    loss, logs = objective(model, batch, 0, torch.Generator().manual_seed(1))
    plain, _ = Objective()(model, batch, 0, torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(plain.item(), rel=1e-5)  # alpha*beta*D = alpha*L_rec in value
    assert logs["distil_loss"] > 0
    grad = torch.autograd.grad(loss, model.embedding.items.weight)[0]
    plain_grad = torch.autograd.grad(plain, model.embedding.items.weight)[0]
    assert not torch.allclose(grad, plain_grad)


def test_users_without_profile_add_nothing():
    data, targets = small_setup()
    model = SASRec(20, SASRecConfig(dim=16, blocks=1, heads=1, max_len=8, dropout=0.0))
    objective = DistillationObjective(16, targets, np.zeros(24, bool), DistillConfig())
    batch = model.training_batch(data.users, data.sequences, torch.Generator())
    loss, logs = objective(model, batch, 0, torch.Generator())
    assert "distil_loss" not in logs
    assert loss.item() == pytest.approx(Objective()(model, batch, 0, torch.Generator())[0].item())


def test_bad_layer_is_named():
    with pytest.raises(ValueError, match="layer"):
        DistillConfig(layer=0)
    data, targets = small_setup()
    model = SASRec(20, SASRecConfig(dim=16, blocks=2, heads=1, max_len=8))
    objective = DistillationObjective(16, targets, np.ones(24, bool), DistillConfig(layer=3))
    with pytest.raises(ValueError, match="layer 3 but the model has 2 blocks"):
        objective(model, model.training_batch(data.users, data.sequences, torch.Generator()), 0, torch.Generator())


def test_training_aligns_then_fine_tunes_and_exports_a_plain_backbone():
    data, targets = small_setup(n_users=64)
    torch.manual_seed(0)
    model = SASRec(20, SASRecConfig(dim=16, blocks=2, heads=2, max_len=8, dropout=0.1))
    plain = SASRec(20, SASRecConfig(dim=16, blocks=2, heads=2, max_len=8, dropout=0.1))
    config = DistillConfig(layer=2, alpha=0.5, distil_epochs=6, distance="mse")
    objective = DistillationObjective(16, targets, np.ones(64, bool), config)
    result = train(model, data, lambda m: {"ndcg@10": 0.0}, TrainConfig(max_epochs=9, patience=100, batch_size=16,
                   lr=0.01), objective=objective, progress=False)
    distil = [row["train_distil_loss"] for row in result.history[:6]]
    assert distil[-1] < distil[0] * 0.8  # the block's pooled state moves towards the projected profile
    assert all("train_distil_loss" not in row for row in result.history[6:])  # pure L_rec afterwards
    # the trained model is a plain SASRec: same parameter names and shapes, same scoring code
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    assert type(model) is SASRec
    assert not any(name.startswith("projection") for name in model.state_dict())
    inputs = data.sequences[:4, 1:]
    plain.load_state_dict(model.state_dict())
    assert torch.equal(model.eval()(inputs), plain.eval()(inputs))


def test_profile_side_projection_has_a_minimum_that_ignores_the_profiles():
    """With P on the profile side, D = 0 for states alike across users (P = 0, H = 0); with P on the
    hidden side, states alike across users cannot get D below the profiles' spread, whatever P is."""
    profiles = torch.as_tensor(small_setup()[1])
    alike = torch.zeros(len(profiles), 16)
    spread = ((profiles - profiles.mean(0)) ** 2).mean().item()
    on_profiles = DistillationObjective(16, profiles.numpy(), np.ones(len(profiles), bool), DistillConfig())
    torch.nn.init.zeros_(on_profiles.projection.weight)
    torch.nn.init.zeros_(on_profiles.projection.bias)
    assert on_profiles.distil_loss(alike, profiles).item() == 0.0
    on_states = DistillationObjective(16, profiles.numpy(), np.ones(len(profiles), bool),
                                      DistillConfig(projection="hidden"))
    assert on_states.projection.weight.shape == (profiles.shape[1], 16)
    for bias in (torch.zeros(profiles.shape[1]), profiles.mean(0), torch.randn(profiles.shape[1])):
        on_states.projection.bias.data = bias
        assert on_states.distil_loss(alike + torch.randn(16), profiles).item() >= spread - 1e-6


def test_loss_ratio_weight_drives_profile_side_projection_to_the_trivial_minimum():
    """The failure seen on ML-1M, at toy scale: with beta and P on the profile side, D falls towards 0
    while the next-item loss climbs above log(n_items) (worse than uniform); with P on the hidden
    side, D stays at the profiles' spread and the next-item loss falls."""
    n_users, n_items = 256, 200
    rng = np.random.default_rng(0)
    starts = rng.integers(1, n_items - 20, n_users)
    data = TrainingData(torch.arange(n_users), torch.as_tensor(starts[:, None] + np.arange(21)))
    profiles = rng.normal(size=(n_users, 32)).astype(np.float32)
    profiles /= np.linalg.norm(profiles, axis=1, keepdims=True)
    spread = float(((profiles - profiles.mean(0)) ** 2).mean())
    histories = {}
    for projection in ("profile", "hidden"):
        torch.manual_seed(0)
        model = SASRec(n_items, SASRecConfig(dim=16, blocks=2, heads=2, max_len=20, dropout=0.0))
        objective = DistillationObjective(16, profiles, np.ones(n_users, bool),
                                          DistillConfig(layer="final", alpha=0.4, distil_epochs=5,
                                                        projection=projection))
        histories[projection] = train(model, data, lambda m: {"ndcg@10": 0.0},
                                      TrainConfig(max_epochs=5, patience=100, batch_size=32, lr=0.001),
                                      objective=objective, progress=False).history
    collapsed, kept = histories["profile"], histories["hidden"]
    assert collapsed[-1]["train_distil_loss"] < collapsed[0]["train_distil_loss"] / 4
    assert collapsed[-1]["train_rec_loss"] > np.log(n_items) > kept[-1]["train_rec_loss"]
    assert min(row["train_distil_loss"] for row in kept) > 0.9 * spread


def test_padded_pooling_equals_the_official_formulas():
    """`pool_padding`: the official mean/exp pooling over a left-padded `max_len` window whose padding
    states are zero, computed by hand; a batch trimmed of padding columns pools to the same vector."""
    torch.manual_seed(0)
    window, gamma = 6, 0.1
    states = torch.randn(2, 4, 3)
    real = torch.tensor([[False, True, True, True], [True] * 4])
    full = torch.zeros(2, window, 3)
    full[:, 2:] = states * real.unsqueeze(-1)  # the official left-padded, zeroed states
    assert torch.allclose(aggregate(states, real, "mean", window=window), full.mean(1))
    weights = torch.exp(gamma * torch.arange(window, dtype=torch.float32))
    weights = weights / weights.sum()
    assert torch.allclose(aggregate(states, real, "exp", gamma=gamma, window=window),
                          (full * weights[None, :, None]).sum(1))
    assert torch.allclose(aggregate(states[:, 1:], real[:, 1:], "mean", window=window)[0],
                          aggregate(states, real, "mean", window=window)[0])
    with pytest.raises(ValueError, match="pool_padding"):
        DistillConfig(aggregation="attention", pool_padding=True)


def test_layers_hook_block_outputs_before_the_final_layer_norm():
    model = SASRec(20, SASRecConfig(dim=16, blocks=3, heads=2, max_len=8, dropout=0.0)).eval()
    inputs = torch.randint(1, 21, (4, 8))
    states = model.hidden_states(inputs)
    x = model.embedding(inputs)
    from baselines.transformer import attention_mask

    mask = attention_mask(inputs, causal=True)
    outputs = []
    for block in model.blocks:
        x = block(x, mask)
        outputs.append(x)
    from benchmark.methods.distill import hooked_index

    for layer in (1, 2, 3):
        assert torch.allclose(states[hooked_index(layer, 3)], outputs[layer - 1])
    assert torch.allclose(states[hooked_index("last", 3)], outputs[-1])
    assert torch.allclose(states[hooked_index("final", 3)], model.final_norm(outputs[-1]))
    assert hooked_index(-1, 3) == hooked_index("final", 3)
    with pytest.raises(ValueError, match="layer"):
        DistillConfig(layer="first")


def test_loss_and_beta_equal_the_hand_computed_official_formula():
    """L = alpha * beta * MSE(pool(h_k), P(e)) + (1 - alpha) * L_rec with beta = L_rec / MSE, computed by hand
    on a tiny batch with padding; beta is logged."""
    data, targets = small_setup()
    model = SASRec(20, SASRecConfig(dim=16, blocks=2, heads=2, max_len=8, dropout=0.0))
    config = DistillConfig(layer=1, aggregation="mean", pool_padding=True, alpha=0.4)
    objective = DistillationObjective(16, targets, np.ones(24, bool), config)
    batch = model.training_batch(data.users, data.sequences, torch.Generator().manual_seed(0))
    loss, logs = objective(model, batch, 0, torch.Generator().manual_seed(1))
    states = model.hidden_states(batch.inputs)
    real = (batch.inputs != 0).float().unsqueeze(-1)
    pooled = (states[0] * real).sum(1) / 8
    distil = ((pooled - objective.projection(torch.as_tensor(targets))) ** 2).mean()
    rec = model.loss(states[-1], batch, torch.Generator().manual_seed(1))
    assert logs["distil_loss"] == pytest.approx(distil.item(), rel=1e-5)
    assert logs["beta"] == pytest.approx((rec / distil).item(), rel=1e-5)
    assert loss.item() == pytest.approx((0.4 * (rec / distil) * distil + 0.6 * rec).item(), rel=1e-5)


def test_reduced_targets_keep_beta_near_one_under_the_beauty_recipe():
    """Raw unit-norm sentence vectors give L_distil ~ 1/dim and beta in the hundreds; UMAP-reduced targets
    (the official Beauty pipeline) keep beta within an order of magnitude of 1 at the first step."""
    from benchmark.profiles.encode import UserEmbeddings, reduce_dimension

    n_users, n_items = 400, 300
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(n_users, 384)).astype(np.float32) + rng.normal(size=(8, 384))[rng.integers(0, 8, n_users)]
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    users = np.arange(n_users)
    targets = reduce_dimension(UserEmbeddings(raw, np.ones(n_users, bool), "e"), users, 128, "umap").matrix
    sequences = torch.as_tensor(rng.integers(1, n_items + 1, (n_users, 51)))
    sequences[: n_users // 2, :30] = 0
    config = DistillConfig(layer=4, aggregation="mean", pool_padding=True, alpha=0.4, use_beta=True)
    betas = {}
    for name, matrix in (("raw", raw), ("umap", targets)):
        torch.manual_seed(0)
        model = SASRec(n_items, SASRecConfig(dim=128, blocks=4, heads=2, max_len=50, dropout=0.3))
        objective = DistillationObjective(128, matrix, np.ones(n_users, bool), config)
        batch = model.training_batch(torch.as_tensor(users[:256]), sequences[:256], torch.Generator())
        betas[name] = objective(model, batch, 0, torch.Generator())[1]["beta"]
    assert 0.1 < betas["umap"] < 10 < 100 < betas["raw"]


def test_last_epoch_selection_trains_every_epoch_and_keeps_the_last():
    data, _ = small_setup()
    model = SASRec(20, SASRecConfig(dim=16, blocks=1, heads=1, max_len=8, dropout=0.0))
    scores = iter([0.5, 0.1, 0.05, 0.01, 0.0])
    snapshots = []

    class Snapshot:
        def on_epoch_end(self, epoch, metrics):
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    result = train(model, data, lambda m: {"ndcg@10": next(scores)},
                   TrainConfig(max_epochs=5, patience=1, selection="last", lr=0.01), callbacks=[Snapshot()],
                   progress=False)
    assert result.epochs_run == 5 and result.best_epoch == 4 and result.best_metric == 0.0
    assert all(torch.equal(snapshots[-1][k], v) for k, v in model.state_dict().items())
    assert not all(torch.equal(snapshots[0][k], v) for k, v in model.state_dict().items())


def test_a_frozen_profile_side_projection_is_never_trained_and_keeps_the_profiles_spread():
    """`projection: frozen` keeps P at its random initialisation: no trainable parameter, unchanged after
    training, and the toy run of the test above keeps D well above 0 (no trivial minimum to head for)."""
    n_users, n_items = 256, 200
    rng = np.random.default_rng(0)
    starts = rng.integers(1, n_items - 20, n_users)
    data = TrainingData(torch.arange(n_users), torch.as_tensor(starts[:, None] + np.arange(21)))
    profiles = rng.normal(size=(n_users, 32)).astype(np.float32)
    torch.manual_seed(0)
    model = SASRec(n_items, SASRecConfig(dim=16, blocks=2, heads=2, max_len=20, dropout=0.0))
    objective = DistillationObjective(16, profiles, np.ones(n_users, bool),
                                      DistillConfig(layer="final", alpha=0.4, distil_epochs=5, projection="frozen"))
    assert objective.projection.weight.shape == (16, 32) and not any(p.requires_grad for p in objective.parameters())
    before = objective.projection.weight.detach().clone()
    history = train(model, data, lambda m: {"ndcg@10": 0.0}, TrainConfig(max_epochs=5, patience=100, batch_size=32),
                    objective=objective, progress=False).history
    assert torch.equal(objective.projection.weight, before)
    projected = objective.projection(torch.as_tensor(profiles))
    spread = float(((projected - projected.mean(0)) ** 2).mean())
    assert min(row["train_distil_loss"] for row in history) > 0.5 * spread
