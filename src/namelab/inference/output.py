"""Output files that never destroy anything: what ``--output`` opens, for names and for tables.

    with open_output("out.csv", input_path="in.csv", binary=True) as handle:
        handle.write(b"name,language\\n")

One set of rules for every writer (``predict``'s names, the streaming and the Dask
table writers): a symlink is followed to its target; a FIFO or a character device
(``/dev/null``, a terminal) is written through, never replaced; a folder or another
special file is refused; the file that the rows are read from is refused; a regular
file is written to a temporary file beside it and renamed over it only when the block
ends without an error, so a failure leaves the old file whole; an existing file keeps
its mode and a new one gets the mode the umask gives.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from ..runs.checkpoint import MANIFEST, OWNED_FILES, process_alive


@contextmanager
def open_output(path: Path | str | None, *, input_path: Path | str | None = None, binary: bool = False) -> Iterator[IO]:
    """A stream for results at ``path`` (standard output when None), by the rules above.

    Text streams are UTF-8 and leave line endings as written. Raises ``ValueError``
    with what to do when ``path`` cannot be written by these rules.
    """
    if path is None:
        stream = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    check_not_input(path, input_path)
    target = Path(os.path.realpath(path))
    try:
        status = os.stat(target)
    except FileNotFoundError:
        status = None
    mode, encoding = ("wb", None) if binary else ("w", "utf-8")
    if status is not None and not stat.S_ISREG(status.st_mode):
        if stat.S_ISFIFO(status.st_mode) or stat.S_ISCHR(status.st_mode):
            with open(target, mode, encoding=encoding, newline=None if binary else "") as handle:
                yield handle
            return
        kind = "a folder" if stat.S_ISDIR(status.st_mode) else "a special file (socket or block device)"
        raise ValueError(f"--output {path} is {kind}; give the path of a file to write")
    if target.name in OWNED_FILES and (target.parent / MANIFEST).is_file():
        raise ValueError(f"--output {path} is a file of the run folder {target.parent}; write the results elsewhere")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    # The writer's PID in the name: a later writer removes what a killed one left (remove_stale_temporaries).
    tmp = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    # The kernel applies the umask to 0o666, as for any new file; an existing file's mode is copied exactly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if status is None else 0o600)
    try:
        if status is not None:
            os.fchmod(fd, stat.S_IMODE(status.st_mode))
        with open(fd, mode, encoding=encoding, newline=None if binary else "") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporary files beside ``target`` left by writers that were killed; returns them."""
    removed = []
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        pid = tmp.name[len(target.name) + 2 :].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def check_not_input(path: Path | str, input_path: Path | str | None) -> None:
    """Refuse an output that is the input file (by any name: the same path, a symlink, a hard link)."""
    if input_path is None:
        return
    try:
        same = os.path.samefile(input_path, path)
    except OSError:  # either is missing: not the same file
        same = False
    if same:
        raise ValueError(f"--output {path} is the --input file; write the results to another file")
