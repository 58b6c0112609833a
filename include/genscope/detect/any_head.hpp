// genscope/detect/any_head.hpp — open any saved detector head and score with it.
//
// The model file's "genscope.head" metadata picks the head; a file without it that holds
// linear.weight [1, D] and linear.bias [1] (UAR's released head after `genscope convert`) is a
// linear probe.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "genscope/detect/concept.hpp"
#include "genscope/detect/gmm.hpp"
#include "genscope/detect/linear_probe.hpp"
#include "genscope/detect/svm.hpp"

namespace genscope::detect {

static_assert(BinaryDetector<LinearProbe<float>>);
static_assert(BinaryDetector<LinearProbe<double>>);
static_assert(BinaryDetector<Svm>);
static_assert(OneClassDetector<GaussianMixture>);

using AnyHead = std::variant<LinearProbe<float>, Svm, GaussianMixture>;

inline AnyHead load_head(const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  const std::string* head = file.find_metadata("genscope.head");
  if (!head || *head == "probe") {
    if (!head && !(file.contains("linear.weight") && file.contains("linear.bias")))
      fail<FormatError>(path, ": not a genscope model (no 'genscope.head' metadata) nor a linear head (linear.weight, linear.bias)");
    return LinearProbe<float>::load(path);
  }
  if (*head == "svm") return Svm::load(path);
  if (*head == "gmm") return GaussianMixture::load(path);
  fail<FormatError>(path, ": unknown head '", *head, "' (probe, svm, gmm)");
}

inline std::string_view head_name(const AnyHead& h) {
  constexpr std::string_view names[] = {"probe", "svm", "gmm"};
  return names[h.index()];
}

inline std::vector<double> score(const AnyHead& h, const FeatureMatrix& x) {
  return std::visit([&](const auto& d) { return d.score(x); }, h);
}
inline double threshold(const AnyHead& h) {
  return std::visit([](const auto& d) { return d.threshold(); }, h);
}

}  // namespace genscope::detect
