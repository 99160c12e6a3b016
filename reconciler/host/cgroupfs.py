"""The only code that touches cgroupfs: observe reads through it, apply writes through it.

Every path goes through `CgroupFS.path`, which admits only wnr's own names
(`slot.<name>`, `slot.<name>/job.<name>`, `slot.<name>/agent.<n>`,
`wnr.daemon`) below the root, so nothing outside the owned tree can be
reached. errno is turned into `CgroupError` here, with the path and value in
the message; EBUSY and friends are retried briefly, long backoff is the loop's.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from reconciler.host.keptfiles import OwnerFiles, list_ended
from reconciler.model.errors import CgroupError

T = TypeVar("T")

_READ_SIZE = 65536
# More cgroups than any node has slots, jobs and agents.
_PATH_CACHE_SIZE = 16384

_OWNED_SEGMENT = re.compile(
    r"^(?:(?:slot|job)\.[a-z0-9]([-a-z0-9]*[a-z0-9])?|agent\.[0-9]+|wnr\.daemon)$"
)


def is_owned_name(segment: str) -> bool:
    """Whether one path segment is a cgroup name wnr owns (`slot.a`, `job.b`, `agent.0`)."""
    return _OWNED_SEGMENT.match(segment) is not None


def _retry_brief(func: Callable[..., T]) -> Callable[..., T]:
    """Retry an operation a few times within ~100 ms when the kernel says try again."""
    return retry(
        retry=retry_if_exception(lambda exc: isinstance(exc, CgroupError) and exc.transient),
        stop=stop_after_attempt(5),
        wait=wait_exponential(multiplier=0.005, max=0.05),
        reraise=True,
    )(func)


class CgroupFS:
    """A cgroup v2 subtree owned by wnr, addressed by paths relative to its root."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(os.path.normpath(root))
        if not self.root.is_absolute():
            raise ValueError(f"cgroup root must be absolute: {root}")
        # Checked paths, relative -> absolute: a pass reads every cgroup, so each path is
        # checked once, not once per file read. A removed cgroup's path is forgotten (job
        # churn must not grow memory); the bound catches cgroups removed behind wnr's back.
        self._dirs: dict[str, str] = {"": str(self.root)}

    def directory(self, rel: str, remember: bool = True) -> str:
        """The absolute path of an owned cgroup, as a string; the one place paths are joined.
        `remember` False: a path only named (in a log line), which may be removed already."""
        found = self._dirs.get(rel)
        if found is not None:
            return found
        segments = rel.split("/")
        if not all(is_owned_name(s) for s in segments):
            raise ValueError(f"refusing cgroup path {rel!r}: not a name wnr owns below {self.root}")
        found = "/".join((str(self.root), *segments))
        if remember:
            if len(self._dirs) > _PATH_CACHE_SIZE:
                self._dirs = {"": str(self.root)}
            self._dirs[rel] = found
        return found

    def path(self, rel: str) -> Path:
        """Join a relative cgroup path to the root, refusing anything wnr does not own."""
        return Path(self.directory(rel))

    def exists(self, rel: str) -> bool:
        """Whether the cgroup directory exists."""
        return os.path.isdir(self.directory(rel))

    @_retry_brief
    def mkdir(self, rel: str) -> bool:
        """Create a cgroup; returns False when it already existed."""
        target = self.path(rel)
        try:
            os.mkdir(target)
        except FileExistsError:
            return False
        except OSError as exc:
            raise CgroupError("mkdir", str(target), exc.errno or errno.EIO) from exc
        return True

    def rmdir(self, rel: str) -> None:
        """Remove an empty cgroup; a cgroup already gone counts as removed."""
        target = self.path(rel)
        if target == self.root and rel != "":
            raise ValueError("refusing to remove the root through a child path")
        _rmdir(target)
        if rel:
            self._dirs.pop(rel, None)

    def rmdir_tree(self, rel: str) -> None:
        """Remove an empty job or agent cgroup together with the cgroups its payload nested
        inside it (a container runtime's, say), deepest first. Only below a leaf wnr owns."""
        target = self.path(rel)
        if len(rel.split("/")) != 2:
            raise ValueError(
                f"refusing to remove the subtree of {rel!r}: not a job or agent cgroup"
            )
        nested = [Path(d) for d, _, _ in os.walk(target, topdown=False) if Path(d) != target]
        for directory in nested:
            if directory.is_symlink() or target not in directory.parents:
                raise ValueError(f"refusing to remove {directory}: not below {target}")
            _rmdir(directory)
        self.rmdir(rel)

    def procs_tree(self, rel: str) -> tuple[int, ...]:
        """The PIDs in the cgroup and in every cgroup nested below it."""
        pids: list[int] = []
        for directory in self._tree(rel):
            text = _read_interface(f"{directory}/cgroup.procs") or ""
            pids.extend(int(p) for p in text.split())
        return tuple(pids)

    def threads_tree(self, rel: str) -> int:
        """How many tasks (threads) the cgroup and every cgroup nested below it hold, as
        `pids.current` counts them where the pids controller is off."""
        count = 0
        for directory in self._tree(rel):
            count += len((_read_interface(f"{directory}/cgroup.threads") or "").split())
        return count

    def _tree(self, rel: str) -> list[str]:
        """The cgroup's directory and those nested below it. A job's cgroup rarely has any,
        and listing one (some 40 interface files) costs more than reading two of them, so
        `cgroup.stat`'s `nr_descendants` is asked first."""
        target = self.directory(rel)
        if not self.nested(rel):
            return [target]
        return [directory for directory, _, _ in os.walk(target)]

    def nested(self, rel: str) -> bool:
        """Whether cgroups are nested below this one (`cgroup.stat` nr_descendants; True
        when that cannot be read, so that callers look)."""
        stat = _read_interface(f"{self.directory(rel)}/cgroup.stat")
        return stat is None or flat_keyed(stat).get("nr_descendants") != 0

    def read(self, rel: str, name: str, files: OwnerFiles | None = None) -> str | None:
        """Read an interface file, stripped; None when it does not exist (controller off).
        With `files`, through a descriptor kept open between reads (a sampler's)."""
        target = f"{self.directory(rel)}/{_interface(name)}"
        if files is None:
            return _read_interface(target)
        try:
            data = files.read(target, iterated=target.endswith(_ITERATED))
        except OSError as exc:
            raise CgroupError("read", target, exc.errno or errno.EIO) from exc
        return None if data is None else data.decode().strip()

    def read_parent(self, name: str) -> str | None:
        """Read an interface file of the root's parent, the one cgroup above the root wnr
        reads (which controllers reach the root); None when it does not exist."""
        return _read_interface(f"{self.root.parent}/{_interface(name)}")

    @_retry_brief
    def write(self, rel: str, name: str, value: str) -> None:
        """Write one value to an interface file in a single write(2), as the kernel expects."""
        target = f"{self.directory(rel)}/{_interface(name)}"
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CgroupError("open", target, exc.errno or errno.EIO, value) from exc
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            raise CgroupError("write", target, exc.errno or errno.EIO, value) from exc
        finally:
            os.close(fd)

    def write_checked(self, rel: str, name: str, value: str) -> str | None:
        """Write a value and read it back, returning what the kernel now holds."""
        self.write(rel, name, value)
        return self.read(rel, name)

    def children(self, rel: str) -> list[str]:
        """Names of the child cgroups, sorted; an absent cgroup has none."""
        directory = self.directory(rel)
        try:
            entries = os.scandir(directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CgroupError("list", directory, exc.errno or errno.EIO) from exc
        with entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))

    def procs(self, rel: str, files: OwnerFiles | None = None) -> tuple[int, ...]:
        """The PIDs in the cgroup itself (not its children)."""
        text = self.read(rel, "cgroup.procs", files)
        return tuple(int(line) for line in text.split()) if text else ()

    def events(self, rel: str) -> dict[str, int]:
        """`cgroup.events` as a mapping (populated, frozen)."""
        return flat_keyed(self.read(rel, "cgroup.events"))

    def kill(self, rel: str) -> None:
        """SIGKILL every process in the cgroup and its descendants at once."""
        self.write(rel, "cgroup.kill", "1")

    def freeze(self, rel: str, frozen: bool) -> None:
        """Freeze or thaw the cgroup subtree."""
        self.write(rel, "cgroup.freeze", "1" if frozen else "0")


@_retry_brief
def _rmdir(directory: Path) -> None:
    """rmdir, retried briefly on EBUSY (a cgroup just emptied); ENOENT counts as done."""
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CgroupError("rmdir", str(directory), exc.errno or errno.EIO) from exc


def _read_interface(target: str) -> str | None:
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise CgroupError("read", target, exc.errno or errno.EIO) from exc
    try:
        chunk = os.read(fd, _READ_SIZE)
        # Interface files are seq_files. Most print their whole text in one show(), and a
        # read(2) hands out all of it that fits the buffer: a shorter read is the end. The
        # PID lists (cgroup.procs, cgroup.threads) print a record per PID, about a page per
        # read(2): read those until a read says the list ended.
        iterated = target.endswith(_ITERATED)
        ended = iterated and list_ended(len(chunk), _READ_SIZE)
        if len(chunk) == _READ_SIZE or (iterated and not ended):
            chunks = [chunk]
            while chunks[-1] and not (iterated and list_ended(len(chunks[-1]), _READ_SIZE)):
                chunks.append(os.read(fd, _READ_SIZE))
            chunk = b"".join(chunks)
    except OSError as exc:
        raise CgroupError("read", target, exc.errno or errno.EIO) from exc
    finally:
        os.close(fd)
    return chunk.decode().strip()


# The interface files whose seq_file iterates, a record per task.
_ITERATED = ("/cgroup.procs", "/cgroup.threads")


def _interface(name: str) -> str:
    # Interface files are flat names like memory.max; refuse anything that could walk paths.
    if "/" in name or name.startswith(".") or not name:
        raise ValueError(f"not a cgroup interface file name: {name!r}")
    return name


def flat_keyed(text: str | None) -> dict[str, int]:
    """Parse a flat-keyed file such as `cgroup.events` or `memory.events` into integers."""
    result: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result
