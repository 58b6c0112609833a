// genscope/detect/linear_probe.hpp — UAR's detector head: logistic regression on features.
//
// score(x) = sigmoid(w·x + b), the probability that x is generated; generated when > 0.5.
// Training follows UAR's recipe (Jmh0527/UAR, train.py): nn.Linear(D, 1), BCEWithLogitsLoss
// (mean over the batch), torch.optim.Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight
// decay), batch 32, 1 epoch, the training rows shuffled with a seed. The last batch may be
// smaller (DataLoader's drop_last=False). Labels: real 0, generated 1.
//
// A released head (UAR's epoch_0_model.pth converted with `genscope convert`: linear.weight
// [1, D], linear.bias [1]) loads directly, and can be the starting point of fit (--init).
// Optional standardisation then PCA (detect/pca.hpp) are fitted with the head, saved with it and
// applied by score(); the weights then act on the PCA's outputs.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "genscope/detect/features.hpp"
#include "genscope/detect/model_file.hpp"
#include "genscope/detect/pca.hpp"
#include "genscope/detect/standardize.hpp"

namespace genscope::detect {

struct ProbeOptions {
  int epochs = 1;
  double lr = 1e-3;
  int batch = 32;
  uint64_t seed = 0;
  bool standardize = false;
  double pca = 0;  // > 0: PCA to this many components (or variance fraction < 1)
};

// Deterministic Fisher–Yates shuffle on mt19937_64 (whose output the C++ standard fixes), so a
// seed gives the same order on every platform (std::shuffle's algorithm is unspecified).
inline void seeded_shuffle(std::vector<int64_t>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(rng() % i)]);
}

template <class T>
class LinearProbe {
 public:
  std::vector<T> weight;  // [D]
  T bias = 0;
  Standardizer standardize;
  Pca pca;
  ProbeOptions options;

  // Adam's state (torch.optim.Adam): first and second moments per parameter, and the step count.
  struct Adam {
    std::vector<double> m, v;
    double mb = 0, vb = 0;
    int64_t step = 0;
  } adam;

  int64_t features() const { return static_cast<int64_t>(weight.size()); }
  // Columns score() expects: the PCA's input width, or the weights' when there is no PCA.
  int64_t input_features() const { return pca.enabled() ? pca.in_features() : features(); }

  // nn.Linear's default initialisation: U(−1/√D, 1/√D) for weight and bias, seeded.
  void init_uniform(int64_t d, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const double bound = 1.0 / std::sqrt(static_cast<double>(d));
    std::uniform_real_distribution<double> u(-bound, bound);
    weight.resize(static_cast<size_t>(d));
    for (T& w : weight) w = static_cast<T>(u(rng));
    bias = static_cast<T>(u(rng));
  }

  // One Adam step on the mean BCE-with-logits loss of `rows` (indices into x, labels y ∈ {0,1}).
  //   dL/dz_i = (sigmoid(z_i) − y_i) / B;  dL/dw = Σ_i dL/dz_i · x_i;  dL/db = Σ_i dL/dz_i.
  // Adam (Kingma & Ba 2015, Algorithm 1, as torch implements it):
  //   m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
  void train_step(const FeatureMatrix& x, const std::vector<float>& y, const int64_t* rows, int64_t count) {
    const int64_t d = features();
    std::vector<double> g(static_cast<size_t>(d), 0.0);
    double gb = 0;
    for (int64_t k = 0; k < count; ++k) {
      const float* xi = x.row(rows[k]);
      const double z = logit(xi);
      const double dz = (sigmoid(z) - y[static_cast<size_t>(rows[k])]) / static_cast<double>(count);
      for (int64_t j = 0; j < d; ++j) g[static_cast<size_t>(j)] += dz * xi[j];
      gb += dz;
    }
    constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    if (adam.m.empty()) adam.m.assign(static_cast<size_t>(d), 0.0), adam.v.assign(static_cast<size_t>(d), 0.0);
    ++adam.step;
    const double bc1 = 1 - std::pow(b1, static_cast<double>(adam.step));
    const double bc2 = 1 - std::pow(b2, static_cast<double>(adam.step));
    auto update = [&](double& m, double& v, double grad) {
      m = b1 * m + (1 - b1) * grad;
      v = b2 * v + (1 - b2) * grad * grad;
      return options.lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + eps);
    };
    for (int64_t j = 0; j < d; ++j) {
      const size_t s = static_cast<size_t>(j);
      weight[s] = static_cast<T>(weight[s] - update(adam.m[s], adam.v[s], g[s]));
    }
    bias = static_cast<T>(bias - update(adam.mb, adam.vb, gb));
  }

  // Fit on real (label 0) and generated (label 1) rows. Starts from the current weights when
  // they match the feature count (a released head given with --init), else from nn.Linear's
  // initialisation.
  void fit(const FeatureMatrix& real, const FeatureMatrix& fake) {
    if (real.cols != fake.cols) fail<ShapeError>("probe: real rows have ", real.cols, " features, generated rows ", fake.cols);
    if (real.rows + fake.rows == 0) fail<UsageError>("probe: no rows to fit on");
    if (options.batch < 1 || options.epochs < 0) fail<UsageError>("probe: batch must be >= 1 and epochs >= 0");
    if (options.standardize) standardize = Standardizer::fit({&real, &fake});
    FeatureMatrix x = standardize.apply(real), f = standardize.apply(fake);
    if (options.pca > 0) {
      pca = Pca::fit({&x, &f}, options.pca, options.seed);
      x = pca.apply(x);
      f = pca.apply(f);
    }
    x.values.insert(x.values.end(), f.values.begin(), f.values.end());
    x.rows += f.rows;
    std::vector<float> y(static_cast<size_t>(x.rows), 0.0f);
    for (int64_t i = real.rows; i < x.rows; ++i) y[static_cast<size_t>(i)] = 1.0f;
    if (features() != x.cols) init_uniform(x.cols, options.seed);
    adam = {};
    std::mt19937_64 rng(options.seed);
    std::vector<int64_t> order(static_cast<size_t>(x.rows));
    for (int64_t e = 0; e < options.epochs; ++e) {
      for (int64_t i = 0; i < x.rows; ++i) order[static_cast<size_t>(i)] = i;
      seeded_shuffle(order, rng);
      for (int64_t start = 0; start < x.rows; start += options.batch)
        train_step(x, y, order.data() + start, std::min<int64_t>(options.batch, x.rows - start));
    }
  }

  std::vector<double> score(const FeatureMatrix& x_in) const {
    if (x_in.cols != input_features())
      fail<ShapeError>("probe: features have ", x_in.cols, " columns, the model expects ", input_features());
    const FeatureMatrix x = pca.apply(standardize.apply(x_in));
    std::vector<double> s(static_cast<size_t>(x.rows));
    for (int64_t i = 0; i < x.rows; ++i) s[static_cast<size_t>(i)] = sigmoid(logit(x.row(i)));
    return s;
  }
  double threshold() const { return 0.5; }
  std::string_view threshold_meaning() const { return "probability 0.5: generated when sigmoid(w·x+b) > 0.5"; }

  void save(const std::string& path) const {
    ModelWriter w;
    w.meta("genscope.head", "probe");
    w.meta("probe.epochs", options.epochs);
    w.meta("probe.lr", options.lr);
    w.meta("probe.batch", options.batch);
    w.meta("probe.seed", std::to_string(options.seed));
    // UAR's key names and f32, so a genscope probe is also a UAR-shaped head.
    std::vector<float> wf(weight.begin(), weight.end());
    w.tensor("linear.weight", wf, Shape{1, features()});
    w.tensor("linear.bias", std::vector<float>{static_cast<float>(bias)}, Shape{1});
    standardize.save(w);
    pca.save(w);
    w.save(path);
  }

  // Loads a genscope probe or a converted UAR head (linear.weight [1, D], linear.bias [1]).
  static LinearProbe load(const std::string& path) {
    ModelReader r(path);
    if (r.has_meta("genscope.head") && r.meta("genscope.head") != "probe")
      fail<FormatError>(path, ": is a '", r.meta("genscope.head"), "' model, not a probe");
    LinearProbe p;
    const Shape s = r.tensor("linear.weight", p.weight, 2);
    if (s[0] != 1) fail<FormatError>(path, ": linear.weight must be [1, D] (one output), got ", s);
    std::vector<T> b;
    r.tensor("linear.bias", b, 1);
    if (b.size() != 1) fail<FormatError>(path, ": linear.bias must be [1]");
    p.bias = b[0];
    p.standardize = Standardizer::load(r);
    p.pca = Pca::load(r);
    if (p.pca.enabled() && p.pca.out_features() != p.features())
      fail<FormatError>(path, ": pca.components has ", p.pca.out_features(), " rows for linear.weight of ", p.features(), " features");
    if (p.standardize.enabled() && static_cast<int64_t>(p.standardize.mean.size()) != p.input_features())
      fail<FormatError>(path, ": standardize.mean does not match linear.weight (or pca.mean)");
    if (r.has_meta("probe.epochs")) {
      p.options.epochs = static_cast<int>(r.meta_number("probe.epochs"));
      p.options.lr = r.meta_number("probe.lr");
      p.options.batch = static_cast<int>(r.meta_number("probe.batch"));
    }
    return p;
  }

 private:
  double logit(const float* x) const {
    double z = bias;
    for (size_t j = 0; j < weight.size(); ++j) z += static_cast<double>(weight[j]) * x[j];
    return z;
  }
  static double sigmoid(double z) { return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z)); }
};

}  // namespace genscope::detect
