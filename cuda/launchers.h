// Host-side entry points of voxkit's fused kernels, callable from plain C++ (binding.cpp) without
// any CUDA device code or torch header: the .cu files stay free of torch, so each compiles in
// seconds, and binding.cpp stays free of device code, so a host compiler can check it.
//
// Conventions shared by every launcher:
//   * sizes are int64_t, strides are in ELEMENTS (not bytes), and only row strides are passed:
//     the last dim of every tensor is contiguous;
//   * outputs are contiguous unless a stride is passed for them;
//   * the kernel runs on `stream`; nothing is allocated; the return value is the launch's error
//     (cudaGetLastError() after the launch), cudaErrorInvalidValue for arguments the kernels
//     cannot handle, cudaSuccess without a launch when there is nothing to do.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace voxkit {

// Element type of the tensors a launcher reads and writes. Lives here rather than in common.cuh
// so that binding.cpp (host compiler, no device code) and the kernels share one definition.
enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };

// RMSNorm keeps a whole row in registers; a row of more packs than this (a pack is 16 bytes, or
// one element when the row cannot be read in 16-byte packs) would need more registers than a
// block has, so the launchers refuse it and the caller keeps the PyTorch reference.
constexpr int64_t kMaxPacksPerRow = 8192;

// RMSNorm forward, and its fused variants, over `rows` rows of `dim` elements:
//   total = x + residual              (only when residual != nullptr; written to `total`)
//   out   = weight * total / rms     rms = sqrt(mean(total^2) + eps), total = x without a residual
//   out  *= gain[row / rows_per_gain] (only when gain != nullptr)
// with the statistics in fp32 and the result rounded to the dtype where the PyTorch reference
// rounds. `total` and `out` are contiguous [rows, dim]; gain has rows / rows_per_gain rows.
// residual and gain together are refused.
cudaError_t launch_rms_norm_forward(DType dtype, int64_t rows, int64_t dim,
                                    const void* x, int64_t x_stride,
                                    const void* residual, int64_t residual_stride,
                                    const void* weight,
                                    const void* gain, int64_t gain_stride, int64_t rows_per_gain,
                                    void* total, void* out, float eps, cudaStream_t stream);

// RMSNorm backward from the inputs (no saved statistics). Rows are split into `groups` groups of
// `rows_per_gain` rows (one gain row each; a single group without gain), and each group's rows
// into `chunks` interleaved chunks, one block per (group, chunk); rows = groups * rows_per_gain
// and gain, when given, has `groups` rows. dtotal and dresidual are given exactly when residual
// is (the backward of the residual-add variant). Writes
//   dx          [rows, dim]: gradient of x, plus dtotal with a residual;
//   dresidual   [rows, dim]: the same values again, only with a residual;
//   dw_part     [groups * chunks, dim] fp32: the weight gradient summed over each block's rows;
//   dgain_part  [groups * chunks, dim] fp32: the same for the gain, only when gain != nullptr;
// the caller sums the partial rows (dweight = dw_part summed over all rows, dgain[g] = the
// `chunks` rows of group g summed). With a residual the norm's input is x + residual rounded to
// the dtype, as in the forward. residual and gain together are refused.
cudaError_t launch_rms_norm_backward(DType dtype, int64_t groups, int64_t rows_per_gain,
                                     int64_t chunks, int64_t dim,
                                     const void* dy, int64_t dy_stride,
                                     const void* x, int64_t x_stride,
                                     const void* residual, int64_t residual_stride,
                                     const void* dtotal, int64_t dtotal_stride,
                                     const void* weight,
                                     const void* gain, int64_t gain_stride,
                                     void* dx, void* dresidual, float* dw_part, float* dgain_part,
                                     float eps, cudaStream_t stream);

// Interleaved rotary embedding of x [batch, heads, seq, head_dim] into out (same shape): pair
// (2i, 2i+1) of each head is rotated by the angle whose cos and sin are cos/sin[b, t, i]; with
// `inverse` by minus that angle (the backward). cos and sin are contiguous fp32
// [cos_batch, seq, head_dim / 2] with cos_batch 1 (shared by the batch) or batch. x and out have
// their own strides for batch, heads and seq; out may be x itself (same pointer, same strides).
cudaError_t launch_rope(DType dtype, int64_t batch, int64_t heads, int64_t seq, int64_t head_dim,
                        const void* x, int64_t x_stride_b, int64_t x_stride_h, int64_t x_stride_t,
                        void* out, int64_t out_stride_b, int64_t out_stride_h, int64_t out_stride_t,
                        const float* cos, const float* sin, int64_t cos_batch, bool inverse,
                        cudaStream_t stream);

// SwiGLU: out = silu(gate) * up over [rows, hidden]; out is contiguous.
cudaError_t launch_swiglu_forward(DType dtype, int64_t rows, int64_t hidden,
                                  const void* gate, int64_t gate_stride,
                                  const void* up, int64_t up_stride,
                                  void* out, cudaStream_t stream);

// SwiGLU backward: dgate and dup [rows, hidden], contiguous.
cudaError_t launch_swiglu_backward(DType dtype, int64_t rows, int64_t hidden,
                                   const void* dy, int64_t dy_stride,
                                   const void* gate, int64_t gate_stride,
                                   const void* up, int64_t up_stride,
                                   void* dgate, void* dup, cudaStream_t stream);

}  // namespace voxkit
