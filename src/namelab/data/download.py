"""Locate, download and verify the surname dataset.

The dataset is the ``data/names/<Language>.txt`` part of the PyTorch tutorial
archive: one file per language, one surname per line.  This module decides
which folder the rest of namelab reads names from, and makes sure an
automatically downloaded copy is byte-for-byte the pinned official one.

Example::

    from namelab.data.download import resolve_data_dir, dataset_checksum

    folder = resolve_data_dir()          # --data-dir, else $NAMELAB_DATA, else cache
    print(folder, dataset_checksum(folder))

Offline machines: download ``data.zip`` elsewhere, unzip it and pass
``--data-dir path/to/data/names`` (or set ``NAMELAB_DATA``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

DATA_URL = "https://download.pytorch.org/tutorial/data.zip"
ENV_VAR = "NAMELAB_DATA"
CACHE_ENV_VAR = "NAMELAB_CACHE"

NAMES_SHA256: dict[str, str] = {
    "Arabic.txt": "6f424a8dbe51cbbbabab7a57d38b617210125e4e3991f3c657cb79b8f104bafc",
    "Chinese.txt": "49263ef55a8cb1740e841d65cad8214b2f9b5b869bc534c811746422496fa91e",
    "Czech.txt": "145bbbd6d0816578f03388e92c264d39ef1c60df920b081d371fa5c5cc055a8e",
    "Dutch.txt": "924f32b635170eae561f84538632138fc07d4c8bbd70ba3fb980de1ecc4d2af3",
    "English.txt": "9cca037066d3d5989e24bc01801416162de506b5e28e15b7c092a47905d29bf2",
    "French.txt": "81e65b36c60ed5b89a17422f6edcadbb89546f38ad69e960e64e7ba682012a95",
    "German.txt": "7449cd590b97a733e18d613a4155decd77ec35dc5f8aadd7a82204dce4f051db",
    "Greek.txt": "3555b5186de7f401e6d991b088e9e644ca3099116477818c25ab5793801389e6",
    "Irish.txt": "cf8c7013256252a88d2503127b87282a11f21b2ff6db1bded68834c19a1ec058",
    "Italian.txt": "f88414c27d0606a11a678b4859277828c2565d6cc4d9ee932deef6e94f3b35e4",
    "Japanese.txt": "e0e717e114fec3e7eade4d9dabe0067c475f43147e36a22b47902ee76ad9e67f",
    "Korean.txt": "cd54221ccb362a6cba4c78828838cf3268a0e59744767a37cf6ec4b74036b136",
    "Polish.txt": "45bab898af2f60ed3a728bbf6980e28821011a7caa53227553b5785903a40826",
    "Portuguese.txt": "50a8735f41f4f73757c8ce5b16cb0275cd86b2b214bcbc8c9805f508cb131c53",
    "Russian.txt": "43b3e64ce351f77f1ac9e0cdf7566012d127f4371875fd25208845b5c9d6f7c3",
    "Scottish.txt": "78d0252711d87d948ea86fe34826c51d2d794a8e52d15b5d6f7b6244d45d62dd",
    "Spanish.txt": "1bcb462ed3316756a85781d68232bddae04498fdddd5d9219c53fd1fbdeba7a7",
    "Vietnamese.txt": "f3f9e4164ab47601178a6e45b216464a64122f49d05541f24bf18a757253281d",
}

# Where the names files live inside the archive (zip names always use '/').
_ARCHIVE_PREFIX = PurePosixPath("data/names")
# The real files are a few dozen KiB; the cap stops a hostile or broken
# archive (zip bomb) from filling the disk before checksums get a say.
_MAX_MEMBER_BYTES = 16 * 1024 * 1024
_TIMEOUT_S = 30
_CHUNK = 1 << 16

_OFFLINE_HINT = (
    f"To work offline, download {DATA_URL} on another machine, unzip it and "
    f"pass --data-dir DIR (DIR = the unzipped data/names folder) or set {ENV_VAR}=DIR."
)

_log = logging.getLogger(__name__)


class DataError(RuntimeError):
    """The dataset is missing, unreadable, or not what it should be."""


def default_cache_dir() -> Path:
    """Folder that holds the downloaded names files.

    ``$NAMELAB_CACHE/names`` when ``NAMELAB_CACHE`` is set, else the user's cache
    folder (e.g. ``~/.cache/namelab/names`` on Linux).
    """
    root = os.environ.get(CACHE_ENV_VAR)
    if root:
        return Path(root).expanduser() / "names"
    import pooch  # deferred: importing pooch is not free and most calls never need it

    return Path(pooch.os_cache("namelab")).expanduser() / "names"


def _txt_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("*.txt") if p.is_file()), key=lambda p: p.name)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_names(sha256: Mapping[str, str]) -> None:
    # The keys become file names on disk, so they must not be able to name a
    # path outside the target folder.
    if not sha256:
        raise ValueError("sha256 mapping is empty: nothing to fetch")
    for name in sha256:
        if (
            not name.endswith(".txt")
            or name != PurePosixPath(name).name
            or "\\" in name
            or name.startswith(".")
        ):
            raise ValueError(f"invalid names file name in sha256 mapping: {name!r}")


def verify_names_dir(folder: Path, sha256: Mapping[str, str] = NAMES_SHA256) -> list[str]:
    """Compare ``folder`` against the expected checksums.

    Returns one human-readable line per problem (missing file, checksum
    mismatch); an empty list means every expected file is present and matches.
    Extra files are not reported here (see :func:`is_official`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: folder does not exist"]
    problems: list[str] = []
    for name, expected in sorted(sha256.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        actual = _file_sha256(path)
        if actual != expected.lower():
            problems.append(
                f"{name}: checksum mismatch (expected {expected[:12]}..., got {actual[:12]}...)"
            )
    return problems


def _cache_is_complete(folder: Path, sha256: Mapping[str, str]) -> bool:
    # An extra .txt would silently become an extra class, so the cache must
    # hold exactly the expected files.
    if not folder.is_dir() or verify_names_dir(folder, sha256):
        return False
    return {p.name for p in _txt_files(folder)} == set(sha256)


def is_official(folder: Path) -> bool:
    """True if ``folder`` holds exactly the 18 official names files, unmodified."""
    return _cache_is_complete(Path(folder), NAMES_SHA256)


def dataset_checksum(folder: Path) -> str:
    """Identify a dataset by content: sha256 over sorted ``(file name, file sha256)`` pairs.

    Independent of the folder's location, so two copies of one dataset get the
    same value; renaming, adding, removing or editing a ``.txt`` file changes it. A
    table file's checksum is its own sha256.
    """
    folder = Path(folder)
    if folder.is_file():  # a table (CSV/TSV/Parquet) is identified by its bytes
        return _file_sha256(folder)
    files = _txt_files(folder) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: no .txt files to checksum")
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{_file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _want_progressbar() -> bool:
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


def _download(url: str, dest: Path) -> None:
    import pooch  # deferred, as in default_cache_dir: only a download needs it
    import requests

    downloader = pooch.HTTPDownloader(progressbar=_want_progressbar(), timeout=_TIMEOUT_S)
    _log.info("Downloading %s", url)
    try:
        # Calling the downloader directly (rather than pooch.retrieve) because
        # the archive has no pinned hash of its own; the members are verified
        # one by one after extraction instead.
        downloader(url, str(dest), None)
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DataError(
            f"downloading {url} failed: the server answered HTTP {status}. {_OFFLINE_HINT}"
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.ConnectTimeout) as exc:
        if isinstance(exc, requests.exceptions.SSLError):
            raise DataError(
                f"downloading {url} failed: TLS error ({exc}). {_OFFLINE_HINT}"
            ) from exc
        raise DataError(
            f"could not reach {url}: this machine seems to be offline or the host "
            f"is unreachable ({type(exc).__name__}). {_OFFLINE_HINT}"
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise DataError(
            f"downloading {url} failed or was interrupted ({type(exc).__name__}: {exc}). "
            f"Try again, or: {_OFFLINE_HINT}"
        ) from exc


def _extract_names(archive: Path, target: Path, sha256: Mapping[str, str]) -> None:
    """Copy the wanted ``data/names/*.txt`` members of ``archive`` into ``target``.

    Only members whose name is exactly ``data/names/<key of sha256>`` are
    touched, so absolute paths, ``..`` tricks and unrelated files are never
    written; output paths are built from the trusted keys, not the archive.
    """
    wanted = {str(_ARCHIVE_PREFIX / name): name for name in sha256}
    seen: set[str] = set()
    name: str | None = None
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = wanted.get(info.filename)
                if name is None:
                    continue
                if name in seen:
                    raise DataError(f"{name}: appears more than once in the archive")
                seen.add(name)
                mode = info.external_attr >> 16
                if info.is_dir() or stat.S_ISLNK(mode):
                    raise DataError(f"{name}: archive member is not a regular file")
                if info.file_size > _MAX_MEMBER_BYTES:
                    raise DataError(f"{name}: archive member is implausibly large")
                written = 0
                # "xb" refuses to follow or overwrite anything already there.
                with zf.open(info) as src, (target / name).open("xb") as dst:
                    for block in iter(lambda: src.read(_CHUNK), b""):
                        written += len(block)
                        if written > _MAX_MEMBER_BYTES:
                            raise DataError(f"{name}: archive member is implausibly large")
                        dst.write(block)
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
        where = f" (while reading {name})" if name else ""
        raise DataError(
            f"the downloaded archive is corrupt or truncated{where}: {exc}"
        ) from exc


def fetch_names(
    cache_dir: Path | None = None,
    *,
    url: str = DATA_URL,
    sha256: Mapping[str, str] = NAMES_SHA256,
) -> Path:
    """Return a folder holding exactly the verified names files.

    If ``cache_dir`` (default :func:`default_cache_dir`) already holds them, no
    network is used.  Otherwise the archive is downloaded and extracted into a
    temporary sibling folder, checked, and renamed into place, so the cache is
    either absent or complete; a failed attempt leaves nothing behind.

    Raises DataError on network failure, corrupt archive or checksum mismatch.
    """
    _check_names(sha256)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir = cache_dir.expanduser().absolute()
    if _cache_is_complete(cache_dir, sha256):
        return cache_dir

    try:
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        # Same parent as the cache so the final rename stays on one filesystem
        # and is therefore atomic.
        work = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}-", dir=cache_dir.parent))
    except OSError as exc:
        raise DataError(
            f"cannot write to the cache folder {cache_dir.parent} ({exc}); "
            f"set {CACHE_ENV_VAR} to a writable folder, or pass --data-dir DIR."
        ) from exc
    try:
        archive = work / "data.zip"
        staged = work / "names"
        staged.mkdir()
        _download(url, archive)
        _extract_names(archive, staged, sha256)
        problems = verify_names_dir(staged, sha256)
        if problems:
            raise DataError(
                f"the archive from {url} does not contain the expected names files "
                f"({'; '.join(problems)}); it changed upstream or was tampered with, "
                f"so it was not used. {_OFFLINE_HINT}"
            )
        if cache_dir.exists() or cache_dir.is_symlink():
            # Stale or corrupt cache: park it inside `work` so it is removed
            # together with the rest of the temporary files.
            os.replace(cache_dir, work / "stale")
        try:
            os.rename(staged, cache_dir)
        except OSError:
            # Another process may have finished the same download first.
            if _cache_is_complete(cache_dir, sha256):
                return cache_dir
            raise
        return cache_dir
    except OSError as exc:
        raise DataError(f"could not store the dataset in {cache_dir}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_user_dir(folder: Path, source: str) -> Path:
    folder = folder.expanduser()
    what = "use a folder holding one <Language>.txt file per class, one name per line"
    if not folder.exists():
        raise DataError(f"{source}: folder {folder} does not exist; {what}.")
    if not folder.is_dir():
        raise DataError(f"{source}: {folder} is not a folder; {what}.")
    if not _txt_files(folder):
        hint = ""
        for sub in (folder / "data" / "names", folder / "names"):
            if sub.is_dir() and _txt_files(sub):
                hint = f" (did you mean {sub}?)"
                break
        raise DataError(f"{source}: {folder} contains no .txt files{hint}; {what}.")
    return folder.resolve()


def resolve_data_dir(data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """Pick the dataset folder: ``data_dir``, else ``$NAMELAB_DATA``, else the cache.

    User-supplied folders only need to contain ``*.txt`` files; they are not
    checksum-verified, so any set of classes works.  The cache is verified and,
    when ``download`` is true, (re)downloaded if missing or damaged.
    """
    if data_dir is not None and str(data_dir) != "":
        return _check_user_dir(Path(data_dir), "--data-dir")
    env = os.environ.get(ENV_VAR)
    if env:
        return _check_user_dir(Path(env), ENV_VAR)
    cache = default_cache_dir()
    # Read the module globals at call time (not as default arguments) so a
    # test or a mirror setup can point them elsewhere.
    if download:
        return fetch_names(cache, url=DATA_URL, sha256=NAMES_SHA256)
    if _cache_is_complete(cache.expanduser().absolute(), NAMES_SHA256):
        return cache.expanduser().absolute()
    raise DataError(
        f"the names dataset is not in the cache ({cache}) and downloading is disabled. "
        f"Allow the download, or pass --data-dir DIR / set {ENV_VAR}=DIR."
    )
