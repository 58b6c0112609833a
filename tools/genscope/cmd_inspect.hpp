// genscope inspect FILE.safetensors [FILE ...] — list a safetensors file's tensors and metadata,
// validating the whole header (and, with --check-data, reading every tensor). A bad file is
// reported with its name and reason, and the command goes on with the next file; the exit code
// is 2 if any file was bad.
#pragma once

#include <cstdio>
#include <string>

#include "args.hpp"
#include "genscope/io/safetensors.hpp"

namespace genscope::cli {

// Metadata values are free text; control characters are shown escaped so one value stays one line.
inline std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F) out += cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    else out += static_cast<char>(c);
  }
  return out;
}

inline void print_safetensors(const std::string& path) {
  SafetensorsFile file = SafetensorsFile::open(path);
  const auto& names = file.names();
  uint64_t total = 0;
  for (const auto& name : names) total += file.info(name).nbytes();
  std::printf("%s: %zu tensors, %llu bytes of tensor data\n", path.c_str(), names.size(),
              static_cast<unsigned long long>(total));
  if (!file.metadata().empty()) {
    std::printf("metadata:\n");
    for (const auto& [key, value] : file.metadata()) std::printf("  %s: %s\n", printable(key).c_str(), printable(value).c_str());
  }
  size_t width = 4;
  for (const auto& name : names) width = std::max(width, name.size());
  std::printf("%-*s  %-5s  %-22s  %s\n", static_cast<int>(width), "name", "dtype", "shape", "bytes");
  for (const auto& name : names) {
    const auto& info = file.info(name);
    std::printf("%-*s  %-5s  %-22s  %llu\n", static_cast<int>(width), name.c_str(), info.dtype_name.c_str(),
                info.shape.str().c_str(), static_cast<unsigned long long>(info.nbytes()));
  }
}

inline int run_inspect(int argc, char** argv) {
  Args args("inspect", "FILE.safetensors [FILE ...]", {});
  if (!args.parse(argc, argv, 2)) return 0;
  if (args.positionals().empty()) fail<UsageError>("inspect: expected at least one FILE.safetensors");
  int bad = 0;
  for (size_t i = 0; i < args.positionals().size(); ++i) {
    const std::string& path = args.positionals()[i];
    if (i) std::printf("\n");
    try {
      print_safetensors(path);
    } catch (const InputError& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "genscope inspect: %s\n", e.what());
      ++bad;
    }
  }
  return bad ? 2 : 0;
}

}  // namespace genscope::cli
