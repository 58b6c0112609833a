// genscope score --model M.safetensors --features X --output S.csv — score feature rows.
//
// Writes a header line and one row per feature row: `name,score,generated`. name comes from
// the features' metadata (or is the row index), score is higher for more likely generated (SVM
// decision value, probe probability, GMM −log-likelihood), generated is 1 when the score is
// above the model's threshold. The CSV is written atomically. The model may be any genscope
// head or UAR's released head converted with `genscope convert` (linear.weight, linear.bias).
#pragma once

#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

#include "args.hpp"
#include "genscope/detect/any_head.hpp"
#include "genscope/io/safetensors.hpp"

namespace genscope::cli {

// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Shortest text that reads back as the same double.
inline std::string number_text(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

inline void write_scores_csv(const std::string& path, const std::vector<std::string>& names, const std::vector<double>& scores,
                             double threshold) {
  std::string text = "name,score,generated\n";
  for (size_t i = 0; i < scores.size(); ++i)
    text += cat(csv_field(names[i]), ",", number_text(scores[i]), ",", scores[i] > threshold ? "1" : "0", "\n");
  AtomicFile out(path);
  out.write(text.data(), text.size());
  out.commit();
}

inline int run_score(int argc, char** argv) {
  Args args("score", "--model M.safetensors --features X --output S.csv",
            {{"model", "M.safetensors", "a model from 'genscope fit' or a converted UAR head"},
             {"features", "X", "FILE.safetensors[:TENSOR], FILE.npy or a folder of .npy files"},
             {"output", "S.csv", "where to write name,score,generated (atomically)"}});
  if (!args.parse(argc, argv, 2)) return 0;
  if (!args.positionals().empty()) fail<UsageError>("score: unexpected argument '", args.positionals()[0], "'");
  const std::string model_path = args.require("model"), features = args.require("features"), output = args.require("output");
  const detect::AnyHead head = detect::load_head(model_path);
  const detect::FeatureMatrix x = detect::read_features(features);
  std::vector<double> s;
  try {
    s = detect::score(head, x);
  } catch (const ShapeError& e) {
    fail<InputError>(features, ": does not fit ", model_path, ": ", e.what());
  }
  const double t = detect::threshold(head);
  write_scores_csv(output, x.names, s, t);
  size_t generated = 0;
  for (double v : s) generated += v > t;
  std::printf("%s: %lld rows scored with a %s head, %zu generated; wrote %s\n", features.c_str(), static_cast<long long>(x.rows),
              std::string(detect::head_name(head)).c_str(), generated, output.c_str());
  return 0;
}

}  // namespace genscope::cli
