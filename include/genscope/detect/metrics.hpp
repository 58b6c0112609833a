// genscope/detect/metrics.hpp — how the detector papers report results.
//
// Labels: 0 real, 1 generated (the positive class). Scores: higher = more likely generated.
//   accuracy            overall, on real rows and on generated rows, of 0/1 predictions;
//   average_precision   scikit-learn's average_precision_score: Σ_k (R_k − R_{k−1}) P_k over the
//                       distinct score thresholds in decreasing order (no interpolation);
//   roc_auc             scikit-learn's roc_auc_score: the trapezoidal area under the ROC curve
//                       whose points are the distinct thresholds, so tied scores form one
//                       diagonal segment (a tie counts half).
// group_table gives one row per group (a generator folder), as the papers' tables do; AP and
// AUC only where the group holds both real and generated rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "genscope/core/error.hpp"

namespace genscope::detect {

struct Accuracy {
  double overall = NAN, real = NAN, generated = NAN;  // NaN where there are no such rows
  int64_t n_real = 0, n_generated = 0;
};

inline void check_sizes(size_t labels, size_t other, const char* what) {
  if (labels != other) fail<ShapeError>("metrics: ", labels, " labels but ", other, " ", what);
}

inline Accuracy accuracy(const std::vector<int>& labels, const std::vector<int>& predicted) {
  check_sizes(labels.size(), predicted.size(), "predictions");
  int64_t ok_real = 0, ok_gen = 0;
  Accuracy a;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == 1) ++a.n_generated, ok_gen += predicted[i] == 1;
    else ++a.n_real, ok_real += predicted[i] == 0;
  }
  if (a.n_real) a.real = static_cast<double>(ok_real) / static_cast<double>(a.n_real);
  if (a.n_generated) a.generated = static_cast<double>(ok_gen) / static_cast<double>(a.n_generated);
  if (!labels.empty()) a.overall = static_cast<double>(ok_real + ok_gen) / static_cast<double>(labels.size());
  return a;
}

// Cumulative true and false positives at each distinct threshold, scores in decreasing order
// (sklearn's _binary_clf_curve).
struct ClfCurve {
  std::vector<double> tps, fps;
};

inline ClfCurve binary_clf_curve(const std::vector<int>& labels, const std::vector<double>& scores) {
  check_sizes(labels.size(), scores.size(), "scores");
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  ClfCurve c;
  double tp = 0, fp = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    if (labels[order[k]] == 1) tp += 1;
    else fp += 1;
    if (k + 1 == order.size() || scores[order[k + 1]] != scores[order[k]]) {
      c.tps.push_back(tp);
      c.fps.push_back(fp);
    }
  }
  return c;
}

// NaN when there are no generated rows (sklearn warns and returns nan-like values too).
inline double average_precision(const std::vector<int>& labels, const std::vector<double>& scores) {
  const ClfCurve c = binary_clf_curve(labels, scores);
  if (c.tps.empty() || c.tps.back() == 0) return NAN;
  double ap = 0, prev_recall = 0;
  for (size_t k = 0; k < c.tps.size(); ++k) {
    const double recall = c.tps[k] / c.tps.back();
    const double precision = c.tps[k] / (c.tps[k] + c.fps[k]);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
  }
  return ap;
}

// NaN unless both classes are present (sklearn raises).
inline double roc_auc(const std::vector<int>& labels, const std::vector<double>& scores) {
  const ClfCurve c = binary_clf_curve(labels, scores);
  if (c.tps.empty() || c.tps.back() == 0 || c.fps.back() == 0) return NAN;
  double area = 0, x0 = 0, y0 = 0;
  for (size_t k = 0; k < c.tps.size(); ++k) {
    const double x = c.fps[k] / c.fps.back(), y = c.tps[k] / c.tps.back();
    area += (x - x0) * (y + y0) / 2;
    x0 = x;
    y0 = y;
  }
  return area;
}

struct GroupRow {
  std::string group;
  int64_t n = 0;
  Accuracy acc;
  double ap = NAN, auc = NAN;
};

// One row per group (sorted by name) and a final row "all" over every row.
inline std::vector<GroupRow> group_table(const std::vector<std::string>& groups, const std::vector<int>& labels,
                                         const std::vector<double>& scores, const std::vector<int>& predicted) {
  check_sizes(labels.size(), groups.size(), "groups");
  check_sizes(labels.size(), scores.size(), "scores");
  check_sizes(labels.size(), predicted.size(), "predictions");
  std::map<std::string, std::vector<size_t>> members;
  for (size_t i = 0; i < groups.size(); ++i) members[groups[i]].push_back(i);
  auto row = [&](const std::string& name, const std::vector<size_t>& idx) {
    std::vector<int> l, p;
    std::vector<double> s;
    for (size_t i : idx) l.push_back(labels[i]), p.push_back(predicted[i]), s.push_back(scores[i]);
    // AP and AUC rank generated against real rows: only defined where a group has both.
    const bool both = std::count(l.begin(), l.end(), 1) > 0 && std::count(l.begin(), l.end(), 0) > 0;
    return GroupRow{name, static_cast<int64_t>(idx.size()), accuracy(l, p), both ? average_precision(l, s) : NAN,
                    both ? roc_auc(l, s) : NAN};
  };
  std::vector<GroupRow> table;
  for (const auto& [name, idx] : members) table.push_back(row(name, idx));
  std::vector<size_t> all(labels.size());
  std::iota(all.begin(), all.end(), size_t{0});
  table.push_back(row("all", all));
  return table;
}

}  // namespace genscope::detect
