// genscope/detect/svm.hpp — RAID's detector head: a C-support vector classifier.
//
// The solver is libsvm's (Chang & Lin, "LIBSVM: a library for support vector machines", 2011;
// svm.cpp's Solver class), re-implemented: SMO on the dual
//     min_α ½ αᵀQα − eᵀα,  0 ≤ α_i ≤ C,  yᵀα = 0,   Q_ij = y_i y_j K(x_i, x_j),
// with the second-order working-set selection of Fan, Chen & Lin (JMLR 2005, WSS 3;
// Solver::select_working_set), the analytic two-variable update with clipping
// (Solver::Solve), optional shrinking (Solver::do_shrinking, be_shrunk, reconstruct_gradient)
// and rho from the free variables (Solver::calculate_rho). Stopping: m(α) − M(α) < tol.
//
// Kernel values for training are computed as libsvm computes them, in double (dot products by
// a vectorised double micro-kernel, then the kernel function), and cached as f32 as libsvm
// caches Qfloat = float: rows of Q in an LRU cache bounded in bytes (libsvm's Cache). When the
// whole l×l matrix fits, it is computed up front in blocks of rows, using its symmetry. Double
// matters: with f32 dot products (ops::gemm) the SMO path drifts (bc_linear: 845 iterations
// instead of libsvm's 757, decision values 2e-3 off); with double ones it is libsvm's, iteration
// for iteration. Decision values, which need no such care, go through ops::gemm in batches; rbf
// uses ‖x‖² + ‖y‖² − 2x·y with the norms in double. Dual variables, gradient and rho are double.
//
// Features pass, in order, through the index selection, the standardisation and the PCA (each
// optional, each saved with the model and applied by score()); the support vectors are stored
// after all three.
//
// Class convention: libsvm as scikit-learn drives it puts the first class (real, 0) at y = +1
// and scikit-learn flips the sign of the binary decision function. genscope does the same so
// its solver walks the same path, and score() = −(Σ y_i α_i K(x_i, x) − ρ): the decision value
// of sklearn's SVC.decision_function, > 0 means generated. Threshold 0.
//
// Probabilities (optional) follow libsvm's svm_binary_svc_probability: decision values from
// 5-fold cross-validation on a seeded permutation, then Platt's sigmoid fitted with the Newton
// method with backtracking of Lin, Lin & Weng (2007) (libsvm's sigmoid_train).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "genscope/core/thread_pool.hpp"
#include "genscope/detect/dot_f64.hpp"
#include "genscope/detect/features.hpp"
#include "genscope/detect/linear_probe.hpp"  // seeded_shuffle
#include "genscope/detect/model_file.hpp"
#include "genscope/detect/pca.hpp"
#include "genscope/detect/standardize.hpp"
#include "genscope/ops/gemm.hpp"

namespace genscope::detect {

enum class SvmKernel { Linear, Rbf, Poly, Sigmoid };
enum class GammaMode { Value, Scale, Auto };

inline std::string_view kernel_name(SvmKernel k) {
  switch (k) {
    case SvmKernel::Linear: return "linear";
    case SvmKernel::Rbf: return "rbf";
    case SvmKernel::Poly: return "poly";
    case SvmKernel::Sigmoid: return "sigmoid";
  }
  return "?";
}

inline SvmKernel parse_kernel(std::string_view s) {
  for (SvmKernel k : {SvmKernel::Linear, SvmKernel::Rbf, SvmKernel::Poly, SvmKernel::Sigmoid})
    if (kernel_name(k) == s) return k;
  fail<UsageError>("unknown kernel '", s, "' (linear, rbf, poly, sigmoid)");
}

struct SvmOptions {
  SvmKernel kernel = SvmKernel::Rbf;
  double C = 1.0;
  GammaMode gamma_mode = GammaMode::Scale;  // sklearn's default; RAID (ThunderSVM) used Auto
  double gamma = 0.0;                       // used when gamma_mode == Value
  int degree = 3;
  double coef0 = 0.0;
  double tol = 1e-3;
  bool shrinking = false;
  bool probability = false;
  bool standardize = false;
  int64_t cache_bytes = int64_t{200} << 20;  // sklearn's cache_size default, 200 MB
  int64_t max_iter = -1;                     // -1: libsvm's max(10⁷, 100·l)
  uint64_t seed = 0;                         // the cross-validation permutation of probability
  std::vector<int64_t> indices;              // keep only these feature columns (empty: all)
  double pca = 0;                            // > 0: PCA to this many components (or variance fraction < 1)
};

// The kernel on f32 rows: blocks of values through one GEMM, transformed per kernel type.
struct KernelFunction {
  SvmKernel kernel = SvmKernel::Rbf;
  double gamma = 0, coef0 = 0;
  int degree = 3;

  // out[i, j] = K(a_i, b_j) for a [na, d], b [nb, d] row-major; norms are ‖row‖² (rbf only).
  void block(const float* a, int64_t na, const double* norm_a, const float* b, int64_t nb, const double* norm_b,
             int64_t d, float* out) const {
    ops::gemm(ops::Trans::No, ops::Trans::Yes, na, nb, d, 1.0f, a, d, b, d, 0.0f, out, nb);
    parallel_for(0, na, 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < nb; ++j) out[i * nb + j] = static_cast<float>(apply(out[i * nb + j], norm_a ? norm_a[i] : 0,
                                                                                        norm_b ? norm_b[j] : 0));
    });
  }

  double apply(double dot, double na, double nb) const {
    switch (kernel) {
      case SvmKernel::Linear: return dot;
      case SvmKernel::Rbf: return std::exp(-gamma * std::max(0.0, na + nb - 2 * dot));
      case SvmKernel::Poly: return std::pow(gamma * dot + coef0, degree);
      case SvmKernel::Sigmoid: return std::tanh(gamma * dot + coef0);
    }
    return 0;
  }
};

inline std::vector<double> row_norms(const FeatureMatrix& x) {
  std::vector<double> n(static_cast<size_t>(x.rows));
  for (int64_t i = 0; i < x.rows; ++i) {
    double s = 0;
    for (int64_t j = 0; j < x.cols; ++j) s += static_cast<double>(x.row(i)[j]) * x.row(i)[j];
    n[static_cast<size_t>(i)] = s;
  }
  return n;
}

// Rows of Q = y_i y_j K(x_i, x_j), computed on demand and kept in an LRU cache of at most
// `bytes` bytes (at least two rows, as the solver holds Q_i and Q_j at once).
class KernelCache {
 public:
  KernelCache(const FeatureMatrix& x, const std::vector<int8_t>& y, const KernelFunction& k, int64_t bytes)
      : x_(x), y_(y), k_(k), xd_(x.values.begin(), x.values.end()), norms_(row_norms(x)), rows_(static_cast<size_t>(x.rows)),
        where_(static_cast<size_t>(x.rows)) {
    const int64_t row_bytes = x.rows * static_cast<int64_t>(sizeof(float));
    capacity_ = std::max<int64_t>(2, row_bytes ? bytes / row_bytes : 2);
    diag_.resize(static_cast<size_t>(x.rows));
    for (int64_t i = 0; i < x.rows; ++i) {
      const double dot = norms_[static_cast<size_t>(i)];
      diag_[static_cast<size_t>(i)] = k_.apply(dot, dot, dot);
    }
    if (capacity_ >= x.rows) prefetch_all();
  }

  const float* row(int64_t i) {
    auto& r = rows_[static_cast<size_t>(i)];
    if (!r.empty()) {
      lru_.splice(lru_.begin(), lru_, where_[static_cast<size_t>(i)]);  // most recently used first
      return r.data();
    }
    ++misses_;
    if (static_cast<int64_t>(lru_.size()) >= capacity_) {
      const int64_t old = lru_.back();
      lru_.pop_back();
      std::vector<float>().swap(rows_[static_cast<size_t>(old)]);
    }
    r.resize(static_cast<size_t>(x_.rows));
    compute_rows(i, 1, x_.rows, r.data(), x_.rows);
    lru_.push_front(i);
    where_[static_cast<size_t>(i)] = lru_.begin();
    return r.data();
  }

  // K(x_i, x_i) in double, as libsvm keeps QD in double while its cached rows are float.
  double diag(int64_t i) const { return diag_[static_cast<size_t>(i)]; }
  int64_t misses() const { return misses_; }
  int64_t capacity_rows() const { return capacity_; }

 private:
  // Q values of rows [first, first + count) and columns [0, cols) into out (leading dim ldo):
  // the kernel in double, rounded to f32 (libsvm's Qfloat), signed by y_i y_j.
  void compute_rows(int64_t first, int64_t count, int64_t cols, float* out, int64_t ldo) const {
    const int64_t d = x_.cols;
    std::vector<double> dots(static_cast<size_t>(count * cols));
    dot_block_f64(xd_.data() + first * d, count, xd_.data(), cols, d, dots.data(), cols);
    parallel_for(0, count, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t i = first + r;
        for (int64_t j = 0; j < cols; ++j) {
          const float v = static_cast<float>(k_.apply(dots[static_cast<size_t>(r * cols + j)], norms_[static_cast<size_t>(i)],
                                                      norms_[static_cast<size_t>(j)]));
          out[r * ldo + j] = y_[static_cast<size_t>(i)] == y_[static_cast<size_t>(j)] ? v : -v;
        }
      }
    });
  }

  // The whole matrix, a block of rows at a time; each block computes only the columns up to
  // its last row and mirrors them (Q is symmetric).
  void prefetch_all() {
    constexpr int64_t kBlock = 128;
    const int64_t l = x_.rows;
    for (auto& r : rows_) r.resize(static_cast<size_t>(l));
    std::vector<float> buf;
    for (int64_t first = 0; first < l; first += kBlock) {
      const int64_t count = std::min(kBlock, l - first), cols = first + count;
      buf.resize(static_cast<size_t>(count * cols));
      compute_rows(first, count, cols, buf.data(), cols);
      for (int64_t r = 0; r < count; ++r) {
        const int64_t i = first + r;
        std::copy(buf.begin() + r * cols, buf.begin() + (r + 1) * cols, rows_[static_cast<size_t>(i)].begin());
        for (int64_t j = 0; j < first; ++j) rows_[static_cast<size_t>(j)][static_cast<size_t>(i)] = buf[static_cast<size_t>(r * cols + j)];
        lru_.push_front(i);
        where_[static_cast<size_t>(i)] = lru_.begin();
      }
    }
  }

  const FeatureMatrix& x_;
  const std::vector<int8_t>& y_;
  KernelFunction k_;
  std::vector<double> xd_;  // x in double, for libsvm's double kernel values
  std::vector<double> norms_;
  std::vector<std::vector<float>> rows_;
  std::vector<std::list<int64_t>::iterator> where_;
  std::list<int64_t> lru_;
  std::vector<double> diag_;
  int64_t capacity_ = 0, misses_ = 0;
};

// What the solver returns: the dual variables, rho, and the iteration count.
struct SmoResult {
  std::vector<double> alpha;
  double rho = 0;
  int64_t iterations = 0;
};

// libsvm's Solver for C-SVC (p = −e, equal C for both classes), re-implemented. Shrinking
// keeps an active list in index order instead of swapping rows (libsvm's swap_index), so the
// cache needs no swapping; without shrinking the path is libsvm's.
class SmoSolver {
 public:
  SmoSolver(KernelCache& q, const std::vector<int8_t>& y, double C, double tol, bool shrinking, int64_t max_iter)
      : q_(q), y_(y), C_(C), eps_(tol), shrinking_(shrinking), l_(static_cast<int64_t>(y.size())), max_iter_(max_iter) {}

  SmoResult solve() {
    const size_t l = static_cast<size_t>(l_);
    alpha_.assign(l, 0.0);
    G_.assign(l, -1.0);  // ∇f(α) = Qα + p with α = 0, p = −e
    G_bar_.assign(l, 0.0);
    active_.resize(l);
    for (size_t i = 0; i < l; ++i) active_[i] = static_cast<int64_t>(i);
    is_active_.assign(l, 1);

    const int64_t max_iter = max_iter_ > 0 ? max_iter_ : std::max<int64_t>(10000000, l_ > INT32_MAX / 100 ? INT32_MAX : 100 * l_);
    int64_t counter = std::min<int64_t>(l_, 1000) + 1;
    int64_t iter = 0;
    while (iter < max_iter) {
      if (--counter == 0) {
        counter = std::min<int64_t>(l_, 1000);
        if (shrinking_) do_shrinking();
      }
      int64_t i = -1, j = -1;
      if (select_working_set(i, j)) {
        reconstruct_gradient();  // optimal on the active set: check all variables
        reset_active();
        if (select_working_set(i, j)) break;
        counter = 1;  // shrink again at the next iteration
      }
      ++iter;
      update_pair(i, j);
    }
    if (static_cast<int64_t>(active_.size()) < l_) {
      reconstruct_gradient();
      reset_active();
    }
    return {alpha_, calculate_rho(), iter};
  }

 private:
  static constexpr double kTau = 1e-12;  // libsvm's TAU: the curvature used when Q is not PD

  bool upper(int64_t i) const { return alpha_[static_cast<size_t>(i)] >= C_; }
  bool lower(int64_t i) const { return alpha_[static_cast<size_t>(i)] <= 0; }
  int y(int64_t i) const { return y_[static_cast<size_t>(i)]; }

  // WSS 3: i maximises −y_t G_t over I_up; j minimises the second-order decrease
  // −(m − (−y_t G_t))² / (K_ii + K_tt − 2K_it) over I_low with −y_t G_t < m. Returns true when
  // m(α) − M(α) < tol (optimal). The >= / <= comparisons keep libsvm's tie-breaking (last index).
  bool select_working_set(int64_t& out_i, int64_t& out_j) {
    double Gmax = -std::numeric_limits<double>::infinity(), Gmax2 = Gmax;
    int64_t Gmax_idx = -1, Gmin_idx = -1;
    double obj_diff_min = std::numeric_limits<double>::infinity();
    for (int64_t t : active_) {
      const double g = G_[static_cast<size_t>(t)];
      if (y(t) == +1) {
        if (!upper(t) && -g >= Gmax) Gmax = -g, Gmax_idx = t;
      } else {
        if (!lower(t) && g >= Gmax) Gmax = g, Gmax_idx = t;
      }
    }
    const int64_t i = Gmax_idx;
    const float* Q_i = i != -1 ? q_.row(i) : nullptr;
    for (int64_t j : active_) {
      const double g = G_[static_cast<size_t>(j)];
      if (y(j) == +1) {
        if (lower(j)) continue;
        const double grad_diff = Gmax + g;
        if (g >= Gmax2) Gmax2 = g;
        if (grad_diff > 0) {
          const double quad = q_.diag(i) + q_.diag(j) - 2.0 * y(i) * Q_i[j];
          const double obj_diff = -(grad_diff * grad_diff) / (quad > 0 ? quad : kTau);
          if (obj_diff <= obj_diff_min) Gmin_idx = j, obj_diff_min = obj_diff;
        }
      } else {
        if (upper(j)) continue;
        const double grad_diff = Gmax - g;
        if (-g >= Gmax2) Gmax2 = -g;
        if (grad_diff > 0) {
          const double quad = q_.diag(i) + q_.diag(j) + 2.0 * y(i) * Q_i[j];
          const double obj_diff = -(grad_diff * grad_diff) / (quad > 0 ? quad : kTau);
          if (obj_diff <= obj_diff_min) Gmin_idx = j, obj_diff_min = obj_diff;
        }
      }
    }
    if (Gmax + Gmax2 < eps_ || Gmin_idx == -1) return true;
    out_i = Gmax_idx;
    out_j = Gmin_idx;
    return false;
  }

  // Solve the two-variable subproblem analytically, clip to the box, update G and G_bar.
  void update_pair(int64_t i, int64_t j) {
    const size_t si = static_cast<size_t>(i), sj = static_cast<size_t>(j);
    const float* Q_i = q_.row(i);
    const float* Q_j = q_.row(j);
    const double C = C_;
    const double old_ai = alpha_[si], old_aj = alpha_[sj];
    double& ai = alpha_[si];
    double& aj = alpha_[sj];
    if (y(i) != y(j)) {
      double quad = q_.diag(i) + q_.diag(j) + 2.0 * Q_i[j];
      if (quad <= 0) quad = kTau;
      const double delta = (-G_[si] - G_[sj]) / quad;
      const double diff = ai - aj;
      ai += delta;
      aj += delta;
      if (diff > 0) {
        if (aj < 0) aj = 0, ai = diff;
      } else {
        if (ai < 0) ai = 0, aj = -diff;
      }
      if (diff > 0) {  // C_i − C_j = 0 with one C for both classes
        if (ai > C) ai = C, aj = C - diff;
      } else {
        if (aj > C) aj = C, ai = C + diff;
      }
    } else {
      double quad = q_.diag(i) + q_.diag(j) - 2.0 * Q_i[j];
      if (quad <= 0) quad = kTau;
      const double delta = (G_[si] - G_[sj]) / quad;
      const double sum = ai + aj;
      ai -= delta;
      aj += delta;
      if (sum > C) {
        if (ai > C) ai = C, aj = sum - C;
      } else {
        if (aj < 0) aj = 0, ai = sum;
      }
      if (sum > C) {
        if (aj > C) aj = C, ai = sum - C;
      } else {
        if (ai < 0) ai = 0, aj = sum;
      }
    }
    const double dai = ai - old_ai, daj = aj - old_aj;
    for (int64_t k : active_) G_[static_cast<size_t>(k)] += Q_i[k] * dai + Q_j[k] * daj;

    // G_bar_k = Σ_{α_t = C} C Q_tk: kept for reconstructing the gradient after shrinking.
    const bool ui = old_ai >= C, uj = old_aj >= C;
    if (ui != upper(i)) {
      const float* Qi = q_.row(i);
      for (int64_t k = 0; k < l_; ++k) G_bar_[static_cast<size_t>(k)] += (ui ? -C : C) * Qi[k];
    }
    if (uj != upper(j)) {
      const float* Qj = q_.row(j);
      for (int64_t k = 0; k < l_; ++k) G_bar_[static_cast<size_t>(k)] += (uj ? -C : C) * Qj[k];
    }
  }

  // libsvm's be_shrunk: a bounded variable whose gradient says it will stay bounded.
  bool be_shrunk(int64_t i, double Gmax1, double Gmax2) const {
    const double g = G_[static_cast<size_t>(i)];
    if (upper(i)) return y(i) == +1 ? -g > Gmax1 : -g > Gmax2;
    if (lower(i)) return y(i) == +1 ? g > Gmax2 : g > Gmax1;
    return false;
  }

  void do_shrinking() {
    double Gmax1 = -std::numeric_limits<double>::infinity(), Gmax2 = Gmax1;
    for (int64_t i : active_) {
      const double g = G_[static_cast<size_t>(i)];
      if (y(i) == +1) {
        if (!upper(i)) Gmax1 = std::max(Gmax1, -g);
        if (!lower(i)) Gmax2 = std::max(Gmax2, g);
      } else {
        if (!upper(i)) Gmax2 = std::max(Gmax2, -g);
        if (!lower(i)) Gmax1 = std::max(Gmax1, g);
      }
    }
    if (!unshrink_ && Gmax1 + Gmax2 <= eps_ * 10) {  // near the end: unshrink once, then go on
      unshrink_ = true;
      reconstruct_gradient();
      reset_active();
    }
    std::vector<int64_t> kept;
    for (int64_t i : active_) {
      if (be_shrunk(i, Gmax1, Gmax2)) is_active_[static_cast<size_t>(i)] = 0;
      else kept.push_back(i);
    }
    active_ = std::move(kept);
  }

  // G of inactive variables from G_bar and the free active ones: G_j = G_bar_j + p_j + Σ_free α_i Q_ij.
  void reconstruct_gradient() {
    if (static_cast<int64_t>(active_.size()) == l_) return;
    for (int64_t j = 0; j < l_; ++j)
      if (!is_active_[static_cast<size_t>(j)]) G_[static_cast<size_t>(j)] = G_bar_[static_cast<size_t>(j)] - 1.0;
    for (int64_t i = 0; i < l_; ++i) {
      if (upper(i) || lower(i)) continue;  // free variables only; bounded ones are in G_bar
      const float* Q_i = q_.row(i);
      for (int64_t j = 0; j < l_; ++j)
        if (!is_active_[static_cast<size_t>(j)]) G_[static_cast<size_t>(j)] += alpha_[static_cast<size_t>(i)] * Q_i[j];
    }
  }

  void reset_active() {
    active_.resize(static_cast<size_t>(l_));
    for (int64_t i = 0; i < l_; ++i) active_[static_cast<size_t>(i)] = i;
    is_active_.assign(static_cast<size_t>(l_), 1);
  }

  // ρ = mean of y_i G_i over free variables; without any, the midpoint of the feasible range.
  double calculate_rho() const {
    int64_t nr_free = 0;
    double ub = std::numeric_limits<double>::infinity(), lb = -ub, sum_free = 0;
    for (int64_t i = 0; i < l_; ++i) {
      const double yG = y(i) * G_[static_cast<size_t>(i)];
      if (upper(i)) {
        if (y(i) == -1) ub = std::min(ub, yG);
        else lb = std::max(lb, yG);
      } else if (lower(i)) {
        if (y(i) == +1) ub = std::min(ub, yG);
        else lb = std::max(lb, yG);
      } else {
        ++nr_free;
        sum_free += yG;
      }
    }
    return nr_free > 0 ? sum_free / static_cast<double>(nr_free) : (ub + lb) / 2;
  }

  KernelCache& q_;
  const std::vector<int8_t>& y_;
  double C_, eps_;
  bool shrinking_, unshrink_ = false;
  int64_t l_, max_iter_;
  std::vector<double> alpha_, G_, G_bar_;
  std::vector<int64_t> active_;
  std::vector<char> is_active_;
};

// Platt's sigmoid P(generated | f) = 1 / (1 + exp(A f + B)), fitted as libsvm's sigmoid_train:
// targets (N₊+1)/(N₊+2) and 1/(N₋+2), Newton's method with backtracking line search (Lin, Lin &
// Weng 2007, Algorithm 1). labels: 1 generated (positive), 0 real.
struct PlattSigmoid {
  double A = 0, B = 0;

  static PlattSigmoid fit(const std::vector<double>& dec, const std::vector<int>& labels) {
    const size_t l = dec.size();
    double prior1 = 0, prior0 = 0;
    for (int v : labels) (v == 1 ? prior1 : prior0) += 1;
    const int max_iter = 100;
    const double min_step = 1e-10, sigma = 1e-12, eps = 1e-5;
    const double hi = (prior1 + 1.0) / (prior1 + 2.0), lo = 1 / (prior0 + 2.0);
    std::vector<double> t(l);
    for (size_t i = 0; i < l; ++i) t[i] = labels[i] == 1 ? hi : lo;
    double A = 0, B = std::log((prior0 + 1.0) / (prior1 + 1.0));
    auto objective = [&](double a, double b) {
      double f = 0;
      for (size_t i = 0; i < l; ++i) {
        const double fApB = dec[i] * a + b;
        f += fApB >= 0 ? t[i] * fApB + std::log1p(std::exp(-fApB)) : (t[i] - 1) * fApB + std::log1p(std::exp(fApB));
      }
      return f;
    };
    double fval = objective(A, B);
    for (int iter = 0; iter < max_iter; ++iter) {
      double h11 = sigma, h22 = sigma, h21 = 0, g1 = 0, g2 = 0;
      for (size_t i = 0; i < l; ++i) {
        const double fApB = dec[i] * A + B;
        double p, q;
        if (fApB >= 0) p = std::exp(-fApB) / (1.0 + std::exp(-fApB)), q = 1.0 / (1.0 + std::exp(-fApB));
        else p = 1.0 / (1.0 + std::exp(fApB)), q = std::exp(fApB) / (1.0 + std::exp(fApB));
        const double d2 = p * q;
        h11 += dec[i] * dec[i] * d2;
        h22 += d2;
        h21 += dec[i] * d2;
        const double d1 = t[i] - p;
        g1 += dec[i] * d1;
        g2 += d1;
      }
      if (std::abs(g1) < eps && std::abs(g2) < eps) break;
      const double det = h11 * h22 - h21 * h21;
      const double dA = -(h22 * g1 - h21 * g2) / det, dB = -(-h21 * g1 + h11 * g2) / det;
      const double gd = g1 * dA + g2 * dB;
      double step = 1;
      while (step >= min_step) {
        const double nA = A + step * dA, nB = B + step * dB, nf = objective(nA, nB);
        if (nf < fval + 0.0001 * step * gd) {
          A = nA, B = nB, fval = nf;
          break;
        }
        step /= 2;
      }
      if (step < min_step) break;  // line search failed
    }
    return {A, B};
  }

  double operator()(double f) const {
    const double fApB = f * A + B;
    return fApB >= 0 ? std::exp(-fApB) / (1.0 + std::exp(-fApB)) : 1.0 / (1 + std::exp(fApB));
  }
};

class Svm {
 public:
  SvmOptions options;
  Standardizer standardize;
  Pca pca;
  KernelFunction kernel;
  FeatureMatrix support;             // support vectors (after index selection and standardising)
  std::vector<double> coef;          // per support vector, sign so that score > 0 = generated
  std::vector<int64_t> support_ids;  // their row in the fit set (real rows first, then generated)
  double intercept = 0;              // score = Σ coef_i K(sv_i, x) + intercept
  PlattSigmoid platt;
  bool has_probability = false;
  int64_t iterations = 0;

  void fit(const FeatureMatrix& real_in, const FeatureMatrix& fake_in) {
    if (real_in.cols != fake_in.cols) fail<ShapeError>("svm: real rows have ", real_in.cols, " features, generated rows ", fake_in.cols);
    if (real_in.rows == 0 || fake_in.rows == 0) fail<UsageError>("svm: needs both real and generated rows");
    if (!(options.C > 0)) fail<UsageError>("svm: C must be > 0");
    if (!(options.tol > 0)) fail<UsageError>("svm: tol must be > 0");
    FeatureMatrix real = options.indices.empty() ? real_in : select_columns(real_in, options.indices);
    FeatureMatrix fake = options.indices.empty() ? fake_in : select_columns(fake_in, options.indices);
    standardize = options.standardize ? Standardizer::fit({&real, &fake}) : Standardizer{};
    FeatureMatrix x = standardize.apply(real), f = standardize.apply(fake);
    pca = options.pca > 0 ? Pca::fit({&x, &f}, options.pca, options.seed) : Pca{};
    x = pca.apply(x);
    f = pca.apply(f);
    x.values.insert(x.values.end(), f.values.begin(), f.values.end());
    x.names.insert(x.names.end(), f.names.begin(), f.names.end());
    x.rows += f.rows;
    kernel = {options.kernel, resolve_gamma(x), options.coef0, options.degree};
    std::vector<int8_t> y(static_cast<size_t>(x.rows), -1);
    for (int64_t i = 0; i < real.rows; ++i) y[static_cast<size_t>(i)] = +1;  // libsvm's first label: real

    train(x, y);
    if (options.probability) fit_platt(x, y);
  }

  // Decision values: Σ coef_i K(sv_i, x) + intercept, in blocks of rows through GEMM.
  std::vector<double> score(const FeatureMatrix& x_in) const {
    // With an index selection, select_columns checks every index against x_in's width.
    if (options.indices.empty() && x_in.cols != input_features())
      fail<ShapeError>("svm: features have ", x_in.cols, " columns, the model expects ", input_features());
    return decision(transform(x_in));
  }

  // Feature rows as the support vectors are stored: index selection, standardisation, PCA.
  FeatureMatrix transform(const FeatureMatrix& x_in) const {
    return pca.apply(standardize.apply(options.indices.empty() ? x_in : select_columns(x_in, options.indices)));
  }

  // Columns score() expects after the index selection: PCA's input width, or the support
  // vectors' when there is no PCA.
  int64_t input_features() const { return pca.enabled() ? pca.in_features() : support.cols; }

  // P(generated) by Platt's sigmoid; only for models fitted with probability.
  std::vector<double> probability(const FeatureMatrix& x) const {
    if (!has_probability) fail<UsageError>("svm: the model was fitted without --probability");
    std::vector<double> p = score(x);
    for (double& v : p) v = platt(v);
    return p;
  }

  double threshold() const { return 0.0; }
  std::string_view threshold_meaning() const { return "decision value 0: generated when the SVM decision value > 0"; }

  void save(const std::string& path) const {
    ModelWriter w;
    w.meta("genscope.head", "svm");
    w.meta("svm.kernel", std::string(kernel_name(kernel.kernel)));
    w.meta("svm.gamma", kernel.gamma);
    w.meta("svm.coef0", kernel.coef0);
    w.meta("svm.degree", kernel.degree);
    w.meta("svm.C", options.C);
    w.meta("svm.tol", options.tol);
    w.meta("svm.shrinking", options.shrinking ? "1" : "0");
    w.meta("svm.intercept", intercept);
    w.tensor("svm.support_vectors", support.values, Shape{support.rows, support.cols});
    w.tensor("svm.dual_coef", coef, Shape{static_cast<int64_t>(coef.size())});
    if (!options.indices.empty()) {
      Tensor t = Tensor::empty(Shape{static_cast<int64_t>(options.indices.size())}, DType::I64);
      std::copy(options.indices.begin(), options.indices.end(), t.data<int64_t>());
      w.tensors.emplace_back("svm.indices", t);
    }
    if (has_probability) w.meta("svm.platt_A", platt.A), w.meta("svm.platt_B", platt.B);
    standardize.save(w);
    pca.save(w);
    w.save(path);
  }

  static Svm load(const std::string& path) {
    ModelReader r(path);
    if (r.meta("genscope.head") != "svm") fail<FormatError>(path, ": is a '", r.meta("genscope.head"), "' model, not an svm");
    Svm s;
    s.kernel.kernel = s.options.kernel = parse_kernel(r.meta("svm.kernel"));
    s.kernel.gamma = r.meta_number("svm.gamma");
    s.kernel.coef0 = r.meta_number("svm.coef0");
    s.kernel.degree = static_cast<int>(r.meta_number("svm.degree"));
    s.options.C = r.meta_number("svm.C");
    s.options.tol = r.meta_number("svm.tol");
    s.intercept = r.meta_number("svm.intercept");
    const Shape sv = r.tensor("svm.support_vectors", s.support.values, 2);
    s.support.rows = sv[0];
    s.support.cols = sv[1];
    r.tensor("svm.dual_coef", s.coef, 1);
    if (static_cast<int64_t>(s.coef.size()) != s.support.rows)
      fail<FormatError>(path, ": svm.dual_coef has ", s.coef.size(), " entries for ", s.support.rows, " support vectors");
    s.pca = Pca::load(r);
    if (s.pca.enabled() && s.pca.out_features() != s.support.cols)
      fail<FormatError>(path, ": pca.components has ", s.pca.out_features(), " rows for support vectors of ", s.support.cols, " features");
    if (r.file().contains("svm.indices")) {
      const Tensor t = r.file().get("svm.indices").contiguous();
      if (t.dtype() != DType::I64 || t.dim() != 1 || t.numel() != s.input_features())
        fail<FormatError>(path, ": svm.indices must be i64 [", s.input_features(), "]");
      s.options.indices.assign(t.data<int64_t>(), t.data<int64_t>() + t.numel());
    }
    if (r.has_meta("svm.platt_A")) {
      s.has_probability = true;
      s.platt = {r.meta_number("svm.platt_A"), r.meta_number("svm.platt_B")};
    }
    s.standardize = Standardizer::load(r);
    if (s.standardize.enabled() && static_cast<int64_t>(s.standardize.mean.size()) != s.input_features())
      fail<FormatError>(path, ": standardize.mean does not match the support vectors (or pca.mean)");
    return s;
  }

 private:
  // sklearn's SVC: 'scale' = 1 / (n_features · Var(X)) over all values, 'auto' = 1 / n_features.
  double resolve_gamma(const FeatureMatrix& x) const {
    if (options.gamma_mode == GammaMode::Value) {
      if (!(options.gamma > 0)) fail<UsageError>("svm: gamma must be > 0");
      return options.gamma;
    }
    if (options.gamma_mode == GammaMode::Auto) return 1.0 / static_cast<double>(x.cols);
    double mean = 0, sq = 0;
    for (float v : x.values) mean += v;
    mean /= static_cast<double>(x.values.size());
    for (float v : x.values) sq += (v - mean) * (v - mean);
    const double var = sq / static_cast<double>(x.values.size());
    return var > 0 ? 1.0 / (static_cast<double>(x.cols) * var) : 1.0;
  }

  // Solve the dual on (x, y) and keep the support vectors (α > 0).
  void train(const FeatureMatrix& x, const std::vector<int8_t>& y) {
    KernelCache cache(x, y, kernel, options.cache_bytes);
    SmoSolver solver(cache, y, options.C, options.tol, options.shrinking, options.max_iter);
    const SmoResult r = solver.solve();
    iterations = r.iterations;
    support = FeatureMatrix{0, x.cols, {}, {}};
    coef.clear();
    support_ids.clear();
    for (int64_t i = 0; i < x.rows; ++i) {
      const double a = r.alpha[static_cast<size_t>(i)];
      if (a <= 0) continue;
      support.values.insert(support.values.end(), x.row(i), x.row(i) + x.cols);
      support.names.push_back(x.names.empty() ? std::to_string(i) : x.names[static_cast<size_t>(i)]);
      ++support.rows;
      coef.push_back(-y[static_cast<size_t>(i)] * a);  // sklearn flips libsvm's binary sign
      support_ids.push_back(i);
    }
    intercept = r.rho;
  }

  std::vector<double> decision(const FeatureMatrix& x) const {
    std::vector<double> out(static_cast<size_t>(x.rows), intercept);
    if (support.rows == 0 || x.rows == 0) return out;
    const std::vector<double> nx = row_norms(x), ns = row_norms(support);
    constexpr int64_t kBlock = 512;
    std::vector<float> k;
    for (int64_t first = 0; first < x.rows; first += kBlock) {
      const int64_t count = std::min(kBlock, x.rows - first);
      k.resize(static_cast<size_t>(count * support.rows));
      kernel.block(x.row(first), count, nx.data() + first, support.values.data(), support.rows, ns.data(), x.cols, k.data());
      for (int64_t r = 0; r < count; ++r) {
        double s = 0;
        for (int64_t j = 0; j < support.rows; ++j) s += coef[static_cast<size_t>(j)] * k[static_cast<size_t>(r * support.rows + j)];
        out[static_cast<size_t>(first + r)] += s;
      }
    }
    return out;
  }

  // libsvm's svm_binary_svc_probability: 5-fold CV decision values, then sigmoid_train.
  void fit_platt(const FeatureMatrix& x, const std::vector<int8_t>& y) {
    constexpr int64_t kFolds = 5;
    std::vector<int64_t> perm(static_cast<size_t>(x.rows));
    for (int64_t i = 0; i < x.rows; ++i) perm[static_cast<size_t>(i)] = i;
    std::mt19937_64 rng(options.seed);
    seeded_shuffle(perm, rng);
    std::vector<double> dec(static_cast<size_t>(x.rows));
    for (int64_t fold = 0; fold < kFolds; ++fold) {
      const int64_t begin = fold * x.rows / kFolds, end = (fold + 1) * x.rows / kFolds;
      FeatureMatrix real{0, x.cols, {}, {}}, fake{0, x.cols, {}, {}}, test{0, x.cols, {}, {}};
      for (int64_t k = 0; k < x.rows; ++k) {
        const int64_t i = perm[static_cast<size_t>(k)];
        FeatureMatrix& dst = (k >= begin && k < end) ? test : (y[static_cast<size_t>(i)] == 1 ? real : fake);
        dst.values.insert(dst.values.end(), x.row(i), x.row(i) + x.cols);
        dst.names.push_back(std::to_string(i));
        ++dst.rows;
      }
      std::vector<double> d;
      if (real.rows == 0 || fake.rows == 0) {
        d.assign(static_cast<size_t>(test.rows), real.rows == 0 && fake.rows == 0 ? 0.0 : (fake.rows == 0 ? -1.0 : 1.0));
      } else {
        Svm sub;
        sub.options = options;
        sub.options.probability = false;
        sub.options.standardize = false;
        sub.options.pca = 0;
        sub.options.indices.clear();
        sub.options.gamma_mode = GammaMode::Value;
        sub.options.gamma = kernel.gamma;
        sub.fit(real, fake);
        d = sub.decision(test);
      }
      for (int64_t k = begin; k < end; ++k) dec[static_cast<size_t>(perm[static_cast<size_t>(k)])] = d[static_cast<size_t>(k - begin)];
    }
    std::vector<int> labels(static_cast<size_t>(x.rows));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = y[i] == -1 ? 1 : 0;
    platt = PlattSigmoid::fit(dec, labels);
    has_probability = true;
  }
};

}  // namespace genscope::detect
