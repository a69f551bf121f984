"""Files without surprises: atomic, durable writes, and reads that never block on a FIFO."""

import os
import secrets
import stat


def write_atomically(path, write, binary=False):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    An existing file at ``path`` is replaced only once the new one is complete and
    flushed to disk (``fsync`` of the file before the rename, of the folder after
    it), so a crash never leaves it half written or empty; on any error it is left
    as it was and the temporary file is removed. A new file gets the usual mode
    (``0o666`` less the umask); a replaced file keeps its mode. When ``path`` is a
    symbolic link, the file it points to is replaced and the link is kept.

    Raises
    ------
    FileNotFoundError
        When the folder of ``path`` does not exist (the message names ``path``).
    IsADirectoryError
        When ``path`` is a folder.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)  # through symbolic links: replace what they point to
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot write {path!r}: it is a folder; give a file name")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: its folder {folder!r} does not exist; "
                                f"create it first")
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = _create_temporary(folder)
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _create_temporary(folder):
    """A new file ``.fastmlp-*.tmp`` in ``folder``, created with mode 0o666 (the kernel
    applies the umask, as for any new file): ``(fd, path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".fastmlp-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder!r}")


def _fsync_folder(folder):
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_regular_file(path, what):
    """Raise unless ``path`` is an existing regular file (or a link to one).

    Reading a FIFO, a device or a folder would block or fail halfway; this says so
    first. ``what`` names the file in messages (e.g. ``"model file"``).

    Raises
    ------
    FileNotFoundError
        When nothing exists at ``path``.
    ValueError
        When ``path`` is a folder, FIFO, socket or device.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path!r} does not exist; check the path") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise ValueError(f"{what} {path!r} is {kind}, not a regular file; save the data to a file "
                         f"and pass its path")
