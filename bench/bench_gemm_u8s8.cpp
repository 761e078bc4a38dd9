// u8 x s8 -> s32 GEMM: the engine (prepacked weights, active ISA) against oneDNN's
// dnnl_gemm_u8s8s32 on the same inputs, at 1 and 2 threads. Names:
// gemm_u8s8/<engine|onednn>/<M>x<N>x<K>/t<threads>. QUENCH_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2
// compares the two AVX2 paths. GOPS at t1 is per CPU second of the calling thread, at t2 per wall
// second.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>

#include <memory>
#include <random>
#include <string>

#include "kernels/gemm_u8s8.hpp"
#include "kernels/parallel.hpp"

namespace {

using namespace quench::kernels;

// oneDNN (Debian) threads with libgomp; reach its omp_set_num_threads without linking an OpenMP
// runtime ourselves (clang's -fopenmp would bring libomp, a different runtime).
void onednn_set_threads(int n) {
  using Fn = void (*)(int);
  static Fn fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (fn) fn(n);
}

// 64-byte aligned, as the engine's tensor storage is (an unaligned C splits every zmm store).
template <class T>
struct AlignedVec {
  std::unique_ptr<T[], AlignedFree> p;
  explicit AlignedVec(int64_t n)
      : p(static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64))) {}
  T* data() { return p.get(); }
};

struct Inputs {
  int64_t M, N, K;
  AlignedVec<uint8_t> A;
  AlignedVec<int8_t> W;  // [N,K], a Linear's weight
  AlignedVec<int32_t> C;
  Inputs(int64_t m, int64_t n, int64_t k) : M(m), N(n), K(k), A(m * k), W(n * k), C(m * n) {
    std::mt19937 g(42);
    std::uniform_int_distribution<int> du(0, 255), ds(-128, 127);
    for (int64_t i = 0; i < M * K; ++i) A.data()[i] = static_cast<uint8_t>(du(g));
    for (int64_t i = 0; i < N * K; ++i) W.data()[i] = static_cast<int8_t>(ds(g));
  }
};

void set_rate(benchmark::State& st, const Inputs& in) {
  st.counters["GOPS"] =
      benchmark::Counter(2.0 * in.M * in.N * in.K * static_cast<double>(st.iterations()) * 1e-9,
                         benchmark::Counter::kIsRate);
}

void bm_engine(benchmark::State& st, int64_t M, int64_t N, int64_t K, int threads) {
  Inputs in(M, N, K);
  quench::set_num_threads(threads);
  PackedWeightsU8S8 pw = pack_weights_u8s8(in.W.data(), N, K, K);
  GemmU8S8Args a;
  a.M = M;
  a.A = in.A.data();
  a.lda = K;
  a.W = &pw;
  a.C = in.C.data();
  a.ldc = N;
  for (auto _ : st) {
    gemm_u8s8(a);
    benchmark::DoNotOptimize(in.C.data());
  }
  st.SetLabel(std::string(isa_name(pw.isa)));
  set_rate(st, in);
}

void bm_onednn(benchmark::State& st, int64_t M, int64_t N, int64_t K, int threads) {
  Inputs in(M, N, K);
  onednn_set_threads(threads);
  const int32_t co = 0;
  for (auto _ : st) {
    dnnl_gemm_u8s8s32('N', 'T', 'F', M, N, K, 1.f, in.A.data(), K, 0, in.W.data(), K, 0, 0.f,
                      in.C.data(), N, &co);
    benchmark::DoNotOptimize(in.C.data());
  }
  set_rate(st, in);
}

const int registered = [] {
  const int64_t shapes[][3] = {
      {6400, 384, 128}, {6400, 128, 128}, {6400, 512, 128}, {6400, 128, 512}, {128, 768, 768},
      {512, 3072, 768}, {512, 768, 3072}, {32, 768, 768},   {8, 768, 768},    {1, 768, 768}};
  for (auto& s : shapes)
    for (int t : {1, 2}) {
      std::string tail = "/" + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" +
                         std::to_string(s[2]) + "/t" + std::to_string(t);
      auto* e = benchmark::RegisterBenchmark(("gemm_u8s8/engine" + tail).c_str(), bm_engine, s[0],
                                             s[1], s[2], t);
      auto* o = benchmark::RegisterBenchmark(("gemm_u8s8/onednn" + tail).c_str(), bm_onednn, s[0],
                                             s[1], s[2], t);
      // On this shared machine a single thread's CPU time ignores the time it was descheduled;
      // two threads need wall time (CPU time would count only the calling thread).
      if (t > 1) {
        e->UseRealTime();
        o->UseRealTime();
      }
    }
  return 0;
}();

}  // namespace
