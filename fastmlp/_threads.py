"""Threads: how many the compiled step uses, and keeping BLAS out of their way.

The compiled step (``fastmlp._sgd``) splits the hidden units between OpenMP
threads and calls BLAS from each of them, so BLAS itself must run
single-threaded meanwhile: two pools spinning for the same two cores slow each
other down by orders of magnitude. ``threadpoolctl`` finds the BLAS libraries
loaded in the process; their thread counts are set directly around each epoch,
which costs microseconds (``threadpool_limits`` costs milliseconds).
"""

import contextlib
import os
import threading

from threadpoolctl import ThreadpoolController

from ._validation import check_int

# OpenBLAS core types that have its unpacked small-matrix GEMM path (see _sgd.gemm_columns).
_SMALL_GEMM_CORES = {"skylakex", "cooperlake", "sapphirerapids"}


def available_cores():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def n_slices(n_threads, hidden, openmp, openmp_limit=None):
    """Number of hidden-unit slices, i.e. threads, for a fit.

    The largest count <= ``n_threads`` that divides ``hidden`` evenly and leaves
    each slice at least 8 units; 1 without OpenMP. ``n_threads=None`` means the
    available cores, or ``openmp_limit`` (OpenMP's own limit: ``OMP_NUM_THREADS``,
    threadpoolctl, joblib's workers) when that is lower.
    """
    if n_threads is None:
        wanted = min(available_cores(), openmp_limit or available_cores())
    else:
        wanted = check_int(n_threads, "n_threads", minimum=1)
    if not openmp:
        return 1
    for count in range(min(wanted, max(1, hidden // 8)), 0, -1):
        if hidden % count == 0:
            return count
    return 1


class BlasThreads:
    """The BLAS libraries of this process, to be held single-threaded for a while.

    Fits in several Python threads may overlap: the first to enter :meth:`single`
    saves the libraries' thread counts and the last to leave restores them.
    """

    _lock = threading.Lock()
    _holders = 0
    _saved = None
    _instance = None

    def __init__(self):
        self._libs = ThreadpoolController().select(user_api="blas").lib_controllers

    @classmethod
    def shared(cls):
        """One instance per process: finding the libraries takes milliseconds, and the
        BLAS that fastmlp's step calls (SciPy's) is loaded before the first fit."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def has_small_gemm(self):
        """Whether the BLAS is an OpenBLAS with the small-matrix GEMM path."""
        return any(getattr(lib, "internal_api", "") == "openblas"
                   and str(lib.info().get("architecture", "")).lower() in _SMALL_GEMM_CORES
                   for lib in self._libs)

    @contextlib.contextmanager
    def single(self):
        """Run the body with every BLAS library limited to one thread, then restore."""
        cls = BlasThreads
        with cls._lock:
            if cls._holders == 0:
                cls._saved = [(lib, lib.num_threads) for lib in self._libs]
                for lib in self._libs:
                    _set_threads(lib, 1)
            cls._holders += 1
        try:
            yield
        finally:
            with cls._lock:
                cls._holders -= 1
                if cls._holders == 0:
                    for lib, n in cls._saved:
                        _set_threads(lib, n)
                    cls._saved = None


def _set_threads(lib, n):
    """Set a BLAS library's thread count from whichever Python thread is running.

    threadpoolctl (3.6+) lets only the first Python thread that limited OpenBLAS
    change it and silently ignores the others; a fit started from a worker thread
    must still get single-threaded BLAS (or two thread pools fight over the cores),
    so its unguarded setter is used where it has one.
    """
    setter = getattr(lib, "_real_set_num_threads", None) or lib.set_num_threads
    setter(n)
