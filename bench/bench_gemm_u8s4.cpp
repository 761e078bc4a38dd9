// u8 x s4 GEMM against our u8 x s8 GEMM and oneDNN's dnnl_gemm_u8s8s32, same process, same inputs,
// on bench_gemm's shapes (bench/bench_gemm_u8s8.cpp), 1 and 2 threads. Names:
//   gemm_u8s4/<case>/<M>x<N>x<K>/t<threads>, case one of
//     s4       packed s4 weights per channel, s32 output (the u8s8 GEMM's operation, half the bytes)
//     s8       our u8s8 GEMM, s32 output
//     onednn   dnnl_gemm_u8s8s32 (int8 weights; oneDNN has no s4 GEMM)
//     s4_g64   s4 weights with a scale per group of 64 k, f32 output (the per-group epilogue)
//     s8_f32   our u8s8 GEMM with its f32 epilogue (per-channel scales), the per-group case's anchor
// GOPS at t1 is per CPU second of the calling thread, at t2 per wall second. At exit a summary
// prints the speed ratios per shape and thread count (medians over the timed runs of each case;
// add repetitions and interleaving for more), e.g.
//   flock /tmp/quench-bench.lock build/bench/bench_gemm --benchmark_filter='gemm_u8s4/' \
//       --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true
#include <benchmark/benchmark.h>
#include <oneapi/dnnl/dnnl.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <dlfcn.h>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/gemm_u8s4.hpp"
#include "kernels/gemm_u8s8.hpp"
#include "kernels/parallel.hpp"

namespace {

using namespace quench::kernels;

void onednn_set_threads(int n) {
  using Fn = void (*)(int);
  static Fn fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (fn) fn(n);
}

template <class T>
struct AlignedVec {
  std::unique_ptr<T[], AlignedFree> p;
  explicit AlignedVec(int64_t n) : p(static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64))) {}
  T* data() { return p.get(); }
};

struct Inputs {
  int64_t M, N, K;
  AlignedVec<uint8_t> A;
  AlignedVec<int8_t> W8, W4;  // [N,K]: full-range s8, and s4 values
  AlignedVec<int32_t> C;      // int32 or float
  std::vector<float> ws8, ws4g;
  Inputs(int64_t m, int64_t n, int64_t k) : M(m), N(n), K(k), A(m * k), W8(n * k), W4(n * k), C(m * n) {
    std::mt19937 g(42);
    std::uniform_int_distribution<int> du(0, 255), ds(-128, 127), d4(-8, 7);
    std::uniform_real_distribution<float> dsc(0.001f, 0.02f);
    for (int64_t i = 0; i < M * K; ++i) A.data()[i] = static_cast<uint8_t>(du(g));
    for (int64_t i = 0; i < N * K; ++i) {
      W8.data()[i] = static_cast<int8_t>(ds(g));
      W4.data()[i] = static_cast<int8_t>(d4(g));
    }
    for (int64_t i = 0; i < N; ++i) ws8.push_back(dsc(g));
    for (int64_t i = 0; i < N * ((K + 63) / 64); ++i) ws4g.push_back(dsc(g));
  }
};

// Seconds per iteration of every run of each case (t1: CPU time of the calling thread, t2: wall).
std::map<std::string, std::vector<double>>& samples() {
  static std::map<std::string, std::vector<double>> s;
  return s;
}

double now(int threads) {
  timespec ts;
  clock_gettime(threads > 1 ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

template <class F>
void timed(benchmark::State& st, const std::string& key, const Inputs& in, int threads, F&& f) {
  const double t0 = now(threads);
  for (auto _ : st) {
    f();
    benchmark::ClobberMemory();
  }
  const double total = now(threads) - t0;
  // Google Benchmark calls the function with growing iteration counts until a call lasts its minimum
  // time; calls of at least 50 ms (the measured ones and the last probes) are the summary's samples.
  if (total >= 0.05) samples()[key].push_back(total / static_cast<double>(st.iterations()));
  st.counters["GOPS"] = benchmark::Counter(2.0 * in.M * in.N * in.K * static_cast<double>(st.iterations()) * 1e-9,
                                           benchmark::Counter::kIsRate);
}

void bm_s4(benchmark::State& st, std::string key, int64_t M, int64_t N, int64_t K, int threads, int64_t G) {
  Inputs in(M, N, K);
  quench::set_num_threads(threads);
  PackedWeightsU8S4 pw = pack_weights_u8s4(in.W4.data(), N, K, K, G);
  GemmU8S4Args a;
  a.M = M;
  a.A = in.A.data();
  a.lda = K;
  a.W = &pw;
  a.C = in.C.data();
  a.ldc = N;
  if (G) {
    a.out = U8S4Output::f32;
    a.a_scale = 0.02f;
    a.w_scale = in.ws4g.data();
  }
  timed(st, key, in, threads, [&] { gemm_u8s4(a); });
  st.SetLabel(std::string(isa_name(pw.isa)));
}

void bm_s8(benchmark::State& st, std::string key, int64_t M, int64_t N, int64_t K, int threads, bool f32) {
  Inputs in(M, N, K);
  quench::set_num_threads(threads);
  PackedWeightsU8S8 pw = pack_weights_u8s8(in.W8.data(), N, K, K);
  GemmU8S8Args a;
  a.M = M;
  a.A = in.A.data();
  a.lda = K;
  a.W = &pw;
  a.C = in.C.data();
  a.ldc = N;
  if (f32) {
    a.out = U8S8Output::f32;
    a.a_scale = 0.02f;
    a.w_scale = in.ws8.data();
  }
  timed(st, key, in, threads, [&] { gemm_u8s8(a); });
  st.SetLabel(std::string(isa_name(pw.isa)));
}

void bm_onednn(benchmark::State& st, std::string key, int64_t M, int64_t N, int64_t K, int threads) {
  Inputs in(M, N, K);
  onednn_set_threads(threads);
  const int32_t co = 0;
  timed(st, key, in, threads, [&] {
    dnnl_gemm_u8s8s32('N', 'T', 'F', M, N, K, 1.f, in.A.data(), K, 0, in.W8.data(), K, 0, 0.f, in.C.data(), N, &co);
  });
}

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// At exit: the speed ratios (time of the anchor / time of s4) per shape, for the cases that ran.
struct Summary {
  std::vector<std::string> tails;
  ~Summary() {
    auto ratio = [](const std::string& num, const std::string& den) {
      auto& s = samples();
      if (!s.count(num) || !s.count(den)) return -1.0;
      return median(s.at(den)) / median(s.at(num));
    };
    std::string lines;
    for (const auto& [what, num, den] : {std::tuple<const char*, const char*, const char*>{"s4/s8", "s4", "s8"},
                                         {"s4/onednn", "s4", "onednn"}, {"s4_g64/s8_f32", "s4_g64", "s8_f32"}}) {
      std::string line;
      for (const std::string& t : tails) {
        const double r = ratio(std::string("gemm_u8s4/") + num + t, std::string("gemm_u8s4/") + den + t);
        if (r < 0) continue;
        char buf[96];
        std::snprintf(buf, sizeof buf, " %s %.2f", t.substr(1).c_str(), r);
        line += buf;
      }
      if (!line.empty()) lines += std::string("gemm_u8s4 summary, speed ") + what + " (median):" + line + "\n";
    }
    if (!lines.empty()) std::fputs(lines.c_str(), stdout);
  }
};
Summary summary;

const int registered = [] {
  const int64_t shapes[][3] = {{6400, 384, 128}, {6400, 128, 128}, {6400, 512, 128}, {6400, 128, 512},
                               {128, 768, 768},  {512, 3072, 768}, {512, 768, 3072}, {32, 768, 768},
                               {8, 768, 768},    {1, 768, 768}};
  for (auto& s : shapes)
    for (int t : {1, 2}) {
      const std::string tail = "/" + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]) +
                               "/t" + std::to_string(t);
      summary.tails.push_back(tail);
      std::vector<benchmark::internal::Benchmark*> b;
      auto name = [&](const char* c) { return std::string("gemm_u8s4/") + c + tail; };
      b.push_back(benchmark::RegisterBenchmark(name("s4").c_str(), bm_s4, name("s4"), s[0], s[1], s[2], t, 0));
      b.push_back(benchmark::RegisterBenchmark(name("s8").c_str(), bm_s8, name("s8"), s[0], s[1], s[2], t, false));
      b.push_back(benchmark::RegisterBenchmark(name("onednn").c_str(), bm_onednn, name("onednn"), s[0], s[1], s[2], t));
      b.push_back(
          benchmark::RegisterBenchmark(name("s4_g64").c_str(), bm_s4, name("s4_g64"), s[0], s[1], s[2], t, 64));
      b.push_back(
          benchmark::RegisterBenchmark(name("s8_f32").c_str(), bm_s8, name("s8_f32"), s[0], s[1], s[2], t, true));
      if (t > 1)
        for (auto* x : b) x->UseRealTime();
    }
  return 0;
}();

}  // namespace
