// Writes words [first_word, first_word + count) of one Philox4x32-10 stream.
// One thread per block of four words; the ragged first and last blocks are clipped.
#include "philox.cuh"

extern "C" __global__ void forge_philox4x32(unsigned long long seed, unsigned int stream,
                                            unsigned long long first_word, long long count,
                                            unsigned int* out) {
    long long first_block = (long long)(first_word >> 2);
    long long blocks = (long long)((first_word + (unsigned long long)count + 3ull) >> 2) - first_block;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < blocks;
         t += (long long)gridDim.x * blockDim.x) {
        unsigned long long block = (unsigned long long)(first_block + t);
        forge_block4 words = forge_philox4x32_10(block, stream, seed);
#pragma unroll
        for (int lane = 0; lane < 4; ++lane) {
            long long index = (long long)(block * 4ull + lane) - (long long)first_word;
            if (index >= 0 && index < count) out[index] = words.v[lane];
        }
    }
}
