// Fit a detector head on real and generated image features, score held-out rows, report.
//
//   build/examples/fit_and_score [examples/data/uar_sample.safetensors]
//
// The sample holds AIM-3B features of real ImageNet images and of their Stable Diffusion VAE
// reconstructions (examples/data/README.md). Any BinaryDetector (LinearProbe, Svm) fits the
// same way; GaussianMixture fits on real rows only. options.pca = K puts a PCA to K components
// (fitted on the training rows) in front of any head.
#include <cstdio>
#include <exception>
#include <string>

#include "genscope/detect/any_head.hpp"
#include "genscope/detect/metrics.hpp"

using namespace genscope::detect;

// Fit on the *_fit rows, score the *_test rows, print accuracy, AP and ROC-AUC.
template <BinaryDetector D>
void fit_and_report(const char* name, D detector, const std::string& file) {
  detector.fit(read_features(file + ":real_fit"), read_features(file + ":fake_fit"));
  const FeatureMatrix real = read_features(file + ":real_test"), fake = read_features(file + ":fake_test");
  std::vector<double> scores = detector.score(real);
  const std::vector<double> fake_scores = detector.score(fake);
  scores.insert(scores.end(), fake_scores.begin(), fake_scores.end());
  std::vector<int> labels(scores.size(), 0), predicted(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    labels[i] = i >= static_cast<size_t>(real.rows);
    predicted[i] = scores[i] > detector.threshold();
  }
  const Accuracy acc = accuracy(labels, predicted);
  std::printf("%-6s accuracy %.2f %% (real %.2f %%, generated %.2f %%), AP %.4f, ROC-AUC %.4f\n", name, 100 * acc.overall,
              100 * acc.real, 100 * acc.generated, average_precision(labels, scores), roc_auc(labels, scores));
}

int main(int argc, char** argv) {
  const std::string file = argc > 1 ? argv[1] : "examples/data/uar_sample.safetensors";
  try {
    LinearProbe<float> probe;  // UAR's head: Adam, lr 1e-3, batch 32
    probe.options.epochs = 50;
    fit_and_report("probe", probe, file);

    Svm svm;  // RAID's head: rbf, C = 1, gamma = 1 / n_features
    svm.options.gamma_mode = GammaMode::Auto;
    fit_and_report("svm", svm, file);

    Svm svm_pca = svm;  // the same after a PCA to 64 components, saved with the model
    svm_pca.options.pca = 64;
    fit_and_report("svm+pca", svm_pca, file);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fit_and_score: %s\n", e.what());
    return 2;
  }
  return 0;
}
