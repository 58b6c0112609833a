// Emulated tests of kernels/vae.cuh (label simt): each kernel against its CPU reference beside it
// in the header, the nearest upsampling also against genscope's CPU op (ops/upsample.hpp), the
// split GroupNorm against ops::group_norm (f32) and torch's definition in double (f16).
// Padding and upsampling only move values, so they are held to exact equality in every dtype;
// the bias/residual add to tests/simt/check.hpp's rules. Sizes are odd so that the last warp and
// block are partial.
#include "simt/check.hpp"  // first: the SIMT emulator (or, under nvcc, the CUDA runtime)

#include "genscope/core/tensor.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/norm.hpp"
#include "genscope/ops/upsample.hpp"
#include "kernels/vae.cuh"

using namespace genscope;
using namespace simt_test;

namespace {

constexpr int64_t kPlanes = 3, kH = 5, kW = 7;

template <class T>
void check_pad_in_dtype() {
  const auto x = to_storage<T>(random_normal(kPlanes * kH * kW, 21));
  Vec<T> y((kPlanes) * (kH + 1) * (kW + 2)), ref(y.size());
  for_each_order([&] {
    kernels::pad_bottom_right(x.data(), y.data(), kPlanes, kH, kW, 1, 2, nullptr);
    kernels::pad_bottom_right_reference(x.data(), ref.data(), kPlanes, kH, kW, 1, 2);
    CHECK(max_abs_error(to_floats(y), to_floats(ref)) == 0);
  });
}

template <class T>
void check_upsample_in_dtype() {
  const auto x = to_storage<T>(random_normal(kPlanes * kH * kW, 22));
  Vec<T> y(kPlanes * 4 * kH * kW), ref(y.size());
  for_each_order([&] {
    kernels::upsample_nearest2x(x.data(), y.data(), kPlanes, kH, kW, nullptr);
    kernels::upsample_nearest2x_reference(x.data(), ref.data(), kPlanes, kH, kW);
    CHECK(max_abs_error(to_floats(y), to_floats(ref)) == 0);
  });
}

Tensor tensor_of(const Vec<float>& v, Shape shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

// GroupNorm in double on x [N, C, S]: biased statistics per (n, group), then γ, β and act.
Vec<double> group_norm_f64(const Vec<float>& x, const Vec<float>& gamma, const Vec<float>& beta, int64_t n, int64_t c, int64_t s,
                           int64_t groups, double eps, kernels::Activation act) {
  Vec<double> y(x.size());
  const int64_t e = c / groups * s;
  for (int64_t g = 0; g < n * groups; ++g) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < e; ++i) mean += x[g * e + i];
    mean /= e;
    for (int64_t i = 0; i < e; ++i) var += (x[g * e + i] - mean) * (x[g * e + i] - mean);
    const double rstd = 1.0 / std::sqrt(var / e + eps);
    for (int64_t i = 0; i < e; ++i) {
      const int64_t ch = (g % groups) * (c / groups) + i / s;
      y[g * e + i] = ops::apply_activation(act, static_cast<float>((x[g * e + i] - mean) * rstd * gamma[ch] + beta[ch]));
    }
  }
  return y;
}

}  // namespace

TEST_SUITE("kernels_vae") {

TEST_CASE("zero padding below and to the right copies the image and fills zeros, in every dtype") {
  check_pad_in_dtype<float>();
  check_pad_in_dtype<f16>();
  check_pad_in_dtype<bf16>();
}

TEST_CASE("the (0, 1, 0, 1) pad puts the image in the top-left corner") {
  Vec<float> x(4, 1.0f), y(9, -1.0f);
  kernels::pad_bottom_right(x.data(), y.data(), 1, 2, 2, 1, 1, nullptr);
  const float want[9] = {1, 1, 0, 1, 1, 0, 0, 0, 0};
  for (int i = 0; i < 9; ++i) CHECK(y[i] == want[i]);
}

TEST_CASE("nearest 2x upsampling repeats each pixel in a 2x2 block, in every dtype") {
  check_upsample_in_dtype<float>();
  check_upsample_in_dtype<f16>();
  check_upsample_in_dtype<bf16>();
}

TEST_CASE("nearest 2x upsampling equals genscope's CPU upsample_nearest") {
  const auto x = random_normal(kPlanes * kH * kW, 23);
  Vec<float> y(kPlanes * 4 * kH * kW);
  kernels::upsample_nearest2x(x.data(), y.data(), kPlanes, kH, kW, nullptr);
  Tensor t = Tensor::empty({1, kPlanes, kH, kW}, DType::F32);
  std::copy(x.begin(), x.end(), t.data<float>());
  const Tensor ref = ops::upsample_nearest(t, 2).contiguous();
  REQUIRE(ref.numel() == static_cast<int64_t>(y.size()));
  for (size_t i = 0; i < y.size(); ++i) CHECK(y[i] == ref.data<float>()[i]);
}

TEST_CASE("f32 bias and residual adds match the reference, with either operand absent") {
  const int64_t batch = 2, channels = 3, spatial = 37, n = batch * channels * spatial;
  const auto y0 = random_normal(n, 24), r = random_normal(n, 25), bias = random_normal(channels, 26);
  for (int which = 0; which < 3; ++which) {
    INFO((which == 0 ? "bias and residual" : which == 1 ? "bias only" : "residual only"));
    const float* b = which == 2 ? nullptr : bias.data();
    const float* res = which == 1 ? nullptr : r.data();
    for_each_order([&] {
      Vec<float> y = y0, ref = y0;
      kernels::add_bias_residual(y.data(), b, res, batch, channels, spatial, nullptr);
      kernels::add_bias_residual_reference(ref.data(), b, res, batch, channels, spatial);
      CHECK(relative_error(y, ref) <= 1e-6);
    });
  }
}

TEST_CASE("f16 bias and residual adds are within twice the error of f16-rounded results") {
  const int64_t batch = 1, channels = 4, spatial = 65, n = batch * channels * spatial;
  const auto y0 = rounded<f16>(random_normal(n, 27)), r = rounded<f16>(random_normal(n, 28)), bias = random_normal(channels, 29);
  auto y = to_storage<f16>(y0);
  const auto rs = to_storage<f16>(r);
  kernels::add_bias_residual(y.data(), bias.data(), rs.data(), batch, channels, spatial, nullptr);
  Vec<double> ref(n), ref_rounded(n);
  for (int64_t i = 0; i < n; ++i) {
    ref[i] = static_cast<double>(y0[i]) + bias[i / spatial % channels] + r[i];
    ref_rounded[i] = round_to<f16>(ref[i]);
  }
  check_dtype_rule(max_abs_error(to_floats(y), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
}

TEST_CASE("f32 split GroupNorm with fused SiLU matches ops::group_norm across chunk boundaries") {
  // 2 samples, 6 channels in 3 groups of 2 x 45 positions = 90 elements per group, in chunks of
  // 32 (three, the last partial) and of one chunk holding the whole group.
  const int64_t n = 2, c = 6, s = 45, groups = 3;
  const auto x = random_normal(n * c * s, 31, 2.0f, 0.5f), gamma = random_normal(c, 32), beta = random_normal(c, 33);
  for (const bool silu : {false, true})
    for (const int64_t chunk : {int64_t{32}, int64_t{1000}}) {
      INFO("silu " << silu << " chunk " << chunk);
      for_each_order([&] {
        Vec<float> y(x.size()), workspace(kernels::group_norm_split_workspace(n, c, s, groups, chunk));
        kernels::group_norm_split(x.data(), gamma.data(), beta.data(), y.data(), n, c, s, groups, 1e-6f,
                                  silu ? kernels::Activation::Silu : kernels::Activation::None, workspace.data(), nullptr, chunk);
        const Tensor ref = ops::group_norm(tensor_of(x, {n, c, s}), groups, tensor_of(gamma, {c}), tensor_of(beta, {c}), 1e-6f, silu);
        const Vec<float> want(ref.data<float>(), ref.data<float>() + ref.numel());
        CHECK(relative_error(y, want) <= 1e-5);
      });
    }
}

TEST_CASE("f16 split GroupNorm is within twice the error of f16-rounded results") {
  const int64_t n = 1, c = 4, s = 77, groups = 2, chunk = 50;
  const auto x = rounded<f16>(random_normal(n * c * s, 34, 3.0f, -1.0f)), gamma = random_normal(c, 35), beta = random_normal(c, 36);
  const auto xs = to_storage<f16>(x);
  Vec<f16> y(x.size());
  Vec<float> workspace(kernels::group_norm_split_workspace(n, c, s, groups, chunk));
  kernels::group_norm_split(xs.data(), gamma.data(), beta.data(), y.data(), n, c, s, groups, 1e-6f, kernels::Activation::Silu,
                            workspace.data(), nullptr, chunk);
  const Vec<double> ref = group_norm_f64(x, gamma, beta, n, c, s, groups, 1e-6, kernels::Activation::Silu);
  Vec<double> ref_rounded(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) ref_rounded[i] = round_to<f16>(ref[i]);
  check_dtype_rule(max_abs_error(to_floats(y), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
}

TEST_CASE("a channel count that does not split into the groups is refused naming the kernel") {
  Vec<float> x(10), y(10), workspace(16);
  CHECK_THROWS_WITH_AS(kernels::group_norm_split(x.data(), nullptr, nullptr, y.data(), 1, 5, 2, 2, 1e-6f, kernels::Activation::None,
                                                 workspace.data(), nullptr),
                       doctest::Contains("group_norm_split"), ShapeError);
}

TEST_CASE("a negative padding is refused naming the kernel") {
  Vec<float> x(4), y(4);
  CHECK_THROWS_WITH_AS(kernels::pad_bottom_right(x.data(), y.data(), 1, 2, 2, -1, 0, nullptr),
                       doctest::Contains("pad_bottom_right"), ShapeError);
}

}  // TEST_SUITE
