// Tests of `genscope features` as scripts use it: rows that match the reference end to end (the
// expected values come from tools/reference/make_vit_fixtures.py: timm and AIM on
// tests/data/images/rgb.png through PIL and the reference preprocessing), the paths metadata in
// row order, skipped images, and exit codes (0 ok, 1 usage, 2 input).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "genscope/io/json.hpp"
#include "genscope/io/safetensors.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace genscope;

namespace {

using Result = test::CommandResult;

// genscope features ARGS, as a script runs it.
Result run(const std::string& args) { return test::run_cli("features " + args); }

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("genscope-features") {}
};

const std::string kData = GENSCOPE_TEST_DATA;
const std::string kImage = kData + "/images/rgb.png";
const std::string kTimm = "--arch timm-vit --weights " + kData + "/vit/timm-vit.safetensors --heads 2";

// max|a − e| / max|e|, not finite when max|e| is 0.
double relative_error(const Tensor& a, const Tensor& e) {
  return test::relative_error(a, e, test::NanRule::unchecked, test::ZeroScale::divide);
}

std::vector<std::string> paths_of(const SafetensorsFile& f) {
  std::string text;
  for (const auto& [k, v] : f.metadata())
    if (k == "paths") text = v;
  const json::Value v = json::parse(text);
  std::vector<std::string> out;
  for (const auto& p : v.as_array()) out.push_back(p.as_string());
  return out;
}

}  // namespace

TEST_SUITE("features_cli") {

TEST_CASE("a timm ViT row matches timm on the reference preprocessing") {
  TempDir tmp;
  const Result r = run(kTimm + " --input " + kImage + " --output " + tmp.file("f.safetensors"));
  REQUIRE(r.exit_code == 0);
  const SafetensorsFile f(tmp.file("f.safetensors"));
  const SafetensorsFile expected(kData + "/vit/timm-vit_expected.safetensors");
  CHECK(f.get("features").shape() == Shape{1, 64});
  CHECK(relative_error(f.get("features"), expected.get("image.pooled")) <= 1e-4);
}

TEST_CASE("an AIM row is the attention-probe feature of the rich-texture fallback resize") {
  TempDir tmp;
  const Result r = run("--arch aim --weights " + kData + "/vit/aim.safetensors --heads 2 --layers 1-2 --input " + kImage +
                       " --output " + tmp.file("f.safetensors"));
  REQUIRE(r.exit_code == 0);
  const SafetensorsFile f(tmp.file("f.safetensors"));
  const SafetensorsFile expected(kData + "/vit/aim_expected.safetensors");
  CHECK(relative_error(f.get("features"), expected.get("image.features")) <= 1e-4);
}

TEST_CASE("a directory is walked recursively in sorted order, one row per image") {
  TempDir tmp;
  fs::create_directories(tmp.path / "in" / "a");
  fs::copy_file(kImage, tmp.path / "in" / "b.png");
  fs::copy_file(kImage, tmp.path / "in" / "a" / "z.png");
  fs::copy_file(kData + "/images/rgb.bmp", tmp.path / "in" / "c.bmp");
  std::ofstream(tmp.file("in/notes.txt")) << "not an image";
  const Result r = run(kTimm + " --batch 2 --input " + tmp.file("in") + " --output " + tmp.file("f.safetensors"));
  REQUIRE(r.exit_code == 0);
  const SafetensorsFile f(tmp.file("f.safetensors"));
  CHECK(f.get("features").shape() == Shape{3, 64});
  CHECK(paths_of(f) == std::vector<std::string>{tmp.file("in/a/z.png"), tmp.file("in/b.png"), tmp.file("in/c.bmp")});
  // The same image gives the same row wherever it sits in a batch.
  const Tensor x = f.get("features");
  for (int64_t j = 0; j < 64; ++j) CHECK(x.item({0, j}) == x.item({1, j}));
}

TEST_CASE("a list file gives the rows in its own order") {
  TempDir tmp;
  std::ofstream(tmp.file("list.txt")) << kData << "/images/rgb.bmp\n\n# a comment\n" << kImage << "\n";
  const Result r = run(kTimm + " --input " + tmp.file("list.txt") + " --output " + tmp.file("f.safetensors"));
  REQUIRE(r.exit_code == 0);
  CHECK(paths_of(SafetensorsFile(tmp.file("f.safetensors"))) == std::vector<std::string>{kData + "/images/rgb.bmp", kImage});
}

TEST_CASE("unreadable images are skipped and named, the output is complete for the others, exit 2") {
  TempDir tmp;
  fs::create_directories(tmp.path / "in");
  fs::copy_file(kImage, tmp.path / "in" / "good.png");
  std::ofstream(tmp.file("in/bad.png")) << "this is not a PNG";
  const Result r = run(kTimm + " --input " + tmp.file("in") + " --output " + tmp.file("f.safetensors"));
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("bad.png") != std::string::npos);
  CHECK(r.output.find("1 of 2 images") != std::string::npos);
  const SafetensorsFile f(tmp.file("f.safetensors"));
  CHECK(f.get("features").shape() == Shape{1, 64});
  CHECK(paths_of(f) == std::vector<std::string>{tmp.file("in/good.png")});
}

TEST_CASE("no progress line is printed when stderr is not a terminal") {
  TempDir tmp;
  const Result r = run(kTimm + " --input " + kImage + " --output " + tmp.file("f.safetensors"));
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("images/s") == std::string::npos);
}

TEST_CASE("bad options are usage errors (exit 1) and write nothing") {
  TempDir tmp;
  const std::string out = " --input " + kImage + " --output " + tmp.file("f.safetensors");
  CHECK(run("--arch vgg --weights " + kData + "/vit/timm-vit.safetensors" + out).exit_code == 1);
  CHECK(run(kTimm + " --pool probe" + out).exit_code == 1);
  CHECK(run(kTimm + " --layers 3-1" + out).exit_code == 1);
  CHECK(run(kTimm + " --heads 3" + out).exit_code == 1);
  CHECK(run("--arch timm-vit" + out).exit_code == 1);
  CHECK_FALSE(fs::exists(tmp.file("f.safetensors")));
}

TEST_CASE("a reduced --precision without --device cuda is a usage error (exit 1) that writes nothing") {
  TempDir tmp;
  const Result r = run(kTimm + " --precision f16 --input " + kImage + " --output " + tmp.file("f.safetensors"));
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("--precision") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp.file("f.safetensors")));
}

TEST_CASE("weights of another layout are an input error naming the missing tensor") {
  TempDir tmp;
  const Result r = run("--arch clip --weights " + kData + "/vit/timm-vit.safetensors --input " + kImage + " --output " + tmp.file("f.safetensors"));
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("vision_model.embeddings.patch_embedding.weight") != std::string::npos);
}

}  // TEST_SUITE("features_cli")
