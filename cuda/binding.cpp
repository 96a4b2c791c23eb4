// Python binding of voxkit's fused kernels (built just-in-time by voxkit/ops/cuda_kernels.py).
//
// Checks the tensors, allocates the outputs and hands raw pointers and element strides to the
// launchers (launchers.h). Kept apart from the kernels so that the torch headers are compiled
// once, by the host compiler, and the .cu files stay quick to build.
#include <torch/extension.h>

#include <ATen/MemoryOverlap.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>
#include <utility>

#include "launchers.h"

namespace {

using at::Tensor;
using voxkit::DType;

voxkit::DType dtype_of(const Tensor& t, const char* op) {
    switch (t.scalar_type()) {
        case at::kFloat:
            return DType::F32;
        case at::kHalf:
            return DType::F16;
        case at::kBFloat16:
            return DType::BF16;
        default:
            TORCH_CHECK(false, op, ": expected float32, float16 or bfloat16 tensors, got ", t.scalar_type());
    }
}

void check_cuda(const Tensor& t, const char* op, const char* name) {
    TORCH_CHECK(t.is_cuda(), op, ": ", name, " must be a CUDA tensor, got one on ", t.device());
}

// `t` must sit on `ref`'s device and have `ref`'s dtype.
void check_like(const Tensor& t, const Tensor& ref, const char* op, const char* name, const char* ref_name) {
    check_cuda(t, op, name);
    TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " is on ", t.device(), " but ", ref_name, " on ",
                ref.device());
    TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, ": ", name, " has dtype ", t.scalar_type(), " but ",
                ref_name, " has ", ref.scalar_type());
}

// The kernels walk the last dim with unit stride (a last dim of one element has no stride to
// speak of).
void check_last_dim_contiguous(const Tensor& t, const char* op, const char* name) {
    TORCH_CHECK(t.dim() >= 1 && (t.size(-1) <= 1 || t.stride(-1) == 1), op, ": ", name,
                " must have a contiguous last dim (stride(-1) == 1), got strides ", t.strides());
}

void check_shape(const Tensor& t, at::IntArrayRef shape, const char* op, const char* name) {
    TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
}

// A [rows, dim] input of the row kernels: 2-D, any row stride, unit stride along the row.
void check_rows(const Tensor& t, const char* op, const char* name) {
    TORCH_CHECK(t.dim() == 2, op, ": ", name, " must be 2-D [N, D], got shape ", t.sizes());
    check_last_dim_contiguous(t, op, name);
}

void check_launch(cudaError_t error, const char* op) {
    TORCH_CHECK(error == cudaSuccess, op, ": kernel launch failed: ", cudaGetErrorString(error));
}

// The RMSNorm launchers also refuse rows too long to hold in registers.
void check_norm_launch(cudaError_t error, const char* op) {
    TORCH_CHECK(error == cudaSuccess, op, ": kernel launch failed: ", cudaGetErrorString(error),
                " (rows of more than max_packs_per_row() 16-byte packs, or of that many elements when a row "
                "cannot be read in 16-byte packs, are not supported)");
}

cudaStream_t current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

// Checks shared by the RMSNorm ops: x [N, D] of a supported dtype, weight [D] alike.
void check_norm_inputs(const Tensor& x, const Tensor& weight, const char* op) {
    check_cuda(x, op, "x");
    check_rows(x, op, "x");
    dtype_of(x, op);
    check_like(weight, x, op, "weight", "x");
    check_shape(weight, {x.size(1)}, op, "weight");
    check_last_dim_contiguous(weight, op, "weight");
}

void check_gain(const Tensor& gain, const Tensor& x, int64_t rows_per_gain, const char* op) {
    check_like(gain, x, op, "gain", "x");
    TORCH_CHECK(gain.dim() == 2 && gain.size(1) == x.size(1), op, ": gain must be [G, D] with D = ", x.size(1),
                ", got shape ", gain.sizes());
    check_last_dim_contiguous(gain, op, "gain");
    TORCH_CHECK(rows_per_gain >= 0 && gain.size(0) * rows_per_gain == x.size(0), op,
                ": G * rows_per_gain must equal N, got G = ", gain.size(0), ", rows_per_gain = ", rows_per_gain,
                ", N = ", x.size(0));
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
    const char* op = "rms_norm";
    check_norm_inputs(x, weight, op);
    const c10::cuda::CUDAGuard guard(x.device());
    Tensor out = at::empty(x.sizes(), x.options());
    if (out.numel() == 0) return out;
    check_norm_launch(voxkit::launch_rms_norm_forward(dtype_of(x, op), x.size(0), x.size(1), x.data_ptr(), x.stride(0),
                                                      nullptr, 0, weight.data_ptr(), nullptr, 0, 1, nullptr,
                                                      out.data_ptr(), static_cast<float>(eps), current_stream()),
                      op);
    return out;
}

Tensor ada_rms_norm(const Tensor& x, const Tensor& weight, const Tensor& gain, int64_t rows_per_gain, double eps) {
    const char* op = "ada_rms_norm";
    check_norm_inputs(x, weight, op);
    check_gain(gain, x, rows_per_gain, op);
    const c10::cuda::CUDAGuard guard(x.device());
    Tensor out = at::empty(x.sizes(), x.options());
    if (out.numel() == 0) return out;
    check_norm_launch(voxkit::launch_rms_norm_forward(dtype_of(x, op), x.size(0), x.size(1), x.data_ptr(), x.stride(0),
                                                      nullptr, 0, weight.data_ptr(), gain.data_ptr(), gain.stride(0),
                                                      rows_per_gain, nullptr, out.data_ptr(), static_cast<float>(eps),
                                                      current_stream()),
                      op);
    return out;
}

std::tuple<Tensor, Tensor> add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps) {
    const char* op = "add_rms_norm";
    check_norm_inputs(x, weight, op);
    check_like(residual, x, op, "residual", "x");
    check_shape(residual, x.sizes(), op, "residual");
    check_last_dim_contiguous(residual, op, "residual");
    const c10::cuda::CUDAGuard guard(x.device());
    Tensor total = at::empty(x.sizes(), x.options());
    Tensor out = at::empty(x.sizes(), x.options());
    if (out.numel() == 0) return {total, out};
    check_norm_launch(voxkit::launch_rms_norm_forward(dtype_of(x, op), x.size(0), x.size(1), x.data_ptr(), x.stride(0),
                                                      residual.data_ptr(), residual.stride(0), weight.data_ptr(),
                                                      nullptr, 0, 1, total.data_ptr(), out.data_ptr(),
                                                      static_cast<float>(eps), current_stream()),
                      op);
    return {total, out};
}

// Blocks per gain group of the backward: enough blocks over all groups to fill every
// multiprocessor a few times, no more than the group has rows (a block without rows would only
// add a partial row of zeros to sum).
int64_t backward_chunks(int64_t groups, int64_t rows_per_gain) {
    const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    const int64_t wanted = (4 * sms + groups - 1) / groups;
    return std::max<int64_t>(1, std::min(rows_per_gain, wanted));
}

std::tuple<Tensor, Tensor, std::optional<Tensor>> rms_norm_backward(const Tensor& dy, const Tensor& x,
                                                                    const Tensor& weight,
                                                                    const std::optional<Tensor>& gain,
                                                                    int64_t rows_per_gain, double eps) {
    const char* op = "rms_norm_backward";
    check_norm_inputs(x, weight, op);
    check_like(dy, x, op, "dy", "x");
    check_shape(dy, x.sizes(), op, "dy");
    check_last_dim_contiguous(dy, op, "dy");
    const int64_t rows = x.size(0);
    const int64_t dim = x.size(1);
    // Without a gain, rows_per_gain is not used: the rows form one group.
    int64_t groups = 1;
    int64_t group_rows = rows;
    if (gain.has_value()) {
        check_gain(*gain, x, rows_per_gain, op);
        groups = gain->size(0);
        group_rows = rows_per_gain;
    }
    const c10::cuda::CUDAGuard guard(x.device());
    Tensor dx = at::empty(x.sizes(), x.options());
    if (rows == 0 || dim == 0) {
        std::optional<Tensor> dgain;
        if (gain.has_value()) dgain = at::zeros(gain->sizes(), gain->options());
        return {dx, at::zeros(weight.sizes(), weight.options()), dgain};
    }
    const int64_t chunks = backward_chunks(groups, group_rows);
    const auto partial_options = x.options().dtype(at::kFloat);
    Tensor dw_part = at::empty({groups * chunks, dim}, partial_options);
    std::optional<Tensor> dgain_part;
    if (gain.has_value()) dgain_part = at::empty({groups * chunks, dim}, partial_options);
    check_norm_launch(
        voxkit::launch_rms_norm_backward(dtype_of(x, op), groups, group_rows, chunks, dim, dy.data_ptr(), dy.stride(0),
                                         x.data_ptr(), x.stride(0), nullptr, 0, nullptr, 0, weight.data_ptr(),
                                         gain.has_value() ? gain->data_ptr() : nullptr,
                                         gain.has_value() ? gain->stride(0) : 0, dx.data_ptr(), nullptr,
                                         dw_part.data_ptr<float>(),
                                         dgain_part.has_value() ? dgain_part->data_ptr<float>() : nullptr,
                                         static_cast<float>(eps), current_stream()),
        op);
    Tensor dweight = dw_part.sum(0).to(weight.scalar_type());
    std::optional<Tensor> dgain;
    if (gain.has_value()) dgain = dgain_part->view({groups, chunks, dim}).sum(1).to(gain->scalar_type());
    return {dx, dweight, dgain};
}

std::tuple<Tensor, Tensor, Tensor> add_rms_norm_backward(const Tensor& dtotal, const Tensor& dy, const Tensor& x,
                                                         const Tensor& residual, const Tensor& weight, double eps) {
    const char* op = "add_rms_norm_backward";
    check_norm_inputs(x, weight, op);
    const std::pair<const Tensor*, const char*> rows_like_x[] = {{&dtotal, "dtotal"}, {&dy, "dy"}, {&residual, "residual"}};
    for (const auto& [t, name] : rows_like_x) {
        check_like(*t, x, op, name, "x");
        check_shape(*t, x.sizes(), op, name);
        check_last_dim_contiguous(*t, op, name);
    }
    const int64_t rows = x.size(0);
    const int64_t dim = x.size(1);
    const c10::cuda::CUDAGuard guard(x.device());
    Tensor dx = at::empty(x.sizes(), x.options());
    Tensor dresidual = at::empty(x.sizes(), x.options());
    if (rows == 0 || dim == 0) return {dx, dresidual, at::zeros(weight.sizes(), weight.options())};
    const int64_t chunks = backward_chunks(1, rows);
    Tensor dw_part = at::empty({chunks, dim}, x.options().dtype(at::kFloat));
    check_norm_launch(voxkit::launch_rms_norm_backward(
                          dtype_of(x, op), 1, rows, chunks, dim, dy.data_ptr(), dy.stride(0), x.data_ptr(),
                          x.stride(0), residual.data_ptr(), residual.stride(0), dtotal.data_ptr(), dtotal.stride(0),
                          weight.data_ptr(), nullptr, 0, dx.data_ptr(), dresidual.data_ptr(),
                          dw_part.data_ptr<float>(), nullptr, static_cast<float>(eps), current_stream()),
                      op);
    return {dx, dresidual, dw_part.sum(0).to(weight.scalar_type())};
}

// cos / sin [Bc, T, hd/2] fp32, contiguous; [Bc, 1, T, hd/2] (the reference's broadcastable
// layout) is accepted as the same memory.
Tensor angle_table(const Tensor& table, const Tensor& x, const char* op, const char* name) {
    check_cuda(table, op, name);
    TORCH_CHECK(table.device() == x.device(), op, ": ", name, " is on ", table.device(), " but x on ", x.device());
    TORCH_CHECK(table.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", table.scalar_type());
    TORCH_CHECK(table.is_contiguous(), op, ": ", name, " must be contiguous");
    const int64_t batch = x.size(0);
    const int64_t seq = x.size(2);
    const int64_t half = x.size(3) / 2;
    Tensor t = table.dim() == 4 && table.size(1) == 1 ? table.squeeze(1) : table;
    TORCH_CHECK(t.dim() == 3 && (t.size(0) == 1 || t.size(0) == batch) && t.size(1) == seq && t.size(2) == half, op,
                ": ", name, " must be [1 or B, T, hd/2] = [1 or ", batch, ", ", seq, ", ", half, "], got ",
                table.sizes());
    return t;
}

Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool inverse, const std::optional<Tensor>& out) {
    const char* op = "rope";
    check_cuda(x, op, "x");
    TORCH_CHECK(x.dim() == 4, op, ": x must be 4-D [B, H, T, hd], got shape ", x.sizes());
    TORCH_CHECK(x.size(3) % 2 == 0, op, ": the head dim must be even, got ", x.size(3));
    check_last_dim_contiguous(x, op, "x");
    const DType dtype = dtype_of(x, op);
    const Tensor c = angle_table(cos, x, op, "cos");
    const Tensor s = angle_table(sin, x, op, "sin");
    TORCH_CHECK(c.sizes() == s.sizes(), op, ": cos and sin must have the same shape, got ", cos.sizes(), " and ",
                sin.sizes());
    const c10::cuda::CUDAGuard guard(x.device());
    Tensor result;
    if (out.has_value()) {
        result = *out;
        check_like(result, x, op, "out", "x");
        check_shape(result, x.sizes(), op, "out");
        check_last_dim_contiguous(result, op, "out");
        // In place means the very same elements: any other overlap would let one thread write what
        // another has yet to read.
        at::assert_no_internal_overlap(result);
        at::assert_no_partial_overlap(result, x);
    } else {
        result = at::empty_like(x);  // keeps x's layout, so a transposed x gives a transposed out
        check_last_dim_contiguous(result, op, "out");
    }
    if (x.numel() == 0) return result;
    check_launch(voxkit::launch_rope(dtype, x.size(0), x.size(1), x.size(2), x.size(3), x.data_ptr(), x.stride(0),
                                     x.stride(1), x.stride(2), result.data_ptr(), result.stride(0), result.stride(1),
                                     result.stride(2), c.data_ptr<float>(), s.data_ptr<float>(), c.size(0), inverse,
                                     current_stream()),
                 op);
    return result;
}

void check_swiglu_input(const Tensor& t, const Tensor& ref, const char* op, const char* name, const char* ref_name) {
    check_like(t, ref, op, name, ref_name);
    check_rows(t, op, name);
    check_shape(t, ref.sizes(), op, name);
}

Tensor swiglu(const Tensor& gate, const Tensor& up) {
    const char* op = "swiglu";
    check_cuda(gate, op, "gate");
    check_rows(gate, op, "gate");
    const DType dtype = dtype_of(gate, op);
    check_swiglu_input(up, gate, op, "up", "gate");
    const c10::cuda::CUDAGuard guard(gate.device());
    Tensor out = at::empty(gate.sizes(), gate.options());
    if (out.numel() == 0) return out;
    check_launch(voxkit::launch_swiglu_forward(dtype, gate.size(0), gate.size(1), gate.data_ptr(), gate.stride(0),
                                               up.data_ptr(), up.stride(0), out.data_ptr(), current_stream()),
                 op);
    return out;
}

std::tuple<Tensor, Tensor> swiglu_backward(const Tensor& dy, const Tensor& gate, const Tensor& up) {
    const char* op = "swiglu_backward";
    check_cuda(gate, op, "gate");
    check_rows(gate, op, "gate");
    const DType dtype = dtype_of(gate, op);
    check_swiglu_input(up, gate, op, "up", "gate");
    check_swiglu_input(dy, gate, op, "dy", "gate");
    const c10::cuda::CUDAGuard guard(gate.device());
    Tensor dgate = at::empty(gate.sizes(), gate.options());
    Tensor dup = at::empty(gate.sizes(), gate.options());
    if (dgate.numel() == 0) return {dgate, dup};
    check_launch(voxkit::launch_swiglu_backward(dtype, gate.size(0), gate.size(1), dy.data_ptr(), dy.stride(0),
                                                gate.data_ptr(), gate.stride(0), up.data_ptr(), up.stride(0),
                                                dgate.data_ptr(), dup.data_ptr(), current_stream()),
                 op);
    return {dgate, dup};
}

int64_t max_packs_per_row() { return voxkit::kMaxPacksPerRow; }

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "voxkit's fused CUDA kernels: RMSNorm (plain, Ada, residual-add), interleaved RoPE, SwiGLU";
    m.def("rms_norm", &rms_norm,
          "weight * rms_norm(x) over the last dim, statistics in fp32; x [N, D] (any row stride), weight [D] "
          "-> out [N, D].",
          py::arg("x"), py::arg("weight"), py::arg("eps"));
    m.def("ada_rms_norm", &ada_rms_norm,
          "rms_norm(x) * gain[row // rows_per_gain]; x [N, D], gain [G, D] with G * rows_per_gain == N -> out [N, D].",
          py::arg("x"), py::arg("weight"), py::arg("gain"), py::arg("rows_per_gain"), py::arg("eps"));
    m.def("add_rms_norm", &add_rms_norm,
          "(total, out) = (x + residual, rms_norm(x + residual)), both [N, D]; one read of x and residual.",
          py::arg("x"), py::arg("residual"), py::arg("weight"), py::arg("eps"));
    m.def("rms_norm_backward", &rms_norm_backward,
          "Gradients of rms_norm / ada_rms_norm from dy and the inputs: (dx, dweight, dgain or None). Without a "
          "gain, rows_per_gain is ignored.",
          py::arg("dy"), py::arg("x"), py::arg("weight"), py::arg("gain"), py::arg("rows_per_gain"), py::arg("eps"));
    m.def("add_rms_norm_backward", &add_rms_norm_backward,
          "Gradients of add_rms_norm from dtotal and dy: (dx, dresidual, dweight); dx and dresidual are equal.",
          py::arg("dtotal"), py::arg("dy"), py::arg("x"), py::arg("residual"), py::arg("weight"), py::arg("eps"));
    m.def("rope", &rope,
          "Rotate the interleaved pairs of x [B, H, T, hd] (any B, H, T strides) by cos/sin [1 or B, T, hd/2] "
          "(fp32); inverse=True rotates back (the backward). Writes into out when given (it may be x itself), "
          "else into a new tensor laid out like x.",
          py::arg("x"), py::arg("cos"), py::arg("sin"), py::arg("inverse"), py::arg("out") = py::none());
    m.def("swiglu", &swiglu, "silu(gate) * up; gate, up [N, H] (any row strides) -> out [N, H].", py::arg("gate"),
          py::arg("up"));
    m.def("swiglu_backward", &swiglu_backward, "Gradients of swiglu: (dgate, dup), both [N, H].", py::arg("dy"),
          py::arg("gate"), py::arg("up"));
    m.def("max_packs_per_row", &max_packs_per_row,
          "Longest row the RMSNorm kernels take, in 16-byte packs (in elements when a row cannot be read in packs).");
}
