// Tests of `genscope reconstruct` as scripts use it: the UAR/RAID round trip on a folder against
// diffusers (tests/data/vae/reconstruct_out.png, written by tools/reference/make_vae_fixtures.py),
// unreadable images skipped and named with exit 2, --resume, seeded sampling, usage errors (exit 1).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "genscope/io/image.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace genscope;

namespace {

const std::string kData = std::string(GENSCOPE_TEST_DATA) + "/vae/";
const std::string kVae = kData + "small_diffusers.safetensors";

using Result = test::CommandResult;

Result run(const std::string& args) { return test::run_cli("reconstruct " + args); }

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("genscope-reconstruct") {}
};

// An input folder: sub/photo.png (the fixture image) and, optionally, an unreadable bad.jpg.
void make_input(const fs::path& dir, bool with_bad) {
  fs::create_directories(dir / "sub");
  fs::copy_file(kData + "reconstruct_in.png", dir / "sub" / "photo.png");
  std::ofstream(dir / "notes.txt") << "not an image, not looked at";
  if (with_bad) std::ofstream(dir / "bad.jpg") << "this is not a JPEG";
}

std::string flags(const TempDir& t) { return "--vae " + kVae + " --input " + (t.path / "in").string() + " --output " + (t.path / "out").string(); }

}  // namespace

TEST_SUITE("reconstruct_cli") {

TEST_CASE("--mode writes the diffusers round trip as PNG under the same relative path") {
  TempDir t;
  make_input(t.path / "in", false);
  const Result r = run(flags(t) + " --mode");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const Tensor got = load_image_rgb((t.path / "out" / "sub" / "photo.png").string());
  const Tensor want = load_image_rgb(kData + "reconstruct_out.png");
  REQUIRE(got.shape() == want.shape());
  int worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) worst = std::max(worst, std::abs(int(got.data<uint8_t>()[i]) - int(want.data<uint8_t>()[i])));
  CHECK(worst <= 1);  // a value within float rounding of a .5 boundary may round either way
  CHECK(!fs::exists(t.path / "out" / "notes.png"));
}

TEST_CASE("an unreadable image is skipped and named, the others are written, and the exit code is 2") {
  TempDir t;
  make_input(t.path / "in", true);
  const Result r = run(flags(t) + " --mode");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("bad.jpg") != std::string::npos);
  CHECK(fs::exists(t.path / "out" / "sub" / "photo.png"));
  CHECK(!fs::exists(t.path / "out" / "bad.png"));
  for (const auto& e : fs::recursive_directory_iterator(t.path / "out"))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);  // no temporary left behind
}

TEST_CASE("--resume leaves finished outputs alone and does the rest") {
  TempDir t;
  make_input(t.path / "in", false);
  fs::copy_file(kData + "reconstruct_in.png", t.path / "in" / "second.png");
  fs::create_directories(t.path / "out" / "sub");
  std::ofstream(t.path / "out" / "sub" / "photo.png") << "finished earlier";
  const Result r = run(flags(t) + " --mode --resume");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(test::read_file(t.path / "out" / "sub" / "photo.png") == "finished earlier");
  CHECK(fs::exists(t.path / "out" / "second.png"));
  CHECK(r.output.find("1 written, 1 already done") != std::string::npos);
}

TEST_CASE("a seeded sample is reproducible and the seed matters") {
  TempDir a, b, c;
  for (const TempDir* t : {&a, &b, &c}) make_input(t->path / "in", false);
  REQUIRE(run(flags(a) + " --seed 3").exit_code == 0);
  REQUIRE(run(flags(b) + " --sample --seed 3").exit_code == 0);
  REQUIRE(run(flags(c) + " --seed 4").exit_code == 0);
  const auto png = [](const TempDir& t) { return test::read_file(t.path / "out" / "sub" / "photo.png"); };
  CHECK(png(a) == png(b));
  CHECK(png(a) != png(c));
}

TEST_CASE("bad arguments are usage errors (exit 1) and a missing input folder an input error (exit 2)") {
  TempDir t;
  make_input(t.path / "in", false);
  CHECK(run(flags(t) + " --sample --mode").exit_code == 1);
  CHECK(run("--input " + (t.path / "in").string() + " --output " + (t.path / "out").string()).exit_code == 1);
  CHECK(run(flags(t) + " --tile 12").exit_code == 1);
  CHECK(run(flags(t) + " --device tpu").exit_code == 1);
  const Result missing = run("--vae " + kVae + " --input " + (t.path / "nowhere").string() + " --output " + (t.path / "out").string());
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.find("nowhere") != std::string::npos);
}

TEST_CASE("weights that are not a VAE are an input error naming the file") {
  TempDir t;
  make_input(t.path / "in", false);
  const std::string not_vae = std::string(GENSCOPE_TEST_DATA) + "/safetensors/dtypes.safetensors";
  const Result r = run("--vae " + not_vae + " --input " + (t.path / "in").string() + " --output " + (t.path / "out").string());
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("dtypes.safetensors") != std::string::npos);
}

}  // TEST_SUITE
