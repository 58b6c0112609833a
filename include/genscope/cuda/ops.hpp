// genscope/cuda/ops.hpp — tensor-level ops that run where their tensors are.
//
//   Tensor softmax(x)                        last dim; f32/f16/bf16 → same dtype on CUDA, f32 on CPU
//   Tensor layer_norm(x, weight, bias, eps)  last dim; weight/bias f32 [n] or undefined
//   Tensor linear(x, weight, bias, act)      x [.., in] · weightᵀ [out, in] + bias, then act
//   Tensor attention(q, k, v, scale)         [B, H, S, D], D ≤ 512
//
// All CPU tensors → genscope's CPU ops (ops/*.hpp); all CUDA → genscope's kernels (kernels/*.cuh)
// or cuBLASLt; a mix → DeviceError naming the op and the tensors (cuda/device.hpp). CUDA results
// keep the input dtype (PyTorch's behaviour); CPU results are f32 as ops/*.hpp return them.
// The kernel-based CUDA paths exist in translation units nvcc compiles (.cu): from a g++ file they
// throw DeviceError saying so; linear (cuBLASLt, host API) works from both.
#pragma once

#include <cmath>
#include <optional>

#include "genscope/core/tensor.hpp"
#include "genscope/cuda/device.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/attention.hpp"
#include "genscope/ops/gemm.hpp"
#include "genscope/ops/norm.hpp"
#include "genscope/ops/softmax.hpp"

#if defined(GENSCOPE_WITH_CUDA)
#include "genscope/cuda/blas.hpp"
#endif
#if defined(GENSCOPE_WITH_CUDA) && defined(__CUDACC__)
#include "kernels/attention.cuh"
#include "kernels/gemm.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/softmax.cuh"
#define GENSCOPE_CUDA_KERNELS 1
#endif

namespace genscope::cuda {

namespace detail {
[[noreturn]] inline void kernels_not_compiled(const char* op) {
  fail<DeviceError>(op, " on CUDA tensors runs genscope's kernels, which only a translation unit compiled by nvcc (.cu) contains");
}

// Calls f(tag) with the storage type of a float dtype (float, f16, bf16).
template <class F>
decltype(auto) visit_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F32: return f(float{});
    case DType::F16: return f(f16{});
    case DType::BF16: return f(bf16{});
    default: fail<ShapeError>(op, ": dtype ", t, " is not f32, f16 or bf16");
  }
}

inline void require_contiguous_cuda(const char* op, const char* name, const Tensor& t) {
  if (t.defined() && !t.is_contiguous()) fail<ShapeError>(op, ": ", name, " ", t.str(), " must be contiguous on the GPU");
}
inline void require_f32(const char* op, const char* name, const Tensor& t) {
  if (t.defined() && t.dtype() != DType::F32) fail<ShapeError>(op, ": ", name, " is ", t.str(), "; expected f32");
}
}  // namespace detail

inline Tensor softmax(const Tensor& x) {
  if (common_device("softmax", {{"x", x}}) == Device::CPU) return ops::softmax(x, -1);
#if defined(GENSCOPE_CUDA_KERNELS)
  detail::require_contiguous_cuda("softmax", "x", x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  const int64_t cols = x.dim() ? x.size(-1) : 1;
  detail::visit_float(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    kernels::softmax(static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()), cols ? x.numel() / cols : 0, cols, 1.0f, nullptr);
  });
  return y;
#else
  detail::kernels_not_compiled("softmax");
#endif
}

inline Tensor layer_norm(const Tensor& x, const Tensor& weight = {}, const Tensor& bias = {}, float eps = 1e-5f) {
  if (common_device("layer_norm", {{"x", x}, {"weight", weight}, {"bias", bias}}) == Device::CPU) return ops::layer_norm(x, weight, bias, eps);
#if defined(GENSCOPE_CUDA_KERNELS)
  detail::require_contiguous_cuda("layer_norm", "x", x);
  detail::require_f32("layer_norm", "weight", weight);
  detail::require_f32("layer_norm", "bias", bias);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
  const int64_t cols = x.size(-1);
  detail::visit_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    kernels::layer_norm(static_cast<const T*>(x.data_ptr()), weight.defined() ? static_cast<const float*>(weight.data_ptr()) : nullptr,
                        bias.defined() ? static_cast<const float*>(bias.data_ptr()) : nullptr, static_cast<T*>(y.data_ptr()),
                        cols ? x.numel() / cols : 0, cols, eps, ops::Activation::None, nullptr);
  });
  return y;
#else
  detail::kernels_not_compiled("layer_norm");
#endif
}

// torch.nn.functional.linear followed by an activation: y = act(x · weightᵀ + bias).
inline Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, ops::Activation act = ops::Activation::None) {
  const Device device = common_device("linear", {{"x", x}, {"weight", weight}, {"bias", bias}});
  if (x.dim() < 1 || weight.dim() != 2 || x.size(-1) != weight.size(1))
    fail<ShapeError>("linear: x ", x.str(), " does not match weight ", weight.str(), " ([out, in])");
  const int64_t in = weight.size(1), out = weight.size(0), rows = in ? x.numel() / in : 0;
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = out;
  if (device == Device::CPU) {
    const Tensor xc = x.to(DType::F32).contiguous(), wc = weight.to(DType::F32).contiguous();
    const Tensor bc = bias.defined() ? bias.to(DType::F32).contiguous() : Tensor();
    Tensor y = Tensor::empty(out_shape, DType::F32);
    ops::GemmEpilogue ep;
    ep.bias = bc.defined() ? bc.data<float>() : nullptr;
    ep.act = act;
    ops::gemm(ops::Trans::No, ops::Trans::Yes, rows, out, in, 1.0f, xc.data<float>(), in, wc.data<float>(), in, 0.0f, y.data<float>(), out, ep);
    return y;
  }
#if defined(GENSCOPE_WITH_CUDA)
  detail::require_contiguous_cuda("linear", "x", x);
  detail::require_contiguous_cuda("linear", "weight", weight);
  detail::require_f32("linear", "bias", bias);
  if (weight.dtype() != x.dtype()) fail<ShapeError>("linear: x ", x.str(), " and weight ", weight.str(), " differ in dtype");
  const GemmPrecision precision = x.dtype() == DType::F16 ? GemmPrecision::F16 : x.dtype() == DType::BF16 ? GemmPrecision::BF16 : GemmPrecision::F32;
  Tensor y = Tensor::empty(out_shape, x.dtype(), Device::CUDA);
  const float* b = bias.defined() ? static_cast<const float*>(bias.data_ptr()) : nullptr;
  const bool in_cublas = act == ops::Activation::None || act == ops::Activation::Relu || act == ops::Activation::GeluTanh;
  gemm(ops::Trans::No, ops::Trans::Yes, rows, out, in, 1.0f, x.data_ptr(), in, weight.data_ptr(), in, 0.0f, y.data_ptr(), out, precision,
       nullptr, in_cublas ? b : nullptr, in_cublas ? act : ops::Activation::None);
  if (!in_cublas) {
#if defined(GENSCOPE_CUDA_KERNELS)
    detail::visit_float(x.dtype(), "linear", [&](auto tag) {
      using T = decltype(tag);
      kernels::gemm_epilogue(static_cast<T*>(y.data_ptr()), out, b, act, static_cast<const T*>(nullptr), 0, rows, out, nullptr);
    });
#else
    detail::kernels_not_compiled("linear with this activation");
#endif
  }
  return y;
#else
  fail<DeviceError>("linear: CUDA tensors, but genscope was built without CUDA");
#endif
}

inline Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, std::optional<float> scale = std::nullopt) {
  if (common_device("attention", {{"q", q}, {"k", k}, {"v", v}}) == Device::CPU) return ops::attention(q, k, v, {}, scale);
#if defined(GENSCOPE_CUDA_KERNELS)
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || !(k.shape() == v.shape()) || q.size(0) != k.size(0) || q.size(1) != k.size(1) ||
      q.size(3) != k.size(3))
    fail<ShapeError>("attention: q ", q.str(), ", k ", k.str(), ", v ", v.str(), " are not [B, H, S, D] with matching B, H, D");
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"q", &q}, {"k", &k}, {"v", &v}}) {
    detail::require_contiguous_cuda("attention", name, *t);
    if (t->dtype() != q.dtype()) fail<ShapeError>("attention: ", name, " is ", t->str(), " but q is ", q.str());
  }
  const int head_dim = static_cast<int>(q.size(3));
  const float s = scale ? *scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  Tensor o = Tensor::empty(q.shape(), q.dtype(), Device::CUDA);
  detail::visit_float(q.dtype(), "attention", [&](auto tag) {
    using T = decltype(tag);
    kernels::attention(static_cast<const T*>(q.data_ptr()), static_cast<const T*>(k.data_ptr()), static_cast<const T*>(v.data_ptr()),
                       static_cast<T*>(o.data_ptr()), q.size(0) * q.size(1), q.size(2), k.size(2), head_dim, s, nullptr);
  });
  return o;
#else
  detail::kernels_not_compiled("attention");
#endif
}

}  // namespace genscope::cuda
