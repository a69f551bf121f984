"""The compiled training step: minibatch SGD on the two-layer network, GIL released.

``sgd_epoch`` runs an epoch's minibatches inside one ``with nogil:`` block: gather
the batch rows, forward, softmax cross-entropy, backward and the parameter
updates, with the matrix products going through BLAS (``src_c/_blas.pxd``) and
nothing allocated. The math is the seed's, written out in ``fastmlp.reference``;
this module must agree with it.

Threads. The hidden units are split into ``n_slices`` equal slices (see
``Workspace``); the result depends on the slice count only. The slices run on a
team of fastmlp's own threads (``src_c/_team.h``: POSIX threads that wait by
spinning, briefly when other threads want a core, then sleeping, and start afresh
after a fork), member ``m`` of ``n`` owning slices ``m, m + n, ...``. An epoch runs
in *segments* of a few milliseconds' worth of steps; before each segment a
``ThreadChoice`` picks how many members run it (one, or one per slice), from the
time per step it measured for both (on an idle machine the team wins; on a busy
one either may, with the load), and the result is the same either way. Between
segments the calling thread takes the GIL to let a Ctrl-C through (only when it is
Python's main thread) and stops at interpreter exit, always after a complete step.

One step, for batch k of an epoch (buffers in ``Workspace``)::

    phase      member m, for each of its slices s              reads            writes
    forward    R_s = relu(scale Xb_m W1_s + b1_s)              Xb_m, W1_s       R_s
               share[k%2, s] = scale R_s W2_s (+ b2 if s = 0)  W2_s, b2         share[k%2, s]
    ---------- the one barrier of the step ----------------------------------------------------
    logits     G_m = share[k%2, 0] + share[k%2, 1] + ...       every share      G_m
               G_m = softmax(G_m) - onehot(y)  (member 0: loss, accuracy, b2 update)
    backward   dR_s = scale G_m W2_s.T; W2_s update; dA1_s = dR_s [R_s > 0];
               W1_s update from Xb_m.T dA1_s; b1_s update      G_m, R_s, Xb_m   W1_s, W2_s, b1_s
                                                                                (and their velocities)
    gather     batch k+1's rows (all of them)                  X, order         Xb_m

Each member gathers every row of the batch into its own buffer Xb_m (and the
labels, and the sample weights wb_m, by which G_m's rows are then scaled): copying
the rows twice costs less than moving half of them from the other core's cache
at every step. Where fastmlp's unpacked kernels do the products (``small_gemm``)
and X fits ``Workspace.rows_in_place_bytes``, they read the rows in place instead,
X's row ``order[r]`` for the batch's row r, and only the labels and weights are
gathered (``direct_rows``; 4-12% less time per epoch than copying, measured at
batches 30 to 256). A segment starts with each member gathering its first batch.

During an epoch W1 is held block-major (``Workspace.W1_blocks``, and V1 with
momentum): each column block that a product of the step takes at once is one run of
memory, and each member's slice is one run of blocks. So a product reads its block
sequentially, not a few cache lines of every row of W1 (which at H=512 made one
thread's epoch 2x slower), and no prefetcher pulls another member's lines. The
members of the epoch's first segment move their own slices in (``unfold_slice``, so
each slice starts in the cache of the core that uses it), those of the last move them
back with the lazy decay (``fold_slice``; the caller does it after an epoch stopped
early). With momentum, slice s also owns its part of V1 and
of the Nesterov gradient buffer gW1, its rows of V2 and gW2, its entries of Vb1;
member 0 owns Vb2. The updates themselves are ``update_matrix`` / ``update_vector``:
the one place where the optimizer's rule is written.

Why that is race-free with one barrier: a member writes only its own batch buffers
and slices, and G_m. The shares are the one thing members exchange: after the
barrier of step k a fast member writes ``share[(k+1)%2]`` (in step k+1) while a slow
one still reads ``share[k%2]``: two keep them apart, and ``share[k%2]`` is written
again only after the barrier of step k+1, which the slow member reaches after
reading it.
"""
from cython cimport floating
from libc.stdint cimport int64_t
from libc.string cimport memcpy

import atexit

import numpy as np

from fastmlp._threads import aligned_empty

from _blas cimport (
    gemm,
    small_gemm_isa,
    small_gemm_nn,
    small_gemm_tn,
    small_gemm_tn_momentum,
    small_gemm_width,
)
from _kernels cimport (
    bias_relu,
    column_sums,
    copy_scaled,
    count_correct,
    gather_rows,
    l2_sgd_update,
    momentum_apply,
    momentum_update,
    relu_backward,
    scale,
    softmax_xent_grad,
    sum_shares,
)

__all__ = ["THREADS", "Workspace", "forward_logits", "sgd_epoch", "shutdown", "thread_limit",
           "set_thread_limit"]


cdef extern from "Python.h":
    # Declared here without Cython's `except -1`: the caller cleans up before raising.
    int check_signals "PyErr_CheckSignals"() noexcept

cdef extern from "_team.h" nogil:
    ctypedef struct team:
        pass
    ctypedef void (*team_task)(void* args, int member, int n_members) noexcept nogil
    team* team_new()
    int team_run(team* t, int n_members, team_task task, void* args)
    int team_grow(team* t, int n_members)
    void team_barrier(team* t, int n_members)
    int team_usable(team* t)
    void team_free(team* t)
    int team_threads_available()
    double team_clock()
    int team_wait_spin_us(int own_threads)

#: Whether this build runs the slices of a step on several threads.
THREADS = bool(team_threads_available())


def wait_spin_microseconds(int own_threads=1):
    """How long (µs) the waiting members of a team starting a run now would spin before
    they sleep, with ``own_threads`` of fastmlp's threads awake: 3000 when no other
    thread is ready to run on the machine, else 30 (``src_c/_team.h``,
    ``team_wait_spin_us``; 30 where the OS does not say). 0 in a build without
    threads."""
    return team_wait_spin_us(own_threads)


# ------------------------------------------------------------------ process-wide state

cdef extern from *:
    """
    #include <time.h>
    /* A limit on the members of every team (0: none), set through threadpoolctl
     * (fastmlp registers a controller that finds these two functions by name) or
     * set_thread_limit. */
    static int fastmlp_thread_limit = 0;
    int fastmlp_get_thread_limit(void) { return __atomic_load_n(&fastmlp_thread_limit, __ATOMIC_SEQ_CST); }
    void fastmlp_set_thread_limit(int n) { __atomic_store_n(&fastmlp_thread_limit, n > 0 ? n : 0, __ATOMIC_SEQ_CST); }

    /* Interpreter exit: shutdown() raises `stopping`; running epochs stop after
     * their current segment and leave the compiled code (BLAS included) before
     * the exit handlers tear libraries down. `running` counts them. */
    static int fastmlp_stopping = 0;
    static int fastmlp_running = 0;
    static int fastmlp_is_stopping(void) { return __atomic_load_n(&fastmlp_stopping, __ATOMIC_SEQ_CST); }
    static void fastmlp_stop_all(void) { __atomic_store_n(&fastmlp_stopping, 1, __ATOMIC_SEQ_CST); }
    static void fastmlp_running_add(int d) { __atomic_add_fetch(&fastmlp_running, d, __ATOMIC_SEQ_CST); }
    static int fastmlp_n_running(void) { return __atomic_load_n(&fastmlp_running, __ATOMIC_SEQ_CST); }
    static void fastmlp_sleep_briefly(void) {
        struct timespec ts = {0, 200000};   /* 0.2 ms */
        nanosleep(&ts, NULL);
    }
    """
    int fastmlp_get_thread_limit() nogil
    void fastmlp_set_thread_limit(int n) nogil
    int fastmlp_is_stopping() nogil
    void fastmlp_stop_all() nogil
    void fastmlp_running_add(int d) nogil
    int fastmlp_n_running() nogil
    void fastmlp_sleep_briefly() nogil


def thread_limit():
    """The limit set on fastmlp's threads (``threadpool_limits`` or ``set_thread_limit``), or 0."""
    return fastmlp_get_thread_limit()


def set_thread_limit(int n):
    """Limit the thread team of every later segment to ``n`` threads (0: no limit)."""
    fastmlp_set_thread_limit(n)


def shutdown(double timeout=5.0):
    """Stop every running epoch after its current segment and wait (at most ``timeout``
    seconds) until none is left in the compiled code. fastmlp calls it at interpreter
    exit (``atexit``), so a fit in a daemon thread never runs while libraries unload."""
    cdef double deadline
    with nogil:
        fastmlp_stop_all()
        deadline = team_clock() + timeout
        while fastmlp_n_running() > 0 and team_clock() < deadline:
            fastmlp_sleep_briefly()


atexit.register(shutdown)


# ------------------------------------------------------------------ choosing threads

# A segment lasts about this long: short enough for Ctrl-C and for the thread
# choice to follow a changing load, long enough that starting one is negligible
# and that its time averages over a few of the OS scheduler's time slices.
cdef double SEGMENT_SECONDS = 8e-3
# The team must beat one thread per step by this factor before it is chosen: on a
# busy machine its timing is noisy and a wrong choice costs far more than on an
# idle one, where the team is much faster than this margin anyway.
cdef double TEAM_MARGIN = 0.85
cdef int MAX_PROBE_INTERVAL = 32  # segments between two tries of the mode not in use, at most
# A probe that loses by less than this factor is no reason to try less often: on an idle
# machine a noisy moment can make the team lose narrowly, and backing off then would
# keep one thread for hundreds of milliseconds. A busy machine makes it lose by more.
cdef double CLEAR_LOSS = 1.25

cdef struct ThreadChoice:
    int team_members        # members of the threaded mode (1: no choice to make)
    int adaptive            # 0: always team_members
    int mode                # in use: 0 = one member, 1 = team_members
    double per_step[2]      # measured seconds per step of each mode (0: not yet)
    int probe_in            # segments until the other mode is tried again
    int probe_every         # doubles while the other mode keeps losing
    int team_won            # the last probe of the team won (one more must, to switch)
    int one_won             # the last probe of one thread won (a fresh team segment decides)
    int warm                # the first segment has run (see record_segment)
    Py_ssize_t segment_steps


cdef void start_choice(ThreadChoice* c, int team_members, bint adaptive) noexcept:
    """No measurement yet: the team first (its first segment is one step, untimed)."""
    c.team_members = team_members
    c.adaptive = adaptive
    c.mode = 1 if team_members > 1 else 0
    c.per_step[0] = c.per_step[1] = 0
    c.probe_every = c.probe_in = 4
    c.team_won = 0
    c.one_won = 0
    c.warm = 0
    c.segment_steps = 1


cdef inline Py_ssize_t steps_per_segment(double seconds_per_step) noexcept nogil:
    """Steps that take about SEGMENT_SECONDS (1 to 1024)."""
    if seconds_per_step <= 0:
        return 1024
    return max(1, min(1024, <Py_ssize_t> (SEGMENT_SECONDS / seconds_per_step)))


cdef inline int choose_mode(ThreadChoice* c) noexcept nogil:
    """The mode for the next segment: the faster one, and now and then the other, to
    notice when the load changes."""
    if c.team_members <= 1:
        return 0
    if not c.adaptive:
        return 1
    if c.per_step[1] == 0:
        return 1
    if c.per_step[0] == 0:
        return 0
    if c.probe_in <= 0:
        return 1 - c.mode
    return c.mode


cdef inline void record_segment(ThreadChoice* c, int mode, double seconds,
                                Py_ssize_t steps) noexcept nogil:
    """Fold a segment's time into the estimate of its mode and re-decide. A probe of the
    mode not in use replaces its estimate: the last one is many segments old.

    Every segment, a probe included, is about SEGMENT_SECONDS long: on a busy machine
    the OS runs each thread for a few milliseconds at a time, so a shorter probe
    measures where in that cycle it fell more than the mode. Measured on 2 busy cores
    under 10 loads, probes a quarter as long made the default 2% slower (geometric
    mean; 13% at H=512 in float64), and full-length ones cost nothing measurable idle.

    Only probes of the team can switch to it, and two in a row must win: on a busy
    machine the OS takes a core from fastmlp's threads now and then, for milliseconds,
    so one thread's segments slow down at times and a probe of the team may happen to
    run while both threads have a core. Switching back to one thread takes one probe
    that wins, and then one segment of the team, timed afresh (its time replaces the
    estimate), that loses to it: one thread is never far worse than the team, but a
    single slow segment of the team (a noisy moment) raises its estimate, and the probe
    it prompts then won and switched to one thread for several segments on an idle
    machine. The team's own time passing one thread's old estimate only prompts that
    probe, at once: a moment when the whole machine is slow (a neighbour, the
    hypervisor) slows both alike, and trusting the old estimate then switched to one
    thread and back for several segments.

    The workspace's first segment (one step) only sizes the next: it starts the team's
    threads and finds the weights in no core's cache, and timed it often made an idle
    machine's team look slower than one thread (measured then with its first step
    left out), which then took a dozen segments or more to undo."""
    cdef double t = seconds / steps
    cdef int best
    if not c.warm:
        c.warm = 1
        c.segment_steps = steps_per_segment(t)
        return
    c.per_step[mode] = t if c.per_step[mode] == 0 or mode != c.mode or (mode == 1 and c.one_won) \
        else 0.5 * (c.per_step[mode] + t)
    if c.per_step[0] > 0 and c.per_step[1] > 0:
        if c.mode == 0:
            best = 1 if c.per_step[1] < TEAM_MARGIN * c.per_step[0] else 0
            if best and not (mode == 1 and c.team_won):
                # the team won one probe, or looks better on an old estimate: try it soon
                if mode == 1:
                    c.team_won = 1
                    c.probe_in = 2    # one segment of one thread first, to refresh its time
                else:
                    c.probe_in = min(c.probe_in, 1)
                best = 0
                mode = 0          # count this as a segment of the mode in use
            elif mode == 1 and not best:
                c.team_won = 0
        else:
            best = 0 if c.per_step[0] < c.per_step[1] else 1
            if mode == 1 and c.one_won:
                c.one_won = 0     # the fresh team segment after a winning probe: decided
            elif not best and mode == 1:
                # the team looks slower than one thread's old estimate: try one thread now
                c.probe_in = 0
                best = 1
            elif not best:
                # a probe of one thread won, maybe against a team slowed for a moment:
                # one fresh segment of the team (its time replacing the estimate) decides
                c.one_won = 1
                best = 1
        if best != c.mode:
            c.mode = best
            c.team_won = 0
            c.one_won = 0
            c.probe_every = 4
            c.probe_in = 4
        elif mode != c.mode:      # a probe of the other mode, which lost again
            if c.per_step[mode] > CLEAR_LOSS * c.per_step[c.mode]:
                c.probe_every = min(2 * c.probe_every, MAX_PROBE_INTERVAL)
            c.probe_in = c.probe_every
        elif c.probe_in > 0:
            c.probe_in -= 1
    else:
        c.mode = mode
    c.segment_steps = steps_per_segment(c.per_step[c.mode] if c.per_step[c.mode] > 0 else t)


def simulate_thread_choice(seconds_per_step, Py_ssize_t segments, int team_members=2,
                           bint with_steps=False):
    """The modes (1 or ``team_members`` threads) the thread choice runs for ``segments``
    segments when a step takes ``seconds_per_step(segment, threads)`` seconds: the
    rule of ``choose_mode`` / ``record_segment`` without a machine, for tests. With
    ``with_steps``, (threads, steps) for each segment."""
    cdef ThreadChoice c
    start_choice(&c, team_members, True)
    modes = []
    cdef int mode
    cdef Py_ssize_t i, steps
    for i in range(segments):
        mode = choose_mode(&c)
        steps = c.segment_steps
        threads = team_members if mode else 1
        record_segment(&c, mode, steps * float(seconds_per_step(i, threads)), steps)
        modes.append((threads, steps) if with_steps else threads)
    return modes


# ------------------------------------------------------------------ the workspace

cdef int requested_isa(request):
    """The kernels a Workspace argument asks for: 0 for False, this CPU's best for
    True, and for a number at most that one (1: AVX2 even on an AVX-512 CPU)."""
    if not request:
        return 0
    if request is True:
        return small_gemm_isa()
    return min(small_gemm_isa(), int(request))


cdef int isa_for_slices(int isa, int itemsize, Py_ssize_t slice_width):
    """`isa` if fastmlp's unpacked kernels can take a slice of this width (a multiple
    of their tile), else 0 (BLAS)."""
    cdef int width = small_gemm_width(isa, itemsize) if isa else 0
    return isa if width and slice_width % width == 0 else 0


def member_buffers(members, shape, dtype):
    """An array (*members, *shape) (``members``: an int or a tuple of them), C-contiguous
    within each block of ``shape``, every block starting on a cache line (so no two
    blocks, which different members write, share a line)."""
    dtype = np.dtype(dtype)
    lead = (int(members),) if np.ndim(members) == 0 else tuple(int(m) for m in members)
    size = int(np.prod(shape))
    stride = -(-size * dtype.itemsize // 64) * 64 // dtype.itemsize
    flat = aligned_empty((int(np.prod(lead)), stride), dtype)
    return flat[:, :size].reshape(lead + tuple(shape))


cdef class Workspace:
    """Scratch memory, thread team and thread choice for one fit, made once.

    The hidden units are split into ``n_slices`` equal slices: slice ``s`` is
    columns ``s*Hs:(s+1)*Hs`` of W1 and b1 and the same rows of W2, with its own
    part of the activations. The result depends on ``n_slices`` (the order in
    which the slices' shares of the logits are added), not on how many threads
    run them.

    Parameters
    ----------
    batch_size, n_features, n_hidden, n_classes : int
    dtype : float32 or float64
    n_slices : int, default 1
        Must divide ``n_hidden``.
    gemm_columns : int, optional
        Column block of the two big products of a step (default: all the columns
        of a slice, i.e. no blocking); see ``fastmlp._blas.gemm_columns``. During
        an epoch W1 is held in a copy made of blocks of that many columns
        (``W1_blocks``, ``block_width``; of a slice's columns where the block does
        not divide a slice), so that each product reads one run of memory.
    max_threads : int, optional
        Threads the team may use, at most ``n_slices`` (default: ``n_slices``; 1
        in a build without threads).
    adaptive : bool, default True
        Choose between one thread and the team per segment by measured speed;
        False always uses the team (for benchmarks and tests).
    small_gemm : bool or int, default False
        Compute the two big products of a step with fastmlp's unpacked kernels
        (``_small_gemm.h``) instead of BLAS, where the CPU has AVX2 or AVX-512 and the
        slice width is a multiple of their tile (else BLAS all the same); 1 asks for
        the AVX2 kernels even on an AVX-512 CPU. See ``fastmlp._blas`` for when fit
        asks for them. The kernels read the batch's rows of X in place (through the
        workspace's copy of the order), so ``X_batch`` stays unused, except with
        momentum where ``fused_momentum`` is off or cannot apply, and for an X larger
        than ``rows_in_place_bytes``.
    fused_momentum : bool or int, default True
        With momentum, update each slice of W1 and its velocity in the write-back of
        fastmlp's unpacked kernel for its gradient (one pass over both, instead of a
        BLAS accumulate and a second pass), where the CPU has AVX2 or AVX-512 and the
        slice width is a multiple of their tile, whatever ``small_gemm`` says; 1 asks
        for the AVX2 kernel even on an AVX-512 CPU. The results agree with the other
        path to rounding, and each path is deterministic.
    rows_in_place_bytes : int, optional
        Read the rows in place (see ``small_gemm``) only for an X of at most this many
        bytes (default: any X). From memory, rows read one by one inside the product
        stall it; copied, they stream (``fastmlp._blas.rows_in_place_bytes``).
    """
    cdef readonly object X_batch, y_batch, w_batch, hidden, d_hidden, logits, grad, d_b1, d_b2
    cdef readonly object grad_W1, grad_W2   # data gradients of W1 and W2, for Nesterov only
    cdef readonly object W1_blocks, V1_blocks   # block-major copies of W1 and V1 (see __init__)
    cdef readonly object labels, order
    cdef readonly Py_ssize_t n_slices, gemm_columns
    cdef readonly Py_ssize_t slice_stride, share_stride   # elements between blocks (see __init__)
    cdef readonly Py_ssize_t block_width   # columns of W1 per block of its copy, W1_blocks
    cdef readonly int small_gemm_isa    # fastmlp's unpacked kernels for the big products (0: BLAS)
    cdef readonly int momentum_isa      # ... for W1's fused momentum update (0: BLAS and a pass)
    cdef readonly object rows_in_place_bytes   # see __init__
    cdef public Py_ssize_t steps     # steps taken by the last sgd_epoch
    cdef team* team
    cdef ThreadChoice choice
    cdef double scale            # W = scale * V during an epoch (see sgd_epoch)
    cdef object segment_log      # see log_segments (None: not logging)
    cdef Py_ssize_t segments_logged

    def __cinit__(self):
        self.team = NULL

    def __init__(self, Py_ssize_t batch_size, Py_ssize_t n_features, Py_ssize_t n_hidden,
                 Py_ssize_t n_classes, dtype, Py_ssize_t n_slices=1, gemm_columns=None,
                 max_threads=None, bint adaptive=True, small_gemm=False, fused_momentum=True,
                 rows_in_place_bytes=None):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        for name, value in (("batch_size", batch_size), ("n_features", n_features),
                            ("n_hidden", n_hidden), ("n_classes", n_classes), ("n_slices", n_slices)):
            if not 1 <= value < 2**31:
                raise ValueError(f"{name} must be in [1, 2**31), got {value}")
        if n_hidden % n_slices:
            raise ValueError(f"n_slices ({n_slices}) must divide n_hidden ({n_hidden})")
        S, B, Hs = n_slices, batch_size, n_hidden // n_slices
        self.n_slices = S
        self.gemm_columns = Hs if gemm_columns is None else min(max(int(gemm_columns), 1), Hs)
        self.small_gemm_isa = isa_for_slices(requested_isa(small_gemm), dtype.itemsize, Hs)
        self.momentum_isa = isa_for_slices(requested_isa(fused_momentum), dtype.itemsize, Hs)
        self.rows_in_place_bytes = None if rows_in_place_bytes is None else int(rows_in_place_bytes)
        # W1 in blocks of the columns that a product takes at once: gemm_columns where
        # they divide a slice (and fastmlp's kernels, where used, can take them), else
        # the slice's.
        Wb = self.gemm_columns
        if Hs % Wb or any(isa_for_slices(i, dtype.itemsize, Wb) == 0
                          for i in (self.small_gemm_isa, self.momentum_isa) if i):
            Wb = Hs
        self.block_width = Wb
        members = S if max_threads is None else max(1, min(int(max_threads), S))
        members = members if THREADS else 1
        # Each member's own copy of the batch's rows, a whole number of cache lines per
        # member: the rows a member multiplies are in its core's cache alone.
        self.X_batch = member_buffers(members, (B, n_features), dtype)
        self.y_batch = member_buffers(members, (B,), np.int64)     # and their labels
        self.w_batch = member_buffers(members, (B,), dtype)        # and sample weights
        self.grad_W1 = self.grad_W2 = None                         # see momentum_buffers
        # W1 by block, (H / Wb, D, Wb), during an epoch (see fold_slice): each block
        # one run of memory, each thread's slice a run of whole blocks, apart from the
        # other threads'. Block b holds columns b*Wb:(b+1)*Wb.
        self.W1_blocks = aligned_empty((n_hidden // Wb, n_features, Wb), dtype) if n_hidden > Wb else None
        self.V1_blocks = None
        # By slice or member, each block on lines of its own (see member_buffers):
        self.hidden = member_buffers(S, (B, Hs), dtype)             # R = relu(X W1 + b1)
        self.d_hidden = member_buffers(S, (B, Hs), dtype)           # dR, then dA1
        self.logits = member_buffers((2, S), (B, n_classes), dtype)  # each slice's share of A2, k%2
        self.grad = member_buffers(S, (B, n_classes), dtype)        # G = softmax(A2) - Y
        # elements from one block to the next: of hidden and d_hidden, of logits and grad
        self.slice_stride = self.hidden.strides[0] // dtype.itemsize
        self.share_stride = self.logits.strides[1] // dtype.itemsize
        self.d_b1 = aligned_empty((n_hidden,), dtype)
        self.d_b2 = aligned_empty((n_classes,), dtype)
        self.labels = np.empty(0, dtype=np.int64)                  # private copies of y and order
        self.order = np.empty(0, dtype=np.int64)
        start_choice(&self.choice, members, adaptive)
        self.scale = 1
        self.segment_log = None
        self.segments_logged = 0

    def __dealloc__(self):
        team_free(self.team)

    @property
    def batch_size(self):
        return self.X_batch.shape[1]

    @property
    def threads(self):
        """Threads the team may use (the threaded mode's member count)."""
        return self.choice.team_members

    @property
    def thread_choice(self):
        """The thread choice so far: mode in use (1 or the team's threads) and the
        measured seconds per step of each (0: not measured)."""
        return {"threads": self.choice.team_members if self.choice.mode else 1,
                "seconds_per_step": {1: self.choice.per_step[0],
                                     self.choice.team_members: self.choice.per_step[1]}}

    def log_segments(self, Py_ssize_t capacity):
        """Record the next ``capacity`` segments of every later epoch, for diagnosing
        the thread choice (see ``segments``); 0 stops recording. Clears the record."""
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.segment_log = np.zeros((capacity, 4)) if capacity else None
        self.segments_logged = 0

    @property
    def segments(self):
        """The recorded segments (see ``log_segments``), oldest first: an (n, 4) float64
        array of rows (threads, steps, seconds, start), where ``threads`` is 1 or the
        team's, ``seconds`` the segment's wall time including its first step, and
        ``start`` a monotonic clock in seconds."""
        if self.segment_log is None:
            return np.zeros((0, 4))
        return self.segment_log[:self.segments_logged].copy()

    @property
    def nbytes(self):
        """Bytes of the arrays this workspace holds: its buffers, the block-major copies
        of W1 and V1, the momentum buffers once made, the private copies of y and the
        order."""
        return sum(a.nbytes for a in (self.X_batch, self.y_batch, self.w_batch, self.hidden,
                                      self.d_hidden, self.logits, self.grad, self.d_b1, self.d_b2,
                                      self.grad_W1, self.grad_W2, self.W1_blocks, self.V1_blocks,
                                      self.labels, self.order) if a is not None)

    def momentum_buffers(self):
        """Allocate (once) the buffers of momentum: the block-major copy of W1's velocity
        (where W1 has one), and the data-gradient buffers of W1 (laid out as W1 is
        during an epoch) and W2 (H, C) that Nesterov's update reads; each slice writes
        only its own part."""
        if self.grad_W1 is None:
            D, H, C = self.X_batch.shape[2], self.d_b1.shape[0], self.d_b2.shape[0]
            self.grad_W1 = aligned_empty((D, H), self.X_batch.dtype)
            self.grad_W2 = aligned_empty((H, C), self.X_batch.dtype)
            if self.W1_blocks is not None:
                self.V1_blocks = aligned_empty(self.W1_blocks.shape, self.X_batch.dtype)

    def check(self, n_features, n_hidden, n_classes, dtype):
        """Raise ValueError unless this workspace fits these sizes and dtype."""
        if (self.X_batch.shape[2] != n_features or self.d_b1.shape[0] != n_hidden
                or self.d_b2.shape[0] != n_classes or self.X_batch.dtype != dtype):
            raise ValueError("workspace was made for other sizes or another dtype")

    cdef team* ready_team(self) except NULL:
        """The team, made on first use, and made anew in a forked child."""
        if self.team != NULL and not team_usable(self.team):
            self.team = NULL        # the parent's: no threads here; leave it alone
        if self.team == NULL:
            self.team = team_new()
            if self.team == NULL:
                raise MemoryError("cannot allocate fastmlp's thread team")
            # Start the threads now, so the first timed segment of the team does not
            # include starting them.
            if self.choice.team_members > 1:
                team_grow(self.team, self.team_members())
        return self.team

    cdef int team_members(self):
        """Members of the threaded mode, within the thread limit."""
        cdef int n = self.choice.team_members, limit = fastmlp_get_thread_limit()
        return min(n, limit) if limit > 0 else n

    def private_indices(self, y, order):
        """Copies of ``y`` and ``order`` into memory only fastmlp holds: the nogil
        step indexes with them, so nobody may change them meanwhile."""
        if self.labels.shape[0] != len(y):
            self.labels = np.empty(len(y), dtype=np.int64)
        if self.order.shape[0] != len(order):
            self.order = np.empty(len(order), dtype=np.int64)
        np.copyto(self.labels, y, casting="same_kind")
        np.copyto(self.order, order, casting="same_kind")
        return self.labels, self.order


# ------------------------------------------------------------------ the step, by pointers

# The weights (W = scale * V for W1 and W2 during an epoch) and their sizes. W1 is
# stored in blocks of ld1 columns, block after block, each (D, ld1) with row stride
# ld1, and slice sl starts at W1 + sl * W1_step: in the caller's (D, H) array one
# block (ld1 = H, W1_step = Hs), or during an epoch the workspace's block-major copy
# (ld1 = Workspace.block_width, W1_step = D * Hs). See w1_offset.
cdef struct Network:
    Py_ssize_t D, H, C, S, Hs, Wc
    Py_ssize_t W1_step, ld1
    int isa                           # small_gemm_isa() for the big products, or 0: BLAS
    int momentum_isa                  # the same for W1's update with momentum (fused)
    void* W1
    void* b1
    void* W2
    void* b2


# The optimizer of an epoch: the rule, its settings and its state (the velocities
# V and, for Nesterov, the data-gradient buffers G of W1 and W2), all (D, H),
# (H,), (H, C), (C,) like the weights, by raw pointer (NULL when unused).
cdef struct Update:
    double lr          # learning rate
    double reg         # L2 strength (the gradient of reg ||W||^2 is 2 reg W)
    double decay       # 1 - 2 lr reg: plain SGD's factor on W per step, kept in the scale s
    double momentum    # 0: plain SGD
    bint nesterov
    void* V1
    void* Vb1
    void* V2
    void* Vb2
    void* G1
    void* G2


# Everything a member needs for a segment of an epoch: written by the caller
# before the segment, read by every member (member 0 also writes the totals).
cdef struct EpochArgs:
    Network net
    team* team
    const void* X
    const int64_t* y
    const void* w                     # (N,) sample weights, or NULL
    const int64_t* order
    Py_ssize_t M, B, n_batches
    Py_ssize_t first, last            # this segment's batches
    void* X_batch                     # per member (B, D), X_stride apart (unused with direct_rows)
    bint direct_rows                  # the big products read X's rows through order, not X_batch
    int64_t* y_batch                  # per member (B,), y_stride apart
    void* w_batch                     # per member (B,), w_stride apart, with sample weights
    Py_ssize_t X_stride, y_stride, w_stride
    void* hidden                      # (S, B, Hs), slices slice_stride apart
    void* d_hidden                    # (S, B, Hs), alike
    void* shares                      # (2, S, B, C), shares share_stride apart
    void* grad                        # (S, B, C), members share_stride apart (the same blocks)
    Py_ssize_t slice_stride, share_stride
    void* d_b1                        # (H,)
    void* d_b2                        # (C,)
    Update update                     # the optimizer's rule and its state
    double scale
    double loss
    double correct                    # correct predictions (their weight with sample weights)
    double first_step_done            # team_clock() when member 0 finished the segment's first step
    void* W1_user                     # the caller's W1 (and V1, or NULL): the epoch's first and
    void* V1_user                     # last segments move them to and from the blocks


cdef inline Py_ssize_t w1_offset(Network* net, Py_ssize_t sl, Py_ssize_t c) noexcept nogil:
    """Where W1[0, sl * Hs + c] is stored, from net.W1 (row stride net.ld1 from there
    to the end of c's block)."""
    return sl * net.W1_step + (c // net.ld1) * net.D * net.ld1 + c % net.ld1


cdef inline Py_ssize_t product_columns(Network* net, int isa) noexcept nogil:
    """Columns of W1 that one of a step's big products takes: BLAS's column block
    (Wc, see fastmlp._blas.gemm_columns), or with fastmlp's kernels (`isa`) a whole
    block of W1's storage (at most the slice)."""
    return min(net.ld1, net.Hs) if isa else net.Wc


cdef inline void slice_forward(Network* net, const floating* Xb, const int64_t* rows,
                               Py_ssize_t nb, Py_ssize_t sl, double s, floating* R,
                               floating* Z) noexcept nogil:
    """The forward pass of hidden slice sl (units h0 .. h0 + Hs) on nb rows Xb:

        R := relu(s * Xb @ V1[:, h0:h0+Hs] + b1[h0:h0+Hs])   (V1's slice: see Network)
        Z := s * R @ V2[h0:h0+Hs]  (+ b2 for the slice at h0 = 0)

    so the logits are the sum of every slice's Z. The product with V1 goes in
    column blocks (see product_columns).
    """
    cdef Py_ssize_t D = net.D, C = net.C, Hs = net.Hs, ld1 = net.ld1
    cdef Py_ssize_t h0 = sl * Hs, width = product_columns(net, net.isa), c = 0, i
    cdef const floating* W1 = <const floating*> net.W1
    cdef const floating* W2 = <const floating*> net.W2
    cdef const floating* b2 = <const floating*> net.b2
    while c < Hs:
        if net.isa:
            small_gemm_nn(net.isa, <int> nb, <int> min(width, Hs - c), <int> D, <floating> s,
                          Xb, <int> D, rows, W1 + w1_offset(net, sl, c), <int> ld1, R + c, <int> Hs)
        else:
            gemm(False, False, <int> nb, <int> min(width, Hs - c), <int> D, <floating> s,
                 Xb, <int> D, W1 + w1_offset(net, sl, c), <int> ld1, <floating> 0, R + c, <int> Hs)
        c += width
    bias_relu(R, <const floating*> net.b1 + h0, nb, Hs)
    if h0 == 0:
        for i in range(nb):
            memcpy(Z + i * C, b2, C * sizeof(floating))
    gemm(False, False, <int> nb, <int> C, <int> Hs, <floating> s, R, <int> Hs,
         W2 + h0 * C, <int> C, <floating> (1 if h0 == 0 else 0), Z, <int> C)


cdef inline void update_matrix(Update* u, Py_ssize_t off, Py_ssize_t ld, Py_ssize_t rows,
                               Py_ssize_t cols, Py_ssize_t k, const floating* A, Py_ssize_t lda,
                               const int64_t* A_rows, const floating* Bm, Py_ssize_t ldb,
                               floating* W, void* V, void* G, double s, int isa, bint first,
                               bint last) noexcept nogil:
    """The optimizer's step on the (rows, cols) block of a weight matrix at W + off (row
    stride ld; its velocity at V + off, gradient buffer at G + off), whose data
    gradient is A.T @ Bm (A: k x rows, Bm: k x cols; with `isa`, A's row r may be read
    through an index, at A + A_rows[r] lda, else A_rows is NULL). One of:

    plain SGD (momentum 0), with the decay lazily in the scale s (W = s * stored, see
    sgd_epoch; the caller multiplies s by `decay` after the step): one accumulate, by
    BLAS or, with `isa`, by fastmlp's unpacked kernels (_small_gemm.h)
        stored := stored - (lr / (s * decay)) A.T @ Bm
    momentum, classical: V holds P = m V - 2 lr reg W between the steps of a segment,
    so the data gradient goes in with the same accumulate as plain SGD's:
        (first step of a segment: P := m V - 2 lr reg W, a pass)
        P := P - lr A.T @ Bm   (= the new V);   W := W + P;
        (unless last step of a segment: P := m P - 2 lr reg W, in the same pass)
    Between segments V is the velocity itself (a stop after any segment leaves it so).
    momentum, Nesterov (needs the gradient twice, so it goes through G):
        G := A.T @ Bm;   V := m V - lr (G + 2 reg W);   W := W + m V - lr (G + 2 reg W)
    momentum, with `isa` (W1's slices where Workspace.momentum_isa): both rules in the
    write-back of fastmlp's unpacked kernel, one pass over W and V with no buffer:
        g := A.T @ Bm + 2 reg W;   V := m V - lr g;   W := W + V  (or W + m V - lr g)

    With update_vector, the one place where the compiled step changes the weights,
    as reference.sgd_update is in the reference: a new rule is a new branch in both,
    its state next to V in Update.
    """
    cdef floating* target = W + off
    cdef floating step = <floating> (-u.lr / (s * u.decay))
    cdef floating lr_decay = <floating> (2 * u.lr * u.reg)
    if u.momentum != 0 and isa:
        small_gemm_tn_momentum(isa, <int> rows, <int> cols, <int> k, A, <int> lda, A_rows, Bm, <int> ldb,
                               W + off, <floating*> V + off, <int> ld, <floating> u.lr,
                               <floating> (2 * u.reg), <floating> u.momentum, u.nesterov)
        return
    if u.momentum != 0 and not u.nesterov:
        target = <floating*> V + off
        step = <floating> -u.lr
        if first:
            momentum_apply(W + off, target, rows, cols, ld, <floating> u.momentum, lr_decay, False, True)
    if u.momentum == 0 or not u.nesterov:
        if isa:
            small_gemm_tn(isa, <int> rows, <int> cols, <int> k, step, A, <int> lda, A_rows, Bm, <int> ldb,
                          target, <int> ld)
        else:
            gemm(True, False, <int> rows, <int> cols, <int> k, step, A, <int> lda, Bm, <int> ldb,
                 <floating> 1, target, <int> ld)
        if u.momentum != 0:
            momentum_apply(W + off, target, rows, cols, ld, <floating> u.momentum, lr_decay, True, not last)
    else:   # Nesterov
        gemm(True, False, <int> rows, <int> cols, <int> k, <floating> 1, A, <int> lda,
             Bm, <int> ldb, <floating> 0, <floating*> G + off, <int> ld)
        momentum_update(W + off, <floating*> V + off, <const floating*> G + off, rows, cols, ld,
                        <floating> u.lr, <floating> u.reg, <floating> u.momentum, True)


cdef inline void update_vector(Update* u, floating* b, void* V, Py_ssize_t off,
                               const floating* g, Py_ssize_t n) noexcept nogil:
    """The optimizer's step on n entries of a bias vector at b + off (velocity at V + off),
    gradient g, no decay: b := b - lr g, or with momentum V := m V - lr g and
    b := b + V (Nesterov: b := b + m V - lr g)."""
    if u.momentum == 0:
        l2_sgd_update(b + off, g, n, <floating> u.lr, <floating> 0)
    else:
        momentum_update(b + off, <floating*> V + off, g, 1, n, n, <floating> u.lr, <floating> 0,
                        <floating> u.momentum, u.nesterov)


cdef inline void slice_backward_and_update(EpochArgs* a, const floating* Xb, const int64_t* rows,
                                           const floating* G, Py_ssize_t nb, Py_ssize_t sl,
                                           double s, bint first, bint last) noexcept nogil:
    """Backward pass of slice sl and its parameter updates (through update_matrix and
    update_vector; b2's is in the member-0 part of the step).

    With G = softmax(A2) - onehot(y) (rows scaled by the sample weights), the
    slice's part of the gradient is
        dW2_s = R_s.T @ G,  dR_s = G @ W2_s.T,  dA1_s = dR_s * [R_s > 0],
        dW1_s = Xb.T @ dA1_s,  db1_s = dA1_s.sum(0).
    dR_s uses W2_s before its update. first / last: this step is the first / last of
    its segment (see update_matrix).
    """
    cdef Network* net = &a.net
    cdef Update* u = &a.update
    cdef Py_ssize_t D = net.D, C = net.C, Hs = net.Hs, ld1 = net.ld1
    cdef Py_ssize_t h0 = sl * Hs, c = 0, width
    cdef floating* W1 = <floating*> net.W1
    cdef floating* W2 = <floating*> net.W2
    cdef floating* R = <floating*> a.hidden + sl * a.slice_stride
    cdef floating* dR = <floating*> a.d_hidden + sl * a.slice_stride
    cdef floating* db1 = <floating*> a.d_b1
    gemm(False, True, <int> nb, <int> Hs, <int> C, <floating> s,
         G, <int> C, W2 + h0 * C, <int> C, <floating> 0, dR, <int> Hs)
    update_matrix(u, h0 * C, C, Hs, C, nb, R, Hs, NULL, G, C, W2, u.V2, u.G2, s, 0, first, last)
    relu_backward(dR, R, nb * Hs)
    cdef int isa = net.isa if u.momentum == 0 else net.momentum_isa
    width = product_columns(net, isa)
    while c < Hs:
        update_matrix(u, w1_offset(net, sl, c), ld1, D, min(width, Hs - c), nb, Xb, D, rows, dR + c,
                      Hs, W1, u.V1, u.G1, s, isa, first, last)
        c += width
    column_sums(dR, nb, Hs, db1 + h0)
    update_vector(u, <floating*> net.b1, u.Vb1, h0, db1 + h0, Hs)


cdef inline void gather_batch(EpochArgs* a, Py_ssize_t batch, int member,
                              floating* tag) noexcept nogil:
    """Member `member` copies minibatch `batch`'s rows (and labels, and sample weights)
    into its own batch buffers."""
    cdef Py_ssize_t D = a.net.D, B = a.B, start = batch * B
    cdef Py_ssize_t nb = min(B, a.M - start)
    cdef Py_ssize_t r
    cdef const floating* w = <const floating*> a.w
    cdef floating* w_out = <floating*> a.w_batch + member * a.w_stride
    gather_rows(<const floating*> a.X, a.y, D, a.order + start, nb,
                NULL if a.direct_rows else <floating*> a.X_batch + member * a.X_stride,
                a.y_batch + member * a.y_stride)
    if w != NULL:
        for r in range(nb):
            w_out[r] = w[a.order[start + r]]


cdef inline void epoch_segment(EpochArgs* a, int member, int n_members,
                               floating* tag) noexcept nogil:
    """Member `member`'s part of steps a.first .. a.last - 1 (see the module docstring)."""
    cdef Network* net = &a.net
    cdef Py_ssize_t C = net.C, S = net.S, B = a.B
    cdef Py_ssize_t k, nb, p, sl
    # The batch's rows: the member's copy, or X itself read through order (direct_rows).
    cdef const floating* Xb = <const floating*> a.X if a.direct_rows else \
        <floating*> a.X_batch + member * a.X_stride
    cdef const int64_t* rows = NULL
    cdef int64_t* yb = a.y_batch + member * a.y_stride
    cdef floating* G = <floating*> a.grad + member * a.share_stride
    cdef floating* shares = <floating*> a.shares
    cdef floating* b2 = <floating*> net.b2
    cdef floating* db2 = <floating*> a.d_b2
    cdef double s = a.scale, loss = 0
    cdef const floating* wq = NULL     # the batch's sample weights, if any
    if a.w != NULL:
        wq = <const floating*> a.w_batch + member * a.w_stride
    if a.first == 0:      # the epoch's first segment: each member moves its own slices
        sl = member       # into the block-major copy, so they start in its core's cache
        while sl < S:
            unfold_slice(net, <floating*> a.W1_user, <floating*> a.V1_user, &a.update, sl)
            sl += n_members
    gather_batch(a, a.first, member, tag)
    for k in range(a.first, a.last):
        nb = min(B, a.M - k * B)
        p = k % 2
        if a.direct_rows:
            rows = a.order + k * B
        sl = member
        while sl < S:
            slice_forward(net, Xb, rows, nb, sl, s, <floating*> a.hidden + sl * a.slice_stride,
                          shares + (p * S + sl) * a.share_stride)
            sl += n_members
        team_barrier(a.team, n_members)

        # Every member adds the shares in slice order, so all hold the same logits.
        sum_shares(shares + p * S * a.share_stride, S, a.share_stride, nb * C, G)
        if member == 0:   # added step by step, so the sum does not depend on the segments
            a.correct += count_correct(G, yb, nb, C, wq)
        loss = softmax_xent_grad(G, yb, nb, C, wq)
        if member == 0:
            a.loss += loss
            column_sums(G, nb, C, db2)
            update_vector(&a.update, b2, a.update.Vb2, 0, db2, C)
        sl = member
        while sl < S:
            slice_backward_and_update(a, Xb, rows, G, nb, sl, s, k == a.first, k + 1 == a.last)
            sl += n_members
        if member == 0 and k == a.first:
            a.first_step_done = team_clock()
        if a.update.momentum == 0:    # plain SGD: this step's decay goes into the scale
            s *= a.update.decay
        if s < 0.5:               # fold the scale back into the member's slices
            sl = member
            while sl < S:
                scale_slice(net, sl, s, tag)
                sl += n_members
            s = 1
        if k + 1 < a.last:
            gather_batch(a, k + 1, member, tag)
    if a.last == a.n_batches:    # the epoch's last segment: each member its own slices back
        sl = member
        while sl < S:
            fold_slice(net, <floating*> a.W1_user, <floating*> a.V1_user, &a.update, sl, s)
            sl += n_members
        s = 1
    if member == 0:
        a.scale = s


cdef void epoch_segment_f64(void* args, int member, int n_members) noexcept nogil:
    epoch_segment(<EpochArgs*> args, member, n_members, <double*> NULL)


cdef void epoch_segment_f32(void* args, int member, int n_members) noexcept nogil:
    epoch_segment(<EpochArgs*> args, member, n_members, <float*> NULL)


cdef inline void move_slice(floating* W, floating* W_blocks, Network* net, Py_ssize_t sl,
                            bint into, double s) noexcept nogil:
    """Slice sl's columns between the caller's (D, H) W and its block-major copy (laid
    out as net says): W_blocks := W (into), or W := s * W_blocks (back)."""
    cdef Py_ssize_t c = 0, D = net.D, H = net.H, Hs = net.Hs, ld = net.ld1, width
    while c < Hs:
        width = min(ld, Hs - c)
        if into:
            copy_scaled(W + sl * Hs + c, H, W_blocks + w1_offset(net, sl, c), ld, D, width,
                        <floating> 1)
        else:
            copy_scaled(W_blocks + w1_offset(net, sl, c), ld, W + sl * Hs + c, H, D, width,
                        <floating> s)
        c += ld


cdef inline void scale_slice(Network* net, Py_ssize_t sl, double s, floating* tag) noexcept nogil:
    """Slice sl's columns of W1 (as net holds it) and rows of W2 := s times themselves
    (`tag` only picks the float type)."""
    cdef Py_ssize_t c = 0
    while c < net.Hs:
        scale(<floating*> net.W1 + w1_offset(net, sl, c), net.D, min(net.ld1, net.Hs - c), net.ld1,
              <floating> s)
        c += net.ld1
    scale(<floating*> net.W2 + sl * net.Hs * net.C, net.Hs, net.C, net.C, <floating> s)


cdef inline void unfold_slice(Network* net, floating* W1, floating* V1, Update* u,
                              Py_ssize_t sl) noexcept nogil:
    """The start of an epoch, for slice sl: its columns of the caller's W1 (and V1)
    into their block-major copies, where the epoch keeps them."""
    if net.W1 != <void*> W1:
        move_slice(W1, <floating*> net.W1, net, sl, True, 1)
        if V1 != NULL:
            move_slice(V1, <floating*> u.V1, net, sl, True, 1)


cdef inline void fold_slice(Network* net, floating* W1, floating* V1, Update* u,
                            Py_ssize_t sl, double s) noexcept nogil:
    """The end of an epoch, for slice sl: W1 := s V1 and W2 := s V2 (the lazy decay) on
    its columns of W1 and rows of W2, W1 and its velocity back from their block-major
    copies into the caller's W1 (and V1)."""
    if net.W1 == <void*> W1:
        if s != 1:
            scale_slice(net, sl, s, W1)
        return
    move_slice(W1, <floating*> net.W1, net, sl, False, s)
    if V1 != NULL:
        move_slice(V1, <floating*> u.V1, net, sl, False, 1)
    if s != 1:
        scale(<floating*> net.W2 + sl * net.Hs * net.C, net.Hs, net.C, net.C, <floating> s)


cdef int raise_pending() except -1:
    """Propagate the exception that PyErr_CheckSignals left set."""
    return -1


cdef Network network(Workspace ws, const floating[:, ::1] W1, const floating[::1] b1,
                     const floating[:, ::1] W2, const floating[::1] b2):
    """The weights as raw pointers (written through only by the training step)."""
    cdef Network net
    net.D = W1.shape[0]
    net.H = W1.shape[1]
    net.C = W2.shape[1]
    net.S = ws.n_slices
    net.Hs = net.H // net.S
    net.Wc = ws.gemm_columns
    net.isa = ws.small_gemm_isa
    net.momentum_isa = ws.momentum_isa
    net.W1 = <void*> &W1[0, 0]
    net.W1_step = net.Hs
    net.ld1 = net.H
    net.b1 = <void*> &b1[0]
    net.W2 = <void*> &W2[0, 0]
    net.b2 = <void*> &b2[0]
    return net


def sgd_epoch(const floating[:, ::1] X, y, order,
              floating[:, ::1] W1, floating[::1] b1, floating[:, ::1] W2, floating[::1] b2,
              Workspace workspace, double lr, double reg, bint main_thread=False,
              sample_weight=None, velocities=None, double momentum=0, bint nesterov=False):
    """One epoch of minibatch SGD over the rows ``order`` of ``(X, y)``, in place on the weights.

    Batches are consecutive runs of ``workspace.batch_size`` entries of ``order``;
    the last one may be partial. Each step is, with ``G = softmax(A2) - onehot(y)``::

        W2 := (1 - 2 lr reg) W2 - lr R.T @ G           b2 := b2 - lr G.sum(0)
        W1 := (1 - 2 lr reg) W1 - lr X.T @ dA1         b1 := b1 - lr dA1.sum(0)

    which is ``W -= lr * (grad + 2 reg W)``. The decay is applied lazily: during the
    epoch each weight matrix is held as ``W = s * V`` with one scalar ``s``, so a step
    multiplies ``s`` by ``1 - 2 lr reg`` and adds ``-(lr / s) * grad`` to ``V`` (a plain
    BLAS accumulate, ``beta = 1``), and the forward products take ``alpha = s``.
    ``W`` is written back as ``s * V`` at the end of the epoch, or sooner when ``s``
    falls below 1/2. So the weights are swept once per product, never to decay them.

    With ``momentum`` > 0 every parameter has a velocity (``velocities``, updated in
    place) and the step is scikit-learn's rule (``fastmlp.reference.sgd_update``);
    the weights are then held as they are (``s = 1``). With ``sample_weight`` row i's
    loss and gradient are multiplied by its weight (G's rows scaled). Every parameter
    change goes through ``update_matrix`` / ``update_vector``.

    The slices run on the workspace's thread team (see the module docstring); the
    caller keeps BLAS single-threaded meanwhile (``fastmlp._blas.BlasThreads``).

    Parameters
    ----------
    X : ndarray (N, D), C-contiguous; y : int (N,) in [0, C); order : int (M,) in [0, N)
        ``y`` and ``order`` are copied into the workspace before use.
    W1 (D, H), b1 (H,), W2 (H, C), b2 (C,) : ndarrays of X's dtype, updated in place
    workspace : Workspace
        Scratch of the same dtype and sizes.
    lr, reg : float
        ``2 * lr * reg`` must be < 1.
    main_thread : bool, default False
        The caller is Python's main thread: let signals (Ctrl-C) through between
        segments. On KeyboardInterrupt the weights are those after a complete step.
    sample_weight : ndarray (N,), optional
        Non-negative weight of each row of X (copied into the workspace's dtype).
    velocities : tuple (V1, Vb1, V2, Vb2) shaped like the weights, for momentum > 0
        Writeable C-contiguous arrays of the weights' dtype, updated in place (each
        hidden slice's part by the member that owns the slice).
    momentum : float in [0, 1), default 0
    nesterov : bool, default False

    Returns
    -------
    data_loss : float
        (Weighted) summed cross-entropy of every batch at the weights that batch saw.
    n_correct : int (float with sample_weight)
        Correct argmax predictions counted in the same forward passes (their weight).

    ``workspace.steps`` is then the number of steps taken: all the epoch's, unless
    Ctrl-C or interpreter exit stopped it.
    """
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], H = W1.shape[1], C = W2.shape[1]
    if W1.shape[0] != D or b1.shape[0] != H or W2.shape[0] != H or b2.shape[0] != C:
        raise ValueError("weights do not fit X: need W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)")
    if np.ndim(y) != 1 or len(y) != N:
        raise ValueError(f"y must have one label per row of X ({N}), got shape {np.shape(y)}")
    if np.ndim(order) != 1:
        raise ValueError(f"order must be 1-D, got shape {np.shape(order)}")
    workspace.check(D, H, C, np.asarray(W1).dtype)
    # Private copies, checked here: the nogil step indexes with them, bounds unchecked.
    labels, rows = workspace.private_indices(y, order)
    if rows.shape[0] and (rows.min() < 0 or rows.max() >= N):
        raise IndexError(f"order must index rows of X in [0, {N})")
    if N and (labels.min() < 0 or labels.max() >= C):
        raise ValueError(f"y must hold labels in [0, {C})")
    cdef double decay = 1.0 - 2.0 * lr * reg
    if not decay > 0:
        raise ValueError(f"2 * lr * reg must be < 1 (got {2 * lr * reg}): the L2 decay factor "
                         f"1 - 2 lr reg must stay positive")
    if not (lr > 0 and lr < float("inf")):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    dtype = np.asarray(W1).dtype

    cdef EpochArgs a
    a.update.lr = lr
    a.update.reg = reg
    a.update.decay = decay
    a.update.momentum = momentum
    a.update.nesterov = nesterov
    a.update.V1 = a.update.Vb1 = a.update.V2 = a.update.Vb2 = a.update.G1 = a.update.G2 = NULL
    cdef floating[:, ::1] V1, V2, G1, G2
    cdef floating[::1] Vb1, Vb2
    if momentum > 0:
        if velocities is None or len(velocities) != 4:
            raise ValueError("momentum > 0 needs velocities=(V1, Vb1, V2, Vb2) shaped like the weights")
        for v, param in zip(velocities, (W1, b1, W2, b2)):
            if not (isinstance(v, np.ndarray) and v.shape == np.shape(param) and v.dtype == dtype
                    and v.flags.c_contiguous and v.flags.writeable):
                raise ValueError("velocities must be writeable C-contiguous arrays shaped like "
                                 "(W1, b1, W2, b2), of their dtype")
        V1, Vb1, V2, Vb2 = velocities
        a.update.V1, a.update.Vb1, a.update.V2, a.update.Vb2 = &V1[0, 0], &Vb1[0], &V2[0, 0], &Vb2[0]
        if nesterov:
            workspace.momentum_buffers()
            G1, G2 = workspace.grad_W1, workspace.grad_W2
            a.update.G1, a.update.G2 = &G1[0, 0], &G2[0, 0]
    cdef const floating[::1] w_mv
    a.w = NULL
    if sample_weight is not None:
        w_mv = np.array(sample_weight, dtype=dtype, order="C", copy=True)   # private to the step
        if w_mv.shape[0] != N:
            raise ValueError(f"sample_weight must have one weight per row of X ({N}), got {w_mv.shape[0]}")
        if N:
            a.w = &w_mv[0]

    cdef const int64_t[::1] y_mv = labels
    cdef const int64_t[::1] order_mv = rows
    cdef floating[:, :, :] Xb = workspace.X_batch
    cdef int64_t[:, :] yb = workspace.y_batch
    cdef floating[:, :, :] R = workspace.hidden
    cdef floating[:, :, :] dR = workspace.d_hidden
    cdef floating[:, :, :, :] shares = workspace.logits
    cdef floating[:, :, :] G = workspace.grad
    cdef floating[::1] db1 = workspace.d_b1
    cdef floating[::1] db2 = workspace.d_b2
    cdef floating[:, :] wb = workspace.w_batch

    a.net = network(workspace, W1, b1, W2, b2)
    cdef floating[:, :, ::1] W1_blocks, V1_blocks
    cdef floating* V1_user = <floating*> a.update.V1
    if workspace.W1_blocks is not None:    # W1 (and V1) block-major meanwhile
        W1_blocks = workspace.W1_blocks
        a.net.W1 = &W1_blocks[0, 0, 0]
        a.net.W1_step = D * a.net.Hs
        a.net.ld1 = workspace.block_width
        if momentum > 0:
            workspace.momentum_buffers()
            V1_blocks = workspace.V1_blocks
            a.update.V1 = &V1_blocks[0, 0, 0]
    a.X = &X[0, 0] if N else NULL
    a.y = &y_mv[0] if N else NULL
    a.order = &order_mv[0] if order_mv.shape[0] else NULL
    a.M = order_mv.shape[0]
    a.B = workspace.batch_size
    a.n_batches = (a.M + a.B - 1) // a.B
    # Where fastmlp's kernels do every product that reads X (the forward and W1's update),
    # they read the batch's rows in place, through the private order: no copy.
    a.direct_rows = a.net.isa != 0 and (momentum == 0 or a.net.momentum_isa != 0) and (
        workspace.rows_in_place_bytes is None
        or N * D * <Py_ssize_t> sizeof(floating) <= workspace.rows_in_place_bytes)
    a.X_batch = &Xb[0, 0, 0]
    a.y_batch = &yb[0, 0]
    a.w_batch = &wb[0, 0]
    a.X_stride = Xb.strides[0] // sizeof(floating)
    a.y_stride = yb.strides[0] // sizeof(int64_t)
    a.w_stride = wb.strides[0] // sizeof(floating)
    a.hidden = &R[0, 0, 0]
    a.d_hidden = &dR[0, 0, 0]
    a.shares = &shares[0, 0, 0, 0]
    a.grad = &G[0, 0, 0]
    a.slice_stride = workspace.slice_stride
    a.share_stride = workspace.share_stride
    a.d_b1 = &db1[0]
    a.d_b2 = &db2[0]
    a.scale = 1
    a.loss = 0
    a.correct = 0
    a.team = workspace.ready_team()
    cdef team_task task = epoch_segment_f64 if floating is double else epoch_segment_f32
    cdef ThreadChoice* choice = &workspace.choice
    cdef int mode, signalled = 0, team_members = workspace.team_members()
    cdef Py_ssize_t sl
    cdef double started, timed
    cdef double[:, ::1] seg_log = workspace.segment_log
    cdef Py_ssize_t n_log = workspace.segments_logged

    a.W1_user = <void*> &W1[0, 0]
    a.V1_user = <void*> V1_user
    with nogil:
        fastmlp_running_add(1)
        a.first = 0
        while a.first < a.n_batches and not fastmlp_is_stopping():
            mode = choose_mode(choice)
            a.last = min(a.n_batches, a.first + choice.segment_steps)
            started = team_clock()
            team_run(a.team, team_members if mode else 1, task, &a)
            timed = team_clock()
            if seg_log is not None and n_log < seg_log.shape[0]:
                seg_log[n_log, 0] = team_members if mode else 1
                seg_log[n_log, 1] = a.last - a.first
                seg_log[n_log, 2] = timed - started
                seg_log[n_log, 3] = started
                n_log += 1
            if mode == choice.mode or a.last - a.first < 2:
                record_segment(choice, mode, timed - started, a.last - a.first)
            else:   # a probe, timed without its first step: that one moves the slices'
                    # weights between the cores' caches, a cost paid once per switch
                record_segment(choice, mode, timed - a.first_step_done, a.last - a.first - 1)
            a.first = a.last
            if main_thread and a.first < a.n_batches:
                with gil:
                    signalled = check_signals()
                if signalled:
                    break
        if 0 < a.first < a.n_batches:     # stopped before the last segment: fold here
            for sl in range(a.net.S):
                fold_slice(&a.net, &W1[0, 0], V1_user, &a.update, sl, a.scale)
        fastmlp_running_add(-1)
    workspace.steps = a.first
    workspace.segments_logged = n_log
    if signalled:
        raise_pending()
    if sample_weight is None:
        return a.loss, int(a.correct)
    return a.loss, a.correct


# ------------------------------------------------------------------ forward only

cdef struct ForwardArgs:
    Network net
    team* team
    const void* X
    Py_ssize_t N, B
    void* hidden                      # (S, B, Hs), slices slice_stride apart
    void* shares                      # (2, S, B, C), shares share_stride apart
    Py_ssize_t slice_stride, share_stride
    void* out


cdef inline void forward_blocks(ForwardArgs* a, int member, int n_members,
                                floating* tag) noexcept nogil:
    """out := relu(X W1 + b1) W2 + b2 in blocks of B rows, slices as in the step."""
    cdef Network* net = &a.net
    cdef Py_ssize_t D = net.D, C = net.C, S = net.S, B = a.B
    cdef Py_ssize_t n_blocks = (a.N + B - 1) // B, block, start, nb, p, sl
    cdef floating* shares = <floating*> a.shares
    for block in range(n_blocks):
        start = block * B
        nb = min(B, a.N - start)
        p = block % 2
        sl = member
        while sl < S:
            slice_forward(net, <const floating*> a.X + start * D, NULL, nb, sl, 1,
                          <floating*> a.hidden + sl * a.slice_stride, shares + (p * S + sl) * a.share_stride)
            sl += n_members
        # As in the step: shares double-buffered by parity, one barrier per block.
        team_barrier(a.team, n_members)
        if member == 0:
            sum_shares(shares + p * S * a.share_stride, S, a.share_stride, nb * C,
                       <floating*> a.out + start * C)


cdef void forward_blocks_f64(void* args, int member, int n_members) noexcept nogil:
    forward_blocks(<ForwardArgs*> args, member, n_members, <double*> NULL)


cdef void forward_blocks_f32(void* args, int member, int n_members) noexcept nogil:
    forward_blocks(<ForwardArgs*> args, member, n_members, <float*> NULL)


def forward_logits(const floating[:, ::1] X, const floating[:, ::1] W1, const floating[::1] b1,
                   const floating[:, ::1] W2, const floating[::1] b2, Workspace workspace,
                   floating[:, ::1] out):
    """out := relu(X @ W1 + b1) @ W2 + b2, on the workspace's threads and hidden slices.

    The forward half of the training step, over consecutive blocks of
    ``workspace.batch_size`` rows of X (no gather: the rows are contiguous). It
    evaluates the test set during a fit without waking BLAS's own threads, with
    the thread count the workspace's choice currently prefers. The weights are
    only read.

    Parameters
    ----------
    X : ndarray (N, D); W1 (D, H), b1 (H,), W2 (H, C), b2 (C,) : ndarrays of one dtype
    workspace : Workspace
        Of these sizes and dtype.
    out : ndarray (N, C), written.

    Returns
    -------
    out
    """
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], H = W1.shape[1], C = W2.shape[1]
    if (W1.shape[0] != D or b1.shape[0] != H or W2.shape[0] != H or b2.shape[0] != C
            or out.shape[0] != N or out.shape[1] != C):
        raise ValueError("shapes do not fit: need X (N, D), W1 (D, H), b1 (H,), W2 (H, C), b2 (C,), out (N, C)")
    workspace.check(D, H, C, np.asarray(W1).dtype)
    if N == 0:
        return np.asarray(out)
    cdef floating[:, :, :] R = workspace.hidden
    cdef floating[:, :, :, :] shares = workspace.logits
    cdef ForwardArgs a
    a.net = network(workspace, W1, b1, W2, b2)
    a.team = workspace.ready_team()
    a.X = &X[0, 0]
    a.N = N
    a.B = workspace.batch_size
    a.hidden = &R[0, 0, 0]
    a.shares = &shares[0, 0, 0, 0]
    a.slice_stride = workspace.slice_stride
    a.share_stride = workspace.share_stride
    a.out = &out[0, 0]
    cdef team_task task = forward_blocks_f64 if floating is double else forward_blocks_f32
    cdef int members = workspace.team_members() if workspace.choice.mode else 1
    with nogil:
        team_run(a.team, members, task, &a)
    return np.asarray(out)
