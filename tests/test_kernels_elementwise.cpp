// Emulated tests of kernels/elementwise.cuh and kernels/fft.cuh (label simt). References:
// genscope's CPU activations (ops/activation.hpp), the arithmetic itself in double for binary ops
// and casts (core/half.hpp rounding), numpy.fft.fftshift's definition as a roll, and the radial
// frequency written out in double. Error rules: tests/simt/check.hpp.
#include "simt/check.hpp"  // first: the SIMT emulator (or, under nvcc, the CUDA runtime)

#include "genscope/ops/activation.hpp"
#include "kernels/elementwise.cuh"
#include "kernels/fft.cuh"

using namespace genscope;
using namespace simt_test;
using kernels::Activation;

namespace {

constexpr Activation kActivations[] = {Activation::None, Activation::Relu, Activation::Gelu, Activation::GeluTanh,
                                       Activation::QuickGelu, Activation::Silu};

// Sizes that leave a partial last warp and block: 1 element, odd sizes, one block and a bit.
constexpr int64_t kSizes[] = {1, 31, 257, 1000};

template <class T>
void check_activation_in_dtype(Activation act, int64_t n) {
  const auto x = rounded<T>(random_normal(n, 11, 3.0f));
  const auto xs = to_storage<T>(x);
  Vec<T> y(n);
  kernels::activation(act, xs.data(), y.data(), n, nullptr);
  Vec<double> ref(n), ref_rounded(n);
  for (int64_t i = 0; i < n; ++i) {
    ref[i] = ops::apply_activation(act, x[i]);
    ref_rounded[i] = round_to<T>(ref[i]);
  }
  check_dtype_rule(max_abs_error(to_floats(y), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
}

// out[b][i][j] = in[b][(i − s_h) mod H][(j − s_w) mod W]: numpy.roll by (s_h, s_w).
Vec<float> roll(const Vec<float>& in, int batch, int h, int w, int shift_h, int shift_w) {
  Vec<float> out(in.size());
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j)
        out[(b * h + (i + shift_h) % h) * w + (j + shift_w) % w] = in[(b * h + i) * w + j];
  return out;
}

}  // namespace

TEST_SUITE("kernels_elementwise") {

TEST_CASE("f32 activations match genscope's CPU activations") {
  for (Activation act : kActivations)
    for (int64_t n : kSizes) {
      INFO(ops::activation_name(act) << " n=" << n);
      const auto x = random_normal(n, 7, 4.0f);
      Vec<float> y(n);
      kernels::activation(act, x.data(), y.data(), n, nullptr);
      Vec<float> ref(n);
      for (int64_t i = 0; i < n; ++i) ref[i] = ops::apply_activation(act, x[i]);
      CHECK(relative_error(y, ref) <= 1e-5);
    }
}

TEST_CASE("f16 activations are within twice the error of f16-rounded results") {
  for (Activation act : kActivations) {
    INFO(ops::activation_name(act));
    check_activation_in_dtype<f16>(act, 1000);
  }
}

TEST_CASE("bf16 activations are within twice the error of bf16-rounded results") {
  for (Activation act : kActivations) {
    INFO(ops::activation_name(act));
    check_activation_in_dtype<bf16>(act, 1000);
  }
}

TEST_CASE("a grid-stride loop covers more elements than the grid has threads") {
  const int64_t n = 4096 * 256 + 77;  // one more wave than the 4096-block cap
  Vec<float> x(n, -2.0f), y(n, 0.0f);
  kernels::activation(Activation::Relu, x.data(), y.data(), n, nullptr);
  CHECK(std::all_of(y.begin(), y.end(), [](float v) { return v == 0.0f; }));
  Vec<float> ones(n, 1.0f);
  kernels::binary(kernels::BinaryOp::Add, ones.data(), ones.data(), y.data(), n, n, nullptr);
  CHECK(std::all_of(y.begin(), y.end(), [](float v) { return v == 2.0f; }));
}

TEST_CASE("binary ops with a same-shape operand compute a op b exactly in f32") {
  for_each_order([] {
    for (int64_t n : kSizes) {
      const auto a = random_normal(n, 1), b = random_uniform(n, 2, 0.5f, 2.0f);
      Vec<float> y(n);
      using kernels::BinaryOp;
      for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div}) {
        kernels::binary(op, a.data(), b.data(), y.data(), n, n, nullptr);
        for (int64_t i = 0; i < n; ++i) {
          const float expected = op == BinaryOp::Add ? a[i] + b[i] : op == BinaryOp::Sub ? a[i] - b[i] : op == BinaryOp::Mul ? a[i] * b[i] : a[i] / b[i];
          REQUIRE(y[i] == expected);  // one IEEE operation: exact
        }
      }
    }
  });
}

TEST_CASE("a binary op broadcasts a per-column operand over the rows") {
  const int64_t rows = 7, cols = 33;
  const auto a = random_normal(rows * cols, 3), bias = random_normal(cols, 4);
  Vec<float> y(rows * cols);
  kernels::binary(kernels::BinaryOp::Add, a.data(), bias.data(), y.data(), rows * cols, cols, nullptr);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) REQUIRE(y[r * cols + c] == a[r * cols + c] + bias[c]);
}

TEST_CASE("a binary op whose period does not divide the size is refused") {
  Vec<float> a(10), b(3), y(10);
  CHECK_THROWS_AS(kernels::binary(kernels::BinaryOp::Add, a.data(), b.data(), y.data(), 10, 3, nullptr), ShapeError);
}

TEST_CASE("bf16 binary ops are within twice the error of bf16-rounded results") {
  const int64_t n = 999;
  const auto a = rounded<bf16>(random_normal(n, 5)), b = rounded<bf16>(random_normal(n, 6));
  const auto as = to_storage<bf16>(a), bs = to_storage<bf16>(b);
  Vec<bf16> y(n);
  kernels::binary(kernels::BinaryOp::Mul, as.data(), bs.data(), y.data(), n, n, nullptr);
  Vec<double> ref(n), ref_rounded(n);
  for (int64_t i = 0; i < n; ++i) {
    ref[i] = static_cast<double>(a[i]) * b[i];
    ref_rounded[i] = round_to<bf16>(ref[i]);
  }
  check_dtype_rule(max_abs_error(to_floats(y), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
}

TEST_CASE("casts round f32 to f16 and bf16 to nearest even, and widen exactly") {
  const int64_t n = 513;
  const auto x = random_normal(n, 8, 100.0f);
  Vec<f16> h(n);
  Vec<bf16> b(n);
  Vec<float> back(n);
  kernels::cast(x.data(), h.data(), n, nullptr);
  kernels::cast(x.data(), b.data(), n, nullptr);
  for (int64_t i = 0; i < n; ++i) {
    REQUIRE(h[i].bits == f32_to_f16(x[i]));
    REQUIRE(b[i].bits == f32_to_bf16(x[i]));
  }
  kernels::cast(h.data(), back.data(), n, nullptr);
  for (int64_t i = 0; i < n; ++i) REQUIRE(back[i] == f16_to_f32(h[i].bits));
}

TEST_CASE("fftshift2d rolls each plane by half its size, odd sizes included") {
  for_each_order([] {
    for (auto [h, w] : {std::pair{1, 1}, std::pair{4, 6}, std::pair{5, 7}, std::pair{33, 16}}) {
      const int batch = 3;
      const auto x = random_normal(batch * h * w, 9);
      Vec<float> y(x.size());
      kernels::fftshift2d(x.data(), y.data(), batch, h, w, false, nullptr);
      CHECK(y == roll(x, batch, h, w, h / 2, w / 2));
    }
  });
}

TEST_CASE("ifftshift2d undoes fftshift2d for odd and even sizes") {
  for (auto [h, w] : {std::pair{5, 7}, std::pair{8, 9}}) {
    const auto x = random_normal(2 * h * w, 10);
    Vec<float> shifted(x.size()), back(x.size());
    kernels::fftshift2d(x.data(), shifted.data(), 2, h, w, false, nullptr);
    kernels::fftshift2d(shifted.data(), back.data(), 2, h, w, true, nullptr);
    CHECK(back == x);
  }
}

TEST_CASE("fftshift2d moves complex values as pairs") {
  const int h = 3, w = 5;
  Vec<float2> x(h * w), y(h * w);
  for (int i = 0; i < h * w; ++i) x[i] = make_float2(static_cast<float>(i), static_cast<float>(-i));
  kernels::fftshift2d(x.data(), y.data(), 1, h, w, false, nullptr);
  // The zero frequency (0, 0) lands at the centre (⌊H/2⌋, ⌊W/2⌋).
  CHECK(y[1 * w + 2].x == 0.0f);
  for (int i = 0; i < h * w; ++i) CHECK(y[i].y == -y[i].x);
}

TEST_CASE("the radial mask keeps exactly the band r_low <= r < r_high, or its complement") {
  const int h = 17, w = 24, batch = 2;
  for (bool invert : {false, true}) {
    Vec<float2> spec(batch * h * w, make_float2(1.0f, 2.0f));
    kernels::radial_mask(spec.data(), batch, h, w, 0.1f, 0.3f, invert, nullptr);
    for (int b = 0; b < batch; ++b)
      for (int i = 0; i < h; ++i)
        for (int j = 0; j < w; ++j) {
          const double u = (i - h / 2) / double(h), v = (j - w / 2) / double(w), r = std::sqrt(u * u + v * v);
          if (std::abs(r - 0.1) < 1e-6 || std::abs(r - 0.3) < 1e-6) continue;  // f32 vs f64 at the edge
          const bool keep = (r >= 0.1 && r < 0.3) != invert;
          const float2 s = spec[(b * h + i) * w + j];
          REQUIRE(s.x == (keep ? 1.0f : 0.0f));
          REQUIRE(s.y == (keep ? 2.0f : 0.0f));
        }
  }
}

}  // TEST_SUITE
