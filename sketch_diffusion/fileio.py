"""Atomic file writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    On any error the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the path of the file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def write_ndjson_atomic(path: str | os.PathLike, records) -> Path:
    """Write an iterable of dicts as one compact JSON object per line."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
    return Path(path)


def copy_changed_files(source: str | os.PathLike, destination: str | os.PathLike, skip=()) -> list[str]:
    """Copy each file under folder ``source`` whose content differs from (or is missing in) ``destination`` there,
    each write atomic; ``skip``: relative names to leave alone. Returns the relative names written, sorted."""
    source, destination, written = Path(source), Path(destination), []
    for path in sorted(source.rglob("*")):
        name = str(path.relative_to(source))
        target = destination / name
        if path.is_file() and name not in skip and (not target.is_file() or target.read_bytes() != path.read_bytes()):
            write_bytes_atomic(target, path.read_bytes())
            written.append(name)
    return written


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append ``record`` as one JSON line to a log file (an append, not atomic: a crash can lose only this line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def trim_jsonl(path: str | os.PathLike, last_step: int) -> None:
    """Keep the lines of an ``append_jsonl`` log whose ``step`` is at most ``last_step`` (none for 0): a resumed run
    logs the later steps again. Lines without a step, and one cut short by a crash, go too. Atomic; a missing file
    is left missing."""
    path = Path(path)
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()

    def kept(line: str) -> bool:
        try:
            step = json.loads(line).get("step")
            return step is not None and step <= last_step
        except (ValueError, AttributeError, TypeError):
            return False

    remaining = [line + "\n" for line in lines if kept(line)]
    if len(remaining) != len(lines) or not text.endswith("\n"):
        write_text_atomic(path, "".join(remaining))


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The ``git hash-object`` id of a file: sha1 of ``b"blob <size>\\0" + content``."""
    h = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
