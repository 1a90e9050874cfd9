// media_transformation/image_filter@1 and @2: one thread per output pixel.
// Output pixel (y, x) of an image averages the four blurred pixels (2y + i, 2x + j), i, j in {0, 1}:
// out = (b00 + b01 + b10 + b11 + 2) >> 2. Blurred pixel (r, c) is the 3x3 kernel
// [1,2,1;2,4,2;1,2,1] over input rows r-1..r+1 and columns c-1..c+1, indices clamped to the image
// (replicated edges), rounded half up: (sum + 8) >> 4. The odd trailing row and column of the blurred
// image are never read, so they are dropped. Unsigned integers only: the largest sum is 16 * 255 + 8.
// @2 (forge_image_filter_single_rounding) rounds once: out = (s00 + s01 + s10 + s11 + 32) >> 6 of the
// four unrounded blur sums (at most 4 * 4080 + 32).
// The NumPy mirror (filter_numpy in image_filter.py) computes the same sums in separable form.

__device__ __forceinline__ long long forge_clamp_index(long long index, long long length) {
    return index < 0 ? 0 : (index >= length ? length - 1 : index);
}

template <bool SingleRounding>
__device__ void forge_image_filter_body(const unsigned char* images, long long count, long long height,
                                        long long width, unsigned char* out) {
    const long long out_height = height / 2;
    const long long out_width = width / 2;
    const long long per_image = out_height * out_width;
    const long long total = count * per_image;
    const unsigned int weight[3] = {1u, 2u, 1u};
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        const long long image = t / per_image;
        const long long within = t - image * per_image;
        const long long y = within / out_width;
        const long long x = within - y * out_width;
        const unsigned char* source = images + image * height * width;
        // The 4x4 input patch rows 2y-1..2y+2, columns 2x-1..2x+2, clamped to the image.
        unsigned int patch[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const long long row = forge_clamp_index(2 * y - 1 + i, height);
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                patch[i][j] = source[row * width + forge_clamp_index(2 * x - 1 + j, width)];
            }
        }
        unsigned int block_sum = 0u;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                unsigned int sum = 0u;
#pragma unroll
                for (int a = 0; a < 3; ++a) {
#pragma unroll
                    for (int b = 0; b < 3; ++b) sum += weight[a] * weight[b] * patch[i + a][j + b];
                }
                block_sum += SingleRounding ? sum : (sum + 8u) >> 4;
            }
        }
        out[t] = (unsigned char)(SingleRounding ? (block_sum + 32u) >> 6 : (block_sum + 2u) >> 2);
    }
}

extern "C" __global__ void forge_image_filter(const unsigned char* images, long long count, long long height,
                                              long long width, unsigned char* out) {
    forge_image_filter_body<false>(images, count, height, width, out);
}

extern "C" __global__ void forge_image_filter_single_rounding(const unsigned char* images, long long count,
                                                              long long height, long long width,
                                                              unsigned char* out) {
    forge_image_filter_body<true>(images, count, height, width, out);
}
