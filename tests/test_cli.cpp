// Tests of the `genscope` program as scripts use it: exit codes (0 ok, 1 usage, 2 input), messages
// that name the file, and outputs that are complete or absent. The safetensors files here are
// written byte by byte from the format's definition, not by genscope's writer.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "genscope/io/safetensors.hpp"
#include "support.hpp"

namespace fs = std::filesystem;

namespace {

namespace gt = genscope::test;
using Result = gt::CommandResult;

Result run(const std::string& args) { return gt::run_cli(args); }

struct TempDir : gt::TempDir {
  TempDir() : gt::TempDir("genscope-cli") {}
};

// A safetensors file from its definition: u64 little-endian header length, JSON header, data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + data;
}

const std::string kValidHeader =
    R"({"__metadata__":{"format":"pt"},"head.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
    R"("head.bias":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]}})";

std::string valid_file() { return safetensors_bytes(kValidHeader, std::string(28, '\0')); }

}  // namespace

TEST_SUITE("cli") {

TEST_CASE("--version and --help exit 0") {
  CHECK(run("--version").exit_code == 0);
  CHECK(run("--version").output.find("genscope ") == 0);
  const Result help = run("--help");
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("inspect") != std::string::npos);
  CHECK(help.output.find("preprocess") != std::string::npos);
}

TEST_CASE("no command, an unknown command or an unknown option is a usage error") {
  CHECK(run("").exit_code == 1);
  const Result unknown = run("frobnicate");
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.output.find("frobnicate") != std::string::npos);
  const Result flag = run("inspect --frob x.safetensors");
  CHECK(flag.exit_code == 1);
  CHECK(flag.output.find("--frob") != std::string::npos);
  CHECK(run("inspect").exit_code == 1);
}

TEST_CASE("a subcommand's --help exits 0 and lists its options") {
  const Result r = run("preprocess --help");
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("--resize") != std::string::npos);
  CHECK(r.output.find("--interp") != std::string::npos);
}

TEST_CASE("inspect lists names, dtypes, shapes, bytes and metadata of a valid file") {
  TempDir dir;
  gt::write_file(dir.file("ok.safetensors"), valid_file());
  const Result r = run(dir.file("ok.safetensors"));
  CHECK(r.exit_code == 1);  // a path is not a command
  const Result ok = run("inspect " + dir.file("ok.safetensors"));
  CHECK(ok.exit_code == 0);
  CHECK(ok.output.find("2 tensors") != std::string::npos);
  CHECK(ok.output.find("head.weight") != std::string::npos);
  CHECK(ok.output.find("[2, 3]") != std::string::npos);
  CHECK(ok.output.find("BF16") != std::string::npos);
  CHECK(ok.output.find("format: pt") != std::string::npos);
}

TEST_CASE("inspect of a truncated file exits 2 naming the file and the tensor") {
  TempDir dir;
  const std::string path = dir.file("cut.safetensors");
  gt::write_file(path, safetensors_bytes(kValidHeader, std::string(20, '\0')));
  const Result r = run("inspect " + path);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("cut.safetensors") != std::string::npos);
}

TEST_CASE("inspect goes on after a bad file and still exits 2") {
  TempDir dir;
  gt::write_file(dir.file("ok.safetensors"), valid_file());
  const Result r = run("inspect " + dir.file("missing.safetensors") + " " + dir.file("ok.safetensors"));
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("missing.safetensors") != std::string::npos);
  CHECK(r.output.find("head.weight") != std::string::npos);
}

TEST_CASE("preprocess without --out or with a bad option value is a usage error") {
  TempDir dir;
  CHECK(run("preprocess " + dir.file("x.png")).exit_code == 1);
  CHECK(run("preprocess x.png --interp lanczos --out " + dir.file("o.safetensors")).exit_code == 1);
  CHECK(run("preprocess x.png --resize 0 --out " + dir.file("o.safetensors")).exit_code == 1);
  CHECK(run("preprocess x.png --mean 0.5 0.5 --out " + dir.file("o.safetensors")).exit_code == 1);
  CHECK_FALSE(fs::exists(dir.file("o.safetensors")));
}

TEST_CASE("preprocess of a file that is not an image exits 2 and leaves the output untouched") {
  TempDir dir;
  gt::write_file(dir.file("fake.jpg"), "this is not a JPEG");
  gt::write_file(dir.file("out.safetensors"), "previous contents");
  const Result r = run("preprocess " + dir.file("fake.jpg") + " --out " + dir.file("out.safetensors"));
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("fake.jpg") != std::string::npos);
  CHECK(gt::read_file(dir.file("out.safetensors")) == "previous contents");
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 2);  // no temp file left
}

TEST_CASE("preprocess writes a [1, 3, N, N] float32 tensor that inspect reads back") {
  TempDir dir;
  const std::string out = dir.file("astronaut.safetensors");
  const Result r = run("preprocess " GENSCOPE_TEST_DATA "/../../examples/data/astronaut.jpg --resize 64 --crop 56 "
                       "--mean 0.5,0.5,0.5 --std 0.5 0.5 0.5 --out " + out);
  REQUIRE(r.exit_code == 0);
  genscope::SafetensorsFile file = genscope::SafetensorsFile::open(out);
  const genscope::Tensor x = file.get("pixel_values");
  CHECK(x.shape() == genscope::Shape{1, 3, 56, 56});
  CHECK(x.dtype() == genscope::DType::F32);
  // (x/255 - 0.5)/0.5 lies in [-1, 1].
  const float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE((p[i] >= -1.0f && p[i] <= 1.0f));
  CHECK(run("inspect " + out).exit_code == 0);
}

}  // TEST_SUITE
