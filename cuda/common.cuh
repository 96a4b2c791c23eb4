// Device helpers shared by voxkit's kernels: dtype conversions, the rounding the PyTorch
// references apply, 16-byte packs, warp and block sums, and the dtype dispatch of the launchers.
//
// Pure CUDA (no torch header): torch's JIT build compiles .cu files with its
// __CUDA_NO_HALF_OPERATORS__ / __CUDA_NO_*_CONVERSIONS__ flags, which remove the implicit
// conversions of __half and __nv_bfloat16, so every conversion below is an explicit
// round-to-nearest intrinsic and the code compiles the same with or without those flags.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "launchers.h"

namespace voxkit {

// ---------------------------------------------------------------------------------------------
// Conversions. All arithmetic runs in fp32; tensors are read and written in their own dtype.

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);

template <>
__device__ __forceinline__ float from_float<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// float(T(value)): the rounding a PyTorch op computing in dtype T applies to its result. The
// kernels apply it exactly where the references produce an intermediate tensor of dtype T, so
// that a bf16 or fp16 result matches the reference's to the last bit wherever the fp32 sums
// agree. An identity for fp32.
template <typename T>
__device__ __forceinline__ float round_to(float value) {
    return to_float(from_float<T>(value));
}

// ---------------------------------------------------------------------------------------------
// Packs: N consecutive elements moved together. A 16-byte pack is 16-byte aligned, so one
// load or store instruction moves it (the launchers check the alignment before choosing such
// packs); any other size is a plain array with the element's alignment, which the scalar paths
// use on memory that guarantees nothing more.

template <typename T, int N>
struct alignas(sizeof(T) * N == 16 ? 16 : alignof(T)) Pack {
    T v[N];
};

// A 16-byte pack goes through uint4, so that the access is one 128-bit instruction whatever the
// compiler makes of the struct: left to itself it may split the store of a pack assembled element
// by element into several narrow stores, hence the explicit 128-bit store (__stwb: st.global
// with the default write-back policy).
template <typename T, int N>
__device__ __forceinline__ Pack<T, N> load_pack(const T* p) {
    if constexpr (sizeof(Pack<T, N>) == 16) {
        const uint4 bits = *reinterpret_cast<const uint4*>(p);
        Pack<T, N> value;
        memcpy(&value, &bits, 16);
        return value;
    } else {
        return *reinterpret_cast<const Pack<T, N>*>(p);
    }
}

template <typename T, int N>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, N>& value) {
    if constexpr (sizeof(Pack<T, N>) == 16) {
        uint4 bits;
        memcpy(&bits, &value, 16);
        __stwb(reinterpret_cast<uint4*>(p), bits);
    } else {
        *reinterpret_cast<Pack<T, N>*>(p) = value;
    }
}

// Elements per 16-byte pack.
template <typename T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

// ---------------------------------------------------------------------------------------------
// Reductions.

// Sum over the 32 lanes of a warp; every lane gets the sum. The butterfly adds the same two
// numbers in every lane of a pair, so all lanes hold the same bits afterwards.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Sum over a block of up to 1024 threads (a multiple of 32: full warps, as the shuffles need);
// every thread gets the sum, with the same bits. Each warp adds the per-warp sums itself instead
// of waiting for a broadcast, which saves a barrier. The barrier on entry keeps a second call
// from overwriting the per-warp sums while a slow warp still reads those of the first, so the
// function may be called several times in a row.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float warp_sums[32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    return warp_sum(lane < warps ? warp_sums[lane] : 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Host helpers of the launchers.

template <typename T>
struct TypeTag {
    using type = T;
};

// Calls f(TypeTag<T>{}) with the C++ type of `dtype` (inside: using T = typename
// decltype(tag)::type) and returns its error; an unknown dtype is an invalid value.
template <typename F>
inline cudaError_t dispatch_dtype(DType dtype, F&& f) {
    switch (dtype) {
        case DType::F32:
            return f(TypeTag<float>{});
        case DType::F16:
            return f(TypeTag<__half>{});
        case DType::BF16:
            return f(TypeTag<__nv_bfloat16>{});
    }
    return cudaErrorInvalidValue;
}

// True when p may be read and written in 16-byte packs (nullptr: an absent optional tensor,
// which constrains nothing).
inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Threads per block of the element-wise kernels (RoPE, SwiGLU).
constexpr int kFlatThreads = 256;

// Blocks for an element-wise kernel over `items` items, one per thread; the kernels loop with a
// grid stride, so the cap only matters beyond what gridDim.x can hold.
inline unsigned int flat_blocks(int64_t items) {
    const int64_t blocks = ceil_div(items, kFlatThreads);
    const int64_t max_blocks = 0x7fffffff;
    return static_cast<unsigned int>(blocks < max_blocks ? blocks : max_blocks);
}

}  // namespace voxkit
