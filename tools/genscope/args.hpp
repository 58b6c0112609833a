// tools/genscope/args.hpp — the command line parser every subcommand uses.
//
// A subcommand declares its options (name, whether it takes values, help); parse() then
// accepts `--name value`, `--name=value`, repeated options, multi-valued options
// (`--mean 0.5 0.5 0.5` or `--mean 0.5,0.5,0.5`) and positionals, and throws UsageError naming
// the offending argument for anything else. Typed getters name the flag in their errors too.
#pragma once

#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "genscope/core/error.hpp"

namespace genscope::cli {

struct OptionSpec {
  std::string name;        // without the leading "--"
  std::string value_name;  // empty: a flag without a value
  std::string help;
  bool multi = false;      // takes one or more values (until the next --option)
};

class Args {
 public:
  Args(std::string command, std::string usage, std::vector<OptionSpec> options)
      : command_(std::move(command)), usage_(std::move(usage)), specs_(std::move(options)) {
    specs_.push_back({"help", "", "show this help and exit"});
  }

  // Parse argv[first..argc). Returns false when --help was given (help already printed).
  bool parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string_view arg = argv[i];
      if (arg == "--") {
        for (++i; i < argc; ++i) positionals_.emplace_back(argv[i]);
        break;
      }
      if (arg.size() < 3 || arg.substr(0, 2) != "--") {
        if (arg.size() > 1 && arg[0] == '-' && !is_number(arg)) fail<UsageError>(command_, ": unknown option '", arg, "' (options start with --)");
        positionals_.emplace_back(arg);
        continue;
      }
      std::string name(arg.substr(2));
      std::optional<std::string> inline_value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
      const OptionSpec* spec = find(name);
      if (!spec) fail<UsageError>(command_, ": unknown option '--", name, "'", suggestion(name));
      auto& values = values_[name];
      if (spec->value_name.empty()) {
        if (inline_value) fail<UsageError>(command_, ": option '--", name, "' takes no value");
        values.emplace_back("");
        continue;
      }
      if (inline_value) {
        split_into(*inline_value, values);
        continue;
      }
      if (i + 1 >= argc || (std::string_view(argv[i + 1]).starts_with("--"))) fail<UsageError>(command_, ": option '--", name, "' needs a value (", spec->value_name, ")");
      split_into(argv[++i], values);
      // Multi-valued options take the following non-option words too: --mean 0.5 0.4 0.3.
      while (spec->multi && i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--") && looks_like_value(argv[i + 1]))
        split_into(argv[++i], values);
    }
    if (has("help")) {
      print_help();
      return false;
    }
    return true;
  }

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  const std::vector<std::string>& positionals() const { return positionals_; }

  std::optional<std::string> get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    if (it->second.size() != 1 && !find(name)->multi) fail<UsageError>(command_, ": option '--", name, "' given more than once");
    return it->second.back();
  }

  std::string require(const std::string& name) const {
    auto v = get(name);
    if (!v) fail<UsageError>(command_, ": missing required option '--", name, "'");
    return *v;
  }

  std::vector<std::string> get_all(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }

  std::optional<long long> get_int(const std::string& name, long long lo, long long hi) const {
    auto v = get(name);
    if (!v) return std::nullopt;
    long long x = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), x);
    if (ec != std::errc() || p != v->data() + v->size() || x < lo || x > hi)
      fail<UsageError>(command_, ": option '--", name, "' expects an integer in [", lo, ", ", hi, "], got '", *v, "'");
    return x;
  }

  std::vector<float> get_floats(const std::string& name) const {
    std::vector<float> out;
    for (const auto& s : get_all(name)) out.push_back(parse_float(name, s));
    return out;
  }

  template <class Enum>
  std::optional<Enum> get_choice(const std::string& name, const std::vector<std::pair<std::string, Enum>>& choices) const {
    auto v = get(name);
    if (!v) return std::nullopt;
    std::string list;
    for (const auto& [key, value] : choices) {
      if (key == *v) return value;
      list += (list.empty() ? "" : ", ") + key;
    }
    fail<UsageError>(command_, ": option '--", name, "' must be one of ", list, "; got '", *v, "'");
  }

  void print_help() const {
    std::printf("usage: genscope %s %s\n\noptions:\n", command_.c_str(), usage_.c_str());
    for (const auto& s : specs_) {
      std::string left = "--" + s.name + (s.value_name.empty() ? "" : " " + s.value_name);
      std::printf("  %-26s %s\n", left.c_str(), s.help.c_str());
    }
  }

  const std::string& command() const { return command_; }

 private:
  const OptionSpec* find(const std::string& name) const {
    for (const auto& s : specs_)
      if (s.name == name) return &s;
    return nullptr;
  }

  std::string suggestion(const std::string& name) const {
    for (const auto& s : specs_)
      if (s.name.find(name) != std::string::npos || name.find(s.name) != std::string::npos) return "; did you mean '--" + s.name + "'?";
    return "; see 'genscope " + command_ + " --help'";
  }

  static bool is_number(std::string_view s) {
    double x;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    return ec == std::errc() && p == s.data() + s.size();
  }
  static bool looks_like_value(std::string_view s) { return is_number(s) || (s.find(',') != std::string_view::npos); }

  static void split_into(const std::string& value, std::vector<std::string>& out) {
    // Comma-separated lists are how several numbers fit in one --name=value.
    if (value.find(',') == std::string::npos || !is_number(value.substr(0, value.find(',')))) {
      out.push_back(value);
      return;
    }
    size_t start = 0;
    for (;;) {
      const size_t comma = value.find(',', start);
      out.push_back(value.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }

  float parse_float(const std::string& name, const std::string& s) const {
    float x = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(x))
      fail<UsageError>(command_, ": option '--", name, "' expects numbers, got '", s, "'");
    return x;
  }

  std::string command_, usage_;
  std::vector<OptionSpec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

}  // namespace genscope::cli
