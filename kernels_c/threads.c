/* The thread-count setting: the one piece of global mutable state of the kernels.
 * Kernel layer (kernels_c); every OpenMP region passes nd_get_num_threads() (or less) as num_threads. */
#include <omp.h>

#include "nd_kernels.h"

/* 0 = not chosen yet: use OpenMP's default (OMP_NUM_THREADS, else all cores). */
static int nd_num_threads = 0;

int nd_set_num_threads(int n)
{
    if (n < 1) return ND_ERR_ARG;
    nd_num_threads = n;
    return ND_OK;
}

int nd_get_num_threads(void)
{
    if (nd_num_threads < 1) nd_num_threads = omp_get_max_threads();
    return nd_num_threads;
}

/* How many threads a loop over `work` units deserves: each thread gets at least
 * `min_work_per_thread` units, because waking a thread costs a few microseconds. */
int nd_threads_for(int64_t work, int64_t min_work_per_thread)
{
    int threads = nd_get_num_threads();
    int64_t useful = min_work_per_thread > 0 ? work / min_work_per_thread : work;
    if (useful < 1) return 1;
    return useful < threads ? (int)useful : threads;
}

/* Inside a parallel region: this thread's share [*begin, *end) of `rows` (the team may be smaller
 * than asked for; outside a region, all of them), and its thread number. */
int nd_thread_rows(int64_t rows, int64_t *begin, int64_t *end)
{
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    *begin = rows * t / team;
    *end = rows * (t + 1) / team;
    return t;
}
