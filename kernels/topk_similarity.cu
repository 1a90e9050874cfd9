// search_ranking/topk_similarity@1: int8 embeddings and their int32 dot products.
// Integer arithmetic only. Every partial sum of a dot product is bounded by
// dimension * 128 * 128 <= 131071 * 16384 < 2^31, so int accumulation never overflows
// and the order of additions cannot change a bit. Ranking (top-k, ties by document id)
// is done afterwards on int64 keys by CuPy sort/partition, exactly as the NumPy mirror.
#include "philox.cuh"

#define FORGE_TILE 16        // threads per block edge; TILE in topk_similarity.py
#define FORGE_TILE_DEPTH 32  // components staged in shared memory per step

// Component t of the output is word (first_word + t) of `stream`, mapped to (word >> 24) - 128.
extern "C" __global__ void forge_int8_embeddings(unsigned long long seed, unsigned int stream,
                                                 long long first_word, long long count,
                                                 signed char* out) {
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < count;
         t += (long long)gridDim.x * blockDim.x) {
        unsigned long long word = (unsigned long long)(first_word + t);
        forge_block4 words = forge_philox4x32_10(word >> 2, stream, seed);
        out[t] = (signed char)((int)(words.v[word & 3ull] >> 24) - 128);
    }
}

// scores[q * documents + i] = sum_c queries[q][c] * corpus[i][c], for row-major int8 inputs.
// Launch with block (FORGE_TILE, FORGE_TILE) and grid (ceil(documents / FORGE_TILE),
// ceil(queries / FORGE_TILE)). Out-of-range components are staged as 0, which adds nothing.
extern "C" __global__ void forge_topk_similarity_scores(const signed char* queries,
                                                        const signed char* corpus,
                                                        long long query_count,
                                                        long long document_count,
                                                        long long dimension,
                                                        int* scores) {
    // +1 column: the row stride of 33 ints puts corpus_tile[tx][c] in distinct banks across a warp.
    __shared__ int query_tile[FORGE_TILE][FORGE_TILE_DEPTH + 1];
    __shared__ int corpus_tile[FORGE_TILE][FORGE_TILE_DEPTH + 1];
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const long long query = (long long)blockIdx.y * FORGE_TILE + ty;
    const long long document = (long long)blockIdx.x * FORGE_TILE + tx;
    const long long staged_document = (long long)blockIdx.x * FORGE_TILE + ty;  // the row this thread stages
    int sum = 0;
    for (long long base = 0; base < dimension; base += FORGE_TILE_DEPTH) {
        for (int c = tx; c < FORGE_TILE_DEPTH; c += FORGE_TILE) {
            const long long component = base + c;
            const bool inside = component < dimension;
            query_tile[ty][c] = (inside && query < query_count) ? (int)queries[query * dimension + component] : 0;
            corpus_tile[ty][c] =
                (inside && staged_document < document_count) ? (int)corpus[staged_document * dimension + component] : 0;
        }
        __syncthreads();
#pragma unroll
        for (int c = 0; c < FORGE_TILE_DEPTH; ++c) sum += query_tile[ty][c] * corpus_tile[tx][c];
        __syncthreads();
    }
    if (query < query_count && document < document_count) scores[query * document_count + document] = sum;
}
