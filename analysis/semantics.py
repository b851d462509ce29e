"""Do the LLM profiles carry semantics? The measurements and figures behind `python -m
analysis.profile_semantics` (its docstring says what they are)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import silhouette_score  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

from benchmark.data.dataset import load_dataset  # noqa: E402
from benchmark.errors import DataError  # noqa: E402
from benchmark.methods.targets import side_info_texts  # noqa: E402
from benchmark.profiles.backends import CacheOnly  # noqa: E402
from benchmark.profiles.encode import user_embeddings  # noqa: E402
from benchmark.profiles.generate import generate_profiles  # noqa: E402
from benchmark.profiles.settings import ProfileResources, ProfileSettings  # noqa: E402
from benchmark.profiles.stats import top_labels  # noqa: E402
from benchmark.split import Split, SplitConfig  # noqa: E402

NEIGHBOURS = 10
SHOWN_LABELS = 8


def knn_purity(vectors: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean share of each point's k nearest neighbours (cosine) that share its label."""
    index = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(vectors)
    neighbours = index.kneighbors(vectors, return_distance=False)[:, 1:]
    return float((labels[neighbours] == labels[:, None]).mean())


def chance_purity(labels: np.ndarray) -> float:
    """The kNN purity expected when neighbours ignore the label."""
    _, counts = np.unique(labels, return_counts=True)
    shares = counts / counts.sum()
    return float((shares ** 2).sum())


def semantics(split: Split, settings: ProfileSettings, cache_dir: Path | None) -> dict:
    """Embeddings of profiles and side information for users with both, their labels and the scores."""
    with ProfileResources(settings, cache_dir) as resources:
        return _semantics(split, settings, resources)


def _semantics(split: Split, settings: ProfileSettings, resources: ProfileResources) -> dict:
    profiles, _ = generate_profiles(split, CacheOnly(settings.backend_id), resources.store, prompts=settings.prompts,
                                    params=settings.generation, generate=False, progress=False)
    if not profiles.texts:
        raise DataError(f"no cached profiles for {split.log.name} under {settings.backend_id}: generate them first")
    column = "genres" if "genres" in split.log.item_text else "category"
    dominant = {u: labels[0] for u, labels in top_labels(split, "fit", column, top=1).items()}
    side_texts = side_info_texts(split, settings.prompts)
    users = sorted(set(profiles.texts) & set(dominant) & set(side_texts))
    n_users = split.log.n_users
    spaces = {
        "LLM profiles": user_embeddings(n_users, {u: profiles.texts[u] for u in users}, resources.encoder,
                                        resources.store, progress=False).matrix[users],
        "side information (item titles + genres)": user_embeddings(
            n_users, {u: side_texts[u] for u in users}, resources.encoder, resources.store, progress=False).matrix[users],
    }
    labels = np.array([dominant[u] for u in users])
    scores = {name: {"silhouette": float(silhouette_score(vectors, labels, metric="cosine")),
                     "knn_purity": knn_purity(vectors, labels)} for name, vectors in spaces.items()}
    words = np.array([len(profiles.texts[u].split()) for u in sorted(profiles.texts)])
    return {"spaces": spaces, "labels": labels, "scores": scores, "chance": chance_purity(labels), "words": words,
            "users": len(users), "column": column, "generator": settings.backend_id, "encoder": settings.encoder}


def plot_umap(result: dict, title: str, path: Path, seed: int = 0) -> Path:
    """2-D UMAP of both embedding spaces, points coloured by the dominant label (top labels only)."""
    import umap

    labels = result["labels"]
    values, counts = np.unique(labels, return_counts=True)
    shown = list(values[np.argsort(-counts)][:SHOWN_LABELS])
    colours = plt.get_cmap("tab10")
    figure, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    for axis, (name, vectors) in zip(axes, result["spaces"].items()):
        points = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed).fit_transform(vectors)
        other = ~np.isin(labels, shown)
        axis.scatter(points[other, 0], points[other, 1], s=5, color="lightgrey", label="other")
        for index, label in enumerate(shown):
            mask = labels == label
            axis.scatter(points[mask, 0], points[mask, 1], s=6, color=colours(index), label=label)
        score = result["scores"][name]
        axis.set_title(f"{name}\nsilhouette {score['silhouette']:.3f}, {NEIGHBOURS}-NN purity "
                       f"{score['knn_purity']:.3f} (chance {result['chance']:.3f})", fontsize=9)
        axis.set_xlabel("UMAP 1")
        axis.set_ylabel("UMAP 2")
    axes[1].legend(title=f"dominant {result['column']}", fontsize=7, title_fontsize=8, markerscale=2,
                   loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path


def plot_lengths(words: np.ndarray, title: str, path: Path) -> Path:
    """Histogram of profile lengths in words."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.hist(words, bins=40, color="tab:blue")
    axis.axvline(np.median(words), color="tab:red", lw=1, label=f"median {np.median(words):.0f} words")
    axis.set_xlabel("profile length (words)")
    axis.set_ylabel("users")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path


def write_report(dataset: str, quantile: float, validation: str, output: Path, data_dir: str | None = None,
                 cache_dir: str | None = None) -> list[str]:
    """Measure the profiles of a dataset's split against its side information, write the figures and the
    markdown page into `output`, and return the page's lines."""
    split = SplitConfig(quantile=quantile, validation=validation).apply(
        load_dataset(dataset, data_dir=data_dir, cache_dir=cache_dir))
    result = semantics(split, ProfileSettings(), Path(cache_dir) if cache_dir else None)
    (output / "figures").mkdir(parents=True, exist_ok=True)
    name = split.log.name
    where = f"{name}, q={quantile}, {validation} validation, {result['users']} users"
    umap_path = plot_umap(result, f"Profile embeddings vs side-information embeddings ({where})",
                          output / "figures" / f"profiles-umap-{name}.png")
    length_path = plot_lengths(result["words"], f"Profile length, {name} ({len(result['words'])} profiles)",
                               output / "figures" / f"profiles-length-{name}.png")
    lines = [f"# Do the profiles carry semantics? ({where})", "",
             f"Generated by `python -m analysis.profile_semantics`. Generator `{result['generator']}`, encoder "
             f"`{result['encoder']}`. Label: each user's dominant {result['column'][:-1] if result['column'].endswith('s') else result['column']} "
             f"in the fit period. Chance {NEIGHBOURS}-NN purity: {result['chance']:.3f}.", "",
             "| embedding of | silhouette (cosine) | 10-NN purity |", "|---|---|---|"]
    lines += [f"| {space} | {score['silhouette']:.3f} | {score['knn_purity']:.3f} |"
              for space, score in result["scores"].items()]
    lines += ["", f"Profile length: median {np.median(result['words']):.0f} words, "
                  f"5–95% range {np.percentile(result['words'], 5):.0f}–{np.percentile(result['words'], 95):.0f}.",
              "", f"![UMAP](figures/{umap_path.name})", "", f"![lengths](figures/{length_path.name})", ""]
    (output / f"profiles-{name}.md").write_text("\n".join(lines))
    return lines

