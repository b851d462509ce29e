"""The sentence encoder and its embedding cache, and the target reductions after it."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.profiles.store import Store


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
