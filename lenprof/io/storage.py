"""Where an input or output lives: a local path, read and written through the os as ever, or an
object in storage (``s3://``, ``gs://``, ``az://``), read and written through ``pyarrow.fs``.

Why ``pyarrow.fs`` and not fsspec: pyarrow is already a core dependency, and its S3, GCS and
Azure filesystems are C++ (range reads without the GIL, multipart uploads) that follow each
cloud's conventions for credentials and endpoints (for S3 the AWS variables, ``AWS_ENDPOINT_URL``
included). fsspec would need s3fs, gcsfs and adlfs, which bring aiobotocore, aiohttp and the
Azure SDK: a second stack, and a second set of conventions, for the same calls.

Every remote call is bounded (S3): a connection must open within ``LENPROF_REMOTE_TIMEOUT``
seconds (default 10), a request that transfers nothing for as long is cut, and a call is tried
``AWS_MAX_ATTEMPTS`` times (default 3), so a server that stops answering fails one call in about
``attempts x timeout`` seconds, never retried without end. Local paths never reach this module's
remote half: :func:`open_read` on a path is ``open(path, "rb", buffering=...)``, exactly as before.
Writing an object is ``io/upload.py``.
"""

from __future__ import annotations

import functools
import io
import os
import re
from typing import Any, BinaryIO

SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "abfss://")
REMOTE_BLOCK = 8 << 20  # bytes a remote read asks for at once: one request per block
DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 3


def is_url(path: str) -> bool:
    """Whether ``path`` names an object in storage rather than a local file."""
    return path[:8].lower().startswith(SCHEMES)


def timeout() -> float:
    return float(os.environ.get("LENPROF_REMOTE_TIMEOUT") or DEFAULT_TIMEOUT)


def attempts() -> int:
    return max(1, int(os.environ.get("AWS_MAX_ATTEMPTS") or DEFAULT_ATTEMPTS))


# The variables that say, by value, how to reach storage (a profile or credentials file is a file:
# each machine has its own). A Ray actor on another node is given the driver's, so that it reads
# the objects the driver found, from the same endpoint, as the driver did (engine/ray.py).
SETTINGS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_MAX_ATTEMPTS",
    "AWS_EC2_METADATA_DISABLED", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN", "LENPROF_REMOTE_TIMEOUT",
)  # fmt: skip


def settings() -> dict[str, str]:
    """Those of :data:`SETTINGS` this process has."""
    return {name: os.environ[name] for name in SETTINGS if name in os.environ}


# --- a URL to a filesystem and its path -----------------------------------------------------------


def split(url: str) -> tuple[str, str, str]:
    """``(scheme, authority, key)`` of a URL; the authority is the bucket (or container).

    >>> split("s3://bucket/data/a.jsonl"), split("az://box/"), split("gs://b")
    (('s3', 'bucket', 'data/a.jsonl'), ('az', 'box', ''), ('gs', 'b', ''))
    """
    scheme, _, rest = url.partition("://")
    authority, _, key = rest.partition("/")
    return scheme.lower(), authority, key


def fs_path(url: str) -> str:
    """The path ``pyarrow.fs`` knows an object by: ``bucket/key``, no trailing slash.

    >>> fs_path("s3://b/data/"), fs_path("abfss://box@acct.dfs.core.windows.net/d/x.jsonl")
    ('b/data', 'box/d/x.jsonl')
    """
    _, authority, key = split(url)
    bucket = authority.split("@", 1)[0]  # abfs://container@account.dfs.core.windows.net/...
    return f"{bucket}/{key}".rstrip("/")


def locate(url: str) -> tuple[Any, str]:
    """The ``pyarrow.fs`` filesystem of ``url`` and :func:`fs_path`."""
    scheme, authority, _ = split(url)
    return _filesystem(scheme, authority), fs_path(url)


def bucket_of(url: str) -> str:
    """The URL of ``url``'s bucket (or container): ``s3://bucket/``."""
    scheme, authority, _ = split(url)
    return f"{scheme}://{authority}/"


def url_of(base: str, fs_path: str) -> str:
    """The URL of ``fs_path`` (as listed under ``base``'s bucket), in ``base``'s spelling."""
    scheme, authority, _ = split(base)
    return f"{scheme}://{authority}/{fs_path.split('/', 1)[1] if '/' in fs_path else ''}"


@functools.cache
def _filesystem(scheme: str, authority: str) -> Any:
    import datetime

    import pyarrow.fs as pafs

    from lenprof.errors import InputError

    try:
        if scheme == "az":
            account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
            if not account:
                raise InputError(
                    f"az://{authority}: set AZURE_STORAGE_ACCOUNT_NAME (and AZURE_STORAGE_ACCOUNT_KEY or "
                    "AZURE_STORAGE_SAS_TOKEN, else Azure's default credential is used), or name the "
                    "account in the URL: abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH"
                )
            return pafs.AzureFileSystem(
                account,
                account_key=os.environ.get("AZURE_STORAGE_ACCOUNT_KEY"),
                sas_token=os.environ.get("AZURE_STORAGE_SAS_TOKEN"),
            )
        fs, _ = pafs.FileSystem.from_uri(f"{'gs' if scheme == 'gcs' else scheme}://{authority}")
        if scheme == "s3":  # pyarrow's own reading of the URL and the AWS variables, bounded
            options = fs.__reduce__()[1][0]
            return pafs.S3FileSystem._reconstruct(
                {
                    **options,
                    "connect_timeout": timeout(),
                    "request_timeout": timeout(),
                    "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=attempts()),
                }
            )
        if scheme in ("gs", "gcs"):
            limit = datetime.timedelta(seconds=timeout() * attempts())
            options = fs.__reduce__()[1][0]
            return pafs.GcsFileSystem._reconstruct({**options, "retry_time_limit": limit})
        return fs
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise InputError(f"{scheme}://{authority}: cannot be reached ({_first_line(exc)})") from exc


# --- what a path is ---------------------------------------------------------------------------------


def kind(path: str) -> str | None:
    """``"file"``, ``"dir"`` (a folder, or a prefix with objects under it) or None when absent.
    A remote call that fails raises ``OSError`` (see :func:`reason`)."""
    if not is_url(path):
        return "dir" if os.path.isdir(path) else "file" if os.path.lexists(path) else None
    import pyarrow.fs as pafs

    fs, where = locate(path)
    found = fs.get_file_info(where).type
    return {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}.get(found)


def is_dir(path: str) -> bool:
    if not is_url(path):
        return os.path.isdir(path)
    try:
        return kind(path) == "dir"
    except OSError:
        return False  # whatever uses it says why


def size(path: str) -> int:
    return _object(path).size if is_url(path) else os.path.getsize(path)


def mtime_ns(path: str) -> int:
    return _object(path).mtime_ns if is_url(path) else os.stat(path).st_mtime_ns


def _object(url: str) -> Any:
    """An object's ``FileInfo`` (a HEAD); ``FileNotFoundError`` when there is none."""
    import pyarrow.fs as pafs

    fs, where = locate(url)
    info = fs.get_file_info(where)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(2, "no such object", url)
    return info


def stamp(path: str) -> tuple:
    """What tells that an object changed: its size, modification time and ETag (one HEAD)."""
    fs, where = locate(path)
    with fs.open_input_file(where) as fh:
        meta = fh.metadata()
        tags = {str(k).lower(): bytes(v).decode("latin-1") for k, v in meta.items()}  # names vary by cloud
        return (fh.size(), tags.get("last-modified", ""), 0, tags.get("etag", ""))


def files_under(url: str) -> list[tuple[str, int]]:
    """Every object under the prefix ``url`` (as a folder: ``url/``), with its size, sorted."""
    import pyarrow.fs as pafs

    fs, where = locate(url)
    infos = fs.get_file_info(pafs.FileSelector(where, recursive=True, allow_not_found=True))
    return sorted((url_of(url, i.path), i.size) for i in infos if i.type == pafs.FileType.File)


def glob(pattern: str) -> list[tuple[str, int]]:
    """The objects a glob names, with their sizes, sorted: ``*`` and ``?`` within one level,
    ``**`` across levels, ``[...]`` a set, as ``glob.glob(recursive=True)`` reads a path."""
    scheme, authority, key = split(pattern)
    fixed = re.split(r"[*?\[]", key, maxsplit=1)[0].rsplit("/", 1)[0] if "/" in key else ""
    base = f"{scheme}://{authority}/{fixed}"
    rule = re.compile(f"{scheme}://{re.escape(authority)}/" + _glob_regex(key))
    return [(u, n) for u, n in files_under(base) if rule.fullmatch(u)]


def _glob_regex(pattern: str) -> str:
    """
    >>> _glob_regex("d/**/x?.json*")
    'd/(?:[^/]*/)*x[^/]\\\\.json[^/]*'
    """
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] in "*?":
            out.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) > 0:
            inside = pattern[i + 1 : end]
            out.append("[" + ("^" + inside[1:] if inside.startswith("!") else inside) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


# --- reading ----------------------------------------------------------------------------------------


def open_read(path: str, buffering: int = 0) -> BinaryIO:
    """A file to read, seek and ``tell``: for a path, ``open(path, "rb", buffering=buffering)``;
    for an object, pyarrow's random-access file (each ``read`` is a ranged GET; ``read_at`` may
    be called from several threads)."""
    if not is_url(path):
        return open(path, "rb", buffering=buffering)
    fs, where = locate(path)
    return fs.open_input_file(where)


def open_head(path: str) -> BinaryIO:
    """A file whose first bytes are read (is it a profile? a rejects file?): a path as
    ``open(path, "rb")``; an object a small block at a time."""
    if not is_url(path):
        return open(path, "rb")
    return io.BufferedReader(open_read(path), buffer_size=64 << 10)  # type: ignore[arg-type]


def open_stream(path: str) -> BinaryIO:
    """A file read from start to end (``.gz``/``.zst``): remote reads go a block at a time."""
    if not is_url(path):
        return open(path, "rb")
    return io.BufferedReader(open_read(path), buffer_size=REMOTE_BLOCK)  # type: ignore[arg-type]


def source(path: str) -> Any:
    """What pyarrow opens (``pq.ParquetFile(source(path))``): a path itself, an object opened
    for random access (pyarrow then reads the footer and each column chunk by range)."""
    return open_read(path) if is_url(path) else path


def block(path: str, local: int) -> int:
    """Bytes to read at once: ``local`` for a path, :data:`REMOTE_BLOCK` for an object."""
    return REMOTE_BLOCK if is_url(path) else local


# --- saying what went wrong ---------------------------------------------------------------------------

_DENIED = (
    "ACCESS_DENIED",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "HTTP status 403",
    "Forbidden",
)
_NO_ANSWER = "the server did not answer"
_SILENT = ("NETWORK_CONNECTION", "curlCode", "Timeout was reached", "Couldn't connect")


def reason(path: str, exc: BaseException) -> str:
    """What went wrong, in a few words: for a path, the os's words as before; for an object,
    missing bucket or key, denied credentials, or a server that did not answer, with what to do."""
    if not is_url(path):
        return str(getattr(exc, "strerror", None) or exc)
    text = str(exc)
    scheme, bucket, _ = split(path)
    if "NO_SUCH_BUCKET" in text or "bucket does not exist" in text.lower():
        return f"no such bucket {bucket!r}"
    if isinstance(exc, FileNotFoundError) or "NO_SUCH_KEY" in text:
        return "no such object"
    if any(word in text for word in _DENIED):
        creds = (
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            if scheme == "s3"
            else "GOOGLE_APPLICATION_CREDENTIALS"
            if scheme in ("gs", "gcs")
            else "AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN"
        )
        return f"access denied: check the credentials ({creds}) and their permissions on {bucket!r}"
    if any(word in text for word in _SILENT):
        return (
            f"{_NO_ANSWER}{_endpoint(path)} ({attempts()} attempts, {timeout():g} s each; "
            "LENPROF_REMOTE_TIMEOUT and AWS_MAX_ATTEMPTS set them)"
        )
    return _first_line(exc)


def unanswered(message: str) -> bool:
    """Whether an error's message says a storage server did not answer (see :func:`reason`):
    then asking it more (whether an input changed) would only wait as long again."""
    return _NO_ANSWER in message


def _endpoint(path: str) -> str:
    scheme = split(path)[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return f" at {endpoint}" if scheme == "s3" and endpoint else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
