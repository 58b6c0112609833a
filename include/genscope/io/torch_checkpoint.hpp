// genscope/io/torch_checkpoint.hpp — read PyTorch checkpoints (torch.save) without Python.
//
// Two container formats exist (torch/serialization.py):
//
//  * zip (the default since torch 1.6, `_save`): an archive whose members all live under one
//    top-level folder, the "archive name" (`archive/` by default, any name in practice: UAR's
//    head uses `epoch_0_model/`): `<prefix>/data.pkl` is the pickled object, `<prefix>/data/<key>`
//    holds the raw bytes of each storage, `<prefix>/byteorder` says "little" or "big" (absent in
//    old files: little). Members are stored uncompressed with their data 64-byte aligned, so
//    storages are viewed in place, zero-copy, in the memory-mapped file.
//  * legacy (`_legacy_save`, `_use_new_zipfile_serialization=False`, old .ckpt files): five
//    pickles back to back — the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001,
//    a sys_info dict (`little_endian`, type sizes), the object, and the sorted list of storage
//    keys — followed by each storage in that order as an 8-byte little-endian element count and
//    the raw bytes.
//
// In both, the object pickle refers to storages through persistent ids, tuples
// ('storage', torch.FloatStorage, key, location, numel[, view_metadata]) (persistent_id in
// `_save` / `_legacy_save`), and tensors are rebuilt by torch._utils._rebuild_tensor_v2
// (storage, storage_offset, size, stride, requires_grad, backward_hooks) — or _v3 with an
// untyped storage and an explicit dtype for the dtypes without a legacy storage class (uint16,
// float8, ...). The pickle machine (io/pickle.hpp) executes nothing; this file supplies the
// persistent ids and turns the resulting tensor records into genscope Tensors:
//
//  * zero-copy when the storage is stored in place, little-endian, aligned for its element type
//    and of a dtype genscope holds (f32, f16, bf16, i64, i32, u8, bool): the Tensor views the
//    mapping (shape, strides, offset as in torch) and keeps it alive;
//  * otherwise copied into a new contiguous tensor: big-endian data is byte-swapped, and the
//    dtypes genscope's Tensor lacks are widened: f64 -> f32 (rounded to nearest), i8, i16, u16 ->
//    i32, u32 -> i64 (all exact; f64 -> f32 is the one lossy conversion, which convert reports);
//    bool storages are copied too, every nonzero byte becoming 1 (any other bool byte is UB in C++).
//    Complex, quantized and float8 storages are refused per tensor with a FormatError.
//
// state_dict finding (find_state_dict) turns the loaded object into a flat list of named
// tensors: the top level when it holds tensors, else the first of a list of well-known keys
// (state_dict, model, ...), or a key the caller names; nested dicts and pickled nn.Modules
// (torch.save(model): _parameters, _buffers, _modules) are flattened with '.' as torch does;
// every entry that is not a tensor is listed as dropped, with what it was.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/io/mapped_file.hpp"
#include "genscope/io/pickle.hpp"
#include "genscope/io/zip.hpp"

namespace genscope {

enum class TorchFormat { Zip, Legacy };

// A torch dtype as stored in a checkpoint, and what genscope makes of it.
struct TorchDType {
  std::string_view name;         // torch's name: "float32", "bfloat16", ...
  size_t size;                   // bytes per element in the file
  bool supported;                // genscope can hold it (natively or widened)
  DType target;                  // genscope dtype of the loaded tensor
  bool native;                   // identical layout: zero-copy possible
};

inline const TorchDType* find_torch_dtype(std::string_view name) {
  // Torch's own aliases ("float", "half", "long", ...) appear as the names of dtype globals.
  static constexpr TorchDType kTypes[] = {
      {"float32", 4, true, DType::F32, true},   {"float16", 2, true, DType::F16, true},
      {"bfloat16", 2, true, DType::BF16, true}, {"int64", 8, true, DType::I64, true},
      {"int32", 4, true, DType::I32, true},     {"uint8", 1, true, DType::U8, true},
      {"bool", 1, true, DType::Bool, false},    {"float64", 8, true, DType::F32, false},  // bool: copied, bytes normalised to 0/1
      {"int8", 1, true, DType::I32, false},     {"int16", 2, true, DType::I32, false},
      {"uint16", 2, true, DType::I32, false},   {"uint32", 4, true, DType::I64, false},
      {"uint64", 8, false, DType::I64, false},  {"complex64", 8, false, DType::F32, false},
      {"complex128", 16, false, DType::F32, false}, {"complex32", 4, false, DType::F32, false},
      {"qint8", 1, false, DType::U8, false},    {"quint8", 1, false, DType::U8, false},
      {"qint32", 4, false, DType::I32, false},  {"quint4x2", 1, false, DType::U8, false},
      {"quint2x4", 1, false, DType::U8, false}, {"float8_e4m3fn", 1, false, DType::U8, false},
      {"float8_e5m2", 1, false, DType::U8, false}, {"float8_e4m3fnuz", 1, false, DType::U8, false},
      {"float8_e5m2fnuz", 1, false, DType::U8, false}, {"float8_e8m0fnu", 1, false, DType::U8, false},
  };
  static constexpr std::pair<std::string_view, std::string_view> kAliases[] = {
      {"float", "float32"}, {"half", "float16"}, {"double", "float64"}, {"long", "int64"},
      {"int", "int32"},     {"short", "int16"},  {"cfloat", "complex64"}, {"cdouble", "complex128"}};
  for (const auto& [alias, real] : kAliases)
    if (name == alias) name = real;
  for (const auto& t : kTypes)
    if (t.name == name) return &t;
  return nullptr;
}

// The dtype of a legacy storage class (torch/storage.py `_dtype_to_storage_type_map`).
inline std::string_view storage_class_dtype(std::string_view cls) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"DoubleStorage", "float64"},   {"FloatStorage", "float32"},       {"HalfStorage", "float16"},
      {"LongStorage", "int64"},       {"IntStorage", "int32"},           {"ShortStorage", "int16"},
      {"CharStorage", "int8"},        {"ByteStorage", "uint8"},          {"BoolStorage", "bool"},
      {"BFloat16Storage", "bfloat16"}, {"ComplexDoubleStorage", "complex128"},
      {"ComplexFloatStorage", "complex64"}, {"QInt8Storage", "qint8"},  {"QInt32Storage", "qint32"},
      {"QUInt8Storage", "quint8"},    {"QUInt4x2Storage", "quint4x2"},   {"QUInt2x4Storage", "quint2x4"},
      {"UntypedStorage", "uint8"},    {"TypedStorage", "uint8"}};
  for (const auto& [c, d] : kMap)
    if (c == cls) return d;
  return {};
}

// One named entry of a state dict: a tensor node, or something dropped (with what it was).
struct StateDictEntry {
  std::string name;
  const pickle::Node* tensor = nullptr;  // Kind::Tensor, or nullptr when dropped
  std::string dropped;                   // description of a dropped value ("int", "yacs.config.CfgNode object")
};

struct StateDict {
  std::string source;  // where it was found: "top level", "'state_dict'", "'model' (nn.Module)"
  std::vector<StateDictEntry> entries;
  // Top-level entries outside the state dict (an optimizer, the epoch, a config), with what
  // they are: reported as not converted.
  std::vector<std::pair<std::string, std::string>> ignored;

  size_t tensor_count() const {
    return static_cast<size_t>(std::count_if(entries.begin(), entries.end(), [](const auto& e) { return e.tensor != nullptr; }));
  }
};

// A checkpoint, mapped and parsed (its object pickle fully loaded) when opened; tensors are made
// on demand by tensor(). Storage records are located, CRC-checked (up to kCrcCheckLimit) and, in
// deflated archives, inflated lazily on first use, so one TorchCheckpoint must not be used from
// several threads at once. Movable; tensors it returned stay valid after it is gone (they hold
// the mapping).
class TorchCheckpoint {
 public:
  static constexpr uint64_t kMaxPickleBytes = uint64_t{1} << 31;
  static constexpr uint64_t kCrcCheckLimit = uint64_t{16} << 20;  // CRC-check stored storages up to 16 MiB

  // Map and parse `path`. IoError if it cannot be read, FormatError if it is not a torch
  // checkpoint or is malformed, SecurityError if its pickle tries to execute code.
  static TorchCheckpoint open(const std::string& path) {
    auto file = MappedFile::open(path);
    const auto bytes = file->bytes();
    return TorchCheckpoint(bytes, path, std::move(file));
  }

  // Parse a checkpoint held in memory; `keepalive` (if any) is held by every zero-copy tensor.
  // Without one, `bytes` must outlive the checkpoint and its tensors.
  static TorchCheckpoint from_memory(std::span<const uint8_t> bytes, std::string name,
                                     std::shared_ptr<const void> keepalive = {}) {
    return TorchCheckpoint(bytes, std::move(name), std::move(keepalive));
  }

  TorchFormat format() const { return format_; }
  const std::string& path() const { return path_; }
  const std::string& archive_prefix() const { return prefix_; }  // zip only
  bool little_endian() const { return little_endian_; }
  const pickle::Node* root() const { return root_; }
  // "module.name" of every global that became an opaque placeholder (never executed).
  const std::vector<std::string>& unknown_globals() const { return unknown_; }

  // The tensor a Kind::Tensor node describes (see the header comment for zero-copy vs copy).
  Tensor tensor(const pickle::Node* node, std::string_view name = {}) const {
    const std::string where = name.empty() ? path_ : cat(path_, ": tensor '", name, "'");
    if (!node || node->kind != pickle::Kind::Tensor) fail<FormatError>(where, ": not a tensor");
    const pickle::TensorInfo& t = *node->tensor;
    const pickle::StorageInfo& s = *t.storage->storage;
    const std::string& dtype_name = t.dtype.empty() ? s.dtype : t.dtype;
    const TorchDType* dt = find_torch_dtype(dtype_name);
    if (!dt) fail<FormatError>(where, ": unknown dtype '", dtype_name, "'");
    if (!dt->supported) fail<FormatError>(where, ": dtype ", dt->name, " is not supported by genscope");

    const std::span<const uint8_t> bytes = storage_bytes(t.storage, where);
    // Validate the view with overflow-safe arithmetic before genscope's Tensor sees it.
    if (t.shape.size() > static_cast<size_t>(kMaxDims)) fail<FormatError>(where, ": ", t.shape.size(), " dimensions (at most ", kMaxDims, ")");
    if (t.storage_offset < 0) fail<FormatError>(where, ": negative storage offset");
    const uint64_t storage_elems = bytes.size() / dt->size;
    uint64_t last = static_cast<uint64_t>(t.storage_offset), numel = 1;
    bool empty = false;
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (t.shape[d] < 0 || t.stride[d] < 0) fail<FormatError>(where, ": negative size or stride");
      if (t.shape[d] == 0) empty = true;
    }
    for (size_t d = 0; d < t.shape.size() && !empty; ++d) {
      uint64_t span = 0;
      if (__builtin_mul_overflow(static_cast<uint64_t>(t.shape[d] - 1), static_cast<uint64_t>(t.stride[d]), &span) ||
          __builtin_add_overflow(last, span, &last) ||
          __builtin_mul_overflow(numel, static_cast<uint64_t>(t.shape[d]), &numel) || numel > (uint64_t{1} << 60))
        fail<FormatError>(where, ": size/stride overflow");
    }
    if (!empty && last >= storage_elems)
      fail<FormatError>(where, ": view (offset ", t.storage_offset, ", size ", Shape(std::span<const int64_t>(t.shape)),
                        ", stride ", Shape(std::span<const int64_t>(t.stride)), ") exceeds its storage of ", storage_elems,
                        " elements");
    const Shape shape(std::span<const int64_t>(t.shape));
    const Shape stride(std::span<const int64_t>(t.stride));

    const auto addr = reinterpret_cast<uintptr_t>(bytes.data());
    if (dt->native && little_endian_ && addr % dt->size == 0) {
      auto st = Storage::wrap(const_cast<uint8_t*>(bytes.data()), bytes.size(), keepalive_for(t.storage));
      return Tensor(std::move(st), shape, stride, t.storage_offset, dt->target);
    }
    // Copy element by element in row-major order: any alignment, byte order and widening.
    Tensor out = Tensor::empty(shape, dt->target);
    if (empty) return out;
    gather(*dt, bytes.data(), t, out);
    return out;
  }

  // The named tensors of the state dict; see find_state_dict below.
  StateDict state_dict(const std::string& select = {}, const std::vector<std::string>& keys = default_state_dict_keys()) const;

  static const std::vector<std::string>& default_state_dict_keys() {
    static const std::vector<std::string> k = {"state_dict", "model", "model_state_dict", "module", "net", "network",
                                               "params", "weights"};
    return k;
  }

 private:
  struct StorageData {
    std::span<const uint8_t> bytes;                  // the whole root storage
    std::shared_ptr<const std::vector<uint8_t>> owned;  // inflated members (deflated zips)
    const ZipEntry* entry = nullptr;                 // zip: the member (for lazy inflate / CRC)
    bool crc_checked = false;
  };

  TorchCheckpoint(std::span<const uint8_t> bytes, std::string path, std::shared_ptr<const void> keepalive)
      : path_(std::move(path)), bytes_(bytes), keepalive_(std::move(keepalive)), arena_(std::make_unique<pickle::Arena>()) {
    if (bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4) {
      format_ = TorchFormat::Zip;
      load_zip();
    } else if (bytes.size() >= 2 && bytes[0] == 0x80) {
      format_ = TorchFormat::Legacy;
      load_legacy();
    } else if (bytes.size() >= 262 && std::memcmp(bytes.data() + 257, "ustar", 5) == 0) {
      fail<FormatError>(path_, ": a tar-format torch checkpoint (torch < 0.4); re-save it with a current torch");
    } else {
      fail<FormatError>(path_, ": not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save pickle)");
    }
  }

  // ---- zip ----
  void load_zip() {
    zip_ = std::make_unique<ZipArchive>(bytes_, path_);
    if (zip_->entries().empty()) fail<FormatError>(path_, ": empty zip archive");
    // PyTorchStreamReader takes the archive name from the first member's folder.
    const std::string& first = zip_->entries().front().name;
    const auto slash = first.find('/');
    if (slash == std::string::npos || slash == 0) fail<FormatError>(path_, ": zip member '", first, "' is not inside an archive folder; not a torch checkpoint");
    prefix_ = first.substr(0, slash);
    const ZipEntry* pkl = zip_->find(prefix_ + "/data.pkl");
    if (!pkl) fail<FormatError>(path_, ": no '", prefix_, "/data.pkl' member; not a torch.save checkpoint");
    if (const ZipEntry* bo = zip_->find(prefix_ + "/byteorder")) {
      const auto v = zip_->read(*bo, 64);
      const std::string_view s(reinterpret_cast<const char*>(v.data()), v.size());
      if (s == "big") little_endian_ = false;
      else if (s != "little") fail<FormatError>(path_, ": member '", bo->name, "' says '", s.substr(0, 16), "', not little or big");
    }
    pickle_bytes_ = zip_->read(*pkl, kMaxPickleBytes);
    pickle::Options opt;
    opt.persistent_load = [this](pickle::Arena& a, pickle::Node* pid) { return persistent_load(a, pid, prefix_ + "/data.pkl"); };
    auto r = pickle::load(*arena_, pickle_bytes_, cat(path_, ": ", pkl->name), opt);
    root_ = r.value;
    unknown_ = std::move(r.unknown_globals);
  }

  // ---- legacy ----
  void load_legacy() {
    const std::string where = cat(path_, " (legacy format)");
    pickle::Arena scratch(1u << 16);
    // 1. magic number: LONG 0x1950a86a20f9469cfc6c, 10 bytes little-endian.
    static constexpr uint8_t kMagic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    auto magic = pickle::load(scratch, bytes_, where, {}, 0);
    if (magic.value->kind != pickle::Kind::BigInt || magic.value->s != std::string_view(reinterpret_cast<const char*>(kMagic), 10))
      fail<FormatError>(path_, ": not a PyTorch checkpoint (a pickle without torch's magic number)");
    // 2. protocol version.
    auto version = pickle::load(scratch, bytes_, where, {}, magic.end);
    if (version.value->kind != pickle::Kind::Int || version.value->i != 1001)
      fail<FormatError>(path_, ": unsupported legacy protocol version (expected 1001)");
    // 3. sys_info.
    auto sys_info = pickle::load(scratch, bytes_, where, {}, version.end);
    if (const pickle::Node* le = sys_info.value->get("little_endian"); le && le->kind == pickle::Kind::Bool) little_endian_ = le->b;
    // 4. the object.
    pickle::Options opt;
    opt.persistent_load = [this](pickle::Arena& a, pickle::Node* pid) { return persistent_load(a, pid, "object pickle"); };
    auto obj = pickle::load(*arena_, bytes_, where, opt, sys_info.end);
    root_ = obj.value;
    unknown_ = std::move(obj.unknown_globals);
    // 5. storage keys, then the storages in that order: 8-byte count + raw bytes each.
    auto keys = pickle::load(scratch, bytes_, where, {}, obj.end);
    if (keys.value->kind != pickle::Kind::List) fail<FormatError>(where, ": storage key list is a ", pickle::kind_name(keys.value->kind));
    uint64_t pos = keys.end;
    for (const pickle::Node* k : keys.value->items) {
      if (!k->is_str()) fail<FormatError>(where, ": storage key is not a string");
      auto it = roots_.find(k->s);
      if (it == roots_.end()) fail<FormatError>(where, ": storage '", k->s, "' is listed but never used by the object");
      const TorchDType* dt = find_torch_dtype(it->second.dtype);
      const size_t elsize = dt ? dt->size : 1;
      if (bytes_.size() - pos < 8) fail<FormatError>(where, ": storage '", k->s, "': truncated (no size header)");
      uint64_t count = 0;
      for (int b = 0; b < 8; ++b) count |= static_cast<uint64_t>(bytes_[pos + static_cast<uint64_t>(b)]) << (8 * b);
      if (!little_endian_) count = __builtin_bswap64(count);
      pos += 8;
      if (count != static_cast<uint64_t>(it->second.numel))
        fail<FormatError>(where, ": storage '", k->s, "' holds ", count, " elements, the pickle says ", it->second.numel);
      if (count > (bytes_.size() - pos) / elsize) fail<FormatError>(where, ": storage '", k->s, "' is truncated");
      StorageData& sd = data_[k->s];
      sd.bytes = bytes_.subspan(pos, count * elsize);
      pos += count * elsize;
    }
  }

  // persistent_load for both formats: ('storage', storage_type, key, location, numel[, view]).
  pickle::Node* persistent_load(pickle::Arena& a, pickle::Node* pid, const std::string& member) {
    const std::string where = cat(path_, ": ", member);
    if (pid->kind != pickle::Kind::Tuple || pid->items.size() < 5 || !pid->items[0]->is_str() || pid->items[0]->s != "storage")
      fail<FormatError>(where, ": unsupported persistent id (expected a ('storage', ...) tuple)");
    const pickle::Node* type = pid->items[1];
    const pickle::Node* key = pid->items[2];
    const pickle::Node* loc = pid->items[3];
    const pickle::Node* numel = pid->items[4];
    if (!key->is_str() || !numel->is_int() || numel->i < 0) fail<FormatError>(where, ": malformed storage persistent id");
    std::string dtype;
    if (type->kind == pickle::Kind::Global) {
      // A storage class (torch.FloatStorage, torch.cuda.HalfStorage) or, rarely, a dtype.
      dtype = std::string(storage_class_dtype(type->s2));
      if (dtype.empty() && type->s == "torch" && find_torch_dtype(type->s2)) dtype = find_torch_dtype(type->s2)->name;
    }
    if (dtype.empty()) fail<FormatError>(where, ": storage '", key->s, "' has an unknown storage type ", pickle::describe(type));
    const TorchDType* dt = find_torch_dtype(dtype);
    const size_t elsize = dt ? dt->size : 1;
    if (static_cast<uint64_t>(numel->i) > (uint64_t{1} << 62) / elsize) fail<FormatError>(where, ": storage '", key->s, "' is too large");
    const std::string cache_key = key->s + '\0' + dtype;
    if (auto it = storage_nodes_.find(cache_key); it != storage_nodes_.end() && pid->items.size() < 6) return it->second;
    pickle::Node* n = a.make(pickle::Kind::Storage);
    n->storage = std::make_unique<pickle::StorageInfo>();
    n->storage->key = key->s;
    n->storage->dtype = dtype;
    n->storage->numel = numel->i;
    if (loc->is_str()) n->storage->location = loc->s;
    if (format_ == TorchFormat::Zip) {
      const ZipEntry* e = zip_->find(cat(prefix_, "/data/", key->s));
      if (!e) fail<FormatError>(where, ": storage '", key->s, "' has no member '", prefix_, "/data/", key->s, "'");
      if (e->size / elsize < static_cast<uint64_t>(numel->i))
        fail<FormatError>(where, ": storage '", key->s, "' needs ", numel->i * static_cast<int64_t>(elsize), " bytes, its member holds ", e->size);
      StorageData& sd = data_[key->s];
      sd.entry = e;
    } else {
      auto [it, inserted] = roots_.try_emplace(key->s, LegacyRoot{dtype, numel->i});
      if (!inserted && it->second.dtype != dtype && it->second.numel * static_cast<int64_t>(find_torch_dtype(it->second.dtype) ? find_torch_dtype(it->second.dtype)->size : 1) != numel->i * static_cast<int64_t>(elsize))
        fail<FormatError>(where, ": storage '", key->s, "' is used with two dtypes of different sizes");
      // Legacy views: (view_key, offset, size) in elements of the root storage.
      if (pid->items.size() >= 6 && pid->items[5]->kind == pickle::Kind::Tuple) {
        const auto& v = pid->items[5]->items;
        if (v.size() != 3 || !v[1]->is_int() || !v[2]->is_int() || v[1]->i < 0 || v[2]->i < 0 || v[1]->i > numel->i ||
            v[2]->i > numel->i - v[1]->i)
          fail<FormatError>(where, ": storage '", key->s, "' has a malformed view");
        n->storage->view_offset = v[1]->i;
        n->storage->view_numel = v[2]->i;
        return n;
      }
    }
    storage_nodes_[cache_key] = n;
    return n;
  }

  // The bytes of a storage node: its root's data, narrowed to a legacy view.
  std::span<const uint8_t> storage_bytes(const pickle::Node* storage, const std::string& where) const {
    const pickle::StorageInfo& s = *storage->storage;
    auto it = data_.find(s.key);
    if (it == data_.end() || (!it->second.entry && it->second.bytes.data() == nullptr && s.numel > 0))
      fail<FormatError>(where, ": the data of storage '", s.key, "' is missing");
    StorageData& sd = it->second;
    if (sd.entry) {
      if (sd.entry->method == 0) {
        if (sd.bytes.data() == nullptr) sd.bytes = zip_->stored_span(*sd.entry);
        if (!sd.crc_checked && sd.entry->size <= kCrcCheckLimit) {
          zip_->verify_crc(*sd.entry);
          sd.crc_checked = true;
        }
      } else if (!sd.owned) {
        sd.owned = std::make_shared<const std::vector<uint8_t>>(zip_->read(*sd.entry));
        sd.bytes = *sd.owned;
      }
    }
    const TorchDType* dt = find_torch_dtype(s.dtype);
    const size_t elsize = dt ? dt->size : 1;
    std::span<const uint8_t> b = sd.bytes;
    if (s.view_numel >= 0) {
      const uint64_t off = static_cast<uint64_t>(s.view_offset) * elsize, len = static_cast<uint64_t>(s.view_numel) * elsize;
      if (off > b.size() || len > b.size() - off) fail<FormatError>(where, ": storage view exceeds storage '", s.key, "'");
      b = b.subspan(off, len);
    } else {
      const uint64_t len = static_cast<uint64_t>(s.numel) * elsize;
      if (len > b.size()) fail<FormatError>(where, ": storage '", s.key, "' is truncated");
      b = b.first(len);
    }
    return b;
  }

  std::shared_ptr<const void> keepalive_for(const pickle::Node* storage) const {
    auto it = data_.find(storage->storage->key);
    if (it != data_.end() && it->second.owned) return it->second.owned;
    return keepalive_;
  }

  template <class T>
  static T load_elem(const uint8_t* p, bool swap) {
    T v;
    if constexpr (sizeof(T) == 1) {
      std::memcpy(&v, p, 1);
    } else {
      uint8_t buf[sizeof(T)];
      std::memcpy(buf, p, sizeof(T));
      if (swap) std::reverse(buf, buf + sizeof(T));
      std::memcpy(&v, buf, sizeof(T));
    }
    return v;
  }

  // Row-major copy of a strided view with conversion into `out` (contiguous, dt.target).
  void gather(const TorchDType& dt, const uint8_t* base, const pickle::TensorInfo& t, Tensor& out) const {
    const bool swap = !little_endian_;
    const int nd = static_cast<int>(t.shape.size());
    const int64_t n = out.numel();
    std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
    int64_t off = t.storage_offset;
    auto each = [&](auto&& write) {
      for (int64_t k = 0; k < n; ++k) {
        write(k, base + static_cast<uint64_t>(off) * dt.size);
        for (int d = nd - 1; d >= 0; --d) {  // odometer increment
          const auto du = static_cast<size_t>(d);
          off += t.stride[du];
          if (++idx[du] < t.shape[du]) break;
          off -= t.stride[du] * t.shape[du];
          idx[du] = 0;
        }
      }
    };
    const std::string_view name = dt.name;
    void* dst = out.data_ptr();
    if (name == "float64") {
      each([&](int64_t k, const uint8_t* p) { static_cast<float*>(dst)[k] = static_cast<float>(load_elem<double>(p, swap)); });
    } else if (name == "int8") {
      each([&](int64_t k, const uint8_t* p) { static_cast<int32_t*>(dst)[k] = load_elem<int8_t>(p, swap); });
    } else if (name == "int16") {
      each([&](int64_t k, const uint8_t* p) { static_cast<int32_t*>(dst)[k] = load_elem<int16_t>(p, swap); });
    } else if (name == "uint16") {
      each([&](int64_t k, const uint8_t* p) { static_cast<int32_t*>(dst)[k] = load_elem<uint16_t>(p, swap); });
    } else if (name == "uint32") {
      each([&](int64_t k, const uint8_t* p) { static_cast<int64_t*>(dst)[k] = load_elem<uint32_t>(p, swap); });
    } else if (name == "bool") {
      // Bytes other than 0/1 would be undefined as C++ bool; normalise them.
      each([&](int64_t k, const uint8_t* p) { static_cast<uint8_t*>(dst)[k] = *p != 0; });
    } else {
      // Same layout, only misaligned or byte-swapped: move dt.size bytes per element.
      auto* o = static_cast<uint8_t*>(dst);
      const size_t es = dt.size;
      each([&](int64_t k, const uint8_t* p) {
        std::memcpy(o + static_cast<size_t>(k) * es, p, es);
        if (swap) std::reverse(o + static_cast<size_t>(k) * es, o + static_cast<size_t>(k + 1) * es);
      });
    }
  }

  struct LegacyRoot {
    std::string dtype;
    int64_t numel;
  };

  TorchFormat format_ = TorchFormat::Zip;
  std::string path_;
  std::span<const uint8_t> bytes_;
  std::shared_ptr<const void> keepalive_;
  std::unique_ptr<pickle::Arena> arena_;
  std::unique_ptr<ZipArchive> zip_;
  std::string prefix_;
  bool little_endian_ = true;
  std::vector<uint8_t> pickle_bytes_;
  const pickle::Node* root_ = nullptr;
  std::vector<std::string> unknown_;
  std::unordered_map<std::string, pickle::Node*> storage_nodes_;
  std::unordered_map<std::string, LegacyRoot> roots_;
  mutable std::unordered_map<std::string, StorageData> data_;
};

// ---- state dict finding -------------------------------------------------------------------------

namespace torch_detail {

inline bool is_module_object(const pickle::Node* n) {
  // A pickled nn.Module: an object whose state (its __dict__) has _parameters and _modules.
  return n && n->kind == pickle::Kind::Object && n->state && n->state->kind == pickle::Kind::Dict &&
         n->state->get("_parameters") && n->state->get("_modules");
}

inline bool holds_tensors(const pickle::Node* n, int depth = 0) {
  if (!n || depth > 4) return false;
  if (n->kind == pickle::Kind::Tensor) return true;
  if (n->kind == pickle::Kind::Dict) {
    for (const auto& [k, v] : n->entries)
      if (v->kind == pickle::Kind::Tensor || ((v->kind == pickle::Kind::Dict || is_module_object(v)) && holds_tensors(v, depth + 1))) return true;
    return false;
  }
  if (is_module_object(n)) return holds_tensors(n->state->get("_parameters"), depth + 1) ||
                                 holds_tensors(n->state->get("_buffers"), depth + 1) ||
                                 holds_tensors(n->state->get("_modules"), depth + 1);
  return false;
}

inline std::string key_text(const pickle::Node* k) {
  switch (k->kind) {
    case pickle::Kind::String: return k->s;
    case pickle::Kind::Int: return std::to_string(k->i);
    default: return cat("<", pickle::kind_name(k->kind), " key>");
  }
}

class Flattener {
 public:
  explicit Flattener(StateDict& out) : out_(out) {}

  void dict(const pickle::Node* d, const std::string& prefix, int depth) {
    if (!visit(d, prefix, depth)) return;
    for (const auto& [k, v] : d->entries) {
      const std::string name = prefix + key_text(k);
      if (k->kind != pickle::Kind::String && k->kind != pickle::Kind::Int) {
        out_.entries.push_back({name, nullptr, "non-string key"});
        continue;
      }
      value(v, name, depth + 1);
    }
    active_.erase(d);
  }

  // torch.nn.Module.state_dict order: own _parameters, own _buffers, then each submodule.
  void module(const pickle::Node* m, const std::string& prefix, int depth) {
    if (!visit(m, prefix, depth)) return;
    const pickle::Node* st = m->state;
    for (const char* field : {"_parameters", "_buffers"})
      if (const pickle::Node* d = st->get(field); d && d->kind == pickle::Kind::Dict)
        for (const auto& [k, v] : d->entries)
          if (v->kind != pickle::Kind::None) value(v, prefix + key_text(k), depth + 1);
    if (const pickle::Node* mods = st->get("_modules"); mods && mods->kind == pickle::Kind::Dict)
      for (const auto& [k, v] : mods->entries)
        if (v->kind != pickle::Kind::None) value(v, prefix + key_text(k) + ".", depth + 1, true);
    active_.erase(m);
  }

 private:
  void value(const pickle::Node* v, const std::string& name, int depth, bool submodule = false) {
    if (v->kind == pickle::Kind::Tensor) {
      out_.entries.push_back({name, v, {}});
    } else if (is_module_object(v)) {
      module(v, submodule ? name : name + ".", depth);
    } else if (v->kind == pickle::Kind::Dict && holds_tensors(v)) {
      dict(v, name + ".", depth);
    } else {
      std::string n = name;
      if (submodule && !n.empty() && n.back() == '.') n.pop_back();
      out_.entries.push_back({n, nullptr, pickle::describe(v)});
    }
  }

  bool visit(const pickle::Node* n, const std::string& prefix, int depth) {
    if (depth > pickle::kMaxWalkDepth / 2 || !active_.insert(n).second) {
      out_.entries.push_back({prefix, nullptr, "recursive or too deeply nested value"});
      return false;
    }
    return true;
  }

  StateDict& out_;
  std::unordered_set<const pickle::Node*> active_;
};

}  // namespace torch_detail

// Find the state dict in a loaded object:
//  * `select` non-empty: that key of the top-level dict (a '/'-separated path descends into
//    nested dicts: "model/backbone"); UsageError listing the keys when it is missing;
//  * the top level, if it directly holds a tensor (or is a pickled nn.Module);
//  * else the first of `keys` whose value holds tensors;
//  * else the only top-level value that holds tensors; FormatError when there are several
//    (naming them, so --select can choose) or none.
inline StateDict find_state_dict(const pickle::Node* root, const std::string& path, const std::string& select,
                                 const std::vector<std::string>& keys) {
  using namespace torch_detail;
  StateDict sd;
  auto top_keys = [&](const pickle::Node* d) {
    std::string list;
    size_t n = 0;
    for (const auto& [k, v] : d->entries) {
      if (n++ == 20) {
        list += ", ...";
        break;
      }
      list += (list.empty() ? "'" : ", '") + key_text(k) + "' (" + pickle::describe(v) + ")";
    }
    return list.empty() ? std::string("none") : list;
  };
  auto flatten = [&](const pickle::Node* n, std::string source) {
    sd.source = std::move(source);
    if (n != root && root->kind == pickle::Kind::Dict)
      for (const auto& [k, v] : root->entries)
        if (v != n) sd.ignored.emplace_back(key_text(k), pickle::describe(v));
    Flattener f(sd);
    if (is_module_object(n)) {
      sd.source += " (nn.Module)";
      f.module(n, "", 0);
    } else {
      f.dict(n, "", 0);
    }
    return sd;
  };
  const pickle::Node* r = root;
  if (!select.empty()) {
    std::string source;
    size_t start = 0;
    for (;;) {
      const size_t slash = select.find('/', start);
      const std::string part = select.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      const pickle::Node* d = is_module_object(r) ? r->state : r;
      const pickle::Node* next = d->kind == pickle::Kind::Dict ? d->get(part) : nullptr;
      if (!next)
        fail<UsageError>(path, ": --select '", select, "': no key '", part, "' in ",
                         source.empty() ? std::string("the top level") : source,
                         d->kind == pickle::Kind::Dict ? "; keys: " + top_keys(d) : cat(" (a ", pickle::describe(d), ")"));
      source += (source.empty() ? "'" : "/'") + part + "'";
      r = next;
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    if (r->kind == pickle::Kind::Tensor) {
      sd.source = source;
      sd.entries.push_back({select.substr(select.rfind('/') + 1), r, {}});
      return sd;
    }
    if ((r->kind != pickle::Kind::Dict && !is_module_object(r)) || !holds_tensors(r))
      fail<FormatError>(path, ": --select '", select, "' is a ", pickle::describe(r), " without tensors");
    return flatten(r, source);
  }
  if (is_module_object(r)) return flatten(r, "top level");
  if (r->kind == pickle::Kind::Tensor) {
    sd.source = "top level";
    sd.entries.push_back({"tensor", r, {}});
    return sd;
  }
  if (r->kind != pickle::Kind::Dict) fail<FormatError>(path, ": the checkpoint holds a ", pickle::describe(r), ", not a state dict");
  for (const auto& [k, v] : r->entries)
    if (v->kind == pickle::Kind::Tensor) return flatten(r, "top level");
  for (const auto& key : keys)
    if (const pickle::Node* v = r->get(key); v && holds_tensors(v)) return flatten(v, "'" + key + "'");
  std::vector<std::pair<std::string, const pickle::Node*>> candidates;
  for (const auto& [k, v] : r->entries)
    if (holds_tensors(v)) candidates.emplace_back(key_text(k), v);
  if (candidates.size() == 1) return flatten(candidates[0].second, "'" + candidates[0].first + "'");
  if (candidates.empty()) fail<FormatError>(path, ": no tensors found; top-level keys: ", top_keys(r));
  std::string names;
  for (const auto& c : candidates) names += (names.empty() ? "'" : ", '") + c.first + "'";
  fail<FormatError>(path, ": several entries hold tensors (", names, "); choose one with --select");
}

inline StateDict TorchCheckpoint::state_dict(const std::string& select, const std::vector<std::string>& keys) const {
  return find_state_dict(root_, path_, select, keys);
}

}  // namespace genscope
