// genscope — the command line. One program; each subcommand lives in its own header beside this
// file and registers here. Exit codes are a contract other tools rely on:
//   0 ok, 1 usage error (bad flag or argument), 2 input error (bad file, bad data).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

#include "args.hpp"
#include "cmd_convert.hpp"
#include "cmd_features.hpp"
#include "cmd_eval.hpp"
#include "cmd_fit.hpp"
#include "cmd_inspect.hpp"
#include "cmd_preprocess.hpp"
#include "cmd_reconstruct.hpp"
#include "cmd_score.hpp"

#ifndef GENSCOPE_VERSION
#define GENSCOPE_VERSION "unknown"
#endif

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);  // argv[1] is the command name
};

constexpr Command kCommands[] = {
    {"convert", "convert PyTorch checkpoints (.pth/.ckpt) to safetensors, executing nothing", genscope::cli::run_convert},
    {"eval", "print accuracy, AP and ROC-AUC of score files, per group", genscope::cli::run_eval},
    {"fit", "fit a detector head (svm, probe, gmm) on feature files", genscope::cli::run_fit},
    {"features", "one feature row per image from a ViT (AIM, CLIP, SPAI's ViT, timm)", genscope::cli::run_features},
    {"inspect", "list and validate the tensors of safetensors files", genscope::cli::run_inspect},
    {"preprocess", "write the tensor a model sees for an image (resize, crop, normalise)", genscope::cli::run_preprocess},
    {"reconstruct", "SD VAE round trip of every image in a folder (UAR/RAID negatives)", genscope::cli::run_reconstruct},
    {"score", "score feature rows with a detector head: name,score,generated CSV", genscope::cli::run_score},
};

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "genscope %s — detect AI-generated images without a deep-learning framework\n\n"
               "usage: genscope <command> [options]\n       genscope <command> --help\n\ncommands:\n",
               GENSCOPE_VERSION);
  for (const auto& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\noptions:\n  --help       show this help\n  --version    print the version\n\n"
               "exit codes: 0 ok, 1 usage error, 2 input error (bad file or data)\n"
               "environment: GENSCOPE_NUM_THREADS sets the number of CPU threads\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 1;
  }
  const std::string_view first = argv[1];
  if (first == "--help" || first == "-h" || first == "help") {
    print_usage(stdout);
    return 0;
  }
  if (first == "--version") {
    std::printf("genscope %s\n", GENSCOPE_VERSION);
    return 0;
  }
  for (const auto& c : kCommands) {
    if (first != c.name) continue;
    try {
      return c.run(argc, argv);
    } catch (const genscope::UsageError& e) {
      std::fprintf(stderr, "genscope: %s\n", e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "genscope %s: %s\n", c.name, e.what());
      return 2;
    }
  }
  std::fprintf(stderr, "genscope: unknown command '%s'; run 'genscope --help' for the list\n", argv[1]);
  return 1;
}
