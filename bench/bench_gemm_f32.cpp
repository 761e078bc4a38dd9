// fp32 GEMM: the engine's kernels::sgemm against oneDNN's dnnl_sgemm on the same inputs.
// Names: sgemm/<engine|onednn>/<nn|nt|tn>/<M>x<N>x<K>/t<threads>; counter GFLOPS (2*M*N*K per call).
// Debian's oneDNN runs on OpenMP, so its threads are set with omp_set_num_threads, ours with
// quench::set_num_threads. QUENCH_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 compares the AVX2 paths.
#include <benchmark/benchmark.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/parallel.hpp"

extern "C" void omp_set_num_threads(int);  // libgomp, oneDNN's runtime

namespace {

struct Shape {
  int64_t M, N, K;
};
const Shape kShapes[] = {{6400, 384, 128}, {6400, 128, 128}, {6400, 512, 128},
                         {6400, 128, 512}, {128, 768, 768},  {512, 3072, 768},
                         {512, 768, 3072}, {32, 768, 768},   {8, 768, 768}};
// The weight gradients of the reference ViT's Linears at batch 128 (dW = dY^T X, K = 6400 tokens):
// timed in the tn layout only, the one training uses for them.
const Shape kWeightGradShapes[] = {{384, 128, 6400}, {128, 128, 6400}, {512, 128, 6400},
                                   {128, 512, 6400}};

std::vector<float> filled(int64_t n, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) / float(1 << 24) - 0.5f;
  }
  return v;
}

void run(benchmark::State& state, bool onednn, bool ta, bool tb, Shape s, int threads) {
  const int64_t M = s.M, N = s.N, K = s.K;
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  std::vector<float> A = filled(M * K, 1), B = filled(K * N, 2), C(static_cast<size_t>(M * N));
  quench::set_num_threads(threads);
  omp_set_num_threads(threads);
  for (auto _ : state) {
    if (onednn)
      dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.f, A.data(), lda, B.data(), ldb, 0.f,
                 C.data(), N);
    else
      quench::kernels::sgemm(ta, tb, M, N, K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), N);
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(2e-9 * double(M) * double(N) * double(K) * double(state.iterations()),
                         benchmark::Counter::kIsRate);
}

void register_case(Shape s, int layout, int threads, bool onednn) {
  const char* layouts[3] = {"nn", "nt", "tn"};
  const bool ta = layout == 2, tb = layout == 1;
  std::string name = std::string("sgemm/") + (onednn ? "onednn" : "engine") + "/" +
                     layouts[layout] + "/" + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" +
                     std::to_string(s.K) + "/t" + std::to_string(threads);
  benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
    run(st, onednn, ta, tb, s, threads);
  })->UseRealTime()->Unit(benchmark::kMicrosecond);
}

int register_all() {
  for (const Shape& s : kShapes)
    for (int layout = 0; layout < 3; ++layout)
      for (int threads : {1, 2})
        for (bool onednn : {false, true}) register_case(s, layout, threads, onednn);
  for (const Shape& s : kWeightGradShapes)
    for (int threads : {1, 2})
      for (bool onednn : {false, true}) register_case(s, 2, threads, onednn);
  return 0;
}
const int registered = register_all();

}  // namespace
