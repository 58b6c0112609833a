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
//       GELU (erf and tanh), quick-GELU and SiLU run vectorisable forms (exp_f32, Numerical
//       Recipes' erfc) within 2e-7 absolute (relative for |x| > 1) of the scalar functions above
//   Tensor geglu(projected, approximate=false) projected [..., 2n] -> [..., n]: the FIRST half is
//       the value, the SECOND half the gate (diffusers/models/activations.py, GEGLU.forward:
//       `hidden_states, gate = hidden_states.chunk(2, dim=-1); return hidden_states * self.gelu(gate)`).
//       The projection itself is a Linear, run with ops::gemm by the caller.
#pragma once

#include <algorithm>
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

// GELU (erf) for the tensor path and the GEMM epilogue, in a form the compiler vectorises.
// GELU(x) = x/2 · erfc(−x/√2), so with a = |x|/√2:  x ≥ 0: x/2 · (2 − erfc(a)),  x < 0: x/2 · erfc(a).
// erfc(a) for a ≥ 0 is Numerical Recipes' erfcc (Press et al., "Numerical Recipes in C", 2nd ed.,
// §6.2: a Chebyshev fit, erfc(a) = t·exp(−a² + P(t)), t = 1/(1 + a/2), fractional error < 1.2e-7
// for every a ≥ 0). Taking erfc for both signs avoids 1 + erf's cancellation in the negative tail,
// so unlike Abramowitz & Stegun 7.1.26 (1.5e-7 ABSOLUTE error in erf, i.e. relative error up to
// 1e-2 in the tail; what PyTorch's Vectorized<float>::erf uses) the result is accurate RELATIVE to
// GELU(x) itself. Measured against erfc in double: ≤ 4e-7 relative for |x| < 4, ≤ 4e-6 for
// |x| < 7 (there f32 rounding of a² inside the exp dominates, at |GELU| < 1e-10), and within
// 1.5e-7·max(1, |x|) of gelu_erf (libm) everywhere. gelu_erf512 below is the same on 16 lanes.
inline float gelu_erf_vectorizable(float x) {
  const float a = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * a);
  float p = 0.17087277f;  // P(t), Horner, highest degree first
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float erfc_a = t * exp_f32(p - a * a);
  return 0.5f * x * (x >= 0.0f ? 2.0f - erfc_a : erfc_a);
}

// GELU (tanh) for the tensor path: 0.5·(1 + tanh(u)) = σ(2u) exactly, so x/2·(1 + tanh(u)) =
// x / (1 + e^{−2u}), u = √(2/π)(x + 0.044715x³) — one exp_f32, no cancellation near tanh = −1.
inline float gelu_tanh_vectorizable(float x) {
  constexpr float kBeta = 0.79788456080286536f;  // √(2/π)
  return x / (1.0f + exp_f32(-2.0f * kBeta * (x + 0.044715f * x * x * x)));
}

#if defined(__AVX512F__)
// The vectorisable activations above on 16 AVX-512 lanes (the GEMM epilogue runs them on the C
// tile the micro-kernel has just written). Each is the same formula as its scalar beside it.
inline __m512 gelu_erf512(__m512 x) {  // gelu_erf_vectorizable
  const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  const __m512 a = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(half, a, one));
  __m512 p = _mm512_set1_ps(0.17087277f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
  const __m512 erfc_a = _mm512_mul_ps(t, exp512(_mm512_fnmadd_ps(a, a, p)));
  const __mmask16 nonneg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  const __m512 f = _mm512_mask_sub_ps(erfc_a, nonneg, _mm512_set1_ps(2.0f), erfc_a);
  return _mm512_mul_ps(_mm512_mul_ps(half, x), f);
}

// x / (1 + e^{−k·x}): SiLU (k = 1), quick-GELU (k = 1.702).
inline __m512 x_sigmoid512(__m512 x, float k) {
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_mul_ps(_mm512_set1_ps(-k), x))));
}

inline __m512 gelu_tanh512(__m512 x) {  // gelu_tanh_vectorizable
  const __m512 u = _mm512_mul_ps(_mm512_set1_ps(-2.0f * 0.79788456080286536f),
                                 _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), x), _mm512_mul_ps(x, x), x));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(u)));
}

inline __m512 activate512(Activation a, __m512 x) {
  switch (a) {
    case Activation::None: return x;
    case Activation::Relu: return _mm512_maskz_max_ps(0xFFFF, x, _mm512_setzero_ps());  // NaN → 0, as relu()
    case Activation::Gelu: return gelu_erf512(x);
    case Activation::GeluTanh: return gelu_tanh512(x);
    case Activation::QuickGelu: return x_sigmoid512(x, 1.702f);
    case Activation::Silu: return x_sigmoid512(x, 1.0f);
  }
  return x;
}
#endif

// ---- tensor level --------------------------------------------------------------------------------

inline Tensor activate(const Tensor& x, Activation a) {
#if defined(__AVX512F__)
  // Contiguous f32: the 16-lane forms over the flat buffer (the same formulas as the map() lambdas
  // below, which GCC vectorises only 8 lanes wide and without exp512's vscalefps).
  if (x.dtype() == DType::F32 && x.device() == Device::CPU && x.is_contiguous() && a != Activation::None) {
    Tensor out = Tensor::empty(x.shape(), DType::F32);
    const float* p = x.data<float>();
    float* o = out.data<float>();
    const int64_t n = x.numel();
    parallel_for(0, (n + 15) / 16, 1024, [&](int64_t v0, int64_t v1) {
      for (int64_t j = v0 * 16; j < std::min(n, v1 * 16); j += 16) {
        const auto k = n - j >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - j)) - 1);
        _mm512_mask_storeu_ps(o + j, k, activate512(a, _mm512_maskz_loadu_ps(k, p + j)));
      }
    });
    return out;
  }
#endif
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
