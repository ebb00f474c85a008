"""Atomic, exclusive output folders: a run stages its tables, then publishes them whole.

Layout of an output folder ``OUT`` (local or any Beam filesystem: ``gs://``, ``s3://``)::

    OUT/<table>/*.parquet        published tables: the only thing readers read
    OUT/run.json                 configuration and counts of the published run
    OUT/_SUCCESS                 JSON naming the run whose tables are published
    OUT/.callscope.lock          the run holding the folder (pid, host, run id)
    OUT/.staging-<run_id>/       a run in progress: its tables, then its publish journal

A run writes everything under its staging folder. Publishing then

1. writes ``_PUBLISH`` into the staging folder (the commit point: the run's tables are all
   there), listing the tables it replaces;
2. for each table: deletes ``OUT/<table>``, marks that done (``_CLEARED.<table>``), moves the
   staged files in (one rename of the folder on a local disk, file by file elsewhere);
3. moves ``run.json`` in, writes ``_SUCCESS`` and deletes the staging folder.

A run killed before step 1 leaves the previous output as it was and a staging folder that the
next run deletes. A publish killed after step 1 is finished (rolled forward) by whoever next
takes the folder: the next run, or a reader (:func:`settle`), so no reader ever sees a mix of
two runs' tables. On a local disk the lock is an ``flock`` that dies with its holder, and
readers take a shared lock that a publish waits for; on object stores, which have no locks,
the lock is an object the run writes and deletes (a run on another machine that was killed
leaves it behind: delete it by hand), and readers only finish interrupted publishes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from apache_beam.io.filesystems import FileSystems

logger = logging.getLogger(__name__)

LOCK_FILE = ".callscope.lock"
# Readers hold it shared while they read local tables; a publish holds it exclusively.
READ_LOCK_FILE = ".callscope.read.lock"
STAGING_PREFIX = ".staging-"
JOURNAL = "_PUBLISH"
SUCCESS = "_SUCCESS"
RUN_JSON = "run.json"
# How often a waiting run polls an object-store lock (local locks block in the kernel).
REMOTE_LOCK_POLL_SECONDS = 5.0


class OutputBusyError(RuntimeError):
    """Another run holds the output folder."""


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local disk (no URI scheme, or ``file://``)."""
    return FileSystems.get_scheme(path) in (None, "file")


def _local(path: str) -> str:
    return path.removeprefix("file://")


def new_run_id() -> str:
    """A sortable, unique run id: ``20261206T043000Z-1a2b3c4d``."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:8]}"


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts)


# --- small filesystem helpers over Beam's FileSystems --------------------------------------


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole (atomic rename on a local disk; one object elsewhere)."""
    if is_local(path):
        local = _local(path)
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        tmp = f"{local}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, local)
        return
    with FileSystems.create(path, mime_type="application/json") as f:
        f.write(text.encode("utf-8"))


def read_text(path: str) -> str:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read().decode("utf-8")


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def files_under(folder: str, pattern: str = "*") -> list[str]:
    """Files directly in ``folder`` whose name matches ``pattern`` (sorted; [] if none)."""
    if is_local(folder):
        local = _local(folder)
        if not os.path.isdir(local):
            return []
        import fnmatch

        return sorted(
            os.path.join(local, n)
            for n in os.listdir(local)
            if fnmatch.fnmatchcase(n, pattern) and os.path.isfile(os.path.join(local, n))
        )
    result = FileSystems.match([join(folder, pattern)])[0]
    return sorted(m.path for m in result.metadata_list)


def children(folder: str) -> list[str]:
    """Names of the files and folders directly in ``folder``."""
    if is_local(folder):
        local = _local(folder)
        return sorted(os.listdir(local)) if os.path.isdir(local) else []
    prefix = join(folder, "")
    result = FileSystems.match([join(folder, "**")])[0]
    return sorted({m.path[len(prefix):].split("/")[0] for m in result.metadata_list})


def copy_files(src_folder: str, dst_folder: str, pattern: str = "*") -> None:
    """Copy the files directly in ``src_folder`` (matching ``pattern``) into ``dst_folder``."""
    files = files_under(src_folder, pattern)
    if not files:
        return
    if is_local(dst_folder):
        os.makedirs(_local(dst_folder), exist_ok=True)
    FileSystems.copy(files, [join(dst_folder, f.replace("\\", "/").rsplit("/", 1)[1])
                             for f in files])


def delete_tree(path: str) -> None:
    """Delete a file or a folder with everything in it (nothing if it is not there)."""
    if is_local(path):
        local = _local(path)
        if os.path.isdir(local):
            import shutil

            shutil.rmtree(local)
        elif os.path.lexists(local):
            os.remove(local)
        return
    objects = FileSystems.match([join(path, "**")])[0].metadata_list
    paths = [m.path for m in objects]
    if FileSystems.exists(path):
        paths.append(path)
    if paths:
        FileSystems.delete(paths)


def _failpoint(name: str) -> None:
    """Die here, as ``kill -9`` would, when ``CALLSCOPE_FAILPOINT`` names this point (tests)."""
    if os.environ.get("CALLSCOPE_FAILPOINT") == name:
        logger.warning("failpoint %s: killing this process", name)
        os.kill(os.getpid(), signal.SIGKILL)


# --- the lock ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who holds an output folder."""

    run_id: str
    pid: int
    host: str
    since: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, since {self.since})"


def _holder_of(text: str) -> Holder | None:
    try:
        data = json.loads(text)
        return Holder(str(data["run_id"]), int(data["pid"]), str(data["host"]), str(data["since"]))
    except (ValueError, KeyError, TypeError):
        return None


class OutputLock:
    """Exclusive hold of an output folder for one run (see the module docstring).

    Args:
        out_dir: The output folder.
        run_id: The run taking it (written into the lock file for others to read).
        wait: Wait for the holder to finish instead of raising :class:`OutputBusyError`.
        timeout: Give up waiting after this many seconds (None: wait as long as it takes).
    """

    def __init__(self, out_dir: str, run_id: str, wait: bool = False,
                 timeout: float | None = None):
        self.out_dir = out_dir
        self.path = join(out_dir, LOCK_FILE)
        self.holder = Holder(
            run_id,
            os.getpid(),
            socket.gethostname(),
            datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )
        self.wait = wait
        self.timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _busy(self, holder: Holder | None) -> OutputBusyError:
        who = holder.describe() if holder else "another run"
        return OutputBusyError(
            f"output folder {self.out_dir!r} is in use by {who}; "
            "wait for it (--wait) or choose another --out"
        )

    def acquire(self) -> None:
        if is_local(self.out_dir):
            self._acquire_local()
        else:
            self._acquire_remote()
        logger.debug("locked %s for %s", self.out_dir, self.holder.run_id)

    def _acquire_local(self) -> None:
        import fcntl

        path = _local(self.path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_of(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            if not self.wait:
                os.close(fd)
                raise self._busy(holder) from None
            logger.warning("waiting for %s to release %s",
                           holder.describe() if holder else "another run", self.out_dir)
            if not self._wait_local(fd):
                os.close(fd)
                raise self._busy(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.holder.__dict__).encode(), 0)
        self._fd = fd

    def _wait_local(self, fd: int) -> bool:
        import fcntl

        if self.timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return True
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                time.sleep(0.2)
        return False

    def _acquire_remote(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while FileSystems.exists(self.path):
            holder = _holder_of(read_text(self.path))
            if holder and holder.host == socket.gethostname() and not _alive(holder.pid):
                logger.warning("removing the stale lock of %s", holder.describe())
                break
            if not self.wait or (deadline is not None and time.monotonic() > deadline):
                raise self._busy(holder)
            time.sleep(REMOTE_LOCK_POLL_SECONDS)
        write_text(self.path, json.dumps(self.holder.__dict__))

    def release(self) -> None:
        if is_local(self.out_dir):
            if self._fd is not None:
                import fcntl

                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
        elif FileSystems.exists(self.path):
            holder = _holder_of(read_text(self.path))
            if holder == self.holder:
                FileSystems.delete([self.path])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def read_guard(out_dir: str, exclusive: bool = False) -> Iterator[None]:
    """Hold the folder's read lock: shared for readers, exclusive while publishing.

    Local folders only (object stores have no locks); a folder the caller cannot write to
    is read without it.
    """
    if not is_local(out_dir):
        yield
        return
    import fcntl

    path = _local(join(out_dir, READ_LOCK_FILE))
    try:
        fd = os.open(path, (os.O_RDWR | os.O_CREAT) if exclusive else os.O_RDONLY, 0o644)
    except OSError:
        if exclusive:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


# --- staging and publishing ----------------------------------------------------------------


def staging_dirs(out_dir: str) -> list[str]:
    """Staging folders left under ``out_dir`` (by runs in progress, killed or publishing)."""
    return [join(out_dir, n) for n in children(out_dir) if n.startswith(STAGING_PREFIX)]


def _journals(out_dir: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for staging in staging_dirs(out_dir):
        journal = join(staging, JOURNAL)
        if exists(journal):
            found.append((staging, json.loads(read_text(journal))))
    return sorted(found, key=lambda sj: str(sj[1]["run_id"]))


def _move_table(staging: str, out_dir: str, table: str) -> None:
    """Replace ``out_dir/table`` with ``staging/table`` (idempotent, so it can be redone)."""
    src, dst = join(staging, table), join(out_dir, table)
    cleared = join(staging, f"_CLEARED.{table}")
    if not exists(cleared):
        delete_tree(dst)
        write_text(cleared, f"{table}\n")  # not empty: S3 uploads reject 0 bytes
    if is_local(src):
        if os.path.isdir(_local(src)):
            os.replace(_local(src), _local(dst))
        return
    files = files_under(src)
    if files:
        FileSystems.rename(files, [join(dst, f.rsplit("/", 1)[1]) for f in files])


def _roll_forward(out_dir: str, staging: str, journal: dict[str, Any]) -> None:
    with read_guard(out_dir, exclusive=True):
        for table in journal["tables"]:
            _move_table(staging, out_dir, table)
            _failpoint(f"publish:{table}")
        for name in journal["files"]:
            if exists(join(staging, name)):
                delete_tree(join(out_dir, name))
                FileSystems.rename([join(staging, name)], [join(out_dir, name)])
        if journal["success"]:
            write_text(
                join(out_dir, SUCCESS),
                json.dumps(
                    {
                        "run_id": journal["run_id"],
                        "published_at": datetime.datetime.now(datetime.UTC).isoformat(
                            timespec="seconds"
                        ),
                        "tables": journal["tables"],
                    },
                    indent=2,
                ),
            )
        _failpoint("publish:success")
        delete_tree(staging)
    logger.info("published run %s to %s", journal["run_id"], out_dir)


def recover(out_dir: str) -> None:
    """Finish interrupted publishes and delete abandoned staging folders (hold the lock)."""
    for staging, journal in _journals(out_dir):
        logger.warning("finishing the interrupted publish of run %s", journal["run_id"])
        _roll_forward(out_dir, staging, journal)
    for staging in staging_dirs(out_dir):
        logger.info("deleting %s, left by a run that did not finish", staging)
        delete_tree(staging)


def settle(out_dir: str, timeout: float = 120.0) -> None:
    """Before reading: finish a publish that a killed run left half done.

    A run that is publishing right now (or a new run, which finishes the interrupted publish
    first thing) is waited for, up to ``timeout`` seconds.

    Raises:
        OutputBusyError: The publish was not finished within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while _journals(out_dir):
        try:
            with OutputLock(out_dir, f"reader-{new_run_id()}"):
                for staging, journal in _journals(out_dir):
                    logger.warning("finishing the interrupted publish of run %s",
                                   journal["run_id"])
                    _roll_forward(out_dir, staging, journal)
            return
        except OutputBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class StagedOutput:
    """An output folder held for one run: write under :attr:`path`, then :meth:`publish`.

    Entering takes the lock (or raises :class:`OutputBusyError`), finishes an interrupted
    publish and deletes leftover staging folders. Leaving without publishing (an exception)
    deletes this run's staging folder and leaves the published output as it was.
    """

    def __init__(self, out_dir: str, run_id: str | None = None, wait: bool = False):
        self.out_dir = out_dir
        self.run_id = run_id or new_run_id()
        self.path = join(out_dir, STAGING_PREFIX + self.run_id)
        self.lock = OutputLock(out_dir, self.run_id, wait=wait)
        self.published = False

    def __enter__(self) -> StagedOutput:
        if is_local(self.out_dir):
            os.makedirs(_local(self.out_dir), exist_ok=True)
        self.lock.acquire()
        try:
            recover(self.out_dir)
            if is_local(self.path):
                os.makedirs(_local(self.path))
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if not self.published:
                delete_tree(self.path)
        finally:
            self.lock.release()

    def publish(self, tables: Sequence[str], files: Sequence[str] = (RUN_JSON,),
                success: bool = True) -> None:
        """Replace ``tables`` (and ``files``) under the output folder with the staged ones.

        A table in ``tables`` that this run did not write is deleted from the output, so the
        folder holds exactly this run's tables.
        """
        _failpoint("publish:before")
        journal = {
            "run_id": self.run_id,
            "tables": list(tables),
            "files": list(files),
            "success": success,
        }
        write_text(join(self.path, JOURNAL), json.dumps(journal, indent=2))
        _failpoint("publish:journal")
        self.published = True
        _roll_forward(self.out_dir, self.path, journal)
