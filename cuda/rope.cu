// Interleaved rotary position embedding, forward and inverse (reference: voxkit/ops/rope.py).
//
// Pair (2i, 2i+1) of every head is rotated by angle i of its position:
//   forward:  (x0 c - x1 s, x0 s + x1 c)
//   inverse:  (x0 c + x1 s, -x0 s + x1 c)    the rotation by minus the angle, which is the
//                                             backward: dx = inverse rotation of dy
// in fp32, rounded once to the tensor's dtype.
//
// x and out carry their own batch, head and position strides, so q and k may be rotated straight
// out of a fused projection buffer or a [B, T, H, hd] layout viewed as [B, H, T, hd], without a
// copy. In place (out == x) is safe: each thread reads its pairs before writing them, and no two
// threads touch the same pair.
#include <cstdint>

#include "common.cuh"

namespace voxkit {
namespace {

// One item = E consecutive elements of one head row (E / 2 pairs): a 16-byte pack, or a single
// pair on the scalar path. The flat 64-bit index runs over (b, h, t, item), item fastest, so
// consecutive threads read consecutive memory within a head row.
template <typename T, int E>
__global__ void __launch_bounds__(kFlatThreads)
rope_kernel(int64_t items, int64_t heads, int64_t seq, int64_t head_dim,
            const T* x, int64_t x_stride_b, int64_t x_stride_h, int64_t x_stride_t,
            T* out, int64_t out_stride_b, int64_t out_stride_h, int64_t out_stride_t,
            const float* __restrict__ cos, const float* __restrict__ sin, bool shared_angles, bool inverse) {
    static_assert(E % 2 == 0, "an item holds whole pairs");
    constexpr int kPairs = E / 2;
    const int64_t per_row = head_dim / E;
    const int64_t half = head_dim / 2;
    // Rotating by minus the angle only flips the sign of sin (exact in floating point).
    const float sign = inverse ? -1.0f : 1.0f;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < items; i += stride) {
        const int64_t item = i % per_row;
        int64_t rest = i / per_row;
        const int64_t t = rest % seq;
        rest /= seq;
        const int64_t h = rest % heads;
        const int64_t b = rest / heads;

        const T* src = x + b * x_stride_b + h * x_stride_h + t * x_stride_t + item * E;
        T* dst = out + b * out_stride_b + h * out_stride_h + t * out_stride_t + item * E;
        const int64_t angle = ((shared_angles ? 0 : b) * seq + t) * half + item * kPairs;

        const Pack<T, E> v = load_pack<T, E>(src);
        const Pack<float, kPairs> c = load_pack<float, kPairs>(cos + angle);
        const Pack<float, kPairs> s = load_pack<float, kPairs>(sin + angle);
        Pack<T, E> o;
#pragma unroll
        for (int q = 0; q < kPairs; ++q) {
            const float x0 = to_float(v.v[2 * q]);
            const float x1 = to_float(v.v[2 * q + 1]);
            const float cq = c.v[q];
            const float sq = sign * s.v[q];
            // Each product rounded on its own, as the reference's separate tensor ops do
            // (no fused multiply-add), so the fp32 results agree with it bit for bit.
            o.v[2 * q] = from_float<T>(__fsub_rn(__fmul_rn(x0, cq), __fmul_rn(x1, sq)));
            o.v[2 * q + 1] = from_float<T>(__fadd_rn(__fmul_rn(x0, sq), __fmul_rn(x1, cq)));
        }
        store_pack<T, E>(dst, o);
    }
}

}  // namespace

cudaError_t launch_rope(DType dtype, int64_t batch, int64_t heads, int64_t seq, int64_t head_dim,
                        const void* x, int64_t x_stride_b, int64_t x_stride_h, int64_t x_stride_t,
                        void* out, int64_t out_stride_b, int64_t out_stride_h, int64_t out_stride_t,
                        const float* cos, const float* sin, int64_t cos_batch, bool inverse,
                        cudaStream_t stream) {
    if (batch < 0 || heads < 0 || seq < 0 || head_dim < 0 || head_dim % 2 != 0) return cudaErrorInvalidValue;
    if (batch == 0 || heads == 0 || seq == 0 || head_dim == 0) return cudaSuccess;
    if (x == nullptr || out == nullptr || cos == nullptr || sin == nullptr) return cudaErrorInvalidValue;
    if (cos_batch != 1 && cos_batch != batch) return cudaErrorInvalidValue;
    return dispatch_dtype(dtype, [&](auto tag) -> cudaError_t {
        using T = typename decltype(tag)::type;
        constexpr int kV = kVec<T>;
        const bool vectorized = head_dim % kV == 0 && x_stride_b % kV == 0 && x_stride_h % kV == 0 &&
                                x_stride_t % kV == 0 && out_stride_b % kV == 0 && out_stride_h % kV == 0 &&
                                out_stride_t % kV == 0 && aligned16(x) && aligned16(out) && aligned16(cos) &&
                                aligned16(sin);
        const int per_item = vectorized ? kV : 2;
        const int64_t items = batch * heads * seq * (head_dim / per_item);
        const unsigned int blocks = flat_blocks(items);
        if (vectorized) {
            rope_kernel<T, kV><<<blocks, kFlatThreads, 0, stream>>>(
                items, heads, seq, head_dim, static_cast<const T*>(x), x_stride_b, x_stride_h, x_stride_t,
                static_cast<T*>(out), out_stride_b, out_stride_h, out_stride_t, cos, sin, cos_batch == 1, inverse);
        } else {
            rope_kernel<T, 2><<<blocks, kFlatThreads, 0, stream>>>(
                items, heads, seq, head_dim, static_cast<const T*>(x), x_stride_b, x_stride_h, x_stride_t,
                static_cast<T*>(out), out_stride_b, out_stride_h, out_stride_t, cos, sin, cos_batch == 1, inverse);
        }
        return cudaGetLastError();
    });
}

}  // namespace voxkit
