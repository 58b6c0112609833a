// genscope/detect/features.hpp — the feature matrices detector heads fit on and score.
//
// A FeatureMatrix is row-major f32 [rows, cols] with one name per row (an image id, or the row
// index). Detectors read them from the specs the command line takes:
//   FILE.safetensors:TENSOR   a 2-D f32/f16/bf16 tensor (f16/bf16 widened exactly to f32);
//   FILE.safetensors          the same when the file holds exactly one 2-D tensor;
//   FILE.npy                  a 2-D float array;
//   FOLDER                    every *.npy in it, sorted by file name, each one feature vector
//                             ([D] or [1, D]) as the seed repositories store them; names are the
//                             file names.
// Row names of a safetensors tensor come from its metadata: "<TENSOR>.names", "names" or
// "images", a comma-separated list with exactly one entry per row; otherwise the row index.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/io/npy.hpp"
#include "genscope/io/safetensors.hpp"

namespace genscope::detect {

struct FeatureMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> values;       // rows * cols, row-major
  std::vector<std::string> names;  // rows entries

  const float* row(int64_t i) const { return values.data() + i * cols; }
  float* row(int64_t i) { return values.data() + i * cols; }

  // A matrix from raw values; names default to the row index.
  static FeatureMatrix from(int64_t rows, int64_t cols, std::vector<float> values) {
    if (rows < 0 || cols < 0 || static_cast<int64_t>(values.size()) != rows * cols)
      fail<ShapeError>("FeatureMatrix: ", values.size(), " values do not fill [", rows, ", ", cols, "]");
    FeatureMatrix m{rows, cols, std::move(values), {}};
    for (int64_t i = 0; i < rows; ++i) m.names.push_back(std::to_string(i));
    return m;
  }

  // Rows [begin, end) as a new matrix.
  FeatureMatrix slice_rows(int64_t begin, int64_t end) const {
    if (begin < 0 || end > rows || begin > end) fail<ShapeError>("rows [", begin, ", ", end, ") out of [0, ", rows, ")");
    FeatureMatrix m{end - begin, cols, std::vector<float>(row(begin), row(begin) + (end - begin) * cols), {}};
    m.names.assign(names.begin() + begin, names.begin() + end);
    return m;
  }
};

// A 2-D float tensor as a FeatureMatrix (names: row indices).
inline FeatureMatrix features_from_tensor(const Tensor& t, const std::string& where) {
  if (t.dim() != 2) fail<ShapeError>(where, ": features must be 2-D [rows, features], got ", t.str());
  if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16)
    fail<FormatError>(where, ": features must be f32, f16 or bf16, got ", t.str());
  const Tensor f = t.to(DType::F32).contiguous();
  const float* p = f.data<float>();
  return FeatureMatrix::from(t.size(0), t.size(1), std::vector<float>(p, p + f.numel()));
}

namespace features_detail {

inline std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

inline FeatureMatrix read_safetensors(const std::string& path, std::string tensor) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  if (tensor.empty()) {
    std::vector<std::string> two_d;
    for (const auto& e : file.entries())
      if (e.shape.size() == 2) two_d.push_back(e.name);
    if (two_d.size() != 1)
      fail<UsageError>(path, ": holds ", two_d.size(), " 2-D tensors; name one as ", path, ":TENSOR");
    tensor = two_d[0];
  }
  if (!file.contains(tensor)) fail<FormatError>(path, ": no tensor '", tensor, "'");
  FeatureMatrix m = features_from_tensor(file.get(tensor), cat(path, ":", tensor));
  for (const std::string& key : {tensor + ".names", std::string("names"), std::string("images")}) {
    const std::string* v = file.find_metadata(key);
    if (!v) continue;
    auto names = split_commas(*v);
    if (static_cast<int64_t>(names.size()) == m.rows) {
      m.names = std::move(names);
      break;
    }
  }
  return m;
}

inline FeatureMatrix read_npy_folder(const std::string& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".npy") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) fail<InputError>(dir, ": folder holds no .npy files");
  FeatureMatrix m;
  for (const auto& f : files) {
    const Tensor t = load_npy(f.string());
    if (t.dtype() != DType::F32 || t.dim() < 1 || t.dim() > 2 || (t.dim() == 2 && t.size(0) != 1))
      fail<FormatError>(f.string(), ": expected one float feature vector [D] or [1, D], got ", t.str());
    if (m.rows == 0) m.cols = t.numel();
    if (t.numel() != m.cols) fail<FormatError>(f.string(), ": ", t.numel(), " features, but ", files[0].string(), " has ", m.cols);
    m.values.insert(m.values.end(), t.data<float>(), t.data<float>() + t.numel());
    m.names.push_back(f.filename().string());
    ++m.rows;
  }
  return m;
}

}  // namespace features_detail

// Read features named by a spec (see the top of this file).
inline FeatureMatrix read_features(const std::string& spec) {
  namespace fs = std::filesystem;
  if (spec.empty()) fail<UsageError>("empty feature spec");
  if (fs::is_directory(spec)) return features_detail::read_npy_folder(spec);
  std::string path = spec, tensor;
  if (!fs::exists(spec)) {
    const size_t colon = spec.rfind(':');
    if (colon == std::string::npos) fail<IoError>(spec, ": no such file or folder");
    path = spec.substr(0, colon);
    tensor = spec.substr(colon + 1);
    if (!fs::exists(path)) fail<IoError>(path, ": no such file");
  }
  if (path.ends_with(".npy")) {
    if (!tensor.empty()) fail<UsageError>(spec, ": a .npy file holds one array; drop ':", tensor, "'");
    const Tensor t = load_npy(path);
    if (t.dtype() != DType::F32) fail<FormatError>(path, ": features must be floats");
    return features_from_tensor(t, path);
  }
  return features_detail::read_safetensors(path, tensor);
}

// Keep the columns listed in `indices` (RAID's important_indices), in that order.
inline FeatureMatrix select_columns(const FeatureMatrix& m, const std::vector<int64_t>& indices) {
  for (int64_t c : indices)
    if (c < 0 || c >= m.cols) fail<ShapeError>("feature index ", c, " out of range [0, ", m.cols, ")");
  FeatureMatrix out{m.rows, static_cast<int64_t>(indices.size()), {}, m.names};
  out.values.resize(static_cast<size_t>(out.rows * out.cols));
  for (int64_t i = 0; i < m.rows; ++i)
    for (size_t j = 0; j < indices.size(); ++j) out.values[static_cast<size_t>(i * out.cols) + j] = m.row(i)[indices[j]];
  return out;
}

}  // namespace genscope::detect
