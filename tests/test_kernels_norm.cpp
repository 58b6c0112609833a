// Emulated tests of kernels/layernorm.cuh, kernels/groupnorm.cuh and kernels/softmax.cuh
// (label simt). f32 references: genscope's CPU ops (ops::layer_norm_row, ops::group_norm,
// ops::softmax_row, ops::apply_activation). f16/bf16: the definitions in double, written below,
// on the dtype-rounded inputs. Error rules: tests/simt/check.hpp.
#include "simt/check.hpp"  // first: the SIMT emulator (or, under nvcc, the CUDA runtime)

#include "genscope/core/tensor.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/norm.hpp"
#include "genscope/ops/softmax.hpp"
#include "kernels/groupnorm.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/softmax.cuh"

using namespace genscope;
using namespace simt_test;
using kernels::Activation;

namespace {

// LayerNorm of each row in double: (x − mean)/√(var + eps)·γ + β, then act.
Vec<double> layer_norm_f64(const Vec<float>& x, const Vec<float>& gamma, const Vec<float>& beta,
                                   int64_t rows, int64_t cols, double eps, Activation act) {
  Vec<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += x[r * cols + c];
    mean /= cols;
    for (int64_t c = 0; c < cols; ++c) var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
    const double rstd = 1.0 / std::sqrt(var / cols + eps);
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = ops::apply_activation(act, static_cast<float>((x[r * cols + c] - mean) * rstd * gamma[c] + beta[c]));
  }
  return y;
}

Vec<double> softmax_f64(const Vec<float>& x, int64_t rows, int64_t cols, double scale) {
  Vec<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, scale * x[r * cols + c]);
    for (int64_t c = 0; c < cols; ++c) s += std::exp(scale * x[r * cols + c] - m);
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = std::exp(scale * x[r * cols + c] - m) / s;
  }
  return y;
}

Tensor tensor_of(const Vec<float>& v, Shape shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

template <class T>
void check_layer_norm_in_dtype(int64_t rows, int64_t cols) {
  const auto x = rounded<T>(random_normal(rows * cols, 21, 2.0f, 1.0f));
  const auto gamma = random_normal(cols, 22, 0.5f, 1.0f), beta = random_normal(cols, 23, 0.5f);
  const auto xs = to_storage<T>(x);
  Vec<T> y(rows * cols);
  kernels::layer_norm(xs.data(), gamma.data(), beta.data(), y.data(), rows, cols, 1e-5f, Activation::None, nullptr);
  const auto ref = layer_norm_f64(x, gamma, beta, rows, cols, 1e-5, Activation::None);
  Vec<double> ref_rounded(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) ref_rounded[i] = round_to<T>(ref[i]);
  check_dtype_rule(max_abs_error(to_floats(y), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
}

}  // namespace

TEST_SUITE("kernels_norm") {

TEST_CASE("f32 LayerNorm matches genscope's CPU LayerNorm on odd, single and model-width rows") {
  for_each_order([] {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 31}, {5, 257}, {4, 768}, {2, 1030}}) {
      INFO("rows=" << rows << " cols=" << cols);
      const auto x = random_normal(rows * cols, 1, 3.0f, 5.0f);  // mean ≫ std: two-pass statistics matter
      const auto gamma = random_normal(cols, 2, 0.5f, 1.0f), beta = random_normal(cols, 3);
      Vec<float> y(rows * cols), ref(rows * cols);
      kernels::layer_norm(x.data(), gamma.data(), beta.data(), y.data(), rows, cols, 1e-5f, Activation::None, nullptr);
      for (int64_t r = 0; r < rows; ++r)
        ops::layer_norm_row(&x[r * cols], cols, gamma.data(), beta.data(), 1e-5f, &ref[r * cols]);
      CHECK(relative_error(y, ref) <= 1e-5);
    }
  });
}

TEST_CASE("LayerNorm without affine parameters normalises to zero mean and unit variance") {
  const int64_t rows = 3, cols = 100;
  const auto x = random_normal(rows * cols, 4, 7.0f, -3.0f);
  Vec<float> y(rows * cols), ref(rows * cols);
  kernels::layer_norm(x.data(), nullptr, nullptr, y.data(), rows, cols, 1e-5f, Activation::None, nullptr);
  for (int64_t r = 0; r < rows; ++r) ops::layer_norm_row(&x[r * cols], cols, nullptr, nullptr, 1e-5f, &ref[r * cols]);
  CHECK(relative_error(y, ref) <= 1e-5);
}

TEST_CASE("LayerNorm fuses an activation after the affine transform") {
  const int64_t rows = 4, cols = 77;
  const auto x = random_normal(rows * cols, 5), gamma = random_normal(cols, 6), beta = random_normal(cols, 7);
  for (Activation act : {Activation::Gelu, Activation::Silu, Activation::QuickGelu}) {
    INFO(ops::activation_name(act));
    Vec<float> y(rows * cols), ref(rows * cols);
    kernels::layer_norm(x.data(), gamma.data(), beta.data(), y.data(), rows, cols, 1e-5f, act, nullptr);
    for (int64_t r = 0; r < rows; ++r) ops::layer_norm_row(&x[r * cols], cols, gamma.data(), beta.data(), 1e-5f, &ref[r * cols]);
    for (float& v : ref) v = ops::apply_activation(act, v);
    CHECK(relative_error(y, ref) <= 1e-5);
  }
}

TEST_CASE("f16 and bf16 LayerNorm are within twice the error of dtype-rounded results") {
  check_layer_norm_in_dtype<f16>(6, 333);
  check_layer_norm_in_dtype<bf16>(6, 333);
}

TEST_CASE("f32 GroupNorm fused with SiLU matches genscope's CPU GroupNorm on SD-like shapes") {
  for_each_order([] {
    struct Case {
      int64_t n, c, hw, groups;
    };
    for (Case s : {Case{1, 1, 1, 1}, Case{2, 64, 8 * 8, 32}, Case{1, 320, 4 * 5, 32}, Case{3, 6, 7, 3}}) {
      INFO("N=" << s.n << " C=" << s.c << " HW=" << s.hw << " G=" << s.groups);
      const auto x = random_normal(s.n * s.c * s.hw, 8, 2.0f, 0.5f);
      const auto gamma = random_normal(s.c, 9, 0.3f, 1.0f), beta = random_normal(s.c, 10, 0.3f);
      Vec<float> y(x.size());
      kernels::group_norm(x.data(), gamma.data(), beta.data(), y.data(), s.n, s.c, s.hw, s.groups, 1e-6f, Activation::Silu, nullptr);
      const Tensor ref = ops::group_norm(tensor_of(x, {s.n, s.c, s.hw}), s.groups, tensor_of(gamma, {s.c}), tensor_of(beta, {s.c}),
                                         1e-6f, /*fuse_silu=*/true);
      const Vec<float> ref_values(ref.data<float>(), ref.data<float>() + ref.numel());
      CHECK(relative_error(y, ref_values) <= 1e-5);
    }
  });
}

TEST_CASE("GroupNorm without an activation matches genscope's CPU GroupNorm") {
  const int64_t n = 2, c = 12, hw = 50, groups = 4;
  const auto x = random_normal(n * c * hw, 11, 1.0f, -2.0f);
  Vec<float> y(x.size());
  kernels::group_norm(x.data(), nullptr, nullptr, y.data(), n, c, hw, groups, 1e-5f, Activation::None, nullptr);
  const Tensor ref = ops::group_norm(tensor_of(x, {n, c, hw}), groups);
  CHECK(relative_error(y, Vec<float>(ref.data<float>(), ref.data<float>() + ref.numel())) <= 1e-5);
}

TEST_CASE("GroupNorm refuses channels that do not divide into the groups") {
  Vec<float> x(10), y(10);
  CHECK_THROWS_AS(kernels::group_norm(x.data(), nullptr, nullptr, y.data(), 1, 10, 1, 3, 1e-5f, Activation::None, nullptr), ShapeError);
}

TEST_CASE("bf16 GroupNorm with SiLU is within twice the error of bf16-rounded results") {
  const int64_t n = 1, c = 32, hw = 36, groups = 8, cpg = c / groups;
  const auto x = rounded<bf16>(random_normal(n * c * hw, 12, 1.5f));
  const auto xs = to_storage<bf16>(x);
  Vec<bf16> y(x.size());
  kernels::group_norm(xs.data(), nullptr, nullptr, y.data(), n, c, hw, groups, 1e-5f, Activation::Silu, nullptr);
  Vec<double> ref(x.size()), ref_rounded(x.size());
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t off = g * cpg * hw, m = cpg * hw;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < m; ++i) mean += x[off + i];
    mean /= m;
    for (int64_t i = 0; i < m; ++i) var += (x[off + i] - mean) * (x[off + i] - mean);
    const double rstd = 1.0 / std::sqrt(var / m + 1e-5);
    for (int64_t i = 0; i < m; ++i) {
      const double v = (x[off + i] - mean) * rstd;
      ref[off + i] = v / (1.0 + std::exp(-v));
      ref_rounded[off + i] = round_to<bf16>(ref[off + i]);
    }
  }
  check_dtype_rule(max_abs_error(to_floats(y), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
}

TEST_CASE("f32 softmax matches genscope's CPU softmax on token-count rows") {
  for_each_order([] {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {2, 31}, {5, 77}, {3, 257}, {2, 1025}}) {
      INFO("rows=" << rows << " cols=" << cols);
      const auto x = random_normal(rows * cols, 13, 4.0f);
      Vec<float> y(rows * cols), ref(rows * cols);
      kernels::softmax(x.data(), y.data(), rows, cols, 1.0f, nullptr);
      for (int64_t r = 0; r < rows; ++r) ops::softmax_row(&x[r * cols], cols, &ref[r * cols]);
      CHECK(relative_error(y, ref) <= 1e-5);
    }
  });
}

TEST_CASE("softmax applies its scale before the exponential") {
  const int64_t rows = 3, cols = 64;
  const auto x = random_normal(rows * cols, 14, 10.0f);
  Vec<float> y(rows * cols);
  kernels::softmax(x.data(), y.data(), rows, cols, 0.125f, nullptr);
  CHECK(relative_error(y, softmax_f64(x, rows, cols, 0.125)) <= 1e-5);
}

TEST_CASE("softmax stays finite for logits far beyond exp's range") {
  Vec<float> x = {1000.0f, 999.0f, -1000.0f, 0.0f}, y(4);
  kernels::softmax(x.data(), y.data(), 1, 4, 1.0f, nullptr);
  CHECK(relative_error(y, softmax_f64(x, 1, 4, 1.0)) <= 1e-5);
}

TEST_CASE("f16 and bf16 softmax are within twice the error of dtype-rounded results") {
  const int64_t rows = 4, cols = 300;
  auto run = [&]<class T>() {
    const auto x = rounded<T>(random_normal(rows * cols, 15, 3.0f));
    const auto xs = to_storage<T>(x);
    Vec<T> y(rows * cols);
    kernels::softmax(xs.data(), y.data(), rows, cols, 1.0f, nullptr);
    const auto ref = softmax_f64(x, rows, cols, 1.0);
    Vec<double> ref_rounded(ref.size());
    for (size_t i = 0; i < ref.size(); ++i) ref_rounded[i] = round_to<T>(ref[i]);
    check_dtype_rule(max_abs_error(to_floats(y), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
  };
  run.operator()<f16>();
  run.operator()<bf16>();
}

}  // TEST_SUITE
