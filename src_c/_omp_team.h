/* OpenMP team helpers callable from Cython (`cdef extern`), and their serial
 * stand-ins for a build without OpenMP.
 *
 * team_barrier(): an orphaned `omp barrier`, which binds to the team of the
 * parallel region it runs in. team_size(): that team's thread count.
 * team_limit(): the threads a new team may have (OMP_NUM_THREADS, or a limit set
 * with threadpoolctl). */
#ifndef FASTMLP_OMP_BARRIER_H
#define FASTMLP_OMP_BARRIER_H
#ifdef _OPENMP
#include <omp.h>
static inline void team_barrier(void) {
#pragma omp barrier
}
static inline int team_size(void) { return omp_get_num_threads(); }
static inline int openmp_enabled(void) { return 1; }
static inline int team_limit(void) { return omp_get_max_threads(); }
#else
static inline void team_barrier(void) {}
static inline int team_size(void) { return 1; }
static inline int openmp_enabled(void) { return 0; }
static inline int team_limit(void) { return 1; }
#endif
#endif
