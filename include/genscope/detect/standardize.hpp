// genscope/detect/standardize.hpp — per-feature standardisation a detector owns and saves.
//
// As scikit-learn's StandardScaler: mean and population standard deviation (ddof 0) of the fit
// rows, computed in double; a feature whose deviation is below 10·machine epsilon·|mean| or zero
// (sklearn's _handle_zeros_in_scale) gets scale 1. x' = (x − mean) / scale.
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "genscope/detect/features.hpp"
#include "genscope/detect/model_file.hpp"

namespace genscope::detect {

struct Standardizer {
  std::vector<double> mean, scale;  // empty: standardisation off

  bool enabled() const { return !mean.empty(); }

  // Fit on the rows of one or more matrices taken together.
  static Standardizer fit(const std::vector<const FeatureMatrix*>& parts) {
    Standardizer s;
    const int64_t d = parts.at(0)->cols;
    s.mean.assign(static_cast<size_t>(d), 0.0);
    std::vector<double> sq(static_cast<size_t>(d), 0.0);
    int64_t n = 0;
    for (const FeatureMatrix* m : parts) {
      if (m->cols != d) fail<ShapeError>("standardize: ", m->cols, " features vs ", d);
      for (int64_t i = 0; i < m->rows; ++i)
        for (int64_t j = 0; j < d; ++j) s.mean[static_cast<size_t>(j)] += m->row(i)[j];
      n += m->rows;
    }
    if (n == 0) fail<UsageError>("standardize: no rows to fit on");
    for (double& v : s.mean) v /= static_cast<double>(n);
    // Second pass for the variance: numerically safer than E[x²] − E[x]².
    for (const FeatureMatrix* m : parts)
      for (int64_t i = 0; i < m->rows; ++i)
        for (int64_t j = 0; j < d; ++j) {
          const double c = m->row(i)[j] - s.mean[static_cast<size_t>(j)];
          sq[static_cast<size_t>(j)] += c * c;
        }
    s.scale.resize(static_cast<size_t>(d));
    for (size_t j = 0; j < sq.size(); ++j) {
      const double sd = std::sqrt(sq[j] / static_cast<double>(n));
      const double eps = 10 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(s.mean[j]));
      s.scale[j] = sd < eps ? 1.0 : sd;
    }
    return s;
  }

  // Standardised copy (or the input itself when off).
  FeatureMatrix apply(const FeatureMatrix& x) const {
    if (!enabled()) return x;
    if (x.cols != static_cast<int64_t>(mean.size()))
      fail<ShapeError>("standardize: features have ", x.cols, " columns, the model expects ", mean.size());
    FeatureMatrix out = x;
    for (int64_t i = 0; i < x.rows; ++i)
      for (int64_t j = 0; j < x.cols; ++j)
        out.row(i)[j] = static_cast<float>((x.row(i)[j] - mean[static_cast<size_t>(j)]) / scale[static_cast<size_t>(j)]);
    return out;
  }

  void save(ModelWriter& w) const {
    if (!enabled()) return;
    const Shape s{static_cast<int64_t>(mean.size())};
    w.tensor("standardize.mean", mean, s);
    w.tensor("standardize.scale", scale, s);
  }
  static Standardizer load(const ModelReader& r) {
    Standardizer s;
    if (!r.file().contains("standardize.mean")) return s;
    r.tensor("standardize.mean", s.mean, 1);
    r.tensor("standardize.scale", s.scale, 1);
    if (s.mean.size() != s.scale.size()) fail<FormatError>(r.path(), ": standardize.mean and .scale differ in size");
    return s;
  }
};

}  // namespace genscope::detect
