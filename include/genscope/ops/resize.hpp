// genscope/ops/resize.hpp — PIL's Image.resize for 8-bit images, bit for bit.
//
// torchvision's Resize on a PIL image calls img.resize((w, h), filter), so a model trained with
// it saw PIL's antialiased resampling, not a textbook bilinear/bicubic interpolation: when
// shrinking, PIL widens the filter by the scale factor (support = filter_support * scale), so
// every input pixel contributes. This file reproduces Pillow's libImaging/Resample.c exactly:
//
//   precompute_coeffs:  scale = in / out, filterscale = max(scale, 1),
//                       support = filter_support * filterscale, per output pixel xx:
//                       center = (xx + 0.5) * scale, xmin = max(int(center - support + 0.5), 0),
//                       xmax = min(int(center + support + 0.5), in) - xmin,
//                       w[x] = filter((x + xmin - center + 0.5) / filterscale), normalised to sum 1;
//   normalize_coeffs_8bpc: k = int(w * 2^22 +- 0.5) (rounded away from zero);
//   ImagingResampleHorizontal/Vertical_8bpc: acc = 2^21 + sum(pixel * k), out = clip(acc >> 22);
//   ImagingResampleInner: horizontal pass first (only if the width changes), into a u8 image of
//                       only the rows the vertical pass reads, then the vertical pass (only if
//                       the height changes). Each pass rounds to u8.
//
// The filters are Pillow's (bicubic with a = -0.5), evaluated with the same double-precision
// expressions. A compiler may fuse a * b + c into one FMA instruction when FMA is enabled (GCC's
// default -ffp-contract=fast with -march=haswell or later), which rounds once instead of twice;
// a coefficient moved by one unit of 2^-22 can change an output pixel. GCC 12 and clang 14 at
// -march=native happen not to change any coefficient today, but nothing guarantees that, so the
// products in the coefficient code go through no_contract(), which rounds each on its own, as
// Pillow's baseline x86-64 build does. (Only the per-size coefficients pay for it, not pixels.)
//
// Channels are resampled independently, which is exactly PIL for "L" and "RGB" images. (PIL
// premultiplies alpha for "RGBA"/"LA"; genscope's images are RGB, so that case does not arise.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <string_view>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"

namespace genscope {

// PIL's resampling filters (Image.Resampling); torchvision's InterpolationMode maps onto them.
enum class Interp : uint8_t { Box, Bilinear, Hamming, Bicubic, Lanczos };

inline std::string_view interp_name(Interp i) {
  switch (i) {
    case Interp::Box: return "box";
    case Interp::Bilinear: return "bilinear";
    case Interp::Hamming: return "hamming";
    case Interp::Bicubic: return "bicubic";
    case Interp::Lanczos: return "lanczos";
  }
  return "?";
}

inline std::optional<Interp> parse_interp(std::string_view name) {
  for (Interp i : {Interp::Box, Interp::Bilinear, Interp::Hamming, Interp::Bicubic, Interp::Lanczos})
    if (name == interp_name(i)) return i;
  return std::nullopt;
}

namespace detail::resample {

// Rounds x to a double on its own, so it cannot be fused into a following add (see above).
inline double no_contract(double x) {
  volatile double v = x;
  return v;
}

inline double support(Interp f) {
  switch (f) {
    case Interp::Box: return 0.5;
    case Interp::Bilinear: return 1.0;
    case Interp::Hamming: return 1.0;
    case Interp::Bicubic: return 2.0;
    case Interp::Lanczos: return 3.0;
  }
  return 1.0;
}

inline double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * std::numbers::pi;
  return std::sin(x) / x;
}

// Resample.c's box_filter, bilinear_filter, hamming_filter, bicubic_filter, lanczos_filter.
inline double filter(Interp f, double x) {
  switch (f) {
    case Interp::Box:
      return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0;
    case Interp::Bilinear:
      if (x < 0.0) x = -x;
      return x < 1.0 ? 1.0 - x : 0.0;
    case Interp::Hamming:
      if (x < 0.0) x = -x;
      if (x == 0.0) return 1.0;
      if (x >= 1.0) return 0.0;
      x = x * std::numbers::pi;
      // 0.54f and 0.46f are float literals in Pillow, widened to double.
      return std::sin(x) / x * (static_cast<double>(0.54f) + no_contract(static_cast<double>(0.46f) * std::cos(x)));
    case Interp::Bicubic: {
      constexpr double a = -0.5;
      if (x < 0.0) x = -x;
      if (x < 1.0) return no_contract((no_contract((a + 2.0) * x) - (a + 3.0)) * x * x) + 1;  // ((a+2)x - (a+3)) x x + 1
      if (x < 2.0) return (no_contract(no_contract(no_contract((x - 5) * x) + 8) * x) - 4) * a;  // (((x-5)x + 8)x - 4) a
      return 0.0;
    }
    case Interp::Lanczos:
      return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0;
  }
  return 0.0;
}

constexpr int kPrecisionBits = 32 - 8 - 2;  // Resample.c's PRECISION_BITS

// For each output index: the first input index and the number of taps, and ksize fixed-point
// weights (zero past the taps).
struct Coefficients {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

// precompute_coeffs(inSize, 0, inSize, outSize) + normalize_coeffs_8bpc.
inline Coefficients precompute(int in_size, int out_size, Interp f) {
  // box = (0, 0) + size as floats in Image.resize; (in1 - in0) is computed in float, exact here.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = no_contract(detail::resample::support(f) * filterscale);
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.weights.assign(static_cast<size_t>(out_size) * static_cast<size_t>(c.ksize), 0);
  std::vector<double> w(static_cast<size_t>(c.ksize));
  const double ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + no_contract((xx + 0.5) * scale);
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      // Pillow calls the filter through a pointer, so its argument is always a rounded double.
      const double v = filter(f, no_contract((static_cast<double>(x + xmin) - center + 0.5) * ss));
      w[static_cast<size_t>(x)] = v;
      ww += v;
    }
    int32_t* k = c.weights.data() + static_cast<size_t>(xx) * static_cast<size_t>(c.ksize);
    for (int x = 0; x < xmax; ++x) {
      double v = w[static_cast<size_t>(x)];
      if (ww != 0.0) v /= ww;
      const double scaled = v * (1 << kPrecisionBits);  // exact: a power of two
      k[x] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.first[static_cast<size_t>(xx)] = xmin;
    c.count[static_cast<size_t>(xx)] = xmax;
  }
  return c;
}

// Pillow's clip8: the accumulator >> 22 (an arithmetic shift), clamped to 0..255. Pillow sums in
// a 32-bit int; 64 bits give the same result wherever Pillow's sum does not overflow.
inline uint8_t clip8(int64_t acc) {
  return static_cast<uint8_t>(std::clamp<int64_t>(acc >> kPrecisionBits, 0, 255));
}

// ImagingResampleHorizontal_8bpc over rows [row0, row0 + rows) of `in` ([*, in_w, C]).
inline void horizontal(const uint8_t* in, int in_w, int channels, int row0, int rows, const Coefficients& c, uint8_t* out, int out_w) {
  const size_t in_stride = static_cast<size_t>(in_w) * static_cast<size_t>(channels);
  const size_t out_stride = static_cast<size_t>(out_w) * static_cast<size_t>(channels);
  parallel_for(0, rows, 4, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> acc(static_cast<size_t>(channels));
    for (int64_t yy = lo; yy < hi; ++yy) {
      const uint8_t* src = in + static_cast<size_t>(yy + row0) * in_stride;
      uint8_t* dst = out + static_cast<size_t>(yy) * out_stride;
      for (int xx = 0; xx < out_w; ++xx) {
        const int32_t* k = c.weights.data() + static_cast<size_t>(xx) * static_cast<size_t>(c.ksize);
        const uint8_t* p = src + static_cast<size_t>(c.first[static_cast<size_t>(xx)]) * static_cast<size_t>(channels);
        std::fill(acc.begin(), acc.end(), int64_t{1} << (kPrecisionBits - 1));
        for (int x = 0; x < c.count[static_cast<size_t>(xx)]; ++x)
          for (int ch = 0; ch < channels; ++ch) acc[static_cast<size_t>(ch)] += int64_t{p[x * channels + ch]} * k[x];
        for (int ch = 0; ch < channels; ++ch) dst[xx * channels + ch] = clip8(acc[static_cast<size_t>(ch)]);
      }
    }
  });
}

// ImagingResampleVertical_8bpc: output row yy reads input rows first[yy] - row_shift + 0..count.
inline void vertical(const uint8_t* in, int width, int channels, int row_shift, const Coefficients& c, uint8_t* out, int out_h) {
  const size_t stride = static_cast<size_t>(width) * static_cast<size_t>(channels);
  parallel_for(0, out_h, 4, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> acc(stride);
    for (int64_t yy = lo; yy < hi; ++yy) {
      const int32_t* k = c.weights.data() + static_cast<size_t>(yy) * static_cast<size_t>(c.ksize);
      const uint8_t* src = in + static_cast<size_t>(c.first[static_cast<size_t>(yy)] - row_shift) * stride;
      std::fill(acc.begin(), acc.end(), int64_t{1} << (kPrecisionBits - 1));
      for (int y = 0; y < c.count[static_cast<size_t>(yy)]; ++y) {
        const uint8_t* row = src + static_cast<size_t>(y) * stride;
        const int64_t ky = k[y];
        for (size_t i = 0; i < stride; ++i) acc[i] += int64_t{row[i]} * ky;
      }
      uint8_t* dst = out + static_cast<size_t>(yy) * stride;
      for (size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
    }
  });
}

}  // namespace detail::resample

// PIL's Image.resize((out_w, out_h), filter) of a U8 image [H, W, C] (or [H, W]), bit-exact.
// Same size returns a copy, as PIL does. UsageError for a non-positive size or a wrong tensor.
inline Tensor resize_pil(const Tensor& image, int out_h, int out_w, Interp interp) {
  namespace r = detail::resample;
  if (image.dtype() != DType::U8 || (image.dim() != 3 && image.dim() != 2))
    fail<UsageError>("resize_pil: expected a u8 image [H, W, C] or [H, W], got ", image.str());
  if (out_h < 1 || out_w < 1) fail<UsageError>("resize_pil: the output size must be positive, got ", out_h, " x ", out_w);
  const Tensor in = image.contiguous();
  const int in_h = static_cast<int>(in.size(0)), in_w = static_cast<int>(in.size(1));
  const int channels = in.dim() == 3 ? static_cast<int>(in.size(2)) : 1;
  if (in_h < 1 || in_w < 1 || channels < 1) fail<UsageError>("resize_pil: cannot resize an empty image ", image.str());
  Shape out_shape = in.shape();
  out_shape[0] = out_h;
  out_shape[1] = out_w;

  const bool need_horizontal = out_w != in_w;
  const bool need_vertical = out_h != in_h;
  if (!need_horizontal && !need_vertical) return in.clone();

  const r::Coefficients vert = r::precompute(in_h, out_h, interp);
  // Rows of the input the vertical pass reads: the horizontal pass computes only those.
  const int ybox_first = vert.first.front();
  const int ybox_last = vert.first.back() + vert.count.back();

  Tensor temp;  // the horizontally resampled rows [ybox_first, ybox_last), or the input
  const uint8_t* vin = in.data<uint8_t>();
  int row_shift = 0;
  if (need_horizontal) {
    const r::Coefficients horiz = r::precompute(in_w, out_w, interp);
    const int rows = need_vertical ? ybox_last - ybox_first : in_h;
    const int row0 = need_vertical ? ybox_first : 0;
    Shape temp_shape = out_shape;
    temp_shape[0] = rows;
    temp = Tensor::empty(temp_shape, DType::U8);
    r::horizontal(in.data<uint8_t>(), in_w, channels, row0, rows, horiz, temp.data<uint8_t>(), out_w);
    if (!need_vertical) return temp;
    vin = temp.data<uint8_t>();
    row_shift = ybox_first;
  }
  Tensor out = Tensor::empty(out_shape, DType::U8);
  r::vertical(vin, out_w, channels, row_shift, vert, out.data<uint8_t>(), out_h);
  return out;
}

}  // namespace genscope
