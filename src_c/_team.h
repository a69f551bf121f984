/* fastmlp's thread team: a few POSIX threads that run one task together.
 *
 * Why not OpenMP: GNU OpenMP's pool is not fork-safe (a child that forks after
 * a parallel region hangs in its next one), its idle and barrier waits spin for
 * a long time (on a busy machine a spinning thread holds the core that the
 * thread it waits for needs), and Cython's parallel blocks take Python's thread
 * state on entry and exit, which crashes during interpreter shutdown. This team
 * never touches Python, waits by spinning (briefly when another thread may need
 * the core, see team_run) and then sleeping, and starts afresh in a forked child.
 *
 *   team_new()                          an empty team (threads start on first use)
 *   team_run(team, n, task, args)       run task(args, m, n) for m = 0 .. n-1, member 0
 *                                       on the calling thread; returns when all are done
 *   team_barrier(team, n)               inside a task: wait until all n members arrive
 *   team_free(team)                     stop and join the threads
 *
 * One team runs one task at a time (one per fit). Building with
 * FASTMLP_NO_THREADS, or where there are no POSIX threads (Windows), gives a
 * serial team with the same interface: team_run runs the members one after the
 * other on the calling thread, which is only correct for n = 1; the callers
 * (src_c/_sgd.pyx) ask for more members only when team_threads_available(). */
#ifndef FASTMLP_TEAM_H
#define FASTMLP_TEAM_H

#include <stdlib.h>
#include <time.h>

typedef void (*team_task)(void *args, int member, int n_members);

#if !defined(FASTMLP_NO_THREADS) && !defined(_WIN32)
#define FASTMLP_TEAM_THREADS 1
#else
#define FASTMLP_TEAM_THREADS 0
#endif

/* Seconds on a monotonic clock. */
static double team_clock(void) {
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

#if FASTMLP_TEAM_THREADS
#include <pthread.h>
#include <stdio.h>

/* How long (µs) a waiting thread spins before it sleeps, when threads other than the
 * team's are ready to run: long enough to cover the imbalance between members
 * within a step on an idle machine (a few microseconds), short enough that on a
 * busy machine a waiting thread soon gives its core to the thread it waits for. */
#define TEAM_SPIN_US 30
/* ... and when no other thread is ready to run (see team_run): long enough to cover
 * a member that the hypervisor has paused for a time slice of its own
 * (milliseconds), and the gap between two segments of an epoch, or two epochs. */
#define TEAM_LONG_SPIN_US 3000

static inline void team_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/* An event counter: threads wait for `value` to move past what they last saw.
 * Waiters spin for `spin_us` microseconds, then sleep on the condition variable;
 * ec_advance wakes sleepers only when there are any. Sequentially consistent
 * atomics make "advance, then read sleepers" and "count myself a sleeper, then
 * re-read value" see each other, so no wake-up is lost. */
typedef struct {
    unsigned value;
    int sleepers;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} team_event;

static void ec_init(team_event *ec) {
    ec->value = 0;
    ec->sleepers = 0;
    pthread_mutex_init(&ec->lock, NULL);
    pthread_cond_init(&ec->cond, NULL);
}

static void ec_destroy(team_event *ec) {
    pthread_mutex_destroy(&ec->lock);
    pthread_cond_destroy(&ec->cond);
}

static inline unsigned ec_read(team_event *ec) {
    return __atomic_load_n(&ec->value, __ATOMIC_SEQ_CST);
}

/* Wait until ec->value != seen; returns the new value. */
static unsigned ec_wait(team_event *ec, unsigned seen, int spin_us) {
    unsigned now;
    int spins = 0;
    double deadline = 0;
    while ((now = ec_read(ec)) == seen) {
        team_cpu_relax();
        if (++spins % 64 == 0) {
            double t = team_clock();
            if (deadline == 0)
                deadline = t + 1e-6 * spin_us;
            else if (t > deadline)
                break;
        }
    }
    if (now != seen)
        return now;
    pthread_mutex_lock(&ec->lock);
    __atomic_add_fetch(&ec->sleepers, 1, __ATOMIC_SEQ_CST);
    while ((now = ec_read(ec)) == seen)
        pthread_cond_wait(&ec->cond, &ec->lock);
    __atomic_sub_fetch(&ec->sleepers, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&ec->lock);
    return now;
}

static void ec_advance(team_event *ec) {
    __atomic_add_fetch(&ec->value, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&ec->sleepers, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&ec->lock);
        pthread_cond_broadcast(&ec->cond);
        pthread_mutex_unlock(&ec->lock);
    }
}

/* Incremented in every forked child (pthread_atfork): a team made before the
 * fork has no threads in the child, and its locks may be in any state, so the
 * child leaves it alone and makes a new one. */
static unsigned team_fork_generation = 0;
static void team_after_fork_in_child(void) { team_fork_generation++; }
static pthread_once_t team_atfork_once = PTHREAD_ONCE_INIT;
static void team_register_atfork(void) { pthread_atfork(NULL, NULL, team_after_fork_in_child); }

typedef struct team team;

/* Members a team can have; more are never useful for a step of this size. */
#define TEAM_MAX_MEMBERS 256

typedef struct {
    team *owner;
    int member;
    unsigned start_seen;         /* the `start` value when this worker began */
} team_worker_arg;

struct team {
    int n_workers;               /* threads started: members 1 .. n_workers */
    unsigned fork_generation;    /* team_fork_generation when the team was made */
    team_event start;            /* advanced once per team_run and once to stop */
    team_event done;             /* advanced by the last worker to finish a task */
    team_event barrier;          /* advanced by the last member to reach a barrier */
    int arrived;                 /* members at the current barrier */
    int running;                 /* workers still inside the current task */
    int stopping;
    team_task task;              /* the current task, set before `start` advances */
    void *args;
    int n_members;
    int spin_us;                 /* microseconds a waiting member spins before it sleeps */
    pthread_t threads[TEAM_MAX_MEMBERS - 1];
    team_worker_arg worker_args[TEAM_MAX_MEMBERS - 1];
};

static void *team_worker_main(void *p) {
    team_worker_arg *arg = (team_worker_arg *)p;
    team *t = arg->owner;
    unsigned seen = arg->start_seen;
    for (;;) {
        seen = ec_wait(&t->start, seen, __atomic_load_n(&t->spin_us, __ATOMIC_RELAXED));
        if (__atomic_load_n(&t->stopping, __ATOMIC_SEQ_CST))
            return NULL;
        if (arg->member < t->n_members) {
            t->task(t->args, arg->member, t->n_members);
            if (__atomic_sub_fetch(&t->running, 1, __ATOMIC_SEQ_CST) == 0)
                ec_advance(&t->done);
        }
    }
}

static team *team_new(void) {
    team *t = (team *)calloc(1, sizeof(team));
    if (t == NULL)
        return NULL;
    pthread_once(&team_atfork_once, team_register_atfork);
    ec_init(&t->start);
    ec_init(&t->done);
    ec_init(&t->barrier);
    t->spin_us = TEAM_SPIN_US;
    t->fork_generation = team_fork_generation;
    return t;
}

/* Start threads until the team has n_members - 1 workers (no task is running).
 * Returns the members the team can run: fewer when the OS refuses a thread. */
static int team_grow(team *t, int n_members) {
    if (n_members > TEAM_MAX_MEMBERS)
        n_members = TEAM_MAX_MEMBERS;
    while (t->n_workers < n_members - 1) {
        team_worker_arg *arg = &t->worker_args[t->n_workers];
        arg->owner = t;
        arg->member = t->n_workers + 1;
        arg->start_seen = ec_read(&t->start);
        if (pthread_create(&t->threads[t->n_workers], NULL, team_worker_main, arg) != 0)
            return t->n_workers + 1;
        t->n_workers++;
    }
    return n_members;
}

/* Threads ready to run on the machine now, fastmlp's included (Linux's
 * /proc/loadavg), or -1 where that is unknown. */
static int team_runnable_threads(void) {
    int runnable = -1;
    FILE *f = fopen("/proc/loadavg", "r");   /* "0.70 1.08 1.25 1/78 5109" */
    if (f == NULL)
        return -1;
    if (fscanf(f, "%*f %*f %*f %d/", &runnable) != 1)
        runnable = -1;
    fclose(f);
    return runnable;
}

/* How long (µs) the team's waits spin before they sleep, for a run starting now: long
 * when no thread but the team's own (own_threads of them awake) is ready to run,
 * else short.
 *
 * Why: a sleeping thread frees its core for other threads, which a busy machine
 * needs; on an idle one nothing else wants the core, and sleeping only costs the
 * wake-up. In a virtual machine that cost can be large: a sleeping thread leaves its
 * virtual CPU with nothing to run, the CPU halts, and the hypervisor may give the
 * physical core to another guest; waking it then takes as long as the host takes to
 * give it back (it shows as "steal" time in the guest). Measured on a 2-vCPU VM at
 * the seed's shape, epochs taking turns, paired medians of 12 rounds over one
 * thread's time: with 6-15% steal and nothing else running in the guest, always
 * the team 0.62-0.82 with the long spin, 0.71-1.20 with the short one; default
 * threads 0.75-0.86 against 0.94-1.01; with no steal all alike (0.55-0.57). Under 5
 * loads of competing processes the default's geometric mean was 0.995 with this
 * rule and 0.974 with the short spin always: within the noise of those runs. */
static int team_wait_spin_us(int own_threads) {
    int runnable = team_runnable_threads();
    if (runnable < 0)
        return TEAM_SPIN_US;
    return runnable <= own_threads ? TEAM_LONG_SPIN_US : TEAM_SPIN_US;
}

/* Run task(args, m, n_members) on members m = 0 .. n_members - 1 and wait for
 * all of them; the calling thread is member 0. Returns the members that ran
 * (n_members, or 1 when no thread could be started). */
static int team_run(team *t, int n_members, team_task task, void *args) {
    if (n_members > 1)
        n_members = team_grow(t, n_members);   /* before any task: workers start idle */
    if (n_members <= 1) {
        task(args, 0, 1);
        return 1;
    }
    /* the caller and the workers not asleep */
    int awake = 1 + t->n_workers - __atomic_load_n(&t->start.sleepers, __ATOMIC_SEQ_CST);
    __atomic_store_n(&t->spin_us, team_wait_spin_us(awake), __ATOMIC_RELAXED);
    t->task = task;
    t->args = args;
    t->n_members = n_members;
    t->arrived = 0;
    __atomic_store_n(&t->running, n_members - 1, __ATOMIC_SEQ_CST);
    unsigned done_seen = ec_read(&t->done);
    ec_advance(&t->start);
    task(args, 0, n_members);
    while (__atomic_load_n(&t->running, __ATOMIC_SEQ_CST) != 0)
        done_seen = ec_wait(&t->done, done_seen, t->spin_us);
    return n_members;
}

/* Inside a task: wait until all n_members members have arrived. */
static void team_barrier(team *t, int n_members) {
    if (n_members <= 1)
        return;
    unsigned generation = ec_read(&t->barrier);
    if (__atomic_add_fetch(&t->arrived, 1, __ATOMIC_SEQ_CST) == n_members) {
        __atomic_store_n(&t->arrived, 0, __ATOMIC_SEQ_CST);
        ec_advance(&t->barrier);
    } else {
        ec_wait(&t->barrier, generation, t->spin_us);
    }
}

/* Whether this team's threads exist in this process (false in a forked child). */
static int team_usable(team *t) {
    return t->fork_generation == team_fork_generation;
}

static void team_free(team *t) {
    if (t == NULL)
        return;
    if (!team_usable(t))
        return;   /* made before a fork: no threads here, locks in any state; leave it */
    if (t->n_workers > 0) {
        __atomic_store_n(&t->stopping, 1, __ATOMIC_SEQ_CST);
        ec_advance(&t->start);
        for (int k = 0; k < t->n_workers; k++)
            pthread_join(t->threads[k], NULL);
    }
    ec_destroy(&t->start);
    ec_destroy(&t->done);
    ec_destroy(&t->barrier);
    free(t);
}

static int team_threads_available(void) { return 1; }

#else  /* a serial team: every task runs on the calling thread, alone */

typedef struct team { int unused; } team;

static team *team_new(void) { return (team *)calloc(1, sizeof(team)); }
static int team_run(team *t, int n_members, team_task task, void *args) {
    (void)t;
    (void)n_members;
    task(args, 0, 1);
    return 1;
}
static int team_grow(team *t, int n_members) { (void)t; (void)n_members; return 1; }
static void team_barrier(team *t, int n_members) { (void)t; (void)n_members; }
static int team_usable(team *t) { (void)t; return 1; }
static void team_free(team *t) { free(t); }
static int team_threads_available(void) { return 0; }
static int team_wait_spin_us(int own_threads) { (void)own_threads; return 0; }

#endif
#endif
