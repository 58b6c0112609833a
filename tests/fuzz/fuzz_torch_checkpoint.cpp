// libFuzzer target for the PyTorch checkpoint reader: the zip reader and inflate (io/zip.hpp),
// the pickle machine (io/pickle.hpp) and the tensor/state-dict logic (io/torch_checkpoint.hpp,
// io/checkpoint_layouts.hpp).
//
// The input is read as a whole checkpoint from memory (zip or legacy format); the state dict is
// found and every tensor is materialised and converted to f32, so that every byte it views is
// read; then the same bytes are run through the pickle machine alone and, if they form a zip,
// every member is read (inflated, CRC-checked). genscope::Error is the only acceptable failure
// (SecurityError included); anything else escapes and crashes the fuzzer, as do the sanitizers'
// findings.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I include \
//     tests/fuzz/fuzz_torch_checkpoint.cpp -o fuzz_torch_checkpoint
//   ./fuzz_torch_checkpoint -max_total_time=60 -rss_limit_mb=2048 NEW_DIR tests/fuzz/corpus/torch_checkpoint
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/io/checkpoint_layouts.hpp"
#include "genscope/io/pickle.hpp"
#include "genscope/io/torch_checkpoint.hpp"
#include "genscope/io/zip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace genscope;
  const std::span<const uint8_t> bytes(data, size);
  try {
    auto ck = TorchCheckpoint::from_memory(bytes, "fuzz.pt");
    const StateDict sd = ck.state_dict();
    std::vector<std::string> names;
    for (const auto& e : sd.entries) {
      if (!e.tensor) continue;
      names.push_back(e.name);
      try {
        const Tensor t = ck.tensor(e.tensor, e.name);
        if (t.numel() > (1 << 22)) continue;  // a claimed huge view of a small storage cannot pass checks; stay fast
        const Tensor f = t.to(DType::F32);
        volatile float sink = 0;
        for (int64_t i = 0; i < f.numel(); ++i) sink = sink + f.data<float>()[i];
      } catch (const Error&) {
      }
    }
    (void)apply_layout(CheckpointLayout::Auto, names, "fuzz.pt");
    (void)apply_layout(CheckpointLayout::SdVae, names, "fuzz.pt");
  } catch (const Error&) {
  }
  try {
    pickle::Arena arena(1u << 20);
    pickle::Options opt;
    opt.persistent_load = [](pickle::Arena& a, pickle::Node*) { return a.none(); };
    const auto r = pickle::load(arena, bytes, "fuzz.pkl", opt);
    (void)pickle::describe(r.value);
  } catch (const Error&) {
  }
  try {
    ZipArchive z(bytes, "fuzz.zip");
    for (const auto& e : z.entries()) (void)z.read(e, 1u << 24);
  } catch (const Error&) {
  }
  return 0;
}
