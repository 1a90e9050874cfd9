// aggregation/grouped_sum@1: sums[index[i]] += values[i] for every row i, one thread per row.
// The add is a 64-bit atomicAdd on the two's complement bits: addition modulo 2^64 is associative
// and commutative, so the result does not depend on the thread schedule, and validation
// (rows x max|value| <= 2^63 - 1) guarantees every partial and final sum is the exact int64.
// The NumPy mirror is numpy.add.at in grouped_sum.py (scatter_add).

extern "C" __global__ void forge_grouped_sum_scatter(const long long* index,
                                                     const long long* values,
                                                     long long rows,
                                                     long long* sums) {
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < rows;
         t += (long long)gridDim.x * blockDim.x) {
        atomicAdd((unsigned long long*)(sums + index[t]), (unsigned long long)values[t]);
    }
}
