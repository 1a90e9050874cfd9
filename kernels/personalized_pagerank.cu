// graph_propagation/personalized_pagerank@1: the pull step of one fixed-point iteration.
// next[b][v] = sum of share[b][u] over the in-edges u -> v (in-edge CSR: in_offsets, in_sources),
// where share[b][u] = floor(floor(rank[b][u] * numerator / denominator) / out_degree[u]) was
// computed by integer CuPy ops, as in the NumPy mirror. Integer sums only (every row sums to at
// most 2^32), so neither the edge order nor the thread schedule can change a bit. The teleport
// (all unpushed mass back to the source) and the top-k ranking follow as integer CuPy ops.

extern "C" __global__ void forge_personalized_pagerank_pull(const long long* share,
                                                            const long long* in_offsets,
                                                            const long long* in_sources,
                                                            long long nodes,
                                                            long long cells,
                                                            long long* next) {
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < cells;
         t += (long long)gridDim.x * blockDim.x) {
        const long long row = t / nodes;
        const long long node = t - row * nodes;
        const long long* row_share = share + row * nodes;
        long long sum = 0;
        for (long long edge = in_offsets[node]; edge < in_offsets[node + 1]; ++edge) sum += row_share[in_sources[edge]];
        next[t] = sum;
    }
}
