// genscope eval --scores S.csv [--scores ...] --labels L.csv
// genscope eval --real S.csv [...] --fake S.csv [...] — print detection metrics.
//
// Score files are what `genscope score` writes (name,score,generated). Labels come either from
// a CSV `name,label[,group]` (label 0 real, 1 generated; rows matched by name) or from which
// option named the score file: --real files hold real rows, --fake files generated ones. The
// group of a row (one table row per generator, as in the papers) is the labels' group column,
// else the score file's name without folder and extension.
// Prints accuracy (overall, real, generated), average precision and ROC-AUC per group and "all".
#pragma once

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "args.hpp"
#include "genscope/detect/metrics.hpp"

namespace genscope::cli {

namespace eval_detail {

// Split one CSV line (RFC 4180 quoting; no line breaks inside fields).
inline std::vector<std::string> split_csv(const std::string& line, const std::string& where) {
  std::vector<std::string> f(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') f.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else f.back() += c;
    } else if (c == '"') quoted = true;
    else if (c == ',') f.emplace_back();
    else if (c != '\r') f.back() += c;
  }
  if (quoted) fail<FormatError>(where, ": unterminated quote");
  return f;
}

struct Table {
  std::vector<std::vector<std::string>> rows;  // without the header
};

inline Table read_csv(const std::string& path, const std::vector<std::string>& header_prefix) {
  std::ifstream in(path);
  if (!in) fail<IoError>(path, ": cannot open");
  std::string line;
  if (!std::getline(in, line)) fail<FormatError>(path, ": empty file (expected a header line)");
  const auto head = split_csv(line, path + ":1");
  for (size_t i = 0; i < header_prefix.size(); ++i)
    if (i >= head.size() || head[i] != header_prefix[i])
      fail<FormatError>(path, ": header must start with '", header_prefix[0], ",", header_prefix[1], "...', got '", line, "'");
  Table t;
  for (size_t n = 2; std::getline(in, line); ++n) {
    if (line.empty() || line == "\r") continue;
    auto f = split_csv(line, cat(path, ":", n));
    if (f.size() < header_prefix.size()) fail<FormatError>(path, ":", n, ": expected ", header_prefix.size(), " fields, got ", f.size());
    t.rows.push_back(std::move(f));
  }
  return t;
}

inline double parse_number(const std::string& s, const std::string& where) {
  double v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) fail<FormatError>(where, ": '", s, "' is not a number");
  return v;
}

struct Rows {
  std::vector<std::string> names, groups;
  std::vector<double> scores;
  std::vector<int> predicted, labels;
};

// Append a score file's rows; label −1 means "from the labels file".
inline void add_scores(Rows& r, const std::string& path, int label) {
  const Table t = read_csv(path, {"name", "score", "generated"});
  const std::string stem = std::filesystem::path(path).stem().string();
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& f = t.rows[i];
    const std::string where = cat(path, ":", i + 2);
    r.names.push_back(f[0]);
    r.scores.push_back(parse_number(f[1], where));
    if (f[2] != "0" && f[2] != "1") fail<FormatError>(where, ": generated must be 0 or 1, got '", f[2], "'");
    r.predicted.push_back(f[2] == "1");
    r.labels.push_back(label);
    r.groups.push_back(label == 0 ? "real" : stem);
  }
}

inline std::string pct(double v) { return std::isnan(v) ? "-" : cat(std::round(v * 10000) / 100); }
inline std::string num(double v) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", v);
  return b;
}

}  // namespace eval_detail

inline int run_eval(int argc, char** argv) {
  using namespace eval_detail;
  Args args("eval", "--scores S.csv [...] --labels L.csv | --real S.csv [...] --fake S.csv [...]",
            {{"scores", "S.csv", "scores from 'genscope score' (labels from --labels)", true},
             {"labels", "L.csv", "name,label[,group]: label 0 real, 1 generated"},
             {"real", "S.csv", "scores of real rows", true},
             {"fake", "S.csv", "scores of generated rows (group: the file's name)", true}});
  if (!args.parse(argc, argv, 2)) return 0;
  if (!args.positionals().empty()) fail<UsageError>("eval: unexpected argument '", args.positionals()[0], "'");
  const bool by_labels = args.has("scores");
  if (by_labels == (args.has("real") || args.has("fake")))
    fail<UsageError>("eval: give either --scores with --labels, or --real and --fake");
  if (by_labels && !args.has("labels")) fail<UsageError>("eval: --scores needs --labels L.csv");
  if (!by_labels && args.has("labels")) fail<UsageError>("eval: --labels goes with --scores");

  Rows rows;
  if (by_labels) {
    for (const auto& p : args.get_all("scores")) add_scores(rows, p, -1);
    const std::string lp = *args.get("labels");
    const Table lt = read_csv(lp, {"name", "label"});
    std::map<std::string, std::pair<int, std::string>> labels;
    for (size_t i = 0; i < lt.rows.size(); ++i) {
      const auto& f = lt.rows[i];
      if (f[1] != "0" && f[1] != "1") fail<FormatError>(lp, ":", i + 2, ": label must be 0 or 1, got '", f[1], "'");
      if (!labels.emplace(f[0], std::pair{f[1] == "1" ? 1 : 0, f.size() > 2 ? f[2] : std::string()}).second)
        fail<FormatError>(lp, ":", i + 2, ": name '", f[0], "' is listed twice");
    }
    for (size_t i = 0; i < rows.names.size(); ++i) {
      auto it = labels.find(rows.names[i]);
      if (it == labels.end()) fail<InputError>(lp, ": has no label for '", rows.names[i], "'");
      rows.labels[i] = it->second.first;
      rows.groups[i] = it->second.second.empty() ? (it->second.first ? "generated" : "real") : it->second.second;
    }
  } else {
    for (const auto& p : args.get_all("real")) add_scores(rows, p, 0);
    for (const auto& p : args.get_all("fake")) add_scores(rows, p, 1);
  }
  if (rows.names.empty()) fail<InputError>("eval: the score files hold no rows");

  const auto table = detect::group_table(rows.groups, rows.labels, rows.scores, rows.predicted);
  size_t width = 5;
  for (const auto& g : table) width = std::max(width, g.group.size());
  std::printf("%-*s  %7s  %8s  %8s  %9s  %7s  %7s\n", static_cast<int>(width), "group", "rows", "acc %", "real %", "gen %", "AP", "AUC");
  for (const auto& g : table)
    std::printf("%-*s  %7lld  %8s  %8s  %9s  %7s  %7s\n", static_cast<int>(width), g.group.c_str(), static_cast<long long>(g.n),
                pct(g.acc.overall).c_str(), pct(g.acc.real).c_str(), pct(g.acc.generated).c_str(), num(g.ap).c_str(),
                num(g.auc).c_str());
  return 0;
}

}  // namespace genscope::cli
