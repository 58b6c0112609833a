// Tests of the CPU ops other than GEMM, conv2d, attention and FFT: norms, activations, softmax,
// broadcasting binary ops, reductions, upsampling, cosine similarity.
//   suite "ops":    values worked out by hand or from the definitions, and argument errors
//   suite "parity": against PyTorch, through tests/data/ops/ops.safetensors written by
//                   tools/reference/make_ops_fixtures.py; ≤ 1e-5 relative to the largest
//                   expected magnitude, NaNs in the same places.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/elementwise.hpp"
#include "genscope/ops/norm.hpp"
#include "genscope/ops/reduce.hpp"
#include "genscope/ops/similarity.hpp"
#include "genscope/ops/softmax.hpp"
#include "genscope/ops/upsample.hpp"
#include "support.hpp"

using namespace genscope;

namespace {

Tensor fx(const std::string& name) { return test::fixture("ops/ops.safetensors", name); }

Tensor from(Shape shape, std::vector<float> values) {
  Tensor t = Tensor::empty(shape, DType::F32);
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

// max |got − want| / max |want| over all elements, after checking shapes and NaN positions match.
double relative_error(const Tensor& got, const Tensor& want) {
  return test::relative_error(got, want, test::NanRule::same_places);
}

constexpr double kTol = 1e-5;

}  // namespace

TEST_SUITE("ops") {

TEST_CASE("exp_f32 is within 2 ulp of e^x over the normal range and exact at the ends") {
  double worst_ulp = 0;
  for (float x = -87.0f; x < 88.7f; x += 0.00731f) {
    const double want = std::exp(static_cast<double>(x));
    const double ulp = std::nextafter(static_cast<float>(want), INFINITY) - static_cast<float>(want);
    worst_ulp = std::max(worst_ulp, std::fabs(ops::exp_f32(x) - want) / ulp);
  }
  CHECK(worst_ulp <= 2.0);
  CHECK(ops::exp_f32(0.0f) == 1.0f);
  CHECK(ops::exp_f32(-INFINITY) == 0.0f);
  CHECK(ops::exp_f32(-100.0f) == 0.0f);
  CHECK(ops::exp_f32(89.0f) == INFINITY);
  CHECK(std::isfinite(ops::exp_f32(88.7f)));
  CHECK(std::isnan(ops::exp_f32(NAN)));
}

TEST_CASE("layer_norm of a row gives zero mean and unit variance before the affine") {
  const Tensor y = ops::layer_norm(from({1, 4}, {1, 2, 3, 4}), {}, {}, 0.0f);
  // mean 2.5, biased var 1.25: y = (x − 2.5) / √1.25
  for (int i = 0; i < 4; ++i) CHECK(y.item({0, i}) == doctest::Approx((i + 1 - 2.5) / std::sqrt(1.25)).epsilon(1e-6));
}

TEST_CASE("layer_norm refuses a weight of the wrong length, naming it") {
  CHECK_THROWS_WITH_AS(ops::layer_norm(from({2, 3}, {1, 2, 3, 4, 5, 6}), from({2}, {1, 1})),
                       doctest::Contains("layer_norm: weight"), ShapeError);
}

TEST_CASE("group_norm refuses channels that do not split into the groups") {
  CHECK_THROWS_AS(ops::group_norm(Tensor::zeros({1, 6, 2, 2}, DType::F32), 4), ShapeError);
}

TEST_CASE("group_norm with one channel per group normalises each plane on its own") {
  const Tensor y = ops::group_norm(from({1, 2, 1, 2}, {0, 2, 10, 30}), 2, {}, {}, 0.0f);
  CHECK(y.item({0, 0, 0, 0}) == doctest::Approx(-1.0));
  CHECK(y.item({0, 1, 0, 1}) == doctest::Approx(1.0));
}

TEST_CASE("softmax of a row that is all minus infinity is NaN, as torch gives") {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor y = ops::softmax(from({2}, {-inf, -inf}));
  CHECK(std::isnan(y.item({0})));
}

TEST_CASE("softmax of equal logits is uniform and does not overflow at 1e30") {
  const Tensor y = ops::softmax(from({4}, {1e30f, 1e30f, 1e30f, 1e30f}));
  for (int i = 0; i < 4; ++i) CHECK(y.item({i}) == 0.25);
}

TEST_CASE("activations take their defining values at known points") {
  const Tensor x = from({3}, {0.0f, 1.0f, -1.0f});
  const Tensor g = ops::gelu(x), s = ops::silu(x);
  CHECK(g.item({0}) == 0.0);
  CHECK(g.item({1}) == doctest::Approx(0.5 * (1 + std::erf(1 / std::sqrt(2.0)))).epsilon(1e-6));
  CHECK(s.item({2}) == doctest::Approx(-1.0 / (1.0 + std::exp(1.0))).epsilon(1e-6));
}

TEST_CASE("the vectorised tensor GELUs, SiLU and quick-GELU stay within 2e-7 of the scalar definitions") {
  // The scalars use libm's erf, tanh and exp; the tensor path A&S 7.1.26, σ(2u) and exp_f32.
  const int64_t n = 2001;
  Tensor x = Tensor::empty({n}, DType::F32);
  for (int64_t i = 0; i < n; ++i) x.data<float>()[i] = -12.0f + 0.012f * static_cast<float>(i);
  const Tensor g = ops::gelu(x), gt = ops::gelu_tanh(x), s = ops::silu(x), q = ops::quick_gelu(x);
  for (int64_t i = 0; i < n; ++i) {
    const float v = x.data<float>()[i], tol = 2e-7f * std::max(1.0f, std::fabs(v));
    CAPTURE(v);
    CHECK(std::fabs(g.data<float>()[i] - ops::gelu_erf(v)) <= tol);
    CHECK(std::fabs(gt.data<float>()[i] - ops::gelu_tanh(v)) <= tol);
    CHECK(std::fabs(s.data<float>()[i] - ops::silu(v)) <= tol);
    CHECK(std::fabs(q.data<float>()[i] - ops::quick_gelu(v)) <= tol);
  }
}

TEST_CASE("geglu gates the first half with GELU of the second half") {
  // value 2, gate 1: 2 · GELU(1); value 1, gate 0: 1 · GELU(0) = 0.
  const Tensor y = ops::geglu(from({1, 4}, {2.0f, 1.0f, 1.0f, 0.0f}));
  CHECK(y.shape() == Shape{1, 2});
  CHECK(y.item({0, 0}) == doctest::Approx(2 * ops::gelu_erf(1.0f)));
  CHECK(y.item({0, 1}) == 0.0);
}

TEST_CASE("geglu refuses an odd last dim") {
  CHECK_THROWS_AS(ops::geglu(Tensor::zeros({2, 3}, DType::F32)), ShapeError);
}

TEST_CASE("binary ops broadcast a column against a row") {
  const Tensor y = ops::add(from({2, 1}, {10, 20}), from({3}, {1, 2, 3}));
  CHECK(y.shape() == Shape{2, 3});
  CHECK(y.item({0, 2}) == 13.0);
  CHECK(y.item({1, 0}) == 21.0);
}

TEST_CASE("binary ops refuse shapes that do not broadcast, naming both") {
  CHECK_THROWS_WITH_AS(ops::mul(Tensor::zeros({2, 3}, DType::F32), Tensor::zeros({4}, DType::F32)),
                       doctest::Contains("[2, 3] and [4]"), ShapeError);
}

TEST_CASE("binary ops refuse integer tensors") {
  CHECK_THROWS_AS(ops::add(Tensor::zeros({2}, DType::I32), Tensor::zeros({2}, DType::F32)), ShapeError);
}

TEST_CASE("unbiased variance of one element is NaN and biased variance is zero") {
  CHECK(std::isnan(ops::var(from({1}, {2.0f}), 0).item()));
  CHECK(ops::var(from({1}, {2.0f}), 0, false).item() == 0.0);
}

TEST_CASE("max propagates NaN as torch.amax does") {
  CHECK(std::isnan(ops::max(from({3}, {1.0f, NAN, 2.0f}), 0).item()));
}

TEST_CASE("reductions keep the reduced dim with size 1 under keepdim") {
  CHECK(ops::sum(Tensor::zeros({2, 3, 4}, DType::F32), 1, true).shape() == Shape{2, 1, 4});
  CHECK(ops::sum(Tensor::zeros({2, 3, 4}, DType::F32), -1).shape() == Shape{2, 3});
}

TEST_CASE("reductions refuse a dim out of range") {
  CHECK_THROWS_AS(ops::mean(Tensor::zeros({2, 3}, DType::F32), 2), UsageError);
}

TEST_CASE("a sum of a million equal values stays within 1e-6 relative") {
  // A plain f32 running sum is off by percents here: past 2^17 each + 0.1 rounds by up to 0.004.
  Tensor x = Tensor::empty({1 << 20}, DType::F32);
  std::fill(x.data<float>(), x.data<float>() + x.numel(), 0.1f);
  CHECK(ops::sum(x, 0).item() == doctest::Approx(static_cast<double>(0.1f) * (1 << 20)).epsilon(1e-6));
}

TEST_CASE("nearest upsample repeats each pixel in a 2x2 block") {
  const Tensor y = ops::upsample_nearest(from({1, 1, 1, 2}, {5, 7}));
  CHECK(y.shape() == Shape{1, 1, 2, 4});
  CHECK(y.item({0, 0, 1, 1}) == 5.0);
  CHECK(y.item({0, 0, 0, 2}) == 7.0);
}

TEST_CASE("cosine similarity of parallel and orthogonal vectors is 1 and 0") {
  const Tensor y = ops::cosine_similarity(from({2, 2}, {3, 4, 1, 0}), from({2, 2}, {6, 8, 0, 5}));
  CHECK(y.item({0}) == doctest::Approx(1.0));
  CHECK(y.item({1}) == 0.0);
}

}  // TEST_SUITE("ops")

TEST_SUITE("parity") {

TEST_CASE("layer_norm matches torch at ViT width with weight, bias and eps 1e-6") {
  CHECK(relative_error(ops::layer_norm(fx("ln_vit.x"), fx("ln_vit.w"), fx("ln_vit.b"), 1e-6f), fx("ln_vit.out")) <= kTol);
}

TEST_CASE("layer_norm matches torch in f64 on rows offset by 1000 without affine") {
  CHECK(relative_error(ops::layer_norm(fx("ln_offset.x")), fx("ln_offset.out")) <= kTol);
}

TEST_CASE("layer_norm of width 1 matches torch") {
  CHECK(relative_error(ops::layer_norm(fx("ln_one.x"), fx("ln_one.w"), fx("ln_one.b")), fx("ln_one.out")) <= kTol);
}

TEST_CASE("layer_norm of a transposed view matches torch") {
  CHECK(relative_error(ops::layer_norm(fx("ln_strided.xt").transpose(0, 1), fx("ln_strided.w")), fx("ln_strided.out")) <= kTol);
}

TEST_CASE("layer_norm reads f16 and bf16 inputs") {
  CHECK(relative_error(ops::layer_norm(fx("ln_f16.x")), fx("ln_f16.out")) <= kTol);
  CHECK(relative_error(ops::layer_norm(fx("ln_bf16.x")), fx("ln_bf16.out")) <= kTol);
}

TEST_CASE("group_norm matches torch at SD VAE settings, with and without fused SiLU") {
  const Tensor x = fx("gn_vae.x"), w = fx("gn_vae.w"), b = fx("gn_vae.b");
  CHECK(relative_error(ops::group_norm(x, 32, w, b, 1e-6f), fx("gn_vae.out")) <= kTol);
  CHECK(relative_error(ops::group_norm(x, 32, w, b, 1e-6f, true), fx("gn_vae.out_silu")) <= kTol);
}

TEST_CASE("group_norm without affine matches torch") {
  CHECK(relative_error(ops::group_norm(fx("gn_plain.x"), 3), fx("gn_plain.out")) <= kTol);
}

TEST_CASE("group_norm reads f16 and bf16 inputs") {
  CHECK(relative_error(ops::group_norm(fx("gn_f16.x"), 4, fx("gn_f16.w"), fx("gn_f16.b")), fx("gn_f16.out")) <= kTol);
  CHECK(relative_error(ops::group_norm(fx("gn_bf16.x"), 2), fx("gn_bf16.out")) <= kTol);
}

TEST_CASE("group_norm of a channels-last view matches torch") {
  const Tensor x = fx("gn_plain.x").permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});
  CHECK(relative_error(ops::group_norm(x, 3), fx("gn_plain.out")) <= kTol);
}

TEST_CASE("softmax matches torch along the last dim of 197-token rows") {
  CHECK(relative_error(ops::softmax(fx("softmax_rows.x"), -1), fx("softmax_rows.out")) <= kTol);
}

TEST_CASE("softmax matches torch along a middle dim") {
  CHECK(relative_error(ops::softmax(fx("softmax_mid.x"), 1), fx("softmax_mid.out")) <= kTol);
}

TEST_CASE("softmax matches torch on one element and on rows with minus infinity near 1e4") {
  CHECK(relative_error(ops::softmax(fx("softmax_one.x"), 0), fx("softmax_one.out")) <= kTol);
  CHECK(relative_error(ops::softmax(fx("softmax_inf.x"), -1), fx("softmax_inf.out")) <= kTol);
}

TEST_CASE("activations match torch over [-10, 10] and far values") {
  const Tensor x = fx("act.x");
  CHECK(relative_error(ops::gelu(x), fx("act.gelu")) <= kTol);
  CHECK(relative_error(ops::gelu_tanh(x), fx("act.gelu_tanh")) <= kTol);
  CHECK(relative_error(ops::quick_gelu(x), fx("act.quick_gelu")) <= kTol);
  CHECK(relative_error(ops::silu(x), fx("act.silu")) <= kTol);
  CHECK(relative_error(ops::relu(x), fx("act.relu")) <= kTol);
}

TEST_CASE("geglu matches diffusers' GEGLU with erf and tanh GELU") {
  CHECK(relative_error(ops::geglu(fx("geglu.proj")), fx("geglu.out")) <= kTol);
  CHECK(relative_error(ops::geglu(fx("geglu.proj"), true), fx("geglu.out_tanh")) <= kTol);
}

TEST_CASE("gelu reads f16 input") {
  CHECK(relative_error(ops::gelu(fx("act_f16.x")), fx("act_f16.gelu")) <= kTol);
}

TEST_CASE("broadcasting add, sub, mul and div match torch") {
  const Tensor a = fx("bin.a"), b = fx("bin.b");
  CHECK(relative_error(ops::add(a, b), fx("bin.add")) <= kTol);
  CHECK(relative_error(ops::sub(a, b), fx("bin.sub")) <= kTol);
  CHECK(relative_error(ops::mul(a, b), fx("bin.mul")) <= kTol);
  CHECK(relative_error(ops::div(a, b), fx("bin.div")) <= kTol);
}

TEST_CASE("binary ops with a 0-dim scalar match torch") {
  CHECK(relative_error(ops::div(fx("bin_scalar.s"), fx("bin_scalar.a")), fx("bin_scalar.div")) <= kTol);
  CHECK(relative_error(ops::mul(fx("bin_scalar.a"), fx("bin_scalar.s")), fx("bin_scalar.mul")) <= kTol);
}

TEST_CASE("binary ops mix f16 and f32 inputs and strided views") {
  CHECK(relative_error(ops::add(fx("bin_f16.a"), fx("bin_f16.b")), fx("bin_f16.add")) <= kTol);
  CHECK(relative_error(ops::sub(fx("bin_strided.at").transpose(0, 1), fx("bin_strided.r")), fx("bin_strided.sub")) <= kTol);
}

TEST_CASE("sum, mean, var and max along every dim match torch") {
  const Tensor x = fx("red.x");
  for (int d = 0; d < 3; ++d) {
    CAPTURE(d);
    const std::string s = std::to_string(d);
    CHECK(relative_error(ops::sum(x, d), fx("red.sum" + s)) <= kTol);
    CHECK(relative_error(ops::mean(x, d), fx("red.mean" + s)) <= kTol);
    CHECK(relative_error(ops::var(x, d), fx("red.var" + s)) <= kTol);
    CHECK(relative_error(ops::var(x, d, false), fx("red.var_biased" + s)) <= kTol);
    CHECK(relative_error(ops::max(x, d), fx("red.max" + s)) <= kTol);
  }
  CHECK(relative_error(ops::mean(x, 1, true), fx("red.mean1_keepdim")) <= kTol);
}

TEST_CASE("var and sum of long rows offset by 100 match torch") {
  CHECK(relative_error(ops::var(fx("red_long.x"), -1), fx("red_long.var")) <= kTol);
  CHECK(relative_error(ops::sum(fx("red_long.x"), -1), fx("red_long.sum")) <= kTol);
}

TEST_CASE("nearest 2x upsample matches torch's interpolate") {
  CHECK(relative_error(ops::upsample_nearest(fx("up.x")), fx("up.out")) == 0.0);
  CHECK(relative_error(ops::upsample_nearest(fx("up_f16.x")), fx("up_f16.out")) == 0.0);
  CHECK(relative_error(ops::upsample_nearest(fx("up.x").transpose(2, 3).contiguous().transpose(2, 3)), fx("up.out")) == 0.0);
}

TEST_CASE("cosine similarity matches torch on rows, under broadcasting and below eps") {
  CHECK(relative_error(ops::cosine_similarity(fx("cos_rows.a"), fx("cos_rows.b"), 1), fx("cos_rows.out")) <= kTol);
  CHECK(relative_error(ops::cosine_similarity(fx("cos_bcast.a"), fx("cos_bcast.b"), -1), fx("cos_bcast.out")) <= kTol);
  CHECK(relative_error(ops::cosine_similarity(fx("cos_eps.a"), fx("cos_eps.b"), 1, 1e-8f), fx("cos_eps.out")) <= kTol);
}

}  // TEST_SUITE("parity")
