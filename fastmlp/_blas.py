"""BLAS, as fastmlp's compiled step uses it: single-threaded while a fit runs;
fastmlp's own unpacked kernels for the step's two big products where the CPU has
them, else OpenBLAS's small-matrix path where it has one. The one place for these
decisions.

The compiled step (``fastmlp._sgd``) calls BLAS from each of fastmlp's threads,
so BLAS itself must run single-threaded meanwhile: two pools spinning for the
same cores slow each other down by orders of magnitude. ``threadpoolctl`` finds
the BLAS libraries loaded in the process; their thread counts are set directly
around a fit, which costs microseconds (``threadpool_limits`` costs milliseconds).
"""

import contextlib
import functools
import threading

from threadpoolctl import ThreadpoolController

# OpenBLAS (0.3.16+, on AVX-512 cores) multiplies matrices with m*n*k <= 100**3
# without packing them first; for the (batch, features) @ (features, columns)
# products of a step that path is about 1.4x faster than the packed one
# (benchmarks/gemm_shapes.py measures it). Where the BLAS has it, the two big
# products of a step are cut into column blocks that fit it.
SMALL_GEMM_VOLUME = 100 ** 3

# OpenBLAS core types that have that path.
_SMALL_GEMM_CORES = {"skylakex", "cooperlake", "sapphirerapids"}


def _small_gemm_width(batch_size, n_features):
    """Widest column block (a multiple of 16) of a (batch, features) @ (features, columns)
    product whose volume fits ``SMALL_GEMM_VOLUME``, or 0 when not even 16 columns do."""
    width = SMALL_GEMM_VOLUME // (batch_size * n_features) // 16 * 16
    return width if width >= 16 else 0


def gemm_columns(batch_size, n_features, n_columns):
    """Widest column block (a multiple of 16) of a (batch, features) @ (features, n_columns)
    product whose volume fits ``SMALL_GEMM_VOLUME``; all ``n_columns`` when none does."""
    width = _small_gemm_width(batch_size, n_features)
    return min(width, n_columns) if width else n_columns


# fastmlp's unpacked kernels take W1 a block of columns at a time, and W1 is stored
# block after block during an epoch (``_sgd.Workspace``). A slice whose rows are
# longer than this is taken in blocks of half this per row, so that each block is
# read in order, page after page; each block re-reads the batch, so shorter slices
# stay whole. (Measured, epochs taking turns, D=784, H=512, float64, an AVX-512 Xeon:
# batch 30, one thread: 208 ms per epoch with the whole 4 KB rows as one block, 137
# ms with blocks of 64 columns, 142 with 128; two threads, 2 KB rows: 124 and 80 ms;
# batch 256, two threads: 172 and 137 ms. At H=128, 1 KB rows: blocks of 64 were
# 4% slower at batch 256, even at batch 30.)
UNPACKED_ROW_BYTES = 1024


def _unpacked_columns(slice_width, itemsize):
    """Column block of fastmlp's unpacked kernels: ``None`` (the whole slice) for a
    slice of at most ``UNPACKED_ROW_BYTES`` per row, else the widest multiple of 64
    columns (so of every kernel's tile) of at most half that per row that divides the
    slice (``None`` when none does)."""
    if slice_width * itemsize <= UNPACKED_ROW_BYTES:
        return None
    width = UNPACKED_ROW_BYTES // 2 // itemsize // 64 * 64
    while width >= 64:
        if slice_width % width == 0:
            return width
        width -= 64
    return None


def _unpacked_tile(itemsize):
    """Columns of a tile of fastmlp's unpacked kernels on this CPU for floats of
    ``itemsize`` bytes (0: none)."""
    from . import kernels
    return kernels.small_gemm_width(f"f{itemsize}")


def step_products(batch_size, n_features, slice_width, itemsize=8):
    """How a fit's step computes its two big products: ``(gemm_columns, small_gemm)``.

    fastmlp's own unpacked kernels (``src_c/_small_gemm.h``, AVX2 or AVX-512, chosen
    at run time) wherever the CPU has them and the slice is a whole number of their
    tiles: ``small_gemm=True``, taking a slice with long rows in blocks of columns
    (``_unpacked_columns``; ``itemsize``: bytes per element). They read the batch's
    rows in place and, on AVX-512, hold a tile of 6 rows by 4 vectors in registers;
    measured on the step, epochs taking turns, D=784, H=128, an AVX-512 Xeon, against
    OpenBLAS's unpacked small-matrix path with the rows copied: 1-9% less time per
    epoch at batch 30 on one thread, 4-19% on two; 10-23% at batches 48 and 64; and
    against OpenBLAS's packed path (which it takes from about batch 80 at D=784)
    6-22% less with the rows copied, more without.

    Elsewhere, where the BLAS is an OpenBLAS with the small-matrix path and the
    products fit it in blocks of at least 16 columns, BLAS in such blocks
    (:func:`gemm_columns`); else BLAS as it is.
    """
    tile = _unpacked_tile(itemsize)
    if tile and slice_width % tile == 0:
        return _unpacked_columns(slice_width, itemsize), True
    if BlasThreads.shared().has_small_gemm() and _small_gemm_width(batch_size, n_features):
        return gemm_columns(batch_size, n_features, slice_width), False
    return None, False


# Where the last-level cache's size is unknown: as much as a laptop's has.
DEFAULT_CACHE_BYTES = 8 * 2**20


@functools.lru_cache(maxsize=None)
def rows_in_place_bytes(cache_folder="/sys/devices/system/cpu/cpu0/cache"):
    """Largest X (bytes) whose batch rows fastmlp's kernels read in place rather than
    copy: the last-level cache's size (Linux's ``cache_folder``; ``DEFAULT_CACHE_BYTES``
    where unknown). An X in cache is read fastest in place (measured at N=2580, D=784, a
    16 MB X in a 105 MB cache: 4-12% less time per epoch than copying); from memory,
    rows read one by one inside the product stall it while a copy streams (N=60000, a
    376 MB X: 18% more time on one thread in place, 3% on two)."""
    import glob

    best = (0, 0)
    for folder in glob.glob(f"{cache_folder}/index*"):
        try:
            with open(f"{folder}/level") as f:
                level = int(f.read())
            with open(f"{folder}/size") as f:
                text = f.read().strip()
        except (OSError, ValueError):
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
        try:
            size = int(text.rstrip("KkMmGg")) * scale
        except ValueError:
            continue
        best = max(best, (level, size))
    return best[1] or DEFAULT_CACHE_BYTES


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
