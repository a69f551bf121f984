"""How many threads the compiled step uses.

The hidden units of a fit are split into slices (``n_slices``); the result of a
fit depends on the slice count only. fastmlp's own thread team (``fastmlp._sgd``)
runs the slices, on as many threads as measured to be fastest at the time (one
on a busy machine), within a limit that ``threadpoolctl.threadpool_limits`` sets
like any other thread pool's: fastmlp registers a threadpoolctl controller for it
(user_api ``"fastmlp"``). The default thread count also follows the environment
variables ``FASTMLP_NUM_THREADS`` and ``OMP_NUM_THREADS`` (which joblib's and
Dask's workers set).
"""

import os

import numpy as np

from ._validation import check_int


def available_cores():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _env_limit(name):
    """A positive integer from the environment variable ``name`` (its first
    comma-separated entry, as OpenMP reads OMP_NUM_THREADS), or None."""
    value = os.environ.get(name, "").split(",")[0].strip()
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


def default_threads():
    """Threads a fit uses by default: the available cores, or fewer where limited by
    ``threadpool_limits`` (fastmlp's controller), ``FASTMLP_NUM_THREADS`` or
    ``OMP_NUM_THREADS``."""
    from . import _sgd
    limits = [available_cores(), _sgd.thread_limit() or None,
              _env_limit("FASTMLP_NUM_THREADS"), _env_limit("OMP_NUM_THREADS")]
    return min(n for n in limits if n)


def n_slices(n_threads, hidden):
    """Number of hidden-unit slices for a fit, which fixes its result.

    The largest count <= ``n_threads`` that divides ``hidden`` evenly and leaves
    each slice at least 8 units (1 when none does). ``n_threads=None`` means
    :func:`default_threads`. The same in every build: a build without threads runs
    the slices one after the other and gives the same result.
    """
    wanted = default_threads() if n_threads is None else check_int(n_threads, "n_threads", minimum=1)
    for count in range(min(wanted, max(1, hidden // 8)), 0, -1):
        if hidden % count == 0:
            return count
    return 1


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary
    (a cache line), so threads writing neighbouring slices never share a line."""
    dtype = np.dtype(dtype)
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n_bytes + 64, dtype=np.uint8)
    offset = (-raw.ctypes.data) % 64
    return raw[offset:offset + n_bytes].view(dtype).reshape(shape)


def aligned_copy(a):
    """A C-contiguous copy of ``a`` starting on a cache line (see :func:`aligned_empty`)."""
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


def register_threadpoolctl():
    """Make ``threadpoolctl`` see and limit fastmlp's thread team (user_api "fastmlp")."""
    import threadpoolctl

    class FastmlpController(threadpoolctl.LibController):
        """fastmlp's thread team, found through the functions its step module exports."""

        user_api = "fastmlp"
        internal_api = "fastmlp"
        filename_prefixes = ("_sgd",)
        check_symbols = ("fastmlp_get_thread_limit", "fastmlp_set_thread_limit")

        def get_num_threads(self):
            limit = self.dynlib.fastmlp_get_thread_limit()
            return limit if limit > 0 else available_cores()

        def set_num_threads(self, num_threads):
            self.dynlib.fastmlp_set_thread_limit(int(num_threads))

        def get_version(self):
            from ._version import __version__
            return __version__

    threadpoolctl.register(FastmlpController)
