"""Fail fast on a bad `--tracking-uri` (MLflow) or `--storage` (Optuna): before any work starts, each is
opened the cheap way its scheme allows, with a timeout, and a problem is one `DataError` naming the option
and the value, instead of a library's minutes of retries and tracebacks mid-suite."""

from __future__ import annotations

import sqlite3
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from benchmark.errors import DataError

TIMEOUT_SECONDS = 5
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "oracle")  # SQLAlchemy URLs (+driver allowed)
NO_TRACKING = "none"  # --tracking-uri none: records only; `python -m benchmark.tracking import` logs them later


def check_tracking_uri(uri: str) -> None:
    """Raise `DataError` unless MLflow can use `uri`: a writable SQLite file, a reachable database or
    MLflow server, a writable local folder (`file:` or a plain path), or `none`."""
    if uri == NO_TRACKING:
        return
    scheme = _scheme(uri)
    if scheme in ("http", "https"):
        _check_server("--tracking-uri", uri)
    elif scheme in DATABASE_SCHEMES:
        _check_database("--tracking-uri", uri)
    elif scheme in ("", "file"):
        _check_folder("--tracking-uri", Path(urlsplit(uri).path if scheme else uri))
    else:
        raise DataError(f"--tracking-uri {uri}: unknown scheme {scheme!r} (use sqlite:///PATH, "
                        "postgresql://..., http(s)://HOST:PORT, a folder, or 'none')")


def check_storage(url: str) -> None:
    """Raise `DataError` unless Optuna can use `url` (a SQLAlchemy database URL) as its storage."""
    if _scheme(url) not in DATABASE_SCHEMES:
        raise DataError(f"--storage {url}: not a database URL (use sqlite:///PATH or postgresql://USER:PW@HOST/DB)")
    _check_database("--storage", url)


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.split("+")[0].lower()


def _check_database(option: str, url: str) -> None:
    if _scheme(url) == "sqlite":
        _check_sqlite(option, url)
        return
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    try:
        timeout = {"connect_timeout": TIMEOUT_SECONDS} if _scheme(url) in ("postgresql", "mysql") else {}
        engine = sqlalchemy.create_engine(url, connect_args=timeout)
        with engine.connect():
            pass
        engine.dispose()
    except (SQLAlchemyError, ImportError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise DataError(f"{option} {url}: cannot connect ({reason})") from None


def _check_sqlite(option: str, url: str) -> None:
    path = Path(url.split(":///", 1)[1]) if ":///" in url else None
    if path is None or not path.name:
        raise DataError(f"{option} {url}: expected sqlite:///PATH (three slashes, then the file's path)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # as MLflow and Optuna would
        with open(path, "ab"):  # creates an empty file where none is: SQLite takes it as a new database
            pass
        with sqlite3.connect(path, timeout=TIMEOUT_SECONDS) as connection:
            connection.execute("PRAGMA schema_version")
    except (OSError, sqlite3.Error) as error:
        raise DataError(f"{option} {url}: not a writable SQLite database ({error})") from None


def _check_folder(option: str, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise DataError(f"{option} {folder}: not a writable folder ({error})") from None


def _check_server(option: str, uri: str) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_SECONDS):
            pass
    except urllib.error.HTTPError:
        pass  # the server answered: MLflow reports its own errors from here on
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"{option} {uri}: no server answers ({getattr(error, 'reason', error)})") from None
