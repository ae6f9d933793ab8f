"""Atomic artifact writing: a failed or interrupted stage leaves nothing half-written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

from elir_edge.errors import UserError

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read where the kernel shows it: setting it to 0 to read it back opens a window in which
    another thread (`restore --workers`) reads 0 and puts 0 back for good (world-writable outputs after)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    with _UMASK_LOCK:  # no /proc: the old way, one thread at a time
        mask = os.umask(0)
        os.umask(mask)
        return mask


def refuse_foreign(path: Path, ours, what: str) -> None:
    """An output file may replace only a file elir-edge wrote (`ours(path)` says so); a user's own file of
    that name is refused before any work."""
    if Path(path).is_file() and not ours(Path(path)):
        raise UserError(f"{what} {path} exists and was not written by elir-edge: choose another file name, or "
                        "move that file away")


def ensure_writable_dir(path: Path) -> None:
    """Fail before any expensive work if `path` cannot be created or written (tried, not guessed: root
    passes every permission check)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"output {path} exists and is a file: choose a folder with -o/--output")
    anchor = next(p for p in [path, *path.parents] if p.exists())
    if not anchor.is_dir():
        raise UserError(f"output folder {path} cannot be created ({anchor} is a file): choose another with -o/--output")
    try:
        tempfile.TemporaryFile(dir=anchor).close()
    except OSError as e:
        raise UserError(f"output folder {path} is not writable ({e.strerror} in {anchor}): "
                        "choose another with -o/--output") from None


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Yield a temporary sibling folder to fill. On success a new `final` appears in one rename; an existing
    `final` gets the files of the temporary folder moved in one by one, with interrupts held, and keeps every
    other file it holds. On failure or Ctrl-C the temporary folder (and parent folders made for it) go, and
    `final` is as it was."""
    made = [p for p in [final.parent, *final.parent.parents] if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; artifacts are ordinary folders
    try:
        yield tmp
        for f in tmp.iterdir():
            f.chmod(0o666 & ~_umask())  # some writers (safetensors) make 0600 files
        with signals_held():
            if not final.exists():
                tmp.rename(final)
            else:
                for f in tmp.iterdir():
                    os.replace(f, final / f.name)
                tmp.rmdir()
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()
        if isinstance(e, OSError):
            raise _named(e, tmp, final) from None
        raise


def _named(e: OSError, tmp: Path, final: Path) -> OSError:
    """A write's OS error naming the output the user asked for rather than our temporary beside it (an error
    about another file, an input, is left as it is)."""
    ours = e.filename is None or str(e.filename).startswith(str(tmp))
    return OSError(e.errno, e.strerror, str(final)) if e.errno and ours else e


@contextlib.contextmanager
def atomic_file(final: Path):
    """Yield a temporary path next to `final`; on success it is renamed over `final`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; artifacts are ordinary files
        os.replace(tmp, final)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _named(e, tmp, final) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep_temporaries(folder: Path, suffix: str) -> int:
    """Remove the temporaries atomic_file left for files ending in `suffix` in `folder` (a process killed
    mid-write leaves one): `.<final name>.<random>.tmp`. Returns how many went."""
    gone = 0
    for f in Path(folder).iterdir() if Path(folder).is_dir() else ():
        if f.name.startswith(".") and f.name.endswith(".tmp") and f.name[1:-4].rsplit(".", 1)[0].endswith(suffix):
            f.unlink(missing_ok=True)
            gone += 1
    return gone


@contextlib.contextmanager
def signals_held():
    """Ctrl-C / SIGTERM wait until the block is done (a commit of several renames is not cut in half)."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def atomic_files(finals: list[Path]):
    """Yield one temporary path per final path (same folders); on success all are renamed into place
    together, with interrupts held, so a set of files (an engine and its manifest, the int8 graphs and
    their report) appears whole or not at all. A temporary the block deleted leaves its final path as it
    was. On failure the temporaries are removed."""
    tmps = []
    try:
        for final in finals:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
            os.close(fd)
            tmps.append(Path(name))
        yield tmps
        with signals_held():
            for tmp, final in zip(tmps, finals):
                if tmp.exists():
                    tmp.chmod(0o666 & ~_umask())
                    os.replace(tmp, final)
    except BaseException as e:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        names = [str(t) for t in tmps]
        if isinstance(e, OSError) and e.filename in names:
            i = names.index(e.filename)
            raise _named(e, tmps[i], finals[i]) from None
        raise


def write_json(path: Path, data: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
