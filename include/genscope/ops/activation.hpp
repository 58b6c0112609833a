// genscope/ops/activation.hpp — pointwise activations, as scalar functions every path shares
// (GEMM epilogues, fused norms, elementwise ops, the CUDA kernels' CPU references).
//
// Definitions follow PyTorch exactly:
//   GELU (erf)      x/2 · (1 + erf(x/√2))                          torch.nn.GELU()
//   GELU (tanh)     x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))   torch.nn.GELU(approximate='tanh')
//   quick-GELU      x · σ(1.702 x)                                  CLIP (OpenAI)
//   SiLU            x · σ(x)                                        torch.nn.SiLU
//   GEGLU           a · GELU(gate), [a, gate] = proj(x).chunk(2, -1) diffusers' GEGLU
//
// Tensor level (any strides, f32/f16/bf16 in, contiguous f32 out):
//   Tensor activate(x, Activation)            gelu(x), gelu_tanh(x), quick_gelu(x), silu(x), relu(x);
//       GELU (erf and tanh), quick-GELU and SiLU run vectorisable forms (exp_f32, A&S erf) within
//       2e-7 absolute (relative for |x| > 1) of the scalar functions above
//   Tensor geglu(projected, approximate=false) projected [..., 2n] -> [..., n]: the FIRST half is
//       the value, the SECOND half the gate (diffusers/models/activations.py, GEGLU.forward:
//       `hidden_states, gate = hidden_states.chunk(2, dim=-1); return hidden_states * self.gelu(gate)`).
//       The projection itself is a Linear, run with ops::gemm by the caller.
#pragma once

#include <cmath>
#include <string_view>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/ops/elementwise.hpp"

namespace genscope::ops {

enum class Activation { None, Relu, Gelu, GeluTanh, QuickGelu, Silu };

inline float relu(float x) { return x > 0.0f ? x : 0.0f; }
inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
inline float gelu_tanh(float x) {
  constexpr float kBeta = 0.79788456080286536f;  // √(2/π)
  return 0.5f * x * (1.0f + std::tanh(kBeta * (x + 0.044715f * x * x * x)));
}
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float quick_gelu(float x) { return x * sigmoid(1.702f * x); }
inline float silu(float x) { return x * sigmoid(x); }

inline float apply_activation(Activation a, float x) {
  switch (a) {
    case Activation::None: return x;
    case Activation::Relu: return relu(x);
    case Activation::Gelu: return gelu_erf(x);
    case Activation::GeluTanh: return gelu_tanh(x);
    case Activation::QuickGelu: return quick_gelu(x);
    case Activation::Silu: return silu(x);
  }
  return x;
}

inline std::string_view activation_name(Activation a) {
  switch (a) {
    case Activation::None: return "none";
    case Activation::Relu: return "relu";
    case Activation::Gelu: return "gelu";
    case Activation::GeluTanh: return "gelu_tanh";
    case Activation::QuickGelu: return "quick_gelu";
    case Activation::Silu: return "silu";
  }
  return "?";
}

// GELU (erf) for the tensor path, in a form the compiler vectorises: 1 + erf(z) from Abramowitz &
// Stegun 7.1.26, erfc(|z|) ≈ t·(a1 + a2 t + … + a5 t⁴)·e^{−z²}, t = 1/(1 + p|z|), absolute error
// ≤ 1.5e-7 — the same approximation PyTorch's vectorised CPU GELU uses (Vectorized<float>::erf).
// Taking erfc directly for z < 0 also avoids 1 + erf's cancellation in the negative tail.
inline float gelu_erf_vectorizable(float x) {
  const float z = x * 0.70710678118654752f, az = std::fabs(z);
  const float t = 1.0f / (1.0f + 0.3275911f * az);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float erfc_az = poly * exp_f32(-az * az);
  return 0.5f * x * (z >= 0.0f ? 2.0f - erfc_az : erfc_az);
}

// GELU (tanh) for the tensor path: 0.5·(1 + tanh(u)) = σ(2u) exactly, so x/2·(1 + tanh(u)) =
// x / (1 + e^{−2u}), u = √(2/π)(x + 0.044715x³) — one exp_f32, no cancellation near tanh = −1.
inline float gelu_tanh_vectorizable(float x) {
  constexpr float kBeta = 0.79788456080286536f;  // √(2/π)
  return x / (1.0f + exp_f32(-2.0f * kBeta * (x + 0.044715f * x * x * x)));
}

// ---- tensor level --------------------------------------------------------------------------------

inline Tensor activate(const Tensor& x, Activation a) {
  switch (a) {
    case Activation::None: return map(x, [](float v) { return v; }, "activate(none)");
    case Activation::Relu: return map(x, [](float v) { return relu(v); }, "relu");
    case Activation::Gelu: return map(x, [](float v) { return gelu_erf_vectorizable(v); }, "gelu");
    case Activation::GeluTanh: return map(x, [](float v) { return gelu_tanh_vectorizable(v); }, "gelu_tanh");
    // GELU and the sigmoid-based ones with exp_f32 so the loop vectorises; same definitions as the
    // scalars above (which the GEMM epilogue uses), within 2e-7 of them.
    case Activation::QuickGelu: return map(x, [](float v) { return v / (1.0f + exp_f32(-1.702f * v)); }, "quick_gelu");
    case Activation::Silu: return map(x, [](float v) { return v / (1.0f + exp_f32(-v)); }, "silu");
  }
  return map(x, [](float v) { return v; });
}

inline Tensor relu(const Tensor& x) { return activate(x, Activation::Relu); }
inline Tensor gelu(const Tensor& x) { return activate(x, Activation::Gelu); }
inline Tensor gelu_tanh(const Tensor& x) { return activate(x, Activation::GeluTanh); }
inline Tensor quick_gelu(const Tensor& x) { return activate(x, Activation::QuickGelu); }
inline Tensor silu(const Tensor& x) { return activate(x, Activation::Silu); }

// GEGLU on an already projected tensor: out[..., j] = p[..., j] · GELU(p[..., n + j]).
inline Tensor geglu(const Tensor& projected, bool approximate_tanh = false) {
  require_float(projected, "geglu", "projected");
  if (projected.dim() == 0 || projected.size(-1) % 2 != 0)
    fail<ShapeError>("geglu: projected is ", projected.str(), "; its last dim must be even (value and gate halves)");
  const int64_t n = projected.size(-1) / 2;
  const Tensor value = projected.slice(-1, 0, n), gate = projected.slice(-1, n, 2 * n);
  const Tensor g = activate(gate, approximate_tanh ? Activation::GeluTanh : Activation::Gelu);
  return mul(value, g);
}

}  // namespace genscope::ops
