// genscope/io/safetensors.hpp — read and write safetensors files and sharded checkpoints.
//
// The format (https://github.com/huggingface/safetensors, README "Format"):
//   * 8 bytes: N, an unsigned little-endian 64-bit integer, the size of the header;
//   * N bytes: a UTF-8 JSON object, which MUST begin with '{' and MAY be padded at the end with
//     spaces: {"__metadata__": {"k": "v"}, "NAME": {"dtype": "F16", "shape": [1, 16],
//     "data_offsets": [BEGIN, END]}, ...};
//   * the byte buffer: every tensor's bytes, little-endian, row-major. data_offsets are relative
//     to the start of the buffer (file offset 8 + N), END is one past the last byte.
// The buffer must be entirely indexed by the tensors, without holes or overlaps (the README:
// "This prevents the creation of polyglot files"), and the reference reader (Rust crate,
// safetensors/src/tensor.rs) rejects headers over 100 MB and files with bytes after the last
// tensor. Duplicate keys are disallowed.
//
// Reading (SafetensorsFile): the file is mmap'd and the WHOLE header is validated when it is
// opened, so a file that opens is fully consistent and get() can only fail for reasons that
// concern one tensor (a dtype genscope cannot hold, a BOOL byte that is not 0 or 1). get() is
// zero-copy when the data is aligned for its dtype (always the case for files written by the
// Python package or by save_safetensors, which keep the buffer 8-aligned and sort by alignment)
// and copies otherwise. Every error names the file, and the tensor where one is involved.
//
// Where genscope is stricter than the Rust crate (which also reads for the Python package):
// duplicate keys anywhere (the format disallows them; serde keeps the last), a header that does
// not begin with '{' (the format's MUST, which the crate does not check), `__metadata__: null`
// (serde reads it as absent), more than 8 dimensions (genscope's Shape limit), zero-size shapes
// whose other dimensions multiply past 2^62 (strides would overflow), and BOOL bytes other than
// 0 and 1 (reading them as C++ bool is undefined behaviour). Like the crate, it ignores unknown
// fields in a tensor entry and accepts any JSON whitespace as padding after the header object.
// tests/data/safetensors/malformed/README.md lists every rule with a file that breaks it.
//
// Sharded checkpoints (SafetensorsCheckpoint) are the `*.safetensors.index.json` files written
// by transformers' save_pretrained: {"metadata": {...}, "weight_map": {"NAME": "SHARD"}}; each
// shard is opened once and the tensors are served by name as if from one file.
//
// Writing (save_safetensors) goes to a temporary file in the same directory, fsync'd and then
// renamed over the target, so a crash or error never leaves a truncated file, and a reader that
// has the old file mapped keeps seeing the old data.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "genscope/core/dtype.hpp"
#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/io/json.hpp"
#include "genscope/io/mapped_file.hpp"

namespace genscope {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; genscope maps it without byte swapping");

// One tensor of a safetensors header.
struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;      // as written in the file: "F32", "BF16", "F64", "F8_E4M3", ...
  std::optional<DType> dtype;  // genscope's type; nullopt for valid dtypes it cannot hold (F64, I8, ...)
  Shape shape;
  uint64_t begin = 0;          // data_offsets [begin, end), relative to the byte buffer
  uint64_t end = 0;
  uint64_t nbytes() const { return end - begin; }
};

namespace safetensors_detail {

// Every dtype the format defines (Rust crate's `Dtype`, with its bitsize), and genscope's type.
struct DtypeSpec {
  std::string_view name;
  unsigned bits;
  std::optional<DType> dtype;
};

inline const DtypeSpec* find_dtype(std::string_view name) {
  static const DtypeSpec specs[] = {
      {"F32", 32, DType::F32},   {"F16", 16, DType::F16},       {"BF16", 16, DType::BF16},
      {"I32", 32, DType::I32},   {"I64", 64, DType::I64},       {"U8", 8, DType::U8},
      {"BOOL", 8, DType::Bool},  {"F64", 64, std::nullopt},     {"I8", 8, std::nullopt},
      {"I16", 16, std::nullopt}, {"U16", 16, std::nullopt},     {"U32", 32, std::nullopt},
      {"U64", 64, std::nullopt}, {"C64", 64, std::nullopt},     {"F8_E4M3", 8, std::nullopt},
      {"F8_E5M2", 8, std::nullopt}, {"F8_E8M0", 8, std::nullopt}, {"F8_E4M3FNUZ", 8, std::nullopt},
      {"F8_E5M2FNUZ", 8, std::nullopt}, {"F6_E2M3", 6, std::nullopt}, {"F6_E3M2", 6, std::nullopt},
      {"F4", 4, std::nullopt},
  };
  for (const auto& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

inline std::string_view file_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

// A name from a file as it may appear in a message: control characters escaped (a hostile
// name must not drive the terminal), at most 200 bytes.
inline std::string shown(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (char c : s.substr(0, 200)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  if (s.size() > 200) out += "...";
  return out;
}

inline std::string dims_str(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using NameIndex = std::unordered_map<std::string, size_t, StringHash, std::equal_to<>>;

// "; similar: 'a', 'b'" for the names that share the longest prefix + suffix with `wanted`, so
// a typo or a missing "model." prefix is easy to spot. Linear in the total length of the names.
inline std::string similar_names(std::string_view wanted, const std::vector<std::string>& names) {
  std::vector<std::pair<size_t, const std::string*>> scored;
  for (const auto& n : names) {
    size_t prefix = 0, suffix = 0;
    const size_t m = std::min(n.size(), wanted.size());
    while (prefix < m && n[prefix] == wanted[prefix]) ++prefix;
    while (suffix < m - prefix && n[n.size() - 1 - suffix] == wanted[wanted.size() - 1 - suffix]) ++suffix;
    if (prefix + suffix > 0) scored.emplace_back(prefix + suffix, &n);
  }
  const size_t k = std::min<size_t>(3, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  std::string s;
  for (size_t i = 0; i < k; ++i) s += cat(i ? ", '" : "; similar: '", shown(*scored[i].second), "'");
  return s;
}

}  // namespace safetensors_detail

// A safetensors file, mapped and validated. Cheap to copy (the mapping is shared).
class SafetensorsFile {
 public:
  // The Rust crate's MAX_HEADER_SIZE.
  static constexpr uint64_t kMaxHeaderSize = 100'000'000;

  // Map `path` and validate its whole header: IoError if it cannot be read, FormatError if it
  // is not a valid safetensors file.
  explicit SafetensorsFile(const std::string& path) {
    auto mapped = MappedFile::open(path);
    path_ = path;
    base_ = mapped->data();
    size_ = mapped->size();
    mapping_ = mapped;
    owner_ = std::move(mapped);
    parse_header();
  }
  static SafetensorsFile open(const std::string& path) { return SafetensorsFile(path); }

  // The same from bytes in memory (copied, so the caller's buffer need not outlive the result);
  // `name` stands for the file name in error messages.
  static SafetensorsFile from_memory(std::span<const uint8_t> bytes, std::string name) {
    // An exact-size allocation, so AddressSanitizer catches a read even one byte past the end.
    std::shared_ptr<uint8_t[]> copy(new uint8_t[bytes.size()]);
    if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
    SafetensorsFile f;
    f.path_ = std::move(name);
    f.base_ = copy.get();
    f.size_ = bytes.size();
    f.owner_ = std::move(copy);
    f.parse_header();
    return f;
  }

  const std::string& path() const { return path_; }
  // MappedFile::release_resident_pages of the file's mapping (nothing for from_memory files).
  void release_resident_pages() const {
    if (mapping_) mapping_->release_resident_pages();
  }
  // Tensor names in header order (the order `inspect` prints).
  const std::vector<std::string>& names() const { return names_; }
  size_t size() const { return entries_.size(); }
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }

  // FormatError "<file>: no tensor named 'x'; similar: ..." if absent.
  const SafetensorsEntry& info(std::string_view name) const {
    const auto it = index_.find(name);
    if (it == index_.end())
      fail<FormatError>(path_, ": no tensor named '", safetensors_detail::shown(name), "'",
                        safetensors_detail::similar_names(name, names_));
    return entries_[it->second];
  }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }

  // `__metadata__`, in file order; empty if the file has none.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  const std::string* find_metadata(std::string_view key) const {
    for (const auto& [k, v] : metadata_)
      if (k == key) return &v;
    return nullptr;
  }

  // The tensor `name`: a view of the mapping when its data is aligned for the dtype, a copy
  // otherwise. The view keeps the mapping alive after this SafetensorsFile is gone; writing to
  // it changes the process's private copy-on-write page, never the file (see mapped_file.hpp).
  Tensor get(std::string_view name) const {
    const SafetensorsEntry& e = info(name);
    if (!e.dtype)
      fail<FormatError>(path_, ": tensor '", safetensors_detail::shown(e.name), "': dtype ", e.dtype_name,
                        " is not supported by genscope (it reads F32, F16, BF16, I32, I64, U8 and BOOL)");
    uint8_t* p = base_ + data_offset() + e.begin;
    if (*e.dtype == DType::Bool) {
      for (uint64_t i = 0; i < e.nbytes(); ++i)
        if (p[i] > 1)
          fail<FormatError>(path_, ": tensor '", safetensors_detail::shown(e.name), "': BOOL element ", i, " is ",
                            static_cast<int>(p[i]), ", expected 0 or 1");
    }
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(*e.dtype) == 0) return Tensor::wrap(p, e.shape, *e.dtype, owner_);
    Tensor t = Tensor::empty(e.shape, *e.dtype);
    if (e.nbytes()) std::memcpy(t.data_ptr(), p, e.nbytes());
    return t;
  }

  uint64_t header_size() const { return header_size_; }  // N
  uint64_t data_offset() const { return 8 + header_size_; }  // where the byte buffer starts
  // The whole file as mapped (or copied by from_memory).
  std::span<const uint8_t> bytes() const { return {base_, size_}; }

 private:
  SafetensorsFile() = default;

  std::string where(std::string_view tensor) const {
    return cat(path_, ": tensor '", safetensors_detail::shown(tensor), "': ");
  }

  void parse_header() {
    using namespace safetensors_detail;
    if (size_ < 8) fail<FormatError>(path_, ": file is ", size_, " bytes, too short for the 8-byte header length");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | base_[i];
    const uint64_t room = size_ - 8;
    if (n > kMaxHeaderSize)
      fail<FormatError>(path_, ": header length ", n, " is over the format's limit of ", kMaxHeaderSize, " bytes",
                        n > room ? cat(" (and past the end of the ", size_, "-byte file)") : "");
    if (n > room) fail<FormatError>(path_, ": header length ", n, " runs past the end of the file (", room, " bytes after the length)");
    if (n == 0) fail<FormatError>(path_, ": header length is 0; the header must be a JSON object");
    header_size_ = n;
    const std::string_view text(reinterpret_cast<const char*>(base_ + 8), n);
    if (text[0] != '{')
      fail<FormatError>(path_, ": header must begin with '{' (safetensors format), got byte 0x",
                        "0123456789abcdef"[static_cast<unsigned char>(text[0]) >> 4],
                        "0123456789abcdef"[static_cast<unsigned char>(text[0]) & 15]);
    const json::Value header = json::parse(text, cat(path_, ": header"));
    const uint64_t data_size = room - n;

    for (const auto& [key, value] : header.as_object()) {
      if (key == "__metadata__") {
        parse_metadata(value);
        continue;
      }
      entries_.push_back(parse_entry(key, value, data_size));
    }

    // The tensors must tile the buffer exactly: sorted by offsets, each begins where the
    // previous one ended, and the last ends at the end of the file (the Rust crate's
    // Metadata::validate and MetadataIncompleteBuffer).
    std::vector<size_t> order(entries_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const auto& x = entries_[a];
      const auto& y = entries_[b];
      return std::tie(x.begin, x.end, a) < std::tie(y.begin, y.end, b);
    });
    uint64_t expected = 0;
    const SafetensorsEntry* prev = nullptr;
    for (size_t i : order) {
      const SafetensorsEntry& e = entries_[i];
      if (e.begin < expected)
        fail<FormatError>(where(e.name), "data_offsets [", e.begin, ", ", e.end, "] overlap tensor '", shown(prev->name),
                          "' [", prev->begin, ", ", prev->end, "]");
      if (e.begin > expected)
        fail<FormatError>(where(e.name), "data_offsets [", e.begin, ", ", e.end, "] leave a hole of ", e.begin - expected,
                          " bytes after ", prev ? cat("tensor '", shown(prev->name), "'") : std::string("the start of the data"));
      expected = e.end;
      prev = &e;
    }
    if (expected != data_size) {
      if (prev)
        fail<FormatError>(path_, ": ", data_size - expected, " bytes after the last tensor ('", shown(prev->name),
                          "') belong to no tensor");
      fail<FormatError>(path_, ": ", data_size, " bytes of data but the header lists no tensors");
    }

    names_.reserve(entries_.size());
    for (size_t i = 0; i < entries_.size(); ++i) {
      names_.push_back(entries_[i].name);
      index_.emplace(entries_[i].name, i);  // unique: the JSON parser rejects duplicate keys
    }
  }

  void parse_metadata(const json::Value& value) {
    if (!value.is_object())
      fail<FormatError>(path_, ": __metadata__ is ", value.type_name(), ", expected an object of strings");
    for (const auto& [k, v] : value.as_object()) {
      if (!v.is_string())
        fail<FormatError>(path_, ": __metadata__ '", safetensors_detail::shown(k), "' is ", v.type_name(),
                          ", expected a string (the format allows only string values)");
      metadata_.emplace_back(k, v.as_string());
    }
  }

  SafetensorsEntry parse_entry(const std::string& name, const json::Value& value, uint64_t data_size) const {
    using namespace safetensors_detail;
    const std::string at = where(name);
    if (!value.is_object())
      fail<FormatError>(at, "entry is ", value.type_name(), ", expected an object with dtype, shape and data_offsets");
    auto field = [&](std::string_view key, json::Value::Type type) -> const json::Value& {
      const json::Value* f = value.find(key);
      if (!f) fail<FormatError>(at, "missing \"", key, "\"");
      if (f->type() != type) fail<FormatError>(at, "\"", key, "\" is ", f->type_name(), ", expected ", json::Value::name_of(type));
      return *f;
    };
    // Non-negative integers that fit in 64 bits, as the Rust crate's usize fields (no 2.0, no 1e3).
    auto integer = [&](const json::Value& v, std::string_view what) -> uint64_t {
      const auto n = v.is_number() ? v.to_uint64() : std::nullopt;
      if (!n) fail<FormatError>(at, what, " is ", v.is_number() ? v.number_text() : std::string(v.type_name()),
                                ", expected a non-negative integer below 2^64");
      return *n;
    };

    SafetensorsEntry e;
    e.name = name;
    e.dtype_name = field("dtype", json::Value::Type::String).as_string();
    const DtypeSpec* spec = find_dtype(e.dtype_name);
    if (!spec) fail<FormatError>(at, "unknown dtype \"", shown(e.dtype_name), "\"");
    e.dtype = spec->dtype;

    const auto& shape = field("shape", json::Value::Type::Array).as_array();
    if (shape.size() > static_cast<size_t>(kMaxDims))
      fail<FormatError>(at, "shape has ", shape.size(), " dimensions; genscope supports at most ", kMaxDims);
    std::vector<uint64_t> dims;
    for (size_t i = 0; i < shape.size(); ++i) dims.push_back(integer(shape[i], cat("shape[", i, "]")));

    const auto& offsets = field("data_offsets", json::Value::Type::Array).as_array();
    if (offsets.size() != 2) fail<FormatError>(at, "data_offsets has ", offsets.size(), " values, expected 2 [begin, end]");
    e.begin = integer(offsets[0], "data_offsets[0]");
    e.end = integer(offsets[1], "data_offsets[1]");
    if (e.end < e.begin) fail<FormatError>(at, "data_offsets [", e.begin, ", ", e.end, "] are reversed");
    if (e.end > data_size)
      fail<FormatError>(at, "data_offsets [", e.begin, ", ", e.end, "] run past the end of the data (", data_size, " bytes)");

    // Byte size = product of dims x bits / 8, every step checked for overflow. The product of
    // the non-zero dims must also stay below 2^62 so that strides of a zero-size tensor such as
    // [0, 2^40, 2^40] cannot overflow int64 later.
    constexpr uint64_t kLimit = uint64_t{1} << 62;
    uint64_t numel = 1, extent = 1;
    for (uint64_t d : dims) {
      if (d > kLimit || (d > 1 && extent > kLimit / d))
        fail<FormatError>(at, "shape ", dims_str(dims), " is too large (overflows 64-bit sizes)");
      extent *= std::max<uint64_t>(d, 1);
      numel *= d;
    }
    if (numel > UINT64_MAX / spec->bits) fail<FormatError>(at, "shape ", dims_str(dims), " is too large (overflows 64-bit sizes)");
    const uint64_t bits = numel * spec->bits;
    if (bits % 8 != 0)
      fail<FormatError>(at, e.dtype_name, " ", dims_str(dims), " is ", bits, " bits, not a whole number of bytes");
    if (e.end - e.begin != bits / 8)
      fail<FormatError>(at, "data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin, " bytes but ", e.dtype_name,
                        " ", dims_str(dims), " needs ", bits / 8);
    std::vector<int64_t> sdims(dims.begin(), dims.end());
    e.shape = Shape(std::span<const int64_t>(sdims));
    return e;
  }

  std::string path_;
  std::shared_ptr<const void> owner_;  // the MappedFile or the from_memory copy
  std::shared_ptr<const MappedFile> mapping_;  // the MappedFile, null for from_memory
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint64_t header_size_ = 0;
  std::vector<SafetensorsEntry> entries_;  // header order
  std::vector<std::string> names_;
  safetensors_detail::NameIndex index_;
  std::vector<std::pair<std::string, std::string>> metadata_;
};

// A checkpoint that is either one .safetensors file or a sharded one described by a
// `*.safetensors.index.json`; tensors are served by name from whichever shard holds them.
class SafetensorsCheckpoint {
 public:
  static constexpr uint64_t kMaxIndexSize = 100'000'000;

  // A path ending in ".json" is read as an index, anything else as a single safetensors file.
  explicit SafetensorsCheckpoint(const std::string& path) : path_(path) {
    if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
      open_index();
    } else {
      shards_.push_back(SafetensorsFile::open(path));
      names_ = shards_[0].names();
      metadata_ = shards_[0].metadata();
      for (size_t i = 0; i < names_.size(); ++i) shard_of_.emplace(names_[i], 0);
    }
  }
  static SafetensorsCheckpoint open(const std::string& path) { return SafetensorsCheckpoint(path); }

  const std::string& path() const { return path_; }
  bool is_sharded() const { return sharded_; }
  // Tensor names: the index's weight_map order, or the file's header order.
  const std::vector<std::string>& names() const { return names_; }
  size_t size() const { return names_.size(); }
  bool contains(std::string_view name) const { return shard_of_.find(name) != shard_of_.end(); }
  const SafetensorsEntry& info(std::string_view name) const { return shard(name).info(name); }
  Tensor get(std::string_view name) const { return shard(name).get(name); }

  // The file holding `name`; FormatError naming the checkpoint if there is none.
  const SafetensorsFile& shard(std::string_view name) const {
    const auto it = shard_of_.find(name);
    if (it == shard_of_.end())
      fail<FormatError>(path_, ": no tensor named '", safetensors_detail::shown(name), "'",
                        safetensors_detail::similar_names(name, names_));
    return shards_[it->second];
  }
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // MappedFile::release_resident_pages of every shard.
  void release_resident_pages() const {
    for (const auto& s : shards_) s.release_resident_pages();
  }

  // The index's "metadata" (values that are not strings, like transformers' "total_size"
  // number, as compact JSON) or the single file's __metadata__.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }

 private:
  void open_index() {
    using namespace safetensors_detail;
    sharded_ = true;
    auto mapped = MappedFile::open(path_);
    if (mapped->size() > kMaxIndexSize)
      fail<FormatError>(path_, ": index is ", mapped->size(), " bytes, over the limit of ", kMaxIndexSize);
    const json::Value index =
        json::parse(std::string_view(reinterpret_cast<const char*>(mapped->data()), mapped->size()), path_);
    if (!index.is_object()) fail<FormatError>(path_, ": index is ", index.type_name(), ", expected an object");
    if (const json::Value* meta = index.find("metadata")) {
      if (!meta->is_object()) fail<FormatError>(path_, ": \"metadata\" is ", meta->type_name(), ", expected an object");
      for (const auto& [k, v] : meta->as_object()) metadata_.emplace_back(k, v.is_string() ? v.as_string() : json::dump(v));
    }
    const json::Value* map = index.find("weight_map");
    if (!map) fail<FormatError>(path_, ": missing \"weight_map\"");
    if (!map->is_object()) fail<FormatError>(path_, ": \"weight_map\" is ", map->type_name(), ", expected an object");

    const std::string dir = [&] {
      const auto slash = path_.rfind('/');
      return slash == std::string::npos ? std::string() : path_.substr(0, slash + 1);
    }();
    NameIndex shard_by_file;
    std::vector<std::string> files;
    for (const auto& [name, file] : map->as_object()) {
      if (!file.is_string())
        fail<FormatError>(path_, ": tensor '", shown(name), "': weight_map value is ", file.type_name(), ", expected a file name");
      const std::string& f = file.as_string();
      check_shard_name(name, f);
      auto [it, added] = shard_by_file.emplace(f, files.size());
      if (added) files.push_back(f);
      names_.push_back(name);
      shard_of_.emplace(name, it->second);
    }
    for (const auto& f : files) shards_.push_back(SafetensorsFile::open(dir + f));

    // Every listed tensor is in its shard, and every tensor of a shard is listed there and
    // nowhere else: a name in two shards would make which one is served arbitrary.
    for (const auto& name : names_) {
      const SafetensorsFile& s = shards_[shard_of_.find(name)->second];
      if (!s.contains(name))
        fail<FormatError>(path_, ": tensor '", shown(name), "': the index maps it to ", s.path(), ", which has no such tensor");
    }
    for (size_t i = 0; i < shards_.size(); ++i) {
      for (const auto& name : shards_[i].names()) {
        const auto it = shard_of_.find(name);
        if (it == shard_of_.end())
          fail<FormatError>(path_, ": tensor '", shown(name), "': in ", shards_[i].path(), " but not in the index's weight_map");
        if (it->second != i)
          fail<FormatError>(path_, ": tensor '", shown(name), "': in both ", shards_[it->second].path(), " (as the index says) and ",
                            shards_[i].path());
      }
    }
  }

  // Shards live beside the index: a relative path that stays inside its directory.
  void check_shard_name(const std::string& name, const std::string& f) const {
    using safetensors_detail::shown;
    bool bad = f.empty() || f[0] == '/' || f.find('\0') != std::string::npos;
    for (size_t start = 0; !bad && start <= f.size();) {
      size_t end = f.find('/', start);
      if (end == std::string::npos) end = f.size();
      if (f.compare(start, end - start, "..") == 0) bad = true;
      start = end + 1;
    }
    if (bad)
      fail<FormatError>(path_, ": tensor '", shown(name), "': shard \"", shown(f),
                        "\" is not a relative path inside the index's directory");
  }

  std::string path_;
  bool sharded_ = false;
  std::vector<SafetensorsFile> shards_;
  std::vector<std::string> names_;
  safetensors_detail::NameIndex shard_of_;  // name -> index in shards_
  std::vector<std::pair<std::string, std::string>> metadata_;
};

// ---- writing ----------------------------------------------------------------------------------

// A file written under a temporary name in the target's directory and renamed over the target
// by commit(): readers see the old file or the complete new one, never a partial one. If the
// writer is destroyed without commit() (an error, an exception), the temporary file is removed
// and the target is untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    // O_EXCL: never follow a planted symlink or share a name with another writer; the counter
    // makes names unique within the process, the pid across processes.
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0;; ++attempt) {
      temp_ = cat(path_, ".tmp.", ::getpid(), ".", counter++);
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) return;
      if (errno != EEXIST || attempt > 100) fail<IoError>(path_, ": cannot create ", temp_, ": ", std::strerror(errno));
    }
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }

  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail<IoError>(path_, ": cannot write ", temp_, ": ", std::strerror(w < 0 ? errno : EIO));
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  // fsync, close, rename over the target, then fsync the directory so the rename is durable.
  void commit() {
    if (::fsync(fd_) != 0) fail<IoError>(path_, ": cannot fsync ", temp_, ": ", std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail<IoError>(path_, ": cannot close ", temp_, ": ", std::strerror(errno));
    if (::rename(temp_.c_str(), path_.c_str()) != 0)
      fail<IoError>(path_, ": cannot rename ", temp_, " to it: ", std::strerror(errno));
    committed_ = true;
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);  // best effort: some file systems refuse fsync on directories
      ::close(dfd);
    }
  }

  const std::string& temp_path() const { return temp_; }

 private:
  std::string path_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Write `tensors` (CPU; any strides, written contiguous) and string `metadata` to `path`
// atomically. The header lists the tensors in the given order, after "__metadata__" when there
// is any; in the byte buffer they are ordered by decreasing element size (stable), as the
// Python package does, so that with the 8-byte padded header every tensor is aligned and reads
// back zero-copy. UsageError for empty, duplicate, non-UTF-8 or reserved names, DeviceError
// for a tensor not on the CPU, IoError if the file cannot be written; in every case an
// existing `path` is left as it was.
inline void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                             const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  using namespace safetensors_detail;
  std::unordered_set<std::string_view> seen;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) fail<UsageError>(path, ": tensor names must not be empty");
    if (name == "__metadata__") fail<UsageError>(path, ": '__metadata__' is reserved by the format, not a tensor name");
    if (!json::is_valid_utf8(name)) fail<UsageError>(path, ": tensor '", shown(name), "': name is not valid UTF-8");
    if (!seen.insert(name).second) fail<UsageError>(path, ": tensor '", shown(name), "' is given twice");
    if (!t.defined()) fail<UsageError>(path, ": tensor '", shown(name), "' is undefined");
    if (t.device() != Device::CPU)
      fail<DeviceError>(path, ": tensor '", shown(name), "' is on ", t.device(), "; copy it to the CPU before saving");
  }
  seen.clear();
  for (const auto& [k, v] : metadata) {
    if (!json::is_valid_utf8(k) || !json::is_valid_utf8(v))
      fail<UsageError>(path, ": metadata '", shown(k), "' is not valid UTF-8");
    if (!seen.insert(k).second) fail<UsageError>(path, ": metadata '", shown(k), "' is given twice");
  }

  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].second.element_size() > tensors[b].second.element_size();
  });
  std::vector<uint64_t> begin(tensors.size());
  uint64_t offset = 0;
  for (size_t i : order) {
    begin[i] = offset;
    offset += tensors[i].second.nbytes();
  }

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i)
      header += cat(i ? "," : "", json::quote(metadata[i].first), ":", json::quote(metadata[i].second));
    header += "}";
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i].second;
    header += cat(header.size() > 1 ? "," : "", json::quote(tensors[i].first), ":{\"dtype\":\"", file_dtype_name(t.dtype()),
                  "\",\"shape\":[");
    for (int d = 0; d < t.dim(); ++d) header += cat(d ? "," : "", t.size(d));
    header += cat("],\"data_offsets\":[", begin[i], ",", begin[i] + t.nbytes(), "]}");
  }
  header += "}";
  header.resize((header.size() + 7) / 8 * 8, ' ');  // pad with spaces to keep the buffer 8-aligned
  if (header.size() > SafetensorsFile::kMaxHeaderSize)
    fail<UsageError>(path, ": header would be ", header.size(), " bytes, over the format's limit of ",
                     SafetensorsFile::kMaxHeaderSize);

  AtomicFile out(path);
  uint8_t n[8];
  for (int i = 0; i < 8; ++i) n[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  out.write(n, 8);
  out.write(header.data(), header.size());
  for (size_t i : order) {
    const Tensor c = tensors[i].second.contiguous();
    if (c.nbytes()) out.write(c.data_ptr(), c.nbytes());
  }
  out.commit();
}

}  // namespace genscope
