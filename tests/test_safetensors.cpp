// Tests of io/json.hpp, io/mapped_file.hpp and io/safetensors.hpp.
//   suite "parity": files written by the reference Python package (tests/data/safetensors,
//                   from tools/reference/make_safetensors_fixtures.py) and its expected.txt;
//   suite "safetensors": the JSON parser, round trips, atomic writes, the malformed corpus.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/io/json.hpp"
#include "genscope/io/mapped_file.hpp"
#include "genscope/io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace genscope;

namespace {

const std::string kData = std::string(GENSCOPE_TEST_DATA) + "/safetensors/";

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "genscope-st-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  // Everything in the directory, to check that no temporary file is left behind.
  std::set<std::string> listing() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.insert(e.path().filename().string());
    return names;
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file built by hand: length, header (padded with spaces to `header_size` if
// given), data.
std::string build(std::string header, const std::string& data, size_t header_size = 0) {
  if (header_size) header.resize(header_size, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  return out + header + data;
}

// The message of the E that `f` throws; fails the test if it throws nothing or something else.
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw the wrong exception: ", e.what());
    return {};
  }
  FAIL("threw nothing");
  return {};
}

bool inside(const Tensor& t, std::span<const uint8_t> bytes) {
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  return p >= bytes.data() && p + t.nbytes() <= bytes.data() + bytes.size();
}

std::string unhex(const std::string& h) {
  if (h == "-") return "";
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

// tests/data/safetensors/expected.txt (see its header for the format).
struct Expected {
  struct TensorRec {
    std::string name, dtype;
    Shape shape;
    std::vector<std::string> values;
    bool unsupported = false;
  };
  std::map<std::string, std::vector<TensorRec>> tensors;  // file -> tensors in header order
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> meta;
  std::map<std::string, size_t> count;
};

const Expected& expected() {
  static const Expected e = [] {
    Expected ex;
    std::istringstream in(read_file(kData + "expected.txt"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string kind, file;
      fields >> kind >> file;
      if (kind == "tensor") {
        Expected::TensorRec r;
        std::string shape, v;
        fields >> r.name >> r.dtype >> shape;
        if (shape != "-") {
          std::istringstream dims(shape);
          std::string d;
          while (std::getline(dims, d, ',')) r.shape.push_back(std::stoll(d));
        }
        while (fields >> v) r.values.push_back(v);
        r.unsupported = r.values.size() == 1 && r.values[0] == "unsupported";
        ex.tensors[file].push_back(r);
      } else if (kind == "meta") {
        std::string k, v;
        fields >> k >> v;
        ex.meta[file].emplace_back(unhex(k), unhex(v));
      } else if (kind == "count") {
        fields >> ex.count[file];
      }
    }
    REQUIRE(ex.count.size() >= 10);
    return ex;
  }();
  return e;
}

// Compare every element of `t` with the expected text values: floats exactly (NaN as NaN, the
// sign of zero included), integers exactly through their own type.
void check_values(const Tensor& t, const std::vector<std::string>& values) {
  REQUIRE(static_cast<size_t>(t.numel()) == values.size());
  const Tensor c = t.contiguous();
  for (size_t i = 0; i < values.size(); ++i) {
    CAPTURE(i);
    CAPTURE(values[i]);
    const auto k = static_cast<int64_t>(i);
    switch (t.dtype()) {
      case DType::F32:
      case DType::F16:
      case DType::BF16: {
        const double want = std::strtod(values[i].c_str(), nullptr);
        const double got = c.reshape({-1}).item({k});
        if (std::isnan(want)) {
          CHECK(std::isnan(got));
        } else {
          CHECK(got == want);
          CHECK(std::signbit(got) == std::signbit(want));
        }
        break;
      }
      case DType::I64: CHECK(c.data<int64_t>()[i] == std::stoll(values[i])); break;
      case DType::I32: CHECK(c.data<int32_t>()[i] == std::stoll(values[i])); break;
      case DType::U8: CHECK(c.data<uint8_t>()[i] == std::stoll(values[i])); break;
      case DType::Bool: CHECK(c.data<bool>()[i] == (values[i] == "1")); break;
    }
  }
}

Tensor arange(Shape shape, DType dtype, double start = 0, double step = 1) {
  Tensor f = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = static_cast<float>(start + step * static_cast<double>(i));
  return f.to(dtype);
}

bool equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || !(a.shape() == b.shape())) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.nbytes() == 0 || std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

}  // namespace

// ================================================================================================
TEST_SUITE("parity") {

TEST_CASE("every tensor written by the Python package reads back with its dtype, shape and values") {
  for (const auto& item : expected().tensors) {  // no structured bindings: clang 14 cannot capture them
    const std::string& file = item.first;
    const auto& recs = item.second;
    CAPTURE(file);
    const SafetensorsCheckpoint ckpt(kData + file);
    for (const auto& r : recs) {
      CAPTURE(r.name);
      const SafetensorsEntry& info = ckpt.info(r.name);
      CHECK(info.dtype_name == r.dtype);
      CHECK(info.shape == r.shape);
      CHECK(info.dtype.has_value() == !r.unsupported);
      if (!r.unsupported) check_values(ckpt.get(r.name), r.values);
    }
  }
}

TEST_CASE("tensor names come back in the order of the file's header") {
  for (const auto& item : expected().count) {
    const std::string& file = item.first;
    const size_t n = item.second;
    CAPTURE(file);
    const SafetensorsCheckpoint ckpt(kData + file);
    std::vector<std::string> want;
    if (expected().tensors.count(file))
      for (const auto& r : expected().tensors.at(file)) want.push_back(r.name);
    CHECK(ckpt.names() == want);
    CHECK(ckpt.size() == n);
  }
}

TEST_CASE("metadata written by the Python package reads back unchanged and in file order") {
  CHECK(expected().meta.size() >= 4);
  for (const auto& item : expected().meta) {
    const std::string& file = item.first;
    const auto& meta = item.second;
    CAPTURE(file);
    CHECK(SafetensorsCheckpoint(kData + file).metadata() == meta);
  }
  const SafetensorsFile f(kData + "edge_cases.safetensors");
  REQUIRE(f.find_metadata("newline") != nullptr);
  CHECK(*f.find_metadata("newline") == "a\nb");
  CHECK(f.find_metadata("absent") == nullptr);
}

TEST_CASE("a sharded checkpoint written like transformers reads as one") {
  const auto ckpt = SafetensorsCheckpoint::open(kData + "sharded/model.safetensors.index.json");
  CHECK(ckpt.is_sharded());
  REQUIRE(ckpt.shards().size() == 2);
  CHECK(ckpt.shard("head.mask").path().find("model-00002-of-00002.safetensors") != std::string::npos);
  CHECK(ckpt.shard("embed.weight").path().find("model-00001-of-00002.safetensors") != std::string::npos);
  CHECK(ckpt.contains("head.weight"));
  CHECK_FALSE(ckpt.contains("head.bias"));
  const std::string msg = error_of<FormatError>([&] { ckpt.get("head.bias"); });
  CHECK(msg.find("model.safetensors.index.json: no tensor named 'head.bias'") != std::string::npos);
  CHECK(msg.find("'head.weight'") != std::string::npos);  // suggested
}

TEST_CASE("dtypes genscope cannot hold are listed but refused when fetched") {
  const SafetensorsFile f(kData + "unsupported_dtypes.safetensors");
  CHECK(f.size() == 5);
  CHECK(f.info("f8").dtype_name == "F8_E4M3");
  CHECK_FALSE(f.info("f64").dtype.has_value());
  const std::string msg = error_of<FormatError>([&] { f.get("f64"); });
  CHECK(msg.find("unsupported_dtypes.safetensors: tensor 'f64': dtype F64 is not supported") != std::string::npos);
  CHECK(f.get("ok").dtype() == DType::F32);
}

TEST_CASE("tensors of files written by the Python package are views of the mapping") {
  const SafetensorsFile f(kData + "dtypes.safetensors");
  CHECK(f.header_size() % 8 == 0);
  for (const auto& name : f.names()) {
    CAPTURE(name);
    const Tensor t = f.get(name);
    CHECK(inside(t, f.bytes()));
    CHECK_FALSE(t.storage()->owns_memory());
  }
}

TEST_CASE("tensors read the same values after the mapping's pages are released") {
  // release_resident_pages drops the pages from the process (models/vae.hpp does so between
  // blocks); the next read maps them again from the file.
  const SafetensorsCheckpoint f(kData + "dtypes.safetensors");
  std::vector<Tensor> before;
  for (const auto& name : f.names()) before.push_back(f.get(name).clone());
  f.release_resident_pages();
  for (size_t i = 0; i < f.names().size(); ++i) {
    CAPTURE(f.names()[i]);
    const Tensor t = f.get(f.names()[i]);
    REQUIRE(t.nbytes() == before[i].nbytes());
    CHECK(std::memcmp(t.contiguous().data_ptr(), before[i].data_ptr(), t.nbytes()) == 0);
  }
}

TEST_CASE("a header length that misaligns the data makes tensors copies with the same values") {
  const SafetensorsFile f(kData + "misaligned.safetensors");
  CHECK(f.data_offset() % 8 == 1);
  for (const auto& name : f.names()) {
    CAPTURE(name);
    const Tensor t = f.get(name);
    CHECK_FALSE(inside(t, f.bytes()));
    CHECK(t.storage()->owns_memory());
  }
}

TEST_CASE("saving the tensors of a Python-written file reproduces it byte for byte") {
  // Same tensors, header order and metadata order in; the same compact JSON, 8-byte space
  // padding and alignment-sorted data layout out.
  TempDir dir;
  for (const std::string file : {"dtypes.safetensors", "edge_cases.safetensors", "empty.safetensors",
                                 "sharded/model-00001-of-00002.safetensors"}) {
    CAPTURE(file);
    const SafetensorsFile f(kData + file);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& name : f.names()) tensors.emplace_back(name, f.get(name));
    save_safetensors(dir / "out.safetensors", tensors, f.metadata());
    CHECK(read_file(dir / "out.safetensors") == read_file(kData + file));
  }
}

}  // TEST_SUITE("parity")

// ================================================================================================
TEST_SUITE("safetensors") {

// ---- JSON -----------------------------------------------------------------------------------

TEST_CASE("json: every value type parses and objects keep their keys in file order") {
  const json::Value v = json::parse(R"( {"z": [1, -2.5e3, true, false, null], "a": {"s": "x"}, "m": {}} )");
  const auto& o = v.as_object();
  REQUIRE(o.size() == 3);
  CHECK(o[0].first == "z");
  CHECK(o[1].first == "a");
  CHECK(o[2].first == "m");
  const auto& arr = o[0].second.as_array();
  REQUIRE(arr.size() == 5);
  CHECK(arr[0].to_int64() == 1);
  CHECK(arr[1].as_double() == -2500.0);
  CHECK(arr[2].as_bool());
  CHECK_FALSE(arr[3].as_bool());
  CHECK(arr[4].is_null());
  CHECK(v.find("a")->find("s")->as_string() == "x");
  CHECK(v.find("nope") == nullptr);
  CHECK(o[2].second.as_object().empty());
}

TEST_CASE("json: escapes and surrogate pairs decode to UTF-8") {
  const json::Value v = json::parse(R"("\"\\\/\b\f\n\r\t\u0041\u00e9\u65e5\ud83d\ude42")");
  CHECK(v.as_string() == "\"\\/\b\f\n\r\tA\xC3\xA9\xE6\x97\xA5\xF0\x9F\x99\x82");
  CHECK(json::parse("\"\xF0\x9F\x99\x82 raw\"").as_string() == "\xF0\x9F\x99\x82 raw");
}

TEST_CASE("json: inputs RFC 8259 does not allow are FormatErrors with a byte offset") {
  const std::string bad[] = {
      "", " ", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "01", "-", "1.", ".5", "1e", "+1", "NaN", "Infinity",
      "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
      "\"a\nb\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\xEF\xBB\xBF{}",
      "{} x", "[1] [2]", "{\"a\" 1}", "{1:2}", "[1 2]", "// c\n{}", std::string("{}\0", 3),
  };
  for (const std::string& text : bad) {
    CAPTURE(text);
    const std::string msg = error_of<FormatError>([&] { json::parse(text, "in.json"); });
    CHECK(msg.rfind("in.json: invalid JSON at byte ", 0) == 0);
  }
}

TEST_CASE("json: a duplicate key is an error at the offset of its second occurrence") {
  const std::string msg = error_of<FormatError>([] { json::parse(R"({"a": 1, "b": 2, "a": 3})", "x.json"); });
  CHECK(msg == "x.json: invalid JSON at byte 17: duplicate key \"a\"");
  CHECK_NOTHROW(json::parse(R"({"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]})"));
}

TEST_CASE("json: nesting deeper than the limit is an error, not a stack overflow") {
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  CHECK_NOTHROW(json::parse(ok));
  CHECK(error_of<FormatError>([&] { json::parse(deep); }).find("nested deeper than 64") != std::string::npos);
  const std::string huge(100000, '[');
  CHECK_THROWS_AS(json::parse(huge), FormatError);
  CHECK_NOTHROW(json::parse(deep, "x", {.max_depth = 65}));
}

TEST_CASE("json: more values than the limit is an error, not an exhausted memory") {
  CHECK_NOTHROW(json::parse("[0,0,0]", "x", {.max_values = 4}));
  CHECK(error_of<FormatError>([] { json::parse("[0,0,0,0]", "x", {.max_values = 4}); }) ==
        "x: invalid JSON at byte 7: more than 4 values");
}

TEST_CASE("json: integers stay exact beyond 2^53 and only plain integers count as integers") {
  const json::Value big = json::parse("18446744073709551615");
  CHECK(big.to_uint64() == UINT64_MAX);
  CHECK_FALSE(big.to_int64().has_value());
  CHECK(json::parse("9007199254740993").to_int64() == 9007199254740993LL);
  CHECK(json::parse("-9223372036854775808").to_int64() == INT64_MIN);
  CHECK_FALSE(json::parse("-1").to_uint64().has_value());
  CHECK_FALSE(json::parse("18446744073709551616").to_uint64().has_value());
  CHECK_FALSE(json::parse("2.0").to_uint64().has_value());
  CHECK_FALSE(json::parse("2e0").to_uint64().has_value());
  CHECK(json::parse("1e400").as_double() == HUGE_VAL);
  CHECK(json::parse("-1e400").as_double() == -HUGE_VAL);
  CHECK(json::parse("1e-400").as_double() == 0.0);
  CHECK(json::parse("0.1").as_double() == 0.1);
}

TEST_CASE("json: dump and quote round-trip through parse") {
  const std::string text = R"({"k\"ey":["a\u0001\n\\",1.5e-3,-0,true,null,{}],"e":"\u00e9"})";
  const json::Value v = json::parse(text);
  CHECK(json::dump(v) == "{\"k\\\"ey\":[\"a\\u0001\\n\\\\\",1.5e-3,-0,true,null,{}],\"e\":\"\xC3\xA9\"}");
  CHECK(json::parse(json::dump(v)) == v);
  CHECK(json::quote("\x1f\t") == "\"\\u001f\\t\"");
  CHECK(json::is_valid_utf8("\xC3\xA9"));
  CHECK_FALSE(json::is_valid_utf8("\xC3"));
  CHECK_FALSE(json::is_valid_utf8("\xED\xA0\x80"));  // an encoded surrogate
}

TEST_CASE("json: the wrong accessor for a type is a FormatError, not undefined behaviour") {
  const json::Value v = json::parse("[1]");
  CHECK_THROWS_AS(v.as_object(), FormatError);
  CHECK_THROWS_AS(v.as_string(), FormatError);
  CHECK_THROWS_AS(v.as_array()[0].as_bool(), FormatError);
}

// ---- mapped files -----------------------------------------------------------------------------

TEST_CASE("a mapped file exposes the file's bytes, and an empty file maps to nothing") {
  TempDir dir;
  write_file(dir / "a.bin", "hello");
  write_file(dir / "empty.bin", "");
  const auto a = MappedFile::open(dir / "a.bin");
  CHECK(std::string(reinterpret_cast<const char*>(a->data()), a->size()) == "hello");
  const auto e = MappedFile::open(dir / "empty.bin");
  CHECK(e->size() == 0);
  CHECK(e->data() == nullptr);
  const std::string msg = error_of<IoError>([&] { MappedFile::open(dir / "missing.bin"); });
  CHECK(msg == dir / "missing.bin" + ": cannot open: No such file or directory");
  CHECK(error_of<IoError>([&] { MappedFile::open(dir.path.string()); }).find("Is a directory") != std::string::npos);
}

// ---- reading ----------------------------------------------------------------------------------

TEST_CASE("every malformed file is rejected with a FormatError naming the file and the tensor") {
  const std::string bad = kData + "malformed/";
  std::istringstream manifest(read_file(bad + "manifest.tsv"));
  std::set<std::string> listed;
  std::string line;
  while (std::getline(manifest, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab1 = line.find('\t'), tab2 = line.find('\t', tab1 + 1);
    const std::string file = line.substr(0, tab1), tensor = line.substr(tab1 + 1, tab2 - tab1 - 1);
    CAPTURE(file);
    CAPTURE(line.substr(tab2 + 1));
    listed.insert(file);
    const std::string msg = error_of<FormatError>([&] {
      const SafetensorsFile f(bad + file);
      for (const auto& name : f.names()) f.get(name);
    });
    CAPTURE(msg);
    CHECK(msg.find(bad + file + ": ") == 0);
    if (!tensor.empty()) CHECK(msg.find("tensor '" + tensor + "'") != std::string::npos);
  }
  CHECK(listed.size() >= 60);
  for (const auto& e : fs::directory_iterator(bad))
    if (e.path().extension() == ".safetensors") CHECK_MESSAGE(listed.count(e.path().filename().string()), e.path());
}

TEST_CASE("malformed files give the reasons a reader of the message needs") {
  // A few messages in full, so that their wording is deliberate.
  const std::string bad = kData + "malformed/";
  auto message = [&](const std::string& file) {
    return error_of<FormatError>([&] {
      const SafetensorsFile f(bad + file);
      for (const auto& name : f.names()) f.get(name);
    }).substr(bad.size());
  };
  CHECK(message("offsets_size_mismatch.safetensors") ==
        "offsets_size_mismatch.safetensors: tensor 'layer.weight': data_offsets [0, 12] hold 12 bytes but F32 [4] needs 16");
  CHECK(message("offsets_overlap.safetensors") ==
        "offsets_overlap.safetensors: tensor 'second': data_offsets [8, 24] overlap tensor 'first' [0, 16]");
  CHECK(message("offsets_hole.safetensors") ==
        "offsets_hole.safetensors: tensor 'second': data_offsets [20, 36] leave a hole of 4 bytes after tensor 'first'");
  CHECK(message("trailing_bytes.safetensors") ==
        "trailing_bytes.safetensors: 4 bytes after the last tensor ('layer.weight') belong to no tensor");
  CHECK(message("dtype_unknown.safetensors") == "dtype_unknown.safetensors: tensor 'layer.weight': unknown dtype \"F33\"");
  CHECK(message("shape_negative.safetensors") ==
        "shape_negative.safetensors: tensor 'layer.weight': shape[0] is -1, expected a non-negative integer below 2^64");
  CHECK(message("metadata_number_value.safetensors") ==
        "metadata_number_value.safetensors: __metadata__ 'epoch' is a number, expected a string (the format allows only string values)");
  CHECK(message("header_length_huge.safetensors") ==
        "header_length_huge.safetensors: header length 9223372036854775808 is over the format's limit of 100000000 bytes (and past "
        "the end of the 16-byte file)");
  CHECK(message("duplicate_tensor.safetensors").find("duplicate key \"layer.weight\"") != std::string::npos);
  CHECK(message("bool_invalid_value.safetensors") ==
        "bool_invalid_value.safetensors: tensor 'flags': BOOL element 2 is 2, expected 0 or 1");
}

TEST_CASE("a missing file is an IoError that names it and says why") {
  const std::string msg = error_of<IoError>([] { SafetensorsFile("/nonexistent/model.safetensors"); });
  CHECK(msg == "/nonexistent/model.safetensors: cannot open: No such file or directory");
  CHECK_THROWS_AS(SafetensorsCheckpoint("/nonexistent/model.safetensors.index.json"), IoError);
}

TEST_CASE("an unknown tensor name is a FormatError that suggests similar names") {
  const SafetensorsFile f(kData + "edge_cases.safetensors");
  CHECK_FALSE(f.contains("encoder/layer.1.weight"));
  const std::string msg = error_of<FormatError>([&] { f.get("encoder/layer.1.weight"); });
  CHECK(msg.find("edge_cases.safetensors: no tensor named 'encoder/layer.1.weight'; similar: 'encoder/layer.0.weight'") !=
        std::string::npos);
  CHECK_THROWS_AS(f.info(""), FormatError);
}

TEST_CASE("a zero-copy tensor keeps its mapping alive after the file object is gone") {
  Tensor t;
  {
    const SafetensorsFile f(kData + "dtypes.safetensors");
    t = f.get("f32");
  }
  CHECK(t.item({0, 2}) == 3.25);
}

TEST_CASE("writing to a zero-copy tensor changes neither the file nor other readers") {
  TempDir dir;
  save_safetensors(dir / "w.safetensors", {{"w", arange({4}, DType::F32)}});
  const SafetensorsFile f(dir / "w.safetensors");
  Tensor t = f.get("w");
  REQUIRE(inside(t, f.bytes()));
  t.data<float>()[1] = 42.0f;  // copy-on-write page of this mapping only
  CHECK(f.get("w").item({1}) == 42.0);
  CHECK(SafetensorsFile(dir / "w.safetensors").get("w").item({1}) == 1.0);
}

TEST_CASE("a file in memory reads like a file on disk and is named in errors") {
  const std::string bytes = read_file(kData + "dtypes.safetensors");
  const auto span = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  const SafetensorsFile m = SafetensorsFile::from_memory(span, "<memory>");
  const SafetensorsFile f(kData + "dtypes.safetensors");
  CHECK(m.names() == f.names());
  for (const auto& name : f.names()) CHECK(equal(m.get(name), f.get(name)));
  const std::string msg = error_of<FormatError>([&] { SafetensorsFile::from_memory(span.first(20), "<memory>"); });
  CHECK(msg.rfind("<memory>: header length", 0) == 0);
}

TEST_CASE("a misaligned tensor is copied and an aligned one is viewed") {
  TempDir dir;
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[2],"data_offsets":[8,10]}})";
  std::string data(10, '\0');
  const float values[2] = {1.25f, -3.0f};
  std::memcpy(data.data(), values, 8);
  data[8] = 7;
  data[9] = 9;
  for (size_t pad : {0, 1, 2, 3}) {
    CAPTURE(pad);
    const size_t n = (header.size() + 7) / 8 * 8 + pad;  // 8 + n is aligned for F32 only when pad == 0
    write_file(dir / "m.safetensors", build(header, data, n));
    const SafetensorsFile f(dir / "m.safetensors");
    const Tensor a = f.get("a");
    CHECK(inside(a, f.bytes()) == (pad == 0));
    CHECK(a.item({0}) == 1.25);
    CHECK(a.item({1}) == -3.0);
    const Tensor b = f.get("b");
    CHECK(inside(b, f.bytes()));  // bytes are always aligned
    CHECK(b.item({1}) == 9.0);
  }
}

TEST_CASE("each header rule is checked when the file is opened, before any tensor is fetched") {
  // Rules covered by the corpus, but here with their interplay: a valid first tensor does not
  // hide a broken second one, and unknown fields are ignored as the Rust crate does.
  const std::string ok = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  auto open = [](const std::string& bytes) {
    const auto span = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    return SafetensorsFile::from_memory(span, "t.safetensors");
  };
  CHECK(open(build("{" + ok + "}", "abcd")).size() == 1);
  CHECK(open(build(R"({"a":{"x":[1,{"y":null}],"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcd")).size() == 1);
  CHECK(error_of<FormatError>([&] {
          open(build("{" + ok + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[4,9]}})", std::string(9, 'x')));
        }) == "t.safetensors: tensor 'b': data_offsets [4, 9] hold 5 bytes but F32 [1] needs 4");
  std::string long_length = build("{" + ok + "}", "abcd");
  long_length[0] = static_cast<char>(200);
  CHECK(error_of<FormatError>([&] { open(long_length); }).rfind("t.safetensors: header length 200 runs past the end of the file (", 0) == 0);
  CHECK(open(build("{" + ok + R"(,"z":{"dtype":"I64","shape":[0,5],"data_offsets":[4,4]}})", "abcd")).size() == 2);
}

// ---- writing ----------------------------------------------------------------------------------

TEST_CASE("tensors of all seven dtypes round-trip through save and load") {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8, DType::Bool})
    tensors.emplace_back(std::string(dtype_name(t)), arange({2, 3}, t, -2.5, 0.75));
  save_safetensors(dir / "all.safetensors", tensors);
  const SafetensorsFile f(dir / "all.safetensors");
  REQUIRE(f.size() == 7);
  for (const auto& item : tensors) {
    const std::string& name = item.first;
    const Tensor& t = item.second;
    CAPTURE(name);
    const Tensor back = f.get(name);
    CHECK(equal(back, t));
    CHECK(inside(back, f.bytes()));
  }
  CHECK(f.info("bool").dtype_name == "BOOL");
  CHECK(f.info("bf16").dtype_name == "BF16");
}

TEST_CASE("a non-contiguous tensor is saved as its values in row-major order") {
  TempDir dir;
  const Tensor base = arange({3, 4}, DType::F32);
  const Tensor t = base.transpose(0, 1).slice(0, 1, 4, 2);  // [2, 3], strided
  REQUIRE_FALSE(t.is_contiguous());
  save_safetensors(dir / "nc.safetensors", {{"t", t}});
  const Tensor back = SafetensorsFile(dir / "nc.safetensors").get("t");
  CHECK(back.shape() == Shape{2, 3});
  CHECK(equal(back, t));
  CHECK(back.item({1, 2}) == t.item({1, 2}));
}

TEST_CASE("scalars and zero-size tensors round-trip") {
  TempDir dir;
  const Tensor scalar = arange({}, DType::F32, 4.5);
  save_safetensors(dir / "z.safetensors",
                   {{"scalar", scalar}, {"empty", Tensor::empty({0}, DType::F32)}, {"empty_3d", Tensor::empty({2, 0, 3}, DType::I64)}});
  const SafetensorsFile f(dir / "z.safetensors");
  CHECK(f.get("scalar").dim() == 0);
  CHECK(f.get("scalar").item() == 4.5);
  CHECK(f.get("empty").shape() == Shape{0});
  CHECK(f.get("empty_3d").shape() == Shape{2, 0, 3});
  CHECK(f.info("empty_3d").nbytes() == 0);
}

TEST_CASE("metadata with quotes, control characters and unicode round-trips in order") {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> meta = {
      {"z", "last key first"}, {"quote\"back\\slash", "tab\there\nnewline\x01"}, {"\xE6\x97\xA5", "\xF0\x9F\x99\x82"}, {"empty", ""}};
  save_safetensors(dir / "m.safetensors", {{"x", arange({1}, DType::U8)}}, meta);
  CHECK(SafetensorsFile(dir / "m.safetensors").metadata() == meta);
  save_safetensors(dir / "none.safetensors", {});
  const SafetensorsFile none(dir / "none.safetensors");
  CHECK(none.metadata().empty());
  CHECK(none.size() == 0);
}

TEST_CASE("the header keeps the given order while the data is laid out by alignment") {
  TempDir dir;
  save_safetensors(dir / "o.safetensors", {{"u8", arange({3}, DType::U8)}, {"f32", arange({2}, DType::F32)},
                                           {"i64", arange({1}, DType::I64)}, {"f16", arange({1}, DType::F16)}});
  const SafetensorsFile f(dir / "o.safetensors");
  CHECK(f.names() == std::vector<std::string>{"u8", "f32", "i64", "f16"});
  CHECK(f.info("i64").begin == 0);
  CHECK(f.info("f32").begin == 8);
  CHECK(f.info("f16").begin == 16);
  CHECK(f.info("u8").begin == 18);
  CHECK(f.header_size() % 8 == 0);
  for (const auto& name : f.names()) CHECK(inside(f.get(name), f.bytes()));
}

TEST_CASE("tensor names must be unique, non-empty, UTF-8 and not __metadata__") {
  TempDir dir;
  const Tensor t = arange({1}, DType::F32);
  using Tensors = std::vector<std::pair<std::string, Tensor>>;
  for (const Tensors& bad : {Tensors{{"a", t}, {"a", t}}, Tensors{{"", t}}, Tensors{{"__metadata__", t}},
                             Tensors{{"\xff", t}}, Tensors{{"u", Tensor()}}}) {
    CHECK_THROWS_AS(save_safetensors(dir / "n.safetensors", bad), UsageError);
  }
  CHECK_THROWS_AS(save_safetensors(dir / "n.safetensors", {{"a", t}}, {{"k", "1"}, {"k", "2"}}), UsageError);
  CHECK(dir.listing().empty());
}

TEST_CASE("a tensor that is not on the CPU is refused and the old file is kept") {
  TempDir dir;
  save_safetensors(dir / "d.safetensors", {{"old", arange({2}, DType::F32)}});
  const std::string before = read_file(dir / "d.safetensors");
  float fake[2] = {0, 0};
  const Tensor cuda(Storage::wrap(fake, sizeof fake, nullptr, Device::CUDA), Shape{2}, Shape{1}, 0, DType::F32);
  const std::string msg = error_of<DeviceError>([&] { save_safetensors(dir / "d.safetensors", {{"gpu", cuda}}); });
  CHECK(msg.find("tensor 'gpu' is on cuda") != std::string::npos);
  CHECK(read_file(dir / "d.safetensors") == before);
  CHECK(dir.listing() == std::set<std::string>{"d.safetensors"});
}

TEST_CASE("a write that fails midway leaves the old file intact and no temporary file behind") {
  // RLIMIT_FSIZE makes write() fail with EFBIG after 4 KB, as a full disk would; it works
  // when the tests run as root, unlike a read-only directory.
  TempDir dir;
  save_safetensors(dir / "big.safetensors", {{"old", arange({4}, DType::I32)}});
  const std::string before = read_file(dir / "big.safetensors");
  struct LimitGuard {
    rlimit saved{};
    void (*old_handler)(int);
    LimitGuard() {
      getrlimit(RLIMIT_FSIZE, &saved);
      old_handler = signal(SIGXFSZ, SIG_IGN);
      rlimit small = saved;
      small.rlim_cur = 4096;
      setrlimit(RLIMIT_FSIZE, &small);
    }
    ~LimitGuard() {
      setrlimit(RLIMIT_FSIZE, &saved);
      signal(SIGXFSZ, old_handler);
    }
  };
  std::string msg;
  {
    LimitGuard guard;
    msg = error_of<IoError>([&] { save_safetensors(dir / "big.safetensors", {{"new", arange({64, 64}, DType::F32)}}); });
  }
  CHECK(msg.find(dir / "big.safetensors: cannot write ") == 0);
  CHECK(msg.find("File too large") != std::string::npos);
  CHECK(read_file(dir / "big.safetensors") == before);
  CHECK(dir.listing() == std::set<std::string>{"big.safetensors"});
}

TEST_CASE("writing over a directory or into a missing one is an IoError and leaves nothing behind") {
  TempDir dir;
  fs::create_directory(dir.path / "sub");
  const Tensor t = arange({2}, DType::F32);
  const std::string msg = error_of<IoError>([&] { save_safetensors(dir / "sub", {{"t", t}}); });
  CHECK(msg.find(dir / "sub: cannot rename ") == 0);
  CHECK(dir.listing() == std::set<std::string>{"sub"});
  CHECK(error_of<IoError>([&] { save_safetensors(dir / "missing/x.safetensors", {{"t", t}}); }).find("No such file or directory") !=
        std::string::npos);
}

TEST_CASE("overwriting a file that is open keeps the old tensors readable") {
  TempDir dir;
  save_safetensors(dir / "r.safetensors", {{"w", arange({2}, DType::F32, 1)}});
  const SafetensorsFile old(dir / "r.safetensors");
  const Tensor w = old.get("w");
  save_safetensors(dir / "r.safetensors", {{"w", arange({2}, DType::F32, 100)}});
  CHECK(w.item({0}) == 1.0);
  CHECK(SafetensorsFile(dir / "r.safetensors").get("w").item({0}) == 100.0);
}

// ---- sharded checkpoints ----------------------------------------------------------------------

namespace {

// Two shards a.safetensors {x, y} and b.safetensors {z} in `dir`, and an index with `weight_map`.
std::string make_sharded(const TempDir& dir, const std::string& weight_map) {
  save_safetensors(dir / "a.safetensors", {{"x", arange({2}, DType::F32)}, {"y", arange({1}, DType::I64)}});
  save_safetensors(dir / "b.safetensors", {{"z", arange({3}, DType::U8)}});
  write_file(dir / "m.safetensors.index.json", R"({"metadata":{"total_size":27,"note":"n"},"weight_map":)" + weight_map + "}");
  return dir / "m.safetensors.index.json";
}

}  // namespace

TEST_CASE("a sharded checkpoint serves each tensor from its shard") {
  TempDir dir;
  const auto ckpt = SafetensorsCheckpoint::open(make_sharded(dir, R"({"z":"b.safetensors","x":"a.safetensors","y":"a.safetensors"})"));
  CHECK(ckpt.names() == std::vector<std::string>{"z", "x", "y"});
  CHECK(ckpt.get("z").item({2}) == 2.0);
  CHECK(ckpt.info("y").dtype == DType::I64);
  CHECK(ckpt.metadata() == std::vector<std::pair<std::string, std::string>>{{"total_size", "27"}, {"note", "n"}});
}

TEST_CASE("a sharded checkpoint rejects an index entry whose shard lacks the tensor") {
  TempDir dir;
  const std::string idx = make_sharded(dir, R"({"x":"a.safetensors","y":"a.safetensors","z":"a.safetensors"})");
  const std::string msg = error_of<FormatError>([&] { SafetensorsCheckpoint c(idx); });
  CHECK(msg.find(idx + ": tensor 'z': the index maps it to ") == 0);
  CHECK(msg.find("a.safetensors, which has no such tensor") != std::string::npos);
}

TEST_CASE("a sharded checkpoint rejects a tensor in a shard that the index does not list") {
  TempDir dir;
  const std::string idx = make_sharded(dir, R"({"x":"a.safetensors","z":"b.safetensors"})");
  CHECK(error_of<FormatError>([&] { SafetensorsCheckpoint c(idx); }).find("tensor 'y': in ") != std::string::npos);
}

TEST_CASE("a sharded checkpoint rejects a tensor that is in two shards") {
  TempDir dir;
  const std::string idx = make_sharded(dir, R"({"x":"a.safetensors","y":"a.safetensors","z":"b.safetensors"})");
  save_safetensors(dir / "b.safetensors", {{"z", arange({3}, DType::U8)}, {"x", arange({2}, DType::F32)}});
  const std::string msg = error_of<FormatError>([&] { SafetensorsCheckpoint c(idx); });
  CHECK(msg.find("tensor 'x': in both ") != std::string::npos);
}

TEST_CASE("a sharded checkpoint rejects shard paths that leave its directory") {
  TempDir dir;
  for (const std::string shard : {"../a.safetensors", "/etc/passwd", "sub/../../a.safetensors", ""}) {
    CAPTURE(shard);
    const std::string idx = make_sharded(dir, R"({"x":")" + shard + R"("})");
    CHECK(error_of<FormatError>([&] { SafetensorsCheckpoint c(idx); }).find("is not a relative path inside") != std::string::npos);
  }
}

TEST_CASE("a sharded checkpoint reports a missing shard file as an IoError naming it") {
  TempDir dir;
  const std::string idx = make_sharded(dir, R"({"x":"a.safetensors","y":"a.safetensors","z":"c.safetensors"})");
  const std::string msg = error_of<IoError>([&] { SafetensorsCheckpoint c(idx); });
  CHECK(msg.find("c.safetensors: cannot open") != std::string::npos);
}

TEST_CASE("a sharded checkpoint index must be an object with a weight_map of file names") {
  TempDir dir;
  for (const std::string text : {"[]", "{}", R"({"weight_map":[]})", R"({"weight_map":{"x":1}})", R"({"weight_map":{},"metadata":3})",
                                 R"({"weight_map":{"x":"a.safetensors","x":"a.safetensors"}})"}) {
    CAPTURE(text);
    write_file(dir / "i.json", text);
    const std::string msg = error_of<FormatError>([&] { SafetensorsCheckpoint c(dir / "i.json"); });
    CHECK(msg.find(dir / "i.json: ") == 0);
  }
}

TEST_CASE("a single .safetensors file opens as a checkpoint too") {
  const SafetensorsCheckpoint ckpt(kData + "edge_cases.safetensors");
  CHECK_FALSE(ckpt.is_sharded());
  CHECK(ckpt.size() == 6);
  CHECK(ckpt.get("scalar").item() == 2.5);
  CHECK(ckpt.metadata().size() == 4);
}

}  // TEST_SUITE("safetensors")
