// libFuzzer target for the safetensors reader and the JSON parser under it.
//
// The input is read as a whole safetensors file from memory (no file I/O), every tensor is
// fetched and converted to f32 so that every byte of its data is read; then the same bytes are
// parsed as a JSON document and must survive a dump/parse round trip. genscope::Error is the
// only acceptable failure: any other exception escapes and crashes the fuzzer, as do the
// sanitizers' findings.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I include \
//     tests/fuzz/fuzz_safetensors.cpp -o fuzz_safetensors
//   ./fuzz_safetensors -max_total_time=60 NEW_DIR tests/fuzz/corpus/safetensors
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "genscope/core/tensor.hpp"
#include "genscope/io/json.hpp"
#include "genscope/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace genscope;
  try {
    const SafetensorsFile file = SafetensorsFile::from_memory(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    uint64_t total = 0;
    for (const auto& name : file.names()) {
      const SafetensorsEntry& info = file.info(name);
      total += info.nbytes();
      if (info.shape.numel() * static_cast<int64_t>(info.dtype ? dtype_size(*info.dtype) : 0) != static_cast<int64_t>(info.nbytes()) &&
          info.dtype)
        __builtin_trap();  // open() promised that offsets match dtype x shape
      try {
        const Tensor t = file.get(name);
        const Tensor f = t.to(DType::F32);
        volatile float sink = 0;
        for (int64_t i = 0; i < f.numel(); ++i) sink = sink + f.data<float>()[i];
      } catch (const Error&) {
      }
    }
    if (total != file.bytes().size() - file.data_offset()) __builtin_trap();  // tensors tile the buffer
    (void)file.metadata();
  } catch (const Error&) {
  }

  try {
    const json::Value v = json::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
    if (!(json::parse(json::dump(v), "dump") == v)) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
