"""The official Quick, Draw! simplified files: their identities, and downloads that resume, verify and are atomic.

The file is fetched to ``<name>.part`` (resumed with an HTTP ``Range`` request if a partial file is
there) and renamed to its final name only after its size matches the server's and its git blob
sha1 matches the known value. A mismatch deletes the partial file and says so.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .fileio import git_blob_sha1


@dataclass(frozen=True)
class OfficialFile:
    """Identity of an official ``full/simplified/<category>.ndjson`` file and the seed of its split."""

    category: str
    num_drawings: int
    git_blob_sha1: str
    split_seed: int

    @property
    def filename(self) -> str:
        return f"{self.category}.ndjson"

    @property
    def url(self) -> str:
        return f"https://storage.googleapis.com/quickdraw_dataset/full/simplified/{self.category}.ndjson"


OFFICIAL_FILES = {
    "cat": OfficialFile("cat", 123_202, "3abbe8b46581dcc514355513bf55b173f53b40c9", 0),
    "bus": OfficialFile("bus", 166_208, "38e034ae019440c16f5f8904c552e1f2638349fb", 1),
    "rabbit": OfficialFile("rabbit", 155_288, "9605cfbb415b135b4eb4103545eecdc34f40db42", 2),
}
SPLIT_TRAIN_SIZE, SPLIT_TEST_SIZE = 10_000, 2_000


def official_file(category: str) -> OfficialFile:
    """The known official file for ``category``; a clear error names the known categories."""
    try:
        return OFFICIAL_FILES[category]
    except KeyError:
        raise ValueError(
            f"unknown category {category!r}: the official split is defined for {sorted(OFFICIAL_FILES)}. "
            "For other data pass an ndjson file with --data and a split file with --split."
        ) from None


def is_official_blob(blob_sha1: str, category: str) -> bool:
    """Whether a file whose git blob sha1 is ``blob_sha1`` is the official simplified file of ``category``."""
    spec = OFFICIAL_FILES.get(category)
    return spec is not None and blob_sha1 == spec.git_blob_sha1


def is_official_file(path: str | os.PathLike, category: str) -> bool:
    """Whether ``path`` is the official simplified file of ``category`` (``is_official_blob`` of its content)."""
    return category in OFFICIAL_FILES and is_official_blob(git_blob_sha1(path), category)


class DownloadError(OSError):
    """A download that could not be completed or verified; nothing half-written is left behind."""


def _manual_hint(url: str, dest: Path) -> str:
    return f"Download {url} on a machine with a network and place it at {dest} (or pass its path with --data)."


def download_file(url: str, dest: str | os.PathLike, expected_git_sha1: str | None = None,
                  timeout: float = 15.0, chunk_size: int = 1 << 20, progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part``; verify the size and the git blob sha1."""
    from tqdm.auto import tqdm

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file is already complete
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}. {_manual_hint(url, dest)}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url} ({reason}). {_manual_hint(url, dest)}") from None

    total = offset
    if response is not None:
        with response:
            if offset and response.status != 206:  # server ignored Range: start again
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with open(part, "ab" if offset else "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                try:
                    while chunk := response.read(chunk_size):
                        f.write(chunk)
                        bar.update(len(chunk))
                except (socket.timeout, ConnectionError, OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"{url}: connection lost after {f.tell()} bytes ({exc}); run again to resume from {part}"
                    ) from None

    size = part.stat().st_size
    if total is not None and size < total:  # the server closed the connection early: keep what arrived
        raise DownloadError(f"{url}: the connection closed after {size} of {total} bytes; run again to resume from "
                            f"{part}")
    if total is not None and size > total:
        part.unlink()
        raise DownloadError(f"{url}: got {size} bytes, expected {total}; the partial file was deleted")
    if expected_git_sha1 is not None:
        actual = git_blob_sha1(part)
        if actual != expected_git_sha1:
            part.unlink()
            raise DownloadError(
                f"{url}: git blob sha1 {actual} does not match the expected {expected_git_sha1}; "
                "the downloaded file was deleted"
            )
    os.replace(part, dest)
    return dest


def download_official(category: str, data_dir: str | os.PathLike = "data", url: str | None = None,
                      timeout: float = 15.0) -> Path:
    """Return ``data_dir/<category>.ndjson``, downloading and verifying it if it is not there yet."""
    spec: OfficialFile = official_file(category)
    dest = Path(data_dir) / spec.filename
    if dest.is_file():
        return dest
    return download_file(url or spec.url, dest, spec.git_blob_sha1, timeout=timeout)


def resolve_data_file(category: str, data: str | os.PathLike | None = None, data_dir: str | os.PathLike = "data",
                      allow_download: bool = True) -> Path:
    """Find the ndjson file for ``category``.

    ``data`` may be a file (used as is) or a folder holding ``<category>.ndjson[.gz]``. Without
    ``data``, ``data_dir/<category>.ndjson`` is used, downloaded first if allowed.
    """
    if data is not None:
        data = Path(data)
        if data.is_file():
            return data
        if data.is_dir():
            for name in (f"{category}.ndjson", f"{category}.ndjson.gz"):
                if (data / name).is_file():
                    return data / name
            raise FileNotFoundError(f"{data} has no {category}.ndjson or {category}.ndjson.gz")
        raise FileNotFoundError(f"--data {data} does not exist")
    dest = Path(data_dir) / official_file(category).filename
    if dest.is_file() or allow_download:
        return download_official(category, data_dir)
    raise FileNotFoundError(
        f"{dest} is missing. Run `python -m sketch_diffusion.data download --category {category} --data-dir {data_dir}` "
        f"or download {official_file(category).url} by hand."
    )
