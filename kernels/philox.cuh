// Philox4x32-10 (Random123, Salmon et al., SC11), bit-identical to forge_pipeline/execute/philox.py.
// Word e of stream s under seed S is lane (e mod 4) of the block with counter
// (b mod 2^32, b >> 32, s, 0), b = e div 4, key (S mod 2^32, S >> 32).
// Integer arithmetic only: nothing here depends on FMA contraction or rounding.
#pragma once

struct forge_block4 { unsigned int v[4]; };

__device__ __forceinline__ forge_block4 forge_philox4x32_10(unsigned long long block,
                                                           unsigned int stream,
                                                           unsigned long long seed) {
    unsigned int c0 = (unsigned int)(block & 0xFFFFFFFFull);
    unsigned int c1 = (unsigned int)(block >> 32);
    unsigned int c2 = stream;
    unsigned int c3 = 0u;
    unsigned int k0 = (unsigned int)(seed & 0xFFFFFFFFull);
    unsigned int k1 = (unsigned int)(seed >> 32);
#pragma unroll
    for (int round_index = 0; round_index < 10; ++round_index) {
        if (round_index) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        unsigned int hi0 = __umulhi(0xD2511F53u, c0);
        unsigned int lo0 = 0xD2511F53u * c0;
        unsigned int hi1 = __umulhi(0xCD9E8D57u, c2);
        unsigned int lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    forge_block4 out;
    out.v[0] = c0; out.v[1] = c1; out.v[2] = c2; out.v[3] = c3;
    return out;
}
