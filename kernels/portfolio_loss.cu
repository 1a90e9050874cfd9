// probabilistic_simulation/portfolio_loss@1 and @2: one thread per scenario.
// Scenario j's loss is the sum of exposure_k over obligors k whose word e = j*K + k of
// stream 0 is below threshold_k: uint32 thresholds for @1 (at most 2^32 - 1), uint64 for
// @2 (up to 2^32, so pd 1 always defaults). Integer sums only, so the order of additions
// cannot change a bit; the histogram, sums and tail are reduced afterwards by integer CuPy ops.
#include "philox.cuh"

template <typename Threshold>
__device__ void forge_portfolio_loss_body(unsigned long long seed, const Threshold* thresholds,
                                          const long long* exposures, long long obligors,
                                          long long first_scenario, long long scenarios, long long* losses) {
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < scenarios;
         t += (long long)gridDim.x * blockDim.x) {
        unsigned long long word = (unsigned long long)(first_scenario + t) * (unsigned long long)obligors;
        unsigned long long block = word >> 2;
        forge_block4 words = forge_philox4x32_10(block, 0u, seed);
        long long loss = 0;
        for (long long k = 0; k < obligors; ++k, ++word) {
            if ((word >> 2) != block) {
                block = word >> 2;
                words = forge_philox4x32_10(block, 0u, seed);
            }
            if ((unsigned long long)words.v[word & 3ull] < (unsigned long long)thresholds[k]) loss += exposures[k];
        }
        losses[t] = loss;
    }
}

extern "C" __global__ void forge_portfolio_loss(unsigned long long seed, const unsigned int* thresholds,
                                                const long long* exposures, long long obligors,
                                                long long first_scenario, long long scenarios, long long* losses) {
    forge_portfolio_loss_body(seed, thresholds, exposures, obligors, first_scenario, scenarios, losses);
}

extern "C" __global__ void forge_portfolio_loss_wide(unsigned long long seed, const unsigned long long* thresholds,
                                                     const long long* exposures, long long obligors,
                                                     long long first_scenario, long long scenarios,
                                                     long long* losses) {
    forge_portfolio_loss_body(seed, thresholds, exposures, obligors, first_scenario, scenarios, losses);
}
