"""Backbones: padding never matters, causality, the attention paths agree, the losses are right."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.bert4rec import BERT4Rec
from baselines.losses import bce, full_softmax_ce, gbce, sampled_logits
from baselines.transformer import Dropout, SelfAttention, attention_mask
from benchmark.registry import NEURAL_BACKBONES, get_model

N_ITEMS = 40
ARCHITECTURE = {"dim": 16, "blocks": 2, "heads": 2, "dropout": 0.3, "max_len": 12}


def build(name: str) -> torch.nn.Module:
    """A small untrained backbone of the registry, seeded."""
    torch.manual_seed(0)
    return get_model(name).build_backbone(N_ITEMS, ARCHITECTURE)


def models():
    return [build(name) for name in NEURAL_BACKBONES]


every_backbone = pytest.mark.parametrize("model", models(), ids=NEURAL_BACKBONES)


def noisy_padding(module, args, output):
    """Forward hook: large noise on the embeddings of padding positions (own RNG: dropout unaffected)."""
    noise = torch.randn(output.shape, generator=torch.Generator().manual_seed(7))
    return output + noise * (args[0] == 0).unsqueeze(-1) * 10


def histories() -> torch.Tensor:
    torch.manual_seed(1)
    inputs = torch.randint(1, N_ITEMS + 1, (5, 12))
    for row, pad in enumerate([0, 3, 6, 9, 11]):
        inputs[row, :pad] = 0
    return inputs


@every_backbone
def test_padding_content_never_changes_outputs(model):
    model.eval()
    inputs = histories()
    reference = model(inputs)
    reference_states = model.hidden_states(inputs)

    handle = model.embedding.items.register_forward_hook(noisy_padding)
    try:
        assert torch.allclose(model(inputs), reference, atol=1e-5)
        real = (inputs != 0).unsqueeze(-1)
        for noisy, clean in zip(model.hidden_states(inputs), reference_states):
            assert torch.allclose(noisy * real, clean * real, atol=1e-5)
    finally:
        handle.remove()


@every_backbone
def test_more_left_padding_changes_nothing(model):
    model.eval()
    inputs = histories()
    trimmed = inputs[:, 6:]  # rows 3 and 4 only lose padding; compare those
    assert torch.allclose(model(inputs)[3:], model(trimmed)[3:], atol=1e-5)


@every_backbone
def test_loss_ignores_padding_targets(model):
    model.train()
    sequences = torch.cat([torch.zeros(5, 1, dtype=torch.long), histories()], dim=1)
    users = torch.arange(5)
    generator = torch.Generator().manual_seed(0)
    batch = model.training_batch(users, sequences, generator)
    assert (batch.targets[batch.inputs == 0] == 0).all()

    def loss_of(batch):
        torch.manual_seed(3)
        return model.loss(model.hidden_states(batch.inputs)[-1], batch, torch.Generator().manual_seed(0))

    reference = loss_of(batch)

    handle = model.embedding.items.register_forward_hook(noisy_padding)
    try:
        assert torch.allclose(loss_of(batch), reference, atol=1e-5)
    finally:
        handle.remove()


@every_backbone
def test_causal_backbones_never_look_ahead(model):
    model.eval()
    inputs = histories()
    changed = inputs.clone()
    changed[:, -1] = (changed[:, -1] % N_ITEMS) + 1
    before, after = model.hidden_states(inputs)[-1], model.hidden_states(changed)[-1]
    assert torch.allclose(before[:, :-1], after[:, :-1], atol=1e-6) == model.causal
    assert not torch.allclose(before[:, -1], after[:, -1])


@every_backbone
def test_a_row_is_scored_from_its_own_history_only(model):
    model.eval()
    inputs = histories()
    changed = inputs.clone()
    changed[1:] = torch.flip(changed[1:], dims=[0])
    assert torch.allclose(model(inputs)[0], model(changed)[0], atol=1e-6)


@pytest.mark.parametrize("name", NEURAL_BACKBONES)
def test_backbones_are_deterministic_given_the_seeds(name):
    sequences = torch.cat([torch.zeros(5, 1, dtype=torch.long), histories()], dim=1)

    def step_loss() -> torch.Tensor:
        model = build(name).train()
        generator = torch.Generator().manual_seed(0)
        batch = model.training_batch(torch.arange(5), sequences, generator)
        torch.manual_seed(3)  # dropout
        return model.loss(model.hidden_states(batch.inputs)[-1], batch, generator)

    assert torch.equal(step_loss(), step_loss())


@every_backbone
def test_interface_shapes(model):
    states = model.hidden_states(histories())
    assert len(states) == ARCHITECTURE["blocks"] + 1
    assert all(s.shape == (5, 12, 16) for s in states)
    assert model.eval()(histories()).shape == (5, N_ITEMS + 1)
    assert model.eval().scores(histories()).shape == (5, N_ITEMS + 1)


def test_bert4rec_scores_the_appended_mask():
    model = build("bert4rec").eval()
    assert isinstance(model, BERT4Rec)
    inputs = histories()
    masked = torch.cat([inputs[:, 1:], torch.full((5, 1), model.mask_token)], dim=1)
    final = model.hidden_states(masked)[-1][:, -1]
    expected = model.head(final) @ model.embedding.items.weight[: N_ITEMS + 1].T + model.output_bias
    assert torch.allclose(model(inputs), expected, atol=1e-5)


def test_training_attention_path_matches_inference_path():
    torch.manual_seed(0)
    attention = SelfAttention(16, 4, dropout=1e-12)  # training path, (practically) no dropout
    states = torch.randn(3, 7, 16)
    inputs = torch.randint(1, 5, (3, 7))
    inputs[0, :3] = 0
    mask = attention_mask(inputs, causal=True)
    attention.train()
    manual = attention(states, states, mask)
    attention.eval()
    assert torch.allclose(manual, attention(states, states, mask), atol=1e-5)


def test_dropout_keeps_the_right_share_and_scale():
    torch.manual_seed(0)
    dropout = Dropout(0.25).train()
    out = dropout(torch.ones(200_000))
    assert abs((out == 0).float().mean().item() - 0.25) < 0.005
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.75))
    assert torch.equal(dropout.eval()(torch.ones(4)), torch.ones(4))


@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_cross_entropy_matches_reference(with_bias):
    torch.manual_seed(0)
    hidden = torch.randn(4, 7, 16, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(30, 16, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(30, dtype=torch.float64, requires_grad=True) if with_bias else None
    targets = torch.randint(1, 30, (4, 7))
    targets[:, :2] = 0
    loss = full_softmax_ce(hidden, targets, weights, bias)
    grads = torch.autograd.grad(loss, [hidden, weights] + ([bias] if with_bias else []))
    selected = targets != 0
    logits = hidden[selected] @ weights.T + (bias if with_bias else 0)
    logits[:, 0] = -torch.inf
    expected = F.cross_entropy(logits, targets[selected])
    expected_grads = torch.autograd.grad(expected, [hidden, weights] + ([bias] if with_bias else []))
    assert torch.allclose(loss, expected)
    for got, want in zip(grads, expected_grads):
        assert torch.allclose(got, want)


def test_sampled_losses():
    torch.manual_seed(0)
    hidden = torch.randn(2, 5, 8)
    weights = torch.randn(6, 8)  # 5 items: collisions with the positive are frequent
    targets = torch.randint(1, 6, (2, 5))
    positive, negative = sampled_logits(hidden, targets, weights, 50, torch.Generator().manual_seed(0))
    assert positive.shape == (10,) and negative.shape == (10, 50)
    assert torch.isinf(negative).any() and torch.isfinite(positive).all()
    assert torch.allclose(gbce(positive, negative, n_items=5, t=0.0), bce(positive, negative))
    assert torch.isfinite(gbce(positive, negative, n_items=5, t=0.75))


def test_sasrec_as_the_official_code_builds_it_attends_to_padding_and_has_no_output_dropout():
    """`mask_padding_keys: false` lets real positions attend to the zero padding states of a window padded
    to max_len (as the reference code does): the output then differs from the masked model's and does not
    depend on how much padding the caller trimmed; `attention_output_dropout: false` drops no attention
    output (the block's only dropout left on that path is on the attention weights)."""
    from baselines.sasrec import SASRec, SASRecConfig

    torch.manual_seed(0)
    official = SASRec(50, SASRecConfig(dim=16, blocks=2, heads=2, max_len=12, mask_padding_keys=False,
                                       attention_output_dropout=False)).eval()
    masked = SASRec(50, official.config.__class__(dim=16, blocks=2, heads=2, max_len=12)).eval()
    masked.load_state_dict(official.state_dict())
    short = torch.tensor([[0, 0, 5, 7, 9], [1, 2, 3, 4, 5]])
    assert torch.allclose(official(short), official(F.pad(short, (7, 0))), atol=1e-6)
    assert not torch.allclose(official(short)[0], masked(short)[0], atol=1e-4)  # padding keys change the first
    assert official.blocks[0].attention_dropout.p == 0.0 and masked.blocks[0].attention_dropout.p > 0


def test_random_batching_visits_every_sequence_once_in_plain_shuffled_batches():
    from benchmark.trainer import random_batches

    batches = random_batches(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2] and sorted(torch.cat([torch.as_tensor(b) for b in batches]).tolist()) == list(range(10))
