"""Sentence encoders and cached text embeddings, and the user embedding matrix built from profiles."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from benchmark.profiles.store import Store
from benchmark.profiles.weights import ENCODERS, materialize, source_for


class SentenceEncoder:
    """A sentence-transformers model; `id` (model + weights hash) enters the embedding cache key. The
    weights are loaded on the first text to encode, so a run whose embeddings are all cached needs
    neither the weights nor their package (e.g. on a GPU machine without them)."""

    def __init__(self, name: str = "all-minilm-l6-v2", *, batch_size: int = 64):
        self.source = source_for(name, ENCODERS)
        self.id = f"sentence-transformers:{self.source.label}"
        self.batch_size = batch_size

    @functools.cached_property
    def model(self) -> Any:
        """The loaded sentence-transformers model."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(materialize(self.source)), device="cpu")

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim]."""
        return self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 show_progress_bar=False).astype(np.float32)


def text_hash(text: str) -> str:
    """Cache key of a text."""
    return hashlib.sha256(text.encode()).hexdigest()


def encode_cached(encoder: SentenceEncoder, texts: Sequence[str], store: Store, *, block: int = 256,
                  progress: bool = True) -> np.ndarray:
    """Embeddings of `texts`, computing only those not yet cached for this encoder."""
    hashes = [text_hash(t) for t in texts]
    cached = store.embeddings(encoder.id, sorted(set(hashes)))
    todo = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in cached}.items())
    with tqdm(total=len(todo), desc=f"encode ({encoder.id})", unit="text", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), block):
            part = todo[start:start + block]
            vectors = encoder.encode([t for _, t in part])
            store.put_embeddings(encoder.id, [(h, v) for (h, _), v in zip(part, vectors, strict=True)])
            cached.update({h: v for (h, _), v in zip(part, vectors, strict=True)})
            bar.update(len(part))
    return np.stack([cached[h] for h in hashes]) if hashes else np.zeros((0, encoder.dim), np.float32)


@dataclass(frozen=True)
class UserEmbeddings:
    """One row per dense user id; rows of users without a target are zero and `has_target` is False."""

    matrix: np.ndarray
    has_target: np.ndarray
    encoder: str


def user_embeddings(n_users: int, texts: dict[int, str], encoder: SentenceEncoder, store: Store,
                    *, progress: bool = True) -> UserEmbeddings:
    """Embed each user's text (profile or side-information text) into a matrix aligned to user ids."""
    users = sorted(texts)
    vectors = encode_cached(encoder, [texts[u] for u in users], store, progress=progress)
    matrix = np.zeros((n_users, vectors.shape[1]), dtype=np.float32)
    has = np.zeros(n_users, dtype=bool)
    if users:
        matrix[users] = vectors
        has[users] = True
    return UserEmbeddings(matrix, has, encoder.id)


def reduce_dimension(embeddings: UserEmbeddings, fit_users: np.ndarray, dim: int,
                     method: Literal["pca", "umap", "standardise"] = "pca", seed: int = 0) -> UserEmbeddings:
    """Project to `dim` dimensions with PCA or UMAP, or standardise every dimension (`dim` unused), fitted
    on `fit_users` only (training users) and applied to every user with a target; not renormalised (the
    official targets are UMAP output as it comes)."""
    fit = np.intersect1d(fit_users, np.flatnonzero(embeddings.has_target))
    if len(fit) <= dim:
        raise ValueError(f"reduce_dimension: {len(fit)} training users with a target, need more than {dim}")
    if method == "standardise":
        from sklearn.preprocessing import StandardScaler

        reducer = StandardScaler()
        dim = embeddings.matrix.shape[1]
    elif method == "pca":
        from sklearn.decomposition import PCA

        reducer = PCA(n_components=dim, random_state=seed)
    else:
        import umap

        reducer = umap.UMAP(n_components=dim, random_state=seed)
    matrix = np.zeros((len(embeddings.matrix), dim), dtype=np.float32)
    others = np.setdiff1d(np.flatnonzero(embeddings.has_target), fit)
    with torch_thread_count_kept():
        matrix[fit] = reducer.fit_transform(embeddings.matrix[fit])
        if len(others):
            matrix[others] = reducer.transform(embeddings.matrix[others])
    return UserEmbeddings(matrix, embeddings.has_target, f"{embeddings.encoder}+{method}{dim}")


@contextlib.contextmanager
def torch_thread_count_kept() -> Iterator[None]:
    """Run numba-parallel code (UMAP) on torch's thread count and leave that count as it was. Numba's
    OpenMP layer shares the process's OpenMP runtime and leaves it at numba's own count (every core),
    so a training that followed a UMAP fit in the same process ran on more threads than it was given:
    2.7x slower SASRec epochs on 2 cores shared by two one-thread processes."""
    import numba
    import torch

    threads = torch.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(threads)
