"""Tests for namelab.data.download against a real local HTTP server serving fake archives."""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
import stat
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import REAL_NAMES, requires_real_data  # noqa: E402

from namelab.data import download
from namelab.data.download import (
    DataError,
    dataset_checksum,
    default_cache_dir,
    fetch_names,
    is_official,
    resolve_data_dir,
    verify_names_dir,
)

FAKE_FILES: dict[str, bytes] = {
    "Alpha.txt": b"Abe\nAdams\n",
    "Beta.txt": "B\u00f6hm\nBrown\n".encode(),
}
FAKE_SHA256 = {name: hashlib.sha256(data).hexdigest() for name, data in FAKE_FILES.items()}
UNRELATED = "data/eng-fra.txt"


def make_zip(
    members: dict[str, bytes] | None = None,
    extra: Callable[[zipfile.ZipFile], None] | None = None,
) -> bytes:
    """A data.zip look-alike: data/names/*.txt plus an unrelated member."""
    if members is None:
        members = FAKE_FILES
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(UNRELATED, b"Go.\tVa !\n")
        for name, data in members.items():
            zf.writestr(f"data/names/{name}", data)
        if extra is not None:
            extra(zf)
    return buf.getvalue()


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    # Advertise more bytes than are sent, then hang up: an interrupted transfer.
    short_by: int = 0


@dataclass
class Server:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def serve(self, path: str, body: bytes = b"", status: int = 200, short_by: int = 0) -> str:
        self.routes[path] = Route(body, status, short_by)
        return self.base + path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(download.ENV_VAR, raising=False)
    monkeypatch.setenv(download.CACHE_ENV_VAR, str(tmp_path / "cache"))


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            state.hits.append(self.path)
            route = state.routes.get(self.path)
            if route is None or route.status != 200:
                self.send_error(route.status if route else 404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(route.body) + route.short_by))
            self.end_headers()
            self.wfile.write(route.body)
            if route.short_by:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval keeps shutdown() (hence teardown) fast.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "names"


def assert_nothing_left(cache: Path) -> None:
    """No cache folder, no temp folder, no zip: the cache's parent is empty."""
    parent = cache.parent
    left = sorted(p.name for p in parent.iterdir()) if parent.exists() else []
    assert left == []


def write_names(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


# --- fetch_names --------------------------------------------------------------------


def test_fetch_extracts_only_names_files(server: Server, cache: Path, tmp_path: Path) -> None:
    url = server.serve("/data.zip", make_zip())
    got = fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert got == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(FAKE_FILES)
    for name, data in FAKE_FILES.items():
        assert (cache / name).read_bytes() == data
    assert verify_names_dir(cache, FAKE_SHA256) == []
    assert [p.name for p in cache.parent.iterdir()] == ["names"]
    assert not list(tmp_path.rglob("eng-fra.txt"))
    assert not list(tmp_path.rglob("*.zip"))


def test_second_call_uses_cache_without_request(server: Server, cache: Path) -> None:
    url = server.serve("/data.zip", make_zip())
    fetch_names(cache, url=url, sha256=FAKE_SHA256)
    fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert server.hits == ["/data.zip"]


def test_corrupted_cache_is_redownloaded(server: Server, cache: Path) -> None:
    url = server.serve("/data.zip", make_zip())
    fetch_names(cache, url=url, sha256=FAKE_SHA256)
    (cache / "Alpha.txt").write_bytes(b"Abe\nAdamz\n")
    (cache / "Stray.txt").write_bytes(b"x\n")
    fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert len(server.hits) == 2
    assert sorted(p.name for p in cache.iterdir()) == sorted(FAKE_FILES)
    assert (cache / "Alpha.txt").read_bytes() == FAKE_FILES["Alpha.txt"]
    assert [p.name for p in cache.parent.iterdir()] == ["names"]


def test_tampered_member_is_rejected(server: Server, cache: Path) -> None:
    url = server.serve("/data.zip", make_zip({**FAKE_FILES, "Beta.txt": b"Mallory\n"}))
    with pytest.raises(DataError, match=r"Beta\.txt.*checksum mismatch"):
        fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert_nothing_left(cache)


def test_tampered_download_keeps_existing_cache(server: Server, cache: Path) -> None:
    """A bad download must not destroy an older (even damaged) cache before it is replaced."""
    write_names(cache, {"Alpha.txt": FAKE_FILES["Alpha.txt"]})
    url = server.serve("/data.zip", make_zip({**FAKE_FILES, "Beta.txt": b"Mallory\n"}))
    with pytest.raises(DataError, match=r"Beta\.txt"):
        fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert [p.name for p in cache.parent.iterdir()] == ["names"]
    assert [p.name for p in cache.iterdir()] == ["Alpha.txt"]


def test_missing_member_is_named(server: Server, cache: Path) -> None:
    url = server.serve("/data.zip", make_zip({"Alpha.txt": FAKE_FILES["Alpha.txt"]}))
    with pytest.raises(DataError, match=r"Beta\.txt: missing"):
        fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert_nothing_left(cache)


def flip_member_byte(archive: bytes, member: str) -> bytes:
    """Corrupt the first data byte of one member, leaving the zip structure intact."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        info = zf.getinfo(member)
    data = bytearray(archive)
    # Local header: 30 fixed bytes, then name and extra field (lengths at 26 and 28).
    start = info.header_offset
    name_len = int.from_bytes(data[start + 26 : start + 28], "little")
    extra_len = int.from_bytes(data[start + 28 : start + 30], "little")
    data[start + 30 + name_len + extra_len] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Service unavailable</html>",
        make_zip()[:-200],
        flip_member_byte(make_zip(), "data/names/Alpha.txt"),
    ],
    ids=["not-a-zip", "truncated-zip", "corrupt-member"],
)
def test_corrupt_archive_is_rejected(server: Server, cache: Path, body: bytes) -> None:
    url = server.serve("/data.zip", body)
    with pytest.raises(DataError, match="corrupt or truncated"):
        fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert_nothing_left(cache)


def test_interrupted_transfer_is_rejected(server: Server, cache: Path) -> None:
    body = make_zip()
    url = server.serve("/data.zip", body[: len(body) // 2], short_by=len(body) - len(body) // 2)
    with pytest.raises(DataError, match="interrupted"):
        fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert_nothing_left(cache)


def _symlink_member(zf: zipfile.ZipFile) -> None:
    info = zipfile.ZipInfo("data/names/Alpha.txt")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, "/etc/passwd")


def test_unsafe_members_never_escape(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "a" / "b" / "names"

    def evil(zf: zipfile.ZipFile) -> None:
        for name in ("../evil.txt", "../../evil.txt", "/tmp/evil.txt",
                     "data/names/../../../evil.txt", "data/names/../Evil.txt"):
            zf.writestr(name, b"pwned\n")

    url = server.serve("/data.zip", make_zip(extra=evil))
    fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert sorted(p.name for p in cache.iterdir()) == sorted(FAKE_FILES)
    assert not [p for p in tmp_path.parent.rglob("*") if p.name.lower() == "evil.txt"]


def test_symlink_member_is_rejected(server: Server, cache: Path) -> None:
    members = {"Beta.txt": FAKE_FILES["Beta.txt"]}
    url = server.serve("/data.zip", make_zip(members, extra=_symlink_member))
    with pytest.raises(DataError, match=r"Alpha\.txt.*not a regular file"):
        fetch_names(cache, url=url, sha256=FAKE_SHA256)
    assert_nothing_left(cache)


def test_unsafe_sha256_keys_are_refused(cache: Path) -> None:
    with pytest.raises(ValueError, match="invalid names file name"):
        fetch_names(cache, url="http://127.0.0.1:9/x.zip", sha256={"../x.txt": "0" * 64})


def test_http_404_is_a_data_error(server: Server, cache: Path) -> None:
    with pytest.raises(DataError, match="404"):
        fetch_names(cache, url=server.base + "/nope.zip", sha256=FAKE_SHA256)
    assert_nothing_left(cache)


def test_unreachable_host_says_offline(cache: Path) -> None:
    with socket.socket() as sock:  # reserve a port, then free it so nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataError, match="offline") as err:
        fetch_names(cache, url=f"http://127.0.0.1:{port}/data.zip", sha256=FAKE_SHA256)
    assert "--data-dir" in str(err.value)
    assert download.ENV_VAR in str(err.value)
    assert_nothing_left(cache)


# --- resolve_data_dir ---------------------------------------------------------------


def test_resolve_precedence(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    explicit = write_names(tmp_path / "mine", {"Klingon.txt": b"Worf\n"})
    from_env = write_names(tmp_path / "env", {"Elvish.txt": b"Elrond\n"})
    monkeypatch.setattr(download, "DATA_URL", server.serve("/data.zip", make_zip()))
    monkeypatch.setattr(download, "NAMES_SHA256", FAKE_SHA256)

    monkeypatch.setenv(download.ENV_VAR, str(from_env))
    assert resolve_data_dir(explicit) == explicit.resolve()
    assert resolve_data_dir(str(explicit)) == explicit.resolve()
    assert resolve_data_dir() == from_env.resolve()
    assert server.hits == []

    monkeypatch.delenv(download.ENV_VAR)
    assert resolve_data_dir() == default_cache_dir() == tmp_path / "cache" / "names"
    assert verify_names_dir(default_cache_dir(), FAKE_SHA256) == []
    assert resolve_data_dir(download=False) == default_cache_dir()
    assert server.hits == ["/data.zip"]


def test_resolve_without_download_and_empty_cache(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-dir"):
        resolve_data_dir(download=False)
    assert not (tmp_path / "cache").exists()


def test_resolve_reports_bad_user_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("hi")
    with pytest.raises(DataError, match=r"no \.txt files"):
        resolve_data_dir(empty)
    write_names(empty / "data" / "names", {"Alpha.txt": b"Abe\n"})
    with pytest.raises(DataError, match="did you mean"):
        resolve_data_dir(empty)
    monkeypatch.setenv(download.ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(DataError, match=download.ENV_VAR):
        resolve_data_dir()


# --- checksums ----------------------------------------------------------------------


def test_verify_reports_missing_and_mismatch(tmp_path: Path) -> None:
    folder = write_names(tmp_path / "n", {"Alpha.txt": b"changed\n"})
    problems = verify_names_dir(folder, FAKE_SHA256)
    assert problems == [
        f"Alpha.txt: checksum mismatch (expected {FAKE_SHA256['Alpha.txt'][:12]}..., "
        f"got {hashlib.sha256(b'changed' + bytes([10])).hexdigest()[:12]}...)",
        "Beta.txt: missing",
    ]
    assert verify_names_dir(tmp_path / "absent", FAKE_SHA256) != []


def test_dataset_checksum_tracks_content(tmp_path: Path) -> None:
    a = write_names(tmp_path / "a", FAKE_FILES)
    b = write_names(tmp_path / "b", FAKE_FILES)
    (b / "notes.md").write_text("ignored: not a .txt")
    assert dataset_checksum(a) == dataset_checksum(b)
    (b / "Beta.txt").write_bytes(b"Brown\n")
    assert dataset_checksum(a) != dataset_checksum(b)
    (b / "Beta.txt").write_bytes(FAKE_FILES["Beta.txt"])
    assert dataset_checksum(a) == dataset_checksum(b)
    (b / "Beta.txt").rename(b / "Gamma.txt")
    assert dataset_checksum(a) != dataset_checksum(b)
    with pytest.raises(DataError):
        dataset_checksum(tmp_path / "empty-or-missing")


@requires_real_data
def test_pinned_checksums_match_real_dataset(tmp_path: Path) -> None:
    assert verify_names_dir(REAL_NAMES) == []
    assert is_official(REAL_NAMES)
    copy = tmp_path / "names"
    shutil.copytree(REAL_NAMES, copy)
    (copy / "Klingon.txt").write_text("Worf\n")
    assert not is_official(copy)
    assert not is_official(write_names(tmp_path / "fake", FAKE_FILES))


@requires_real_data
def test_fetch_real_archive_with_pinned_checksums(server: Server, cache: Path) -> None:
    real = {p.name: p.read_bytes() for p in REAL_NAMES.glob("*.txt")}
    url = server.serve("/data.zip", make_zip(real))
    assert fetch_names(cache, url=url) == cache
    assert is_official(cache)
    assert dataset_checksum(cache) == dataset_checksum(REAL_NAMES)
