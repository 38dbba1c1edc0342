"""Which files a scan sends: the files named, and the regular files under the folders named.

Folders are walked recursively without following symbolic links: a link inside a folder
(to a file or to a folder) is skipped and counted, never followed, so a scan never leaves
the trees it was given, never loops, and never sends a file twice through two names. A path
named on the command line is taken as given, even when it is itself a link: the user chose
it. Devices, sockets and FIFOs are skipped too (reading one could block for ever). A file
reached twice (named twice, or named and inside a named folder) is sent once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LocalFile:
    """One file to send. `path` is as the user will recognize it (relative to the working
    directory when it was given so); `abspath` names it for --resume whatever the directory."""

    path: str
    abspath: str
    size: int
    mtime_ns: int
    # (device, inode): the same file reached through two names is sent once, and the file
    # opened to be sent must still be this one (see upload.open_selected).
    identity: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    # Found by walking a folder, where links are not followed: it is opened without
    # following one either, should a link have taken its place since.
    walked: bool = field(default=False, compare=False, repr=False)


@dataclass
class Selection:
    files: list[LocalFile] = field(default_factory=list)
    skipped_links: int = 0
    skipped_special: int = 0
    # The scan's own result files (--output, --resume) found among the files: never sent.
    skipped_results: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)


def local_file(path: str, info: os.stat_result, walked: bool = False) -> LocalFile:
    identity = (info.st_dev, info.st_ino)
    return LocalFile(path, os.path.abspath(path), info.st_size, info.st_mtime_ns, identity, walked)


def walk_folder(folder: str, selection: Selection) -> Iterator[LocalFile]:
    """Regular files under `folder`, in name order (a folder's files before its subfolders'),
    links and special files skipped."""

    def record_error(error: OSError) -> None:
        selection.unreadable.append(f"{error.filename}: {error.strerror}")

    for directory, subdirectories, names in os.walk(folder, onerror=record_error):
        subdirectories.sort()  # os.walk does not follow links to folders: they are counted below
        for name in sorted(names) + [name for name in subdirectories if is_link(directory, name)]:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError as error:
                record_error(error)
                continue
            if stat.S_ISLNK(info.st_mode):
                selection.skipped_links += 1
            elif stat.S_ISREG(info.st_mode):
                yield local_file(path, info, walked=True)
            else:
                selection.skipped_special += 1


def is_link(directory: str, name: str) -> bool:
    return os.path.islink(os.path.join(directory, name))


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, or None when there is none (yet)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def select_files(paths: Iterable[str], exclude: Iterable[str | os.PathLike[str]] = ()) -> Selection:
    """The files a scan of `paths` sends, in the order given (folders in name order), but
    for the files `exclude` names (the scan's own --output and --resume files: one in the
    tree scanned would otherwise be sent by every later run, changed each time)."""
    selection = Selection()
    seen: set[tuple[int, int]] = set()
    excluded_paths = {os.path.abspath(path) for path in exclude}
    excluded = {identity for path in excluded_paths if (identity := file_identity(path)) is not None}
    for given in paths:
        try:
            info = os.stat(given)  # a link named on the command line is followed
        except OSError as error:
            selection.unreadable.append(f"{given}: {error.strerror}")
            continue
        if stat.S_ISDIR(info.st_mode):
            candidates: Iterable[LocalFile] = walk_folder(given, selection)
        elif stat.S_ISREG(info.st_mode):
            candidates = [local_file(given, info)]
        else:
            selection.skipped_special += 1
            continue
        for candidate in candidates:
            if candidate.identity in excluded or candidate.abspath in excluded_paths:
                if candidate.identity not in seen:
                    selection.skipped_results += 1
                    seen.add(candidate.identity)
            elif candidate.identity not in seen:
                seen.add(candidate.identity)
                selection.files.append(candidate)
    return selection
