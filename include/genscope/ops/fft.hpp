// genscope/ops/fft.hpp — 1-D and 2-D discrete Fourier transforms of any size (CPU).
//
// Complex tensors are stored as torch.view_as_real stores them: a trailing dim of 2 holding
// (real, imaginary), so a complex [H, W] image is an f32 tensor [H, W, 2].
//
//   Tensor fft2(x)        x [..., H, W, 2] → [..., H, W, 2]: torch.fft.fft2 over the last two
//                         complex dims, X[u,v] = Σ x[h,w]·e^{−2πi(uh/H + vw/W)}, unnormalised
//   Tensor ifft2(x)       the inverse, scaled by 1/(H·W) (torch's default norm="backward")
//   Tensor fft2_real(x)   x real [..., H, W] → [..., H, W, 2]: torch.fft.fft2 of a real tensor
//                         (the full spectrum, not rfft2's half)
//   Tensor fftshift(x, dims), ifftshift(x, dims)
//                         torch.fft.fftshift / ifftshift: roll each dim in `dims` by n/2 (resp.
//                         −(n/2)) so the zero frequency moves to the centre and back. Any dtype;
//                         for a complex [..., H, W, 2] tensor pass dims {-3, -2}.
//   class FftPlan         one length n: transform(data, sign, workspace) on contiguous
//                         std::complex<double>, unnormalised, sign −1 forward / +1 inverse
//
// Algorithm: mixed-radix decimation in time (Cooley–Tukey; the recursion of KISS FFT's
// kf_work), radix 4 and 2 with their butterflies written out, any other prime p ≤ 31 by the
// O(p²) DFT butterfly (so 224 = 4·4·2·7 stays fast). A length with a prime factor > 31 goes
// through Bluestein's chirp-z algorithm (Bluestein 1970): with w_k = e^{−iπk²/n},
// X_k = w_k · Σ_j (x_j w_j) · conj(w_{k−j}), a convolution done by power-of-two FFTs of size
// M ≥ 2n − 1. Everything runs in double with twiddles from sin/cos of exact k/n (k² reduced
// mod 2n in integers for the chirp), so the f32 result is the correctly rounded DFT up to ~1e-15.
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <numbers>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/elementwise.hpp"

namespace genscope::ops {

using cdouble = std::complex<double>;

// a·b without the C99 Annex G Inf/NaN recovery that std::complex's operator* calls out for
// (__muldc3 in GCC without -ffast-math): the data here is finite, and this is 4 mul + 2 add.
inline cdouble cmul(cdouble a, cdouble b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

class FftPlan {
 public:
  static constexpr int64_t kMaxDirectRadix = 31;

  // Scratch a transform needs; one per thread, reused across calls.
  struct Workspace {
    std::vector<cdouble> copy, chirp, radix;
    std::unique_ptr<Workspace> inner;  // for Bluestein's inner plan
  };

  explicit FftPlan(int64_t n) : n_(n) {
    if (n < 1) fail<UsageError>("FftPlan: length ", n, " must be positive");
    int64_t rest = n;
    for (int64_t p : {int64_t{4}, int64_t{2}, int64_t{3}, int64_t{5}})
      while (rest % p == 0) factors_.push_back(p), rest /= p;
    for (int64_t p = 7; p <= kMaxDirectRadix && rest > 1; p += 2)
      while (rest % p == 0) factors_.push_back(p), rest /= p;
    if (rest > 1) {
      setup_bluestein();
      return;
    }
    if (factors_.empty()) factors_.push_back(1);  // n = 1
    twiddles_ = make_twiddles(n_);
  }

  int64_t size() const { return n_; }
  bool uses_bluestein() const { return inner_ != nullptr; }

  // data[k] ← Σ_j data[j]·e^{sign·2πi·jk/n}, in place; sign = −1 forward, +1 inverse (unscaled).
  void transform(cdouble* data, int sign, Workspace& ws) const {
    if (n_ == 1) return;
    // The forward butterflies are written for sign −1; the inverse is conj(F(conj(x))).
    if (sign > 0)
      for (int64_t i = 0; i < n_; ++i) data[i] = std::conj(data[i]);
    if (inner_) bluestein(data, ws);
    else {
      ws.copy.assign(data, data + n_);
      work(data, ws.copy.data(), 1, 0, ws);
    }
    if (sign > 0)
      for (int64_t i = 0; i < n_; ++i) data[i] = std::conj(data[i]);
  }

 private:
  static std::vector<cdouble> make_twiddles(int64_t n) {
    std::vector<cdouble> tw(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const double phase = -2.0 * std::numbers::pi * static_cast<double>(i) / static_cast<double>(n);
      tw[static_cast<size_t>(i)] = {std::cos(phase), std::sin(phase)};
    }
    return tw;
  }

  // Decimation in time: out[q·m .. q·m+m) ← the length-m DFT of every p-th input starting at q
  // (recursively), then one radix-p butterfly pass combines them. `stride` is the input step.
  void work(cdouble* out, const cdouble* in, int64_t stride, size_t level, Workspace& ws) const {
    const int64_t p = factors_[level];
    int64_t m = n_;
    for (size_t i = 0; i <= level; ++i) m /= factors_[i];
    if (m == 1) {
      for (int64_t q = 0; q < p; ++q) out[q] = in[q * stride];
    } else {
      for (int64_t q = 0; q < p; ++q) work(out + q * m, in + q * stride, stride * p, level + 1, ws);
    }
    // Twiddle step for this level: e^{−2πi·k/(p·m)} = twiddles_[k·stride] (n = stride·p·m).
    switch (p) {
      case 1: break;
      case 2: butterfly2(out, stride, m); break;
      case 4: butterfly4(out, stride, m); break;
      default: butterfly_generic(out, stride, m, p, ws); break;
    }
  }

  void butterfly2(cdouble* f, int64_t fstride, int64_t m) const {
    for (int64_t k = 0; k < m; ++k) {
      const cdouble t = cmul(f[k + m], twiddles_[static_cast<size_t>(k * fstride)]);
      f[k + m] = f[k] - t;
      f[k] += t;
    }
  }

  // X0 = a0+a1+a2+a3, X1 = a0−i·a1−a2+i·a3, X2 = a0−a1+a2−a3, X3 = a0+i·a1−a2−i·a3 (twiddled a's).
  void butterfly4(cdouble* f, int64_t fstride, int64_t m) const {
    for (int64_t k = 0; k < m; ++k) {
      const cdouble a0 = f[k];
      const cdouble a1 = cmul(f[k + m], twiddles_[static_cast<size_t>(k * fstride)]);
      const cdouble a2 = cmul(f[k + 2 * m], twiddles_[static_cast<size_t>(2 * k * fstride)]);
      const cdouble a3 = cmul(f[k + 3 * m], twiddles_[static_cast<size_t>(3 * k * fstride)]);
      const cdouble even = a0 + a2, odd = a0 - a2, sum13 = a1 + a3, diff13 = a1 - a3;
      const cdouble minus_i_diff{diff13.imag(), -diff13.real()};  // −i·(a1 − a3)
      f[k] = even + sum13;
      f[k + 2 * m] = even - sum13;
      f[k + m] = odd + minus_i_diff;
      f[k + 3 * m] = odd - minus_i_diff;
    }
  }

  // Any radix p: X_{k + q1·m} = Σ_q f[k + q·m] · e^{−2πi·q(k + q1·m)/(p·m)}, O(p²) per k.
  void butterfly_generic(cdouble* f, int64_t fstride, int64_t m, int64_t p, Workspace& ws) const {
    ws.radix.resize(static_cast<size_t>(p));
    for (int64_t k = 0; k < m; ++k) {
      for (int64_t q = 0; q < p; ++q) ws.radix[static_cast<size_t>(q)] = f[k + q * m];
      for (int64_t q1 = 0; q1 < p; ++q1) {
        const int64_t out_index = k + q1 * m;
        cdouble acc = ws.radix[0];
        for (int64_t q = 1; q < p; ++q)
          acc += cmul(ws.radix[static_cast<size_t>(q)], twiddles_[static_cast<size_t>((q * out_index * fstride) % n_)]);
        f[out_index] = acc;
      }
    }
  }

  void setup_bluestein() {
    factors_.clear();
    int64_t m = 1;
    while (m < 2 * n_ - 1) m *= 2;
    inner_ = std::make_unique<FftPlan>(m);
    chirp_.resize(static_cast<size_t>(n_));
    for (int64_t k = 0; k < n_; ++k) {
      const int64_t k2 = (k * k) % (2 * n_);  // e^{−iπk²/n} has period 2n in k²
      const double phase = -std::numbers::pi * static_cast<double>(k2) / static_cast<double>(n_);
      chirp_[static_cast<size_t>(k)] = {std::cos(phase), std::sin(phase)};
    }
    // The filter conj(w_{|j|}) laid out circularly for lags −(n−1)..(n−1), transformed once.
    filter_.assign(static_cast<size_t>(m), cdouble{});
    for (int64_t k = 0; k < n_; ++k) {
      filter_[static_cast<size_t>(k)] = std::conj(chirp_[static_cast<size_t>(k)]);
      if (k) filter_[static_cast<size_t>(m - k)] = std::conj(chirp_[static_cast<size_t>(k)]);
    }
    Workspace ws;
    inner_->transform(filter_.data(), -1, ws);
  }

  void bluestein(cdouble* data, Workspace& ws) const {
    const int64_t m = inner_->size();
    ws.chirp.assign(static_cast<size_t>(m), cdouble{});
    for (int64_t k = 0; k < n_; ++k) ws.chirp[static_cast<size_t>(k)] = cmul(data[k], chirp_[static_cast<size_t>(k)]);
    if (!ws.inner) ws.inner = std::make_unique<Workspace>();
    inner_->transform(ws.chirp.data(), -1, *ws.inner);
    for (int64_t k = 0; k < m; ++k) ws.chirp[static_cast<size_t>(k)] = cmul(ws.chirp[static_cast<size_t>(k)], filter_[static_cast<size_t>(k)]);
    inner_->transform(ws.chirp.data(), +1, *ws.inner);
    const double inv_m = 1.0 / static_cast<double>(m);
    for (int64_t k = 0; k < n_; ++k) data[k] = cmul(chirp_[static_cast<size_t>(k)], ws.chirp[static_cast<size_t>(k)]) * inv_m;
  }

  int64_t n_;
  std::vector<int64_t> factors_;
  std::vector<cdouble> twiddles_;
  std::unique_ptr<FftPlan> inner_;  // Bluestein's power-of-two plan, or null
  std::vector<cdouble> chirp_, filter_;
};

namespace detail {

// The 2-D transform of `images` H×W complex planes stored contiguously in buf, in place: every
// row, then every column. Columns are gathered kColumnBlock at a time (adjacent columns share
// cache lines) into contiguous scratch lines, transformed, and scattered back.
inline void fft2_planes(cdouble* buf, int64_t images, int64_t h, int64_t w, int sign) {
  constexpr int64_t kColumnBlock = 8;
  const FftPlan row_plan(w), col_plan(h);
  parallel_for(0, images * h, std::max<int64_t>(1, 4096 / std::max<int64_t>(w, 1)), [&](int64_t r0, int64_t r1) {
    FftPlan::Workspace ws;
    for (int64_t r = r0; r < r1; ++r) row_plan.transform(buf + r * w, sign, ws);
  });
  const int64_t blocks_per_image = (w + kColumnBlock - 1) / kColumnBlock;
  parallel_for(0, images * blocks_per_image, 1, [&](int64_t b0, int64_t b1) {
    FftPlan::Workspace ws;
    std::vector<cdouble> lines(static_cast<size_t>(kColumnBlock * h));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t c0 = (blk % blocks_per_image) * kColumnBlock, nc = std::min(kColumnBlock, w - c0);
      cdouble* base = buf + (blk / blocks_per_image) * h * w + c0;
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < nc; ++j) lines[static_cast<size_t>(j * h + i)] = base[i * w + j];
      for (int64_t j = 0; j < nc; ++j) col_plan.transform(lines.data() + j * h, sign, ws);
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < nc; ++j) base[i * w + j] = lines[static_cast<size_t>(j * h + i)];
    }
  });
}

// x real [..., H, W] (complex_input false) or complex [..., H, W, 2] → the transform as f32.
inline Tensor fft2_impl(const Tensor& x, bool complex_input, int sign, const char* op) {
  require_float(x, op, "x");
  const int spatial = complex_input ? x.dim() - 3 : x.dim() - 2;  // index of H
  if (spatial < 0 || (complex_input && x.size(-1) != 2))
    fail<ShapeError>(op, ": x is ", x.str(), complex_input ? "; expected [..., H, W, 2] (real, imaginary)" : "; expected [..., H, W]");
  const int64_t h = x.size(spatial), w = x.size(spatial + 1);
  Shape out_shape = x.shape();
  if (!complex_input) out_shape.push_back(2);
  Tensor out = Tensor::empty(out_shape, DType::F32);
  if (out.numel() == 0) return out;
  const int64_t images = out.numel() / (h * w * 2);
  // Gather the input as complex double (any strides, f32/f16/bf16).
  std::vector<cdouble> buf(static_cast<size_t>(images * h * w));
  const Tensor xc = x.contiguous();
  visit_float(xc.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(xc.data_ptr());
    for (size_t i = 0; i < buf.size(); ++i)
      buf[i] = complex_input ? cdouble{load_float(p[2 * i]), load_float(p[2 * i + 1])} : cdouble{load_float(p[i]), 0.0};
  });
  fft2_planes(buf.data(), images, h, w, sign);
  const double scale = sign > 0 ? 1.0 / static_cast<double>(h * w) : 1.0;
  float* o = out.data<float>();
  for (size_t i = 0; i < buf.size(); ++i) {
    o[2 * i] = static_cast<float>(buf[i].real() * scale);
    o[2 * i + 1] = static_cast<float>(buf[i].imag() * scale);
  }
  return out;
}

// torch.roll of one dim: out[i] = x[(i − shift) mod n].
inline Tensor roll(const Tensor& x, int dim, int64_t shift) {
  const int64_t n = x.size(dim);
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (n == 0 || out.numel() == 0) return out;
  shift = ((shift % n) + n) % n;
  if (shift) out.slice(dim, 0, shift).copy_from(x.slice(dim, n - shift, n));
  out.slice(dim, shift, n).copy_from(x.slice(dim, 0, n - shift));
  return out;
}

inline Tensor shift_dims(const Tensor& x, std::initializer_list<int> dims, bool inverse, const char* op) {
  if (!x.defined()) fail<UsageError>(op, ": x is an undefined tensor");
  Tensor out = x;
  bool copied = false;
  for (int d : dims) {
    if (d < -x.dim() || d >= x.dim()) fail<UsageError>(op, ": dim ", d, " is out of range for ", x.str());
    const int64_t half = x.size(d) / 2;
    out = roll(out, d, inverse ? -half : half);
    copied = true;
  }
  return copied ? out : x.clone();
}

}  // namespace detail

inline Tensor fft2(const Tensor& x) { return detail::fft2_impl(x, true, -1, "fft2"); }
inline Tensor ifft2(const Tensor& x) { return detail::fft2_impl(x, true, +1, "ifft2"); }
inline Tensor fft2_real(const Tensor& x) { return detail::fft2_impl(x, false, -1, "fft2_real"); }

inline Tensor fftshift(const Tensor& x, std::initializer_list<int> dims) { return detail::shift_dims(x, dims, false, "fftshift"); }
inline Tensor ifftshift(const Tensor& x, std::initializer_list<int> dims) { return detail::shift_dims(x, dims, true, "ifftshift"); }

}  // namespace genscope::ops
