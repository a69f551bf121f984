"""Writing files so that no data is lost: a temporary file beside the target, moved into place."""

import os
import tempfile


def write_atomically(path, write, binary=False):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    An existing file at ``path`` is replaced only once the new one is complete; on
    any error it is left as it was and the temporary file is removed. The result
    gets the usual mode for a new file (``0o666`` less the umask), not mkstemp's 0600.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastmlp-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
