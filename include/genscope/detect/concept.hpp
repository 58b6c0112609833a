// genscope/detect/concept.hpp — what every detector head provides.
//
// A feature detector maps feature rows to scores where HIGHER MEANS MORE LIKELY GENERATED, and
// calls a row generated when its score is above threshold(); threshold_meaning() says in words
// what that threshold is for the head (a probability of 0.5, a decision value of 0, a
// percentile of the real images' log-likelihoods). Heads save themselves to one safetensors
// file (parameters as tensors, hyper-parameters as metadata) and load back from it.
//
// Binary heads (linear probe, SVM) fit on real and generated rows; one-class heads (Gaussian
// mixture) on real rows only.
#pragma once

#include <concepts>
#include <string>
#include <string_view>
#include <vector>

#include "genscope/detect/features.hpp"

namespace genscope::detect {

template <class D>
concept FeatureDetector = requires(const D& d, const FeatureMatrix& x, const std::string& path) {
  { d.score(x) } -> std::same_as<std::vector<double>>;
  { d.threshold() } -> std::convertible_to<double>;
  { d.threshold_meaning() } -> std::convertible_to<std::string_view>;
  d.save(path);
  { D::load(path) } -> std::same_as<D>;
};

template <class D>
concept BinaryDetector = FeatureDetector<D> && requires(D& d, const FeatureMatrix& real, const FeatureMatrix& fake) {
  d.fit(real, fake);
};

template <class D>
concept OneClassDetector = FeatureDetector<D> && requires(D& d, const FeatureMatrix& real) { d.fit(real); };

// 1 where the score is above the detector's threshold (generated), 0 otherwise.
template <FeatureDetector D>
std::vector<int> predict(const D& detector, const FeatureMatrix& x) {
  const std::vector<double> s = detector.score(x);
  std::vector<int> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = s[i] > detector.threshold() ? 1 : 0;
  return out;
}

}  // namespace genscope::detect
