// Emulated tests of kernels/attention.cuh (label simt). f32 reference: genscope's
// ops::attention_reference (the definition, softmax in double). f16/bf16: the definition in
// double on the dtype-rounded inputs, against PyTorch's unfused math path in that dtype (scores,
// probabilities and output each rounded to the dtype). Error rules: tests/simt/check.hpp.
#include "simt/check.hpp"  // first: the SIMT emulator (or, under nvcc, the CUDA runtime)

#include "genscope/core/tensor.hpp"
#include "genscope/ops/attention.hpp"
#include "kernels/attention.cuh"

using namespace genscope;
using namespace simt_test;

namespace {

Tensor tensor_of(const Vec<float>& v, Shape shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

struct Shape4 {
  int64_t heads, q_len, kv_len;
  int dim;
};

void check_f32_attention(Shape4 s) {
  INFO("heads=" << s.heads << " q_len=" << s.q_len << " kv_len=" << s.kv_len << " D=" << s.dim);
  const auto q = random_normal(s.heads * s.q_len * s.dim, 1), k = random_normal(s.heads * s.kv_len * s.dim, 2),
             v = random_normal(s.heads * s.kv_len * s.dim, 3);
  Vec<float> o(q.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.dim));
  kernels::attention(q.data(), k.data(), v.data(), o.data(), s.heads, s.q_len, s.kv_len, s.dim, scale, nullptr);
  const Tensor ref = ops::attention_reference(tensor_of(q, {1, s.heads, s.q_len, s.dim}), tensor_of(k, {1, s.heads, s.kv_len, s.dim}),
                                              tensor_of(v, {1, s.heads, s.kv_len, s.dim}), {}, scale);
  CHECK(relative_error(o, Vec<float>(ref.data<float>(), ref.data<float>() + ref.numel())) <= 1e-5);
}

// Attention in double; with `round` set, the scores, probabilities and output are rounded as
// PyTorch's math path in dtype T stores them.
template <class T>
Vec<double> attention_f64(const Vec<float>& q, const Vec<float>& k, const Vec<float>& v, Shape4 s,
                                  double scale, bool round) {
  auto r = [&](double x) { return round ? round_to<T>(x) : x; };
  Vec<double> o(q.size()), p(s.kv_len);
  for (int64_t h = 0; h < s.heads; ++h)
    for (int64_t i = 0; i < s.q_len; ++i) {
      double m = -INFINITY, sum = 0;
      for (int64_t j = 0; j < s.kv_len; ++j) {
        double dot = 0;
        for (int d = 0; d < s.dim; ++d) dot += double(q[(h * s.q_len + i) * s.dim + d]) * k[(h * s.kv_len + j) * s.dim + d];
        p[j] = r(dot * scale);
        m = std::max(m, p[j]);
      }
      for (int64_t j = 0; j < s.kv_len; ++j) sum += (p[j] = std::exp(p[j] - m));
      for (int64_t j = 0; j < s.kv_len; ++j) p[j] = r(p[j] / sum);
      for (int d = 0; d < s.dim; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < s.kv_len; ++j) acc += p[j] * v[(h * s.kv_len + j) * s.dim + d];
        o[(h * s.q_len + i) * s.dim + d] = r(acc);
      }
    }
  return o;
}

template <class T>
void check_attention_in_dtype(Shape4 s) {
  INFO("D=" << s.dim);
  const auto q = rounded<T>(random_normal(s.heads * s.q_len * s.dim, 4)), k = rounded<T>(random_normal(s.heads * s.kv_len * s.dim, 5)),
             v = rounded<T>(random_normal(s.heads * s.kv_len * s.dim, 6));
  const auto qs = to_storage<T>(q), ks = to_storage<T>(k), vs = to_storage<T>(v);
  Vec<T> o(q.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.dim));
  kernels::attention(qs.data(), ks.data(), vs.data(), o.data(), s.heads, s.q_len, s.kv_len, s.dim, static_cast<float>(scale), nullptr);
  const auto ref = attention_f64<T>(q, k, v, s, scale, false), ref_rounded = attention_f64<T>(q, k, v, s, scale, true);
  check_dtype_rule(max_abs_error(to_floats(o), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
}

}  // namespace

TEST_SUITE("kernels_attention") {

TEST_CASE("f32 attention matches the definition for one query and one key") { check_f32_attention({1, 1, 1, 32}); }

TEST_CASE("f32 attention matches the definition with partial query blocks and key tiles") {
  for_each_order([] { check_f32_attention({2, 37, 33, 64}); });
}

TEST_CASE("f32 attention matches the definition for the SD UNet head dims 40, 80 and 160") {
  // Self-attention over a reduced latent, and cross-attention to 77 text tokens.
  for_each_order([] {
    check_f32_attention({2, 16, 16, 40});
    check_f32_attention({1, 9, 77, 80});
    check_f32_attention({1, 5, 77, 160});
  });
}

TEST_CASE("f32 attention matches the definition for the SD VAE head dim 512") { check_f32_attention({1, 6, 70, 512}); }

TEST_CASE("f32 attention matches the definition for head dims that are not multiples of 32") {
  check_f32_attention({1, 3, 5, 1});
  check_f32_attention({1, 4, 40, 100});
  check_f32_attention({1, 4, 40, 257});
}

TEST_CASE("attention stays finite when scores exceed exp's range") {
  // Scores around ±900: a softmax without the running max would overflow.
  const Shape4 s{1, 3, 70, 32};
  auto q = random_normal(s.q_len * s.dim, 7, 30.0f), k = random_normal(s.kv_len * s.dim, 8, 30.0f), v = random_normal(s.kv_len * s.dim, 9);
  Vec<float> o(q.size());
  kernels::attention(q.data(), k.data(), v.data(), o.data(), 1, s.q_len, s.kv_len, s.dim, 1.0f, nullptr);
  CHECK(relative_error(o, attention_f64<float>(q, k, v, s, 1.0, false)) <= 1e-5);
}

TEST_CASE("f16 attention is within twice the error of PyTorch's f16 math path") {
  check_attention_in_dtype<f16>({2, 9, 40, 40});
  check_attention_in_dtype<f16>({1, 5, 33, 160});
}

TEST_CASE("bf16 attention is within twice the error of PyTorch's bf16 math path") {
  check_attention_in_dtype<bf16>({2, 9, 40, 64});
  check_attention_in_dtype<bf16>({1, 4, 20, 512});
}

TEST_CASE("attention refuses head dims above 512 and empty key sets") {
  Vec<float> x(1024);
  CHECK_THROWS_AS(kernels::attention(x.data(), x.data(), x.data(), x.data(), 1, 1, 1, 513, 1.0f, nullptr), ShapeError);
  CHECK_THROWS_AS(kernels::attention(x.data(), x.data(), x.data(), x.data(), 1, 1, 0, 64, 1.0f, nullptr), ShapeError);
}

}  // TEST_SUITE
