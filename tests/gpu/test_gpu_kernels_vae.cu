// test_kernels_vae.cpp compiled by nvcc: the same test cases as the emulated (simt) suite, run
// natively on a GPU (part of the test_gpu binary; tests/simt/check.hpp explains the build).
#include "../test_kernels_vae.cpp"
