"""Dataset registry, parsers, preprocessing, acquisition (mirror, cache, HTTP download) and errors."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.data import ml_100k
from benchmark.data.__main__ import main as data_cli
from benchmark.data.acquire import resolve_files
from benchmark.data.dataset import load_dataset
from benchmark.data.preprocess import PreprocessConfig, clean
from benchmark.data.spec import DataFile, DatasetSpec
from benchmark.errors import DataError

NO_FILTER = PreprocessConfig(1, 1)


@pytest.mark.parametrize(
    ("name", "users", "items", "interactions"),
    [("ml-100k", 943, 1349, 99287), ("ml-1m-5core", 6040, 3416, 999611),
     ("ml-latest-small", 610, 3650, 90274), ("amazon-beauty", 22332, 12086, 198215)],
)
def test_mirror_datasets_load_with_5core(mirror, tmp_path, name, users, items, interactions):
    log = load_dataset(name, data_dir=mirror, cache_dir=tmp_path)
    assert (log.n_users, log.n_items, len(log.item)) == (users, items, interactions)
    assert log.item.min() == 1 and log.item.max() == log.n_items  # 0 is padding
    assert list(log.item_text.index) == list(range(1, log.n_items + 1))
    # canonical order: by user, then time
    assert (np.diff(log.user) >= 0).all()
    same_user = np.diff(log.user) == 0
    assert (np.diff(log.timestamp)[same_user] >= 0).all()


def test_movie_text_has_title_year_genres_and_wiki(mirror, tmp_path):
    log = load_dataset("ml-100k", data_dir=mirror, cache_dir=tmp_path)
    text = log.item_text.set_index("original_id")
    toy_story = text.loc[1]
    assert (toy_story["title"], toy_story["year"]) == ("Toy Story", 1995)
    assert toy_story["genres"] == "Animation, Children's, Comedy"
    assert text["summary"].notna().mean() > 0.9
    assert text.loc[64, "title"] == "The Shawshank Redemption"


def test_amazon_titles_are_html_unescaped(mirror, tmp_path):
    log = load_dataset("amazon-beauty", data_dir=mirror, cache_dir=tmp_path)
    titles = log.item_text["title"].dropna()
    assert not titles.str.contains("&amp;|&quot;|&#39;").any()
    assert titles.str.contains("&").any()


def test_amazon_row_order_breaks_same_day_ties(mirror, tmp_path):
    log = load_dataset("amazon-beauty", data_dir=mirror, cache_dir=tmp_path, preprocessing=NO_FILTER)
    raw = pd.read_csv(mirror / "amazon-beauty" / "interactions.csv.gz", dtype=str)
    first_user = log.user_ids[0]
    expected = raw[raw["user_id"] == first_user].sort_values("timestamp", kind="stable")["item_id"].tolist()
    start, stop = log.offsets[0], log.offsets[1]
    assert log.item_ids[log.item[start:stop] - 1].tolist() == expected


def test_official_ml_1m_layout(mirror, tmp_path):
    folder = tmp_path / "mirror" / "ml-1m"
    folder.mkdir(parents=True)
    (folder / "movies.dat").write_bytes((mirror / "ml-1m" / "movies.dat").read_bytes())
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    with pytest.warns(UserWarning, match="not pinned"):
        log = load_dataset("ml-1m", data_dir=tmp_path / "mirror", cache_dir=tmp_path, preprocessing=NO_FILTER)
    assert len(log.item) == 3 and log.rating is not None and sorted(log.rating) == [3.0, 4.0, 5.0]
    assert log.item_text.set_index("original_id").loc[1193, "title"] == "One Flew Over the Cuckoo's Nest"


# --- preprocessing -------------------------------------------------------------------------------

def test_dedup_repeats_kcore_and_order():
    raw = pd.DataFrame({
        "user": ["u1", "u1", "u1", "u1", "u2", "u2", "u2", "u3"],
        "item": ["a", "a", "a", "b", "a", "b", "c", "c"],
        "timestamp": [1, 1, 2, 3, 5, 5, 6, 1],
    })
    # exact duplicate (u1,a,1) removed; consecutive repeat (u1,a,2) removed when asked
    kept = clean(raw, PreprocessConfig(1, 1), source="t")
    assert len(kept) == 7
    no_repeats = clean(raw, PreprocessConfig(1, 1, drop_consecutive_repeats=True), source="t")
    assert no_repeats[no_repeats["user"] == "u1"]["item"].tolist() == ["a", "b"]
    # 2-core: c has 2 users, but u3 has 1 interaction -> u3 goes -> c has 1 -> c goes -> u2 keeps a, b
    core = clean(raw, PreprocessConfig(2, 2), source="t")
    assert sorted(core["item"].unique()) == ["a", "b"] and "u3" not in set(core["user"])
    # same-timestamp events keep file order
    assert core[core["user"] == "u2"]["item"].tolist() == ["a", "b"]


def test_empty_after_filter_names_dataset_and_settings():
    raw = pd.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": [1, 2]})
    with pytest.raises(DataError, match="dataset 'x'.*no interactions left.*min_user_interactions"):
        clean(raw, PreprocessConfig(5, 5), source="dataset 'x'")


# --- generic CSV ---------------------------------------------------------------------------------

def _write_generic(tmp_path: Path, interactions: str, items: str | None = None, **extra) -> Path:
    (tmp_path / "events.tsv").write_text(interactions)
    config = ["name: shop", "interactions: events.tsv", "sep: \"\\t\"",
              "columns: {user: customer, item: sku, timestamp: when}", "timestamp_unit: datetime",
              "domain: products"]
    if items is not None:
        (tmp_path / "products.tsv").write_text(items)
        config += ["items: products.tsv", "item_columns: {item: sku, text: [name, category]}"]
    config += [f"{key}: {value}" for key, value in extra.items()]
    path = tmp_path / "shop.yaml"
    path.write_text("\n".join(config) + "\n")
    return path


def test_generic_csv_from_config_only(tmp_path):
    events = "customer\tsku\twhen\textra\n" + "".join(
        f"c{u}\tp{i}\t2024-01-{d:02d}T10:00:00\tx\n" for u in range(3) for d, i in enumerate(range(3), start=1))
    items = "sku\tname\tcategory\tprice\np0\tSoap\tBath\t1\np1\tShampoo & Co\tHair\t2\np2\tComb\tHair\t3\n"
    path = _write_generic(tmp_path, events, items)
    log = load_dataset(path, cache_dir=tmp_path / "cache", preprocessing=NO_FILTER)
    assert (log.n_users, log.n_items, len(log.item)) == (3, 3, 9)
    assert log.domain == "products"
    assert log.timestamp.min() == pd.Timestamp("2024-01-01T10:00:00Z").timestamp()
    assert list(log.item_text.columns) == ["original_id", "name", "category"]
    assert log.item_text.set_index("original_id").loc["p1", "name"] == "Shampoo & Co"


def test_generic_csv_bad_timestamp_names_line_and_value(tmp_path):
    path = _write_generic(tmp_path, "customer\tsku\twhen\nc1\tp1\t2024-01-01\nc1\tp2\tyesterday-ish\n")
    with pytest.raises(DataError, match=r"events.tsv: line 3.*'yesterday-ish'"):
        load_dataset(path, cache_dir=tmp_path / "cache", preprocessing=NO_FILTER)


def test_generic_csv_missing_column_lists_columns(tmp_path):
    path = _write_generic(tmp_path, "customer\titem\twhen\nc1\tp1\t2024-01-01\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['sku'\].*'customer', 'item', 'when'"):
        load_dataset(path, cache_dir=tmp_path / "cache", preprocessing=NO_FILTER)


def test_generic_csv_malformed_numeric_row(tmp_path):
    (tmp_path / "e.csv").write_text("user,item,timestamp\n1,2,100\n1,3,1O1\n")
    config = {"name": "e", "interactions": str(tmp_path / "e.csv")}
    with pytest.raises(DataError, match=r"e.csv: line 3, column 'timestamp': value '1O1' is not an integer"):
        load_dataset(config, cache_dir=tmp_path / "cache", preprocessing=NO_FILTER)


def test_generic_csv_config_errors_name_the_key(tmp_path):
    with pytest.raises(DataError, match=r"timestamp_unit.*'weeks'"):
        load_dataset({"name": "e", "interactions": "x.csv", "timestamp_unit": "weeks"}, cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"colums.*Extra inputs"):
        load_dataset({"name": "e", "interactions": "x.csv", "colums": {}}, cache_dir=tmp_path)


def test_missing_file_names_places_tried(tmp_path):
    with pytest.raises(DataError, match=r"'interactions' not found.*nowhere.csv"):
        load_dataset({"name": "e", "interactions": str(tmp_path / "nowhere.csv")}, cache_dir=tmp_path)


# --- acquisition ---------------------------------------------------------------------------------

def test_mirror_checksum_mismatch_is_refused(mirror, tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("u.item", "u.genre"):
        (folder / name).write_bytes((mirror / "ml-100k" / name).read_bytes())
    (folder / "u.data").write_bytes((mirror / "ml-100k" / "u.data").read_bytes()[:-10])
    with pytest.raises(DataError, match=r"u.data has SHA-256 .* expected 06416e59"):
        load_dataset("ml-100k", data_dir=tmp_path, cache_dir=tmp_path / "cache")


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _small_ml100k_spec(base_url: str, data_sha: str) -> DatasetSpec:
    url = f"{base_url}/ml-100k.zip"
    return DatasetSpec(
        "ml-100k-small", "movies", "test archive",
        (DataFile("u.data", data_sha, f"{url}#ml-100k/u.data"),
         DataFile("u.item", None, f"{url}#ml-100k/u.item"),
         DataFile("u.genre", None, f"{url}#ml-100k/u.genre")),
        ml_100k.load_interactions, ml_100k.load_item_text,
    )


def _small_ml100k_archive(mirror: Path) -> tuple[bytes, bytes]:
    data = b"".join(line + b"\n" for line in (mirror / "ml-100k" / "u.data").read_bytes().splitlines()[:2000])
    files = {"ml-100k/u.data": data,
             "ml-100k/u.item": (mirror / "ml-100k" / "u.item").read_bytes(),
             "ml-100k/u.genre": (mirror / "ml-100k" / "u.genre").read_bytes()}
    return _zip(files), data


@pytest.mark.filterwarnings("ignore:.*not pinned")
def test_download_extract_verify_and_cache(mirror, tmp_path, http_server):
    root, base = http_server
    archive, data = _small_ml100k_archive(mirror)
    (root / "ml-100k.zip").write_bytes(archive)
    spec = _small_ml100k_spec(base, hashlib.sha256(data).hexdigest())
    cache = tmp_path / "cache"
    log = load_dataset(spec, cache_dir=cache, preprocessing=NO_FILTER)
    assert len(log.item) == 2000
    assert (cache / "datasets" / "ml-100k-small" / "u.data").read_bytes() == data
    (root / "ml-100k.zip").unlink()  # a second load must come from the cache, not the network
    assert len(load_dataset(spec, cache_dir=cache, preprocessing=NO_FILTER).item) == 2000


@pytest.mark.filterwarnings("ignore:.*not pinned")
def test_download_checksum_mismatch_leaves_nothing(mirror, tmp_path, http_server):
    root, base = http_server
    archive, _ = _small_ml100k_archive(mirror)
    (root / "ml-100k.zip").write_bytes(archive)
    spec = _small_ml100k_spec(base, "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"u.data.*does not match the expected 0000"):
        resolve_files(spec, None, cache)
    leftovers = [p.name for p in (cache / "datasets").rglob("*") if p.is_file()]
    assert "u.data" not in leftovers and not any(name.endswith(".part") for name in leftovers)


def test_plain_file_download_and_unreachable_host(tmp_path, http_server):
    root, base = http_server
    content = b"user,item,timestamp\n1,1,1\n1,2,2\n"
    (root / "events.csv").write_bytes(content)
    config = {"name": "remote", "interactions": f"{base}/events.csv",
              "interactions_sha256": hashlib.sha256(content).hexdigest()}
    log = load_dataset(config, cache_dir=tmp_path / "cache", preprocessing=NO_FILTER)
    assert len(log.item) == 2
    missing = {"name": "gone", "interactions": f"{base}/missing.csv"}
    with pytest.raises(DataError, match=r"download of .*missing.csv failed.*404"):
        load_dataset(missing, cache_dir=tmp_path / "cache")


def test_describe_cli(mirror, capsys):
    assert data_cli(["describe", "ml-100k", "--data-dir", str(mirror), "--split-quantile", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "users          943" in out and "split.test_users" in out
    assert data_cli(["describe", "ml-1m", "--data-dir", str(mirror), "--cache-dir", "/nonexistent-cache"]) == 2
    assert "ml-1m-5core" in capsys.readouterr().err
