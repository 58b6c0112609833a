// Test support shared by the doctest binaries under tests/: scratch folders, running the genscope
// CLI or a shell command, whole-file reads and writes, fixture tensors, random tensors and the
// relative error max|got − want| / max|want|. Header-only; every test target defines
// GENSCOPE_TEST_DATA and GENSCOPE_CLI.
#pragma once

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"

namespace genscope::test {

namespace fs = std::filesystem;

// A scratch folder (temp dir / PREFIX-XXXXXX) for one test case, removed with everything in it.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& prefix) {
    std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

struct CommandResult {
  int exit_code;       // -1 when the command did not exit normally
  std::string output;  // stdout and stderr together
};

// Runs COMMAND through the shell with stderr joined to stdout, as a script would.
inline CommandResult run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// `genscope ARGS`.
inline CommandResult run_cli(const std::string& args) { return run_command(std::string(GENSCOPE_CLI) + " " + args); }

// A file's bytes; a missing file reads as "" unless must_exist, which fails the test case.
inline std::string read_file(const fs::path& path, bool must_exist = false) {
  std::ifstream in(path, std::ios::binary);
  if (must_exist) REQUIRE_MESSAGE(in.good(), "cannot read ", path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors fixture under tests/data (FILE relative to it), opened once and kept for the run.
inline const SafetensorsFile& fixture_file(const std::string& file) {
  static std::map<std::string, std::unique_ptr<SafetensorsFile>> open;
  auto& f = open[file];
  if (!f) f = std::make_unique<SafetensorsFile>(std::string(GENSCOPE_TEST_DATA) + "/" + file);
  return *f;
}

// The tensor NAME of that fixture.
inline Tensor fixture(const std::string& file, const std::string& name) { return fixture_file(file).get(name); }

// An F32 tensor of N(0, scale²) values from mt19937(seed).
inline Tensor random_normal(Shape shape, uint32_t seed, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape, DType::F32);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

// What relative_error does with NaN and ±inf in the values.
enum class NanRule {
  unchecked,    // no check: NaN differences drop out of the max
  forbidden,    // a NaN in either tensor fails the test case
  same_places,  // NaNs must sit in the same places and infinities match exactly; both are skipped
};

// What relative_error returns when max|want| is 0.
enum class ZeroScale {
  absolute,  // max|got − want|
  divide,    // max|got − want| / 0: inf, or NaN when that is 0 too; either fails a ≤ check
};

// max|got − want| / max|want| over all elements (in double, after converting to F32); the
// shapes must agree.
inline double relative_error(const Tensor& got, const Tensor& want, NanRule nan = NanRule::unchecked,
                             ZeroScale zero = ZeroScale::absolute) {
  REQUIRE(got.shape() == want.shape());
  const Tensor g = got.to(DType::F32), w = want.to(DType::F32);
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < g.numel(); ++i) {
    const float a = g.data<float>()[i], b = w.data<float>()[i];
    if (nan == NanRule::forbidden) {
      REQUIRE(!std::isnan(a));
      REQUIRE(!std::isnan(b));
    } else if (nan == NanRule::same_places) {
      REQUIRE(std::isnan(a) == std::isnan(b));
      if (std::isnan(b)) continue;
      if (std::isinf(b)) {
        REQUIRE(a == b);
        continue;
      }
    }
    diff = std::max(diff, std::fabs(static_cast<double>(a) - b));
    scale = std::max(scale, std::fabs(static_cast<double>(b)));
  }
  return scale == 0 && zero == ZeroScale::absolute ? diff : diff / scale;
}

// The same over two equal-length vectors, no NaN checks, max|got − want| when max|want| is 0.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return scale == 0 ? diff : diff / scale;
}

// The what() of the E that fn throws, or NONE when it throws nothing.
template <class E, class F>
std::string message_of(F&& fn, const std::string& none) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return none;
}

}  // namespace genscope::test
