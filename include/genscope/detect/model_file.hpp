// genscope/detect/model_file.hpp — a detector head as one safetensors file.
//
// Parameters are tensors, hyper-parameters are string metadata; "genscope.head" names the head
// ("probe", "svm", "gmm") so one loader can open any model. Saving goes through
// save_safetensors, which writes atomically (a crash leaves the old file or none).
#pragma once

#include <charconv>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"

namespace genscope::detect {

// Collects tensors and metadata, then writes them in one atomic save.
struct ModelWriter {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;

  void meta(const std::string& key, const std::string& value) { metadata.emplace_back(key, value); }
  void meta(const std::string& key, double value) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, value);  // shortest round-trip form
    metadata.emplace_back(key, std::string(buf, r.ptr));
  }
  // float values are stored as f32 tensors. genscope's Tensor has no f64, so double values (an
  // SVM's or GMM's parameters, kept in double as sklearn keeps them) are stored bit-exactly as
  // i64 tensors of their IEEE bit patterns; ModelReader::tensor turns them back.
  template <class T>
  void tensor(const std::string& name, const std::vector<T>& values, Shape shape) {
    Tensor t = Tensor::empty(shape, DType::F32);
    if constexpr (std::is_same_v<T, float>) {
      std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
    } else {
      t = Tensor::empty(shape, DType::I64);
      std::memcpy(t.data<int64_t>(), values.data(), values.size() * sizeof(double));
    }
    if (static_cast<int64_t>(values.size()) != t.numel()) fail<ShapeError>("tensor '", name, "': size mismatch");
    tensors.emplace_back(name, t);
  }
  void save(const std::string& path) const { save_safetensors(path, tensors, metadata); }
};

// Reads back what ModelWriter wrote, naming the file and key in every error.
class ModelReader {
 public:
  explicit ModelReader(const std::string& path) : file_(SafetensorsFile::open(path)), path_(path) {}

  const std::string& path() const { return path_; }
  const SafetensorsFile& file() const { return file_; }
  bool has_meta(const std::string& key) const { return file_.find_metadata(key) != nullptr; }

  std::string meta(const std::string& key) const {
    const std::string* v = file_.find_metadata(key);
    if (!v) fail<FormatError>(path_, ": model metadata lacks '", key, "'");
    return *v;
  }
  double meta_number(const std::string& key) const {
    const std::string s = meta(key);
    double x = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), x);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size()) fail<FormatError>(path_, ": metadata '", key, "' is not a number: '", s, "'");
    return x;
  }

  // Read tensor `name` with the expected number of dims into values of type T; returns its shape.
  template <class T>
  Shape tensor(const std::string& name, std::vector<T>& out, int dims) const {
    if (!file_.contains(name)) fail<FormatError>(path_, ": model lacks tensor '", name, "'");
    const Tensor t = file_.get(name).contiguous();
    if (t.dim() != dims) fail<FormatError>(path_, ": tensor '", name, "' should have ", dims, " dims, has ", t.str());
    out.resize(static_cast<size_t>(t.numel()));
    if (t.dtype() == DType::I64) {  // doubles stored bit-exactly (see ModelWriter::tensor)
      std::vector<double> d(out.size());
      std::memcpy(d.data(), t.data<int64_t>(), d.size() * sizeof(double));
      for (size_t i = 0; i < d.size(); ++i) out[i] = static_cast<T>(d[i]);
    } else {
      const Tensor f = t.to(DType::F32);
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(f.data<float>()[i]);
    }
    return t.shape();
  }

 private:
  SafetensorsFile file_;
  std::string path_;
};

}  // namespace genscope::detect
