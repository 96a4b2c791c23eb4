// SwiGLU's gate, silu(gate) * up, forward and backward (reference: voxkit/ops/swiglu.py).
//
// gate and up carry their own row strides so that they may be the two halves of one fused
// [N, 2H] projection, read where they lie instead of copied apart. silu(g) is rounded to the
// dtype before the product, as the reference's separate F.silu produces a tensor of that dtype.
#include <cstdint>

#include "common.cuh"

namespace voxkit {
namespace {

// silu(g) = g / (1 + exp(-g)) written the way PyTorch's CUDA kernel writes it, with the accurate
// expf rather than __expf, so that a 16-bit result rounds the same fp32 value the reference
// rounds. For g -> -inf, exp(-g) overflows to inf and silu is -0, as it should be.
__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// Flat 64-bit index over the rows' packs (pack fastest), VEC elements per pack.
template <typename T, int VEC>
__global__ void __launch_bounds__(kFlatThreads)
swiglu_forward_kernel(int64_t items, int64_t hidden,
                      const T* __restrict__ gate, int64_t gate_stride,
                      const T* __restrict__ up, int64_t up_stride, T* __restrict__ out) {
    const int64_t per_row = hidden / VEC;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < items; i += stride) {
        const int64_t row = i / per_row;
        const int64_t col = (i % per_row) * VEC;
        const Pack<T, VEC> g = load_pack<T, VEC>(gate + row * gate_stride + col);
        const Pack<T, VEC> u = load_pack<T, VEC>(up + row * up_stride + col);
        Pack<T, VEC> o;
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            o.v[j] = from_float<T>(round_to<T>(silu(to_float(g.v[j]))) * to_float(u.v[j]));
        }
        store_pack<T, VEC>(out + row * hidden + col, o);
    }
}

// With sigma = 1 / (1 + exp(-g)), d silu / dg = sigma (1 + g (1 - sigma)):
//   dgate = dy * u * sigma * (1 + g * (1 - sigma))
//   dup   = dy * round(silu(g))        (the rounded silu the forward multiplied up by)
template <typename T, int VEC>
__global__ void __launch_bounds__(kFlatThreads)
swiglu_backward_kernel(int64_t items, int64_t hidden,
                       const T* __restrict__ dy, int64_t dy_stride,
                       const T* __restrict__ gate, int64_t gate_stride,
                       const T* __restrict__ up, int64_t up_stride,
                       T* __restrict__ dgate, T* __restrict__ dup) {
    const int64_t per_row = hidden / VEC;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < items; i += stride) {
        const int64_t row = i / per_row;
        const int64_t col = (i % per_row) * VEC;
        const Pack<T, VEC> d = load_pack<T, VEC>(dy + row * dy_stride + col);
        const Pack<T, VEC> g = load_pack<T, VEC>(gate + row * gate_stride + col);
        const Pack<T, VEC> u = load_pack<T, VEC>(up + row * up_stride + col);
        Pack<T, VEC> dg;
        Pack<T, VEC> du;
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            const float dyj = to_float(d.v[j]);
            const float gj = to_float(g.v[j]);
            const float uj = to_float(u.v[j]);
            const float e = expf(-gj);
            const float sigma = 1.0f / (1.0f + e);
            dg.v[j] = from_float<T>(dyj * uj * sigma * (1.0f + gj * (1.0f - sigma)));
            du.v[j] = from_float<T>(dyj * round_to<T>(gj / (1.0f + e)));
        }
        store_pack<T, VEC>(dgate + row * hidden + col, dg);
        store_pack<T, VEC>(dup + row * hidden + col, du);
    }
}

}  // namespace

cudaError_t launch_swiglu_forward(DType dtype, int64_t rows, int64_t hidden,
                                  const void* gate, int64_t gate_stride,
                                  const void* up, int64_t up_stride,
                                  void* out, cudaStream_t stream) {
    if (rows < 0 || hidden < 0) return cudaErrorInvalidValue;
    if (rows == 0 || hidden == 0) return cudaSuccess;
    if (gate == nullptr || up == nullptr || out == nullptr) return cudaErrorInvalidValue;
    return dispatch_dtype(dtype, [&](auto tag) -> cudaError_t {
        using T = typename decltype(tag)::type;
        constexpr int kV = kVec<T>;
        const bool vectorized = hidden % kV == 0 && gate_stride % kV == 0 && up_stride % kV == 0 && aligned16(gate) &&
                                aligned16(up) && aligned16(out);
        const int64_t items = rows * (vectorized ? hidden / kV : hidden);
        const unsigned int blocks = flat_blocks(items);
        if (vectorized) {
            swiglu_forward_kernel<T, kV><<<blocks, kFlatThreads, 0, stream>>>(
                items, hidden, static_cast<const T*>(gate), gate_stride, static_cast<const T*>(up), up_stride,
                static_cast<T*>(out));
        } else {
            swiglu_forward_kernel<T, 1><<<blocks, kFlatThreads, 0, stream>>>(
                items, hidden, static_cast<const T*>(gate), gate_stride, static_cast<const T*>(up), up_stride,
                static_cast<T*>(out));
        }
        return cudaGetLastError();
    });
}

cudaError_t launch_swiglu_backward(DType dtype, int64_t rows, int64_t hidden,
                                   const void* dy, int64_t dy_stride,
                                   const void* gate, int64_t gate_stride,
                                   const void* up, int64_t up_stride,
                                   void* dgate, void* dup, cudaStream_t stream) {
    if (rows < 0 || hidden < 0) return cudaErrorInvalidValue;
    if (rows == 0 || hidden == 0) return cudaSuccess;
    if (dy == nullptr || gate == nullptr || up == nullptr || dgate == nullptr || dup == nullptr) {
        return cudaErrorInvalidValue;
    }
    return dispatch_dtype(dtype, [&](auto tag) -> cudaError_t {
        using T = typename decltype(tag)::type;
        constexpr int kV = kVec<T>;
        const bool vectorized = hidden % kV == 0 && dy_stride % kV == 0 && gate_stride % kV == 0 &&
                                up_stride % kV == 0 && aligned16(dy) && aligned16(gate) && aligned16(up) &&
                                aligned16(dgate) && aligned16(dup);
        const int64_t items = rows * (vectorized ? hidden / kV : hidden);
        const unsigned int blocks = flat_blocks(items);
        if (vectorized) {
            swiglu_backward_kernel<T, kV><<<blocks, kFlatThreads, 0, stream>>>(
                items, hidden, static_cast<const T*>(dy), dy_stride, static_cast<const T*>(gate), gate_stride,
                static_cast<const T*>(up), up_stride, static_cast<T*>(dgate), static_cast<T*>(dup));
        } else {
            swiglu_backward_kernel<T, 1><<<blocks, kFlatThreads, 0, stream>>>(
                items, hidden, static_cast<const T*>(dy), dy_stride, static_cast<const T*>(gate), gate_stride,
                static_cast<const T*>(up), up_stride, static_cast<T*>(dgate), static_cast<T*>(dup));
        }
        return cudaGetLastError();
    });
}

}  // namespace voxkit
