/* Memory kernels: fill. Kernel layer (kernels_c); ABI in nd_kernels.h. */
#include "nd_kernels.h"

#define ND_PARALLEL_GRAIN 65536

int nd_fill_f32(float *out, float value, int64_t size)
{
    if (size < 0) return ND_ERR_SIZE;
    if (size > 0 && !out) return ND_ERR_NULL;
    int threads = nd_threads_for(size, ND_PARALLEL_GRAIN);
    if (threads > 1) {
#pragma omp parallel for simd num_threads(threads)
        for (int64_t i = 0; i < size; i++) out[i] = value;
    } else {
#pragma omp simd
        for (int64_t i = 0; i < size; i++) out[i] = value;
    }
    return ND_OK;
}
