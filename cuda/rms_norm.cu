// RMSNorm, Ada-RMSNorm and residual-add + RMSNorm, forward and backward
// (references: voxkit/ops/norm.py).
//
// Memory-bound: one block per row keeps the whole row in registers, so the forward reads x (and
// the residual) once and writes out (and the sum) once, and the backward reads each input once
// per row. Each thread holds K packs of the row, at pack indices threadIdx.x + k * blockDim.x,
// so that consecutive threads touch consecutive 16 bytes (coalesced) for every k.
//
// Rounding follows the references: for a 16-bit dtype T the normalised row is rounded to T
// before the weight, the weighted row rounded to T before the gain, and the residual sum is a
// tensor of dtype T. The backward recomputes the statistics from x instead of saving them: one
// more read of a row it reads anyway, and nothing to store in the forward.
#include <type_traits>

#include "common.cuh"

namespace voxkit {
namespace {

// Widest block: a row of kMaxPacksPerRow packs at 8 packs per thread.
constexpr int kMaxThreads = 1024;
// Threads per block the packs per thread are chosen for: blocks of at most this size leave the
// scheduler room for several rows per multiprocessor.
constexpr int kPreferredThreads = 512;

// How a row is spread over a block: `k` packs per thread, `threads` threads (a multiple of 32,
// as block_sum needs). k = 0: the row is longer than the kernels support.
struct RowConfig {
    int k;
    int threads;
};

RowConfig row_config(int64_t packs) {
    for (int k : {1, 2, 4, 8}) {
        const int64_t threads = ceil_div(ceil_div(packs, k), 32) * 32;
        if (threads <= kPreferredThreads) return {k, static_cast<int>(threads)};
    }
    const int64_t threads = ceil_div(ceil_div(packs, 8), 32) * 32;
    if (threads <= kMaxThreads) return {8, static_cast<int>(threads)};
    return {0, 0};
}

// Up to kPreferredThreads threads for K < 8, so the compiler may give a thread twice the
// registers it could at kMaxThreads; only the widest rows need blocks of kMaxThreads.
template <int K>
constexpr int kBound = K == 8 ? kMaxThreads : kPreferredThreads;
// The backward holds more per thread (dy, the weight, fp32 sums of the weight gradient). Left
// alone, the compiler spends registers until one block of one pack per thread fills a
// multiprocessor: too few loads in flight for a memory-bound kernel, so that case asks for two
// blocks per multiprocessor. With several packs per thread one block has as many loads in flight
// as two, and the registers go to avoiding spills.
template <int K>
constexpr int kBackwardMinBlocks = K == 1 ? 2 : 1;

// One block per row (grid-stride over rows when there are more rows than blocks).
//   total = round(x + residual)                   (RESIDUAL)
//   out   = round(w * round(total * rstd))        rstd = rsqrt(mean(total^2) + eps)
//   out   = round(out * gain[row / rows_per_gain]) (GAIN)
template <typename T, int VEC, int K, bool RESIDUAL, bool GAIN>
__global__ void __launch_bounds__(kBound<K>)
rms_norm_forward_kernel(int64_t rows, int dim,
                        const T* __restrict__ x, int64_t x_stride,
                        const T* __restrict__ residual, int64_t residual_stride,
                        const T* __restrict__ weight,
                        const T* __restrict__ gain, int64_t gain_stride, int64_t rows_per_gain,
                        T* __restrict__ total, T* __restrict__ out, float eps) {
    const int packs = dim / VEC;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        // Every load of the row first, so that they are all in flight together.
        Pack<T, VEC> v[K];
        Pack<T, VEC> r[RESIDUAL ? K : 1];
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int p = threadIdx.x + k * blockDim.x;
            if (p < packs) {
                v[k] = load_pack<T, VEC>(x + row * x_stride + p * VEC);
                if constexpr (RESIDUAL) r[k] = load_pack<T, VEC>(residual + row * residual_stride + p * VEC);
            }
        }
        float sum_sq = 0.0f;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int p = threadIdx.x + k * blockDim.x;
            if (p < packs) {
                if constexpr (RESIDUAL) {
#pragma unroll
                    for (int j = 0; j < VEC; ++j) v[k].v[j] = from_float<T>(to_float(v[k].v[j]) + to_float(r[k].v[j]));
                    store_pack<T, VEC>(total + row * dim + p * VEC, v[k]);
                }
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    const float f = to_float(v[k].v[j]);
                    sum_sq += f * f;
                }
            }
        }
        const float rstd = rsqrtf(block_sum(sum_sq) / static_cast<float>(dim) + eps);

        const T* gain_row = nullptr;
        if constexpr (GAIN) gain_row = gain + (row / rows_per_gain) * gain_stride;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int p = threadIdx.x + k * blockDim.x;
            if (p < packs) {
                const Pack<T, VEC> w = load_pack<T, VEC>(weight + p * VEC);
                Pack<T, VEC> g;
                if constexpr (GAIN) g = load_pack<T, VEC>(gain_row + p * VEC);
                Pack<T, VEC> o;
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    const float n = round_to<T>(to_float(v[k].v[j]) * rstd);
                    float y = to_float(w.v[j]) * n;
                    if constexpr (GAIN) y = round_to<T>(y) * to_float(g.v[j]);
                    o.v[j] = from_float<T>(y);
                }
                store_pack<T, VEC>(out + row * dim + p * VEC, o);
            }
        }
    }
}

// Block b handles the rows t = chunk, chunk + chunks, ... < rows_per_gain of group
// b / chunks (chunk = b % chunks); row = group * rows_per_gain + t. With gain factor
// g = gain[group] (1 without GAIN), n = x * rstd and dn = dy * g * w:
//   dx         = rstd * (dn - n * mean(dn * n)) (+ dtotal with RESIDUAL; also into dresidual)
//   dw_part    = sum over the block's rows of dy * g * round(n)
//   dgain_part = sum over the block's rows of dy * round(w * round(n))   (GAIN)
// The group and chunk come from one flat block index, so that neither count meets the
// 65535 limit of gridDim.y.
template <typename T, int VEC, int K, bool RESIDUAL, bool GAIN>
__global__ void __launch_bounds__(kBound<K>, kBackwardMinBlocks<K>)
rms_norm_backward_kernel(int64_t rows_per_gain, int64_t chunks, int dim,
                         const T* __restrict__ dy, int64_t dy_stride,
                         const T* __restrict__ x, int64_t x_stride,
                         const T* __restrict__ residual, int64_t residual_stride,
                         const T* __restrict__ dtotal, int64_t dtotal_stride,
                         const T* __restrict__ weight,
                         const T* __restrict__ gain, int64_t gain_stride,
                         T* __restrict__ dx, T* __restrict__ dresidual,
                         float* __restrict__ dw_part, float* __restrict__ dgain_part, float eps) {
    const int packs = dim / VEC;
    const int64_t block = blockIdx.x;
    const int64_t group = block / chunks;
    const int64_t chunk = block % chunks;

    // The weight and this group's gain are the same for every row of the block: read them once.
    Pack<T, VEC> w[K];
    Pack<T, VEC> g[GAIN ? K : 1];
    float dw[K][VEC];
    float dg[GAIN ? K : 1][VEC];
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int p = threadIdx.x + k * blockDim.x;
        if (p < packs) {
            w[k] = load_pack<T, VEC>(weight + p * VEC);
            if constexpr (GAIN) g[k] = load_pack<T, VEC>(gain + group * gain_stride + p * VEC);
        }
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            dw[k][j] = 0.0f;
            if constexpr (GAIN) dg[k][j] = 0.0f;
        }
    }

    for (int64_t t = chunk; t < rows_per_gain; t += chunks) {
        const int64_t row = group * rows_per_gain + t;
        Pack<T, VEC> xv[K];
        Pack<T, VEC> dyv[K];
        Pack<T, VEC> r[RESIDUAL ? K : 1];
        Pack<T, VEC> dt[RESIDUAL ? K : 1];
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int p = threadIdx.x + k * blockDim.x;
            if (p < packs) {
                xv[k] = load_pack<T, VEC>(x + row * x_stride + p * VEC);
                dyv[k] = load_pack<T, VEC>(dy + row * dy_stride + p * VEC);
                if constexpr (RESIDUAL) {
                    r[k] = load_pack<T, VEC>(residual + row * residual_stride + p * VEC);
                    dt[k] = load_pack<T, VEC>(dtotal + row * dtotal_stride + p * VEC);
                }
            }
        }
        float sum_sq = 0.0f;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int p = threadIdx.x + k * blockDim.x;
            if (p < packs) {
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    // The forward's sum is a tensor of dtype T: normalise the same rounded values.
                    if constexpr (RESIDUAL) xv[k].v[j] = from_float<T>(to_float(xv[k].v[j]) + to_float(r[k].v[j]));
                    const float f = to_float(xv[k].v[j]);
                    sum_sq += f * f;
                }
            }
        }
        const float rstd = rsqrtf(block_sum(sum_sq) / static_cast<float>(dim) + eps);

        float dot = 0.0f;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int p = threadIdx.x + k * blockDim.x;
            if (p < packs) {
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    float gj = 1.0f;
                    if constexpr (GAIN) gj = to_float(g[k].v[j]);
                    const float n = to_float(xv[k].v[j]) * rstd;
                    const float dn = to_float(dyv[k].v[j]) * gj * to_float(w[k].v[j]);
                    dot += dn * n;
                }
            }
        }
        const float mean_dot = block_sum(dot) / static_cast<float>(dim);

#pragma unroll
        for (int k = 0; k < K; ++k) {
            const int p = threadIdx.x + k * blockDim.x;
            if (p < packs) {
                Pack<T, VEC> o;
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    float gj = 1.0f;
                    if constexpr (GAIN) gj = to_float(g[k].v[j]);
                    const float wj = to_float(w[k].v[j]);
                    const float dyj = to_float(dyv[k].v[j]);
                    const float n = to_float(xv[k].v[j]) * rstd;
                    float d = rstd * (dyj * gj * wj - n * mean_dot);
                    if constexpr (RESIDUAL) d += to_float(dt[k].v[j]);
                    o.v[j] = from_float<T>(d);
                    const float rounded_n = round_to<T>(n);
                    dw[k][j] += dyj * gj * rounded_n;
                    if constexpr (GAIN) dg[k][j] += dyj * round_to<T>(wj * rounded_n);
                }
                store_pack<T, VEC>(dx + row * dim + p * VEC, o);
                if constexpr (RESIDUAL) store_pack<T, VEC>(dresidual + row * dim + p * VEC, o);
            }
        }
    }

    // Every block writes its partial row, zeros when it had no rows, so the caller can allocate
    // the partial buffers uninitialised.
#pragma unroll
    for (int k = 0; k < K; ++k) {
        const int p = threadIdx.x + k * blockDim.x;
        if (p < packs) {
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                dw_part[block * dim + p * VEC + j] = dw[k][j];
                if constexpr (GAIN) dgain_part[block * dim + p * VEC + j] = dg[k][j];
            }
        }
    }
}

// Calls f(std::integral_constant<int, K>) for the runtime k of a RowConfig.
template <typename F>
cudaError_t dispatch_k(int k, F&& f) {
    switch (k) {
        case 1:
            return f(std::integral_constant<int, 1>{});
        case 2:
            return f(std::integral_constant<int, 2>{});
        case 4:
            return f(std::integral_constant<int, 4>{});
        case 8:
            return f(std::integral_constant<int, 8>{});
    }
    return cudaErrorInvalidValue;
}

// Calls f(vec, residual, gain) with the three as compile-time constants: 16-byte packs or single
// elements, and the three variants the ops use (residual and gain together are not one of them).
template <typename T, typename F>
cudaError_t dispatch_variant(bool vectorized, bool has_residual, bool has_gain, F&& f) {
    constexpr int kV = kVec<T>;
    using Yes = std::true_type;
    using No = std::false_type;
    if (has_residual && has_gain) return cudaErrorInvalidValue;
    if (vectorized) {
        if (has_residual) return f(std::integral_constant<int, kV>{}, Yes{}, No{});
        if (has_gain) return f(std::integral_constant<int, kV>{}, No{}, Yes{});
        return f(std::integral_constant<int, kV>{}, No{}, No{});
    }
    if (has_residual) return f(std::integral_constant<int, 1>{}, Yes{}, No{});
    if (has_gain) return f(std::integral_constant<int, 1>{}, No{}, Yes{});
    return f(std::integral_constant<int, 1>{}, No{}, No{});
}

}  // namespace

cudaError_t launch_rms_norm_forward(DType dtype, int64_t rows, int64_t dim,
                                    const void* x, int64_t x_stride,
                                    const void* residual, int64_t residual_stride,
                                    const void* weight,
                                    const void* gain, int64_t gain_stride, int64_t rows_per_gain,
                                    void* total, void* out, float eps, cudaStream_t stream) {
    if (rows < 0 || dim < 0) return cudaErrorInvalidValue;
    if (rows == 0 || dim == 0) return cudaSuccess;
    const bool has_residual = residual != nullptr;
    const bool has_gain = gain != nullptr;
    if (x == nullptr || weight == nullptr || out == nullptr) return cudaErrorInvalidValue;
    if (has_residual && total == nullptr) return cudaErrorInvalidValue;
    if (has_gain && rows_per_gain <= 0) return cudaErrorInvalidValue;
    return dispatch_dtype(dtype, [&](auto tag) -> cudaError_t {
        using T = typename decltype(tag)::type;
        constexpr int kV = kVec<T>;
        const bool vectorized = dim % kV == 0 && x_stride % kV == 0 && aligned16(x) && aligned16(weight) &&
                                aligned16(out) && aligned16(total) && (!has_residual || residual_stride % kV == 0) &&
                                aligned16(residual) && (!has_gain || gain_stride % kV == 0) && aligned16(gain);
        const int64_t packs = vectorized ? dim / kV : dim;
        if (packs > kMaxPacksPerRow) return cudaErrorInvalidValue;
        const RowConfig config = row_config(packs);
        if (config.k == 0) return cudaErrorInvalidValue;
        const unsigned int blocks = static_cast<unsigned int>(rows < 0x7fffffff ? rows : 0x7fffffff);
        return dispatch_variant<T>(vectorized, has_residual, has_gain, [&](auto vec, auto res, auto gn) {
            return dispatch_k(config.k, [&](auto k) -> cudaError_t {
                rms_norm_forward_kernel<T, decltype(vec)::value, decltype(k)::value, decltype(res)::value,
                                        decltype(gn)::value><<<blocks, config.threads, 0, stream>>>(
                    rows, static_cast<int>(dim), static_cast<const T*>(x), x_stride, static_cast<const T*>(residual),
                    residual_stride, static_cast<const T*>(weight), static_cast<const T*>(gain), gain_stride,
                    rows_per_gain, static_cast<T*>(total), static_cast<T*>(out), eps);
                return cudaGetLastError();
            });
        });
    });
}

cudaError_t launch_rms_norm_backward(DType dtype, int64_t groups, int64_t rows_per_gain,
                                     int64_t chunks, int64_t dim,
                                     const void* dy, int64_t dy_stride,
                                     const void* x, int64_t x_stride,
                                     const void* residual, int64_t residual_stride,
                                     const void* dtotal, int64_t dtotal_stride,
                                     const void* weight,
                                     const void* gain, int64_t gain_stride,
                                     void* dx, void* dresidual, float* dw_part, float* dgain_part,
                                     float eps, cudaStream_t stream) {
    if (groups < 0 || rows_per_gain < 0 || chunks <= 0 || dim < 0) return cudaErrorInvalidValue;
    if (groups == 0 || dim == 0) return cudaSuccess;
    const bool has_residual = residual != nullptr;
    const bool has_gain = gain != nullptr;
    if (dy == nullptr || x == nullptr || weight == nullptr || dx == nullptr || dw_part == nullptr) {
        return cudaErrorInvalidValue;
    }
    // The residual variant needs all of its tensors; the plain one none of them.
    if ((dtotal != nullptr) != has_residual || (dresidual != nullptr) != has_residual) return cudaErrorInvalidValue;
    if ((dgain_part != nullptr) != has_gain) return cudaErrorInvalidValue;
    if (groups > 0x7fffffff / chunks) return cudaErrorInvalidValue;  // one block per (group, chunk)
    return dispatch_dtype(dtype, [&](auto tag) -> cudaError_t {
        using T = typename decltype(tag)::type;
        constexpr int kV = kVec<T>;
        const bool vectorized = dim % kV == 0 && dy_stride % kV == 0 && x_stride % kV == 0 && aligned16(dy) &&
                                aligned16(x) && aligned16(weight) && aligned16(dx) &&
                                (!has_residual || (residual_stride % kV == 0 && dtotal_stride % kV == 0)) &&
                                aligned16(residual) && aligned16(dtotal) && aligned16(dresidual) &&
                                (!has_gain || gain_stride % kV == 0) && aligned16(gain);
        const int64_t packs = vectorized ? dim / kV : dim;
        if (packs > kMaxPacksPerRow) return cudaErrorInvalidValue;
        const RowConfig config = row_config(packs);
        if (config.k == 0) return cudaErrorInvalidValue;
        const unsigned int blocks = static_cast<unsigned int>(groups * chunks);
        return dispatch_variant<T>(vectorized, has_residual, has_gain, [&](auto vec, auto res, auto gn) {
            return dispatch_k(config.k, [&](auto k) -> cudaError_t {
                rms_norm_backward_kernel<T, decltype(vec)::value, decltype(k)::value, decltype(res)::value,
                                         decltype(gn)::value><<<blocks, config.threads, 0, stream>>>(
                    rows_per_gain, chunks, static_cast<int>(dim), static_cast<const T*>(dy), dy_stride,
                    static_cast<const T*>(x), x_stride, static_cast<const T*>(residual), residual_stride,
                    static_cast<const T*>(dtotal), dtotal_stride, static_cast<const T*>(weight),
                    static_cast<const T*>(gain), gain_stride, static_cast<T*>(dx), static_cast<T*>(dresidual), dw_part,
                    dgain_part, eps);
                return cudaGetLastError();
            });
        });
    });
}

}  // namespace voxkit
