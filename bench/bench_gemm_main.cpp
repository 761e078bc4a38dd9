// bench_gemm's main: runs the cases as Google Benchmark's own main does, then prints one summary
// line per GEMM family, the verdict of the whole table: how many engine/oneDNN pairs ran, the
// smallest and the median speed ratio (oneDNN's time over the engine's: above 1, the engine is
// faster), and how many fall below the family's target on the active instruction set; for the
// 4-bit GEMM also its speed against our own int8 GEMM (gemm_u8s4/s4 vs s8).
//
//   build/bench/bench_gemm
//   QUENCH_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 build/bench/bench_gemm
//   QUENCH_ISA=avx_vnni ONEDNN_MAX_CPU_ISA=AVX2_VNNI build/bench/bench_gemm --benchmark_filter=u8s8
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "kernels/isa.hpp"

namespace {

// Keeps every run's time beside the console output.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> seconds;  // run name -> real time per iteration
  void ReportRuns(const std::vector<Run>& runs) override {
    // With --benchmark_repetitions the median of the repetitions (reported after them) stands.
    for (const Run& r : runs) {
      const bool single = r.run_type == Run::RT_Iteration, median = r.aggregate_name == "median";
      if (!r.error_occurred && (single || median))
        seconds[r.run_name.str()] = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

// The targets (engine / oneDNN speed): fp32 0.95 everywhere; int8 1.00 on the VNNI paths,
// 0.85 on AVX2 without VNNI (the exact int16 mix against oneDNN's saturating one). 0: none.
double target(const std::string& family) {
  using quench::kernels::Isa;
  const Isa isa = quench::kernels::active_isa();
  if (family == "sgemm") return 0.95;
  if (family == "gemm_u8s8") return isa == Isa::avx512_vnni || isa == Isa::avx_vnni ? 1.00 : 0.85;
  return 0.0;
}

// "family/variant/shape/threads..." -> {family, variant, rest}; false for other names.
bool split_name(const std::string& name, std::string& family, std::string& variant, std::string& rest) {
  const size_t a = name.find('/'), b = a == std::string::npos ? a : name.find('/', a + 1);
  if (b == std::string::npos) return false;
  family = name.substr(0, a);
  variant = name.substr(a + 1, b - a - 1);
  rest = name.substr(b + 1);
  return true;
}

// Speed of `variant` against `anchor` (anchor's time over the variant's) for every shape both ran.
using Ratios = std::map<std::string, std::vector<double>>;
void add_pairs(const std::map<std::string, double>& seconds, const std::string& anchor, Ratios& out,
               bool anchor_is_onednn) {
  for (const auto& [name, t] : seconds) {
    std::string family, variant, rest;
    if (!split_name(name, family, variant, rest) || variant == "onednn" || variant == anchor || t <= 0) continue;
    auto it = seconds.find(family + "/" + anchor + "/" + rest);
    if (it == seconds.end()) continue;
    const std::string label = anchor_is_onednn ? (variant == "engine" ? family : family + "/" + variant)
                                               : family + "/" + variant + " vs " + anchor;
    out[label].push_back(it->second / t);
  }
}

void print_summary(const std::map<std::string, double>& seconds) {
  Ratios vs_onednn, vs_s8;
  add_pairs(seconds, "onednn", vs_onednn, true);
  add_pairs(seconds, "s8", vs_s8, false);  // gemm_u8s4: the 4-bit GEMM against our int8 one
  std::printf("\nengine / oneDNN speed on %s:\n", std::string(quench::kernels::isa_name(quench::kernels::active_isa())).c_str());
  for (Ratios* table : {&vs_onednn, &vs_s8})
    for (auto& [family, r] : *table) {
      std::sort(r.begin(), r.end());
      const size_t n = r.size();
      const double median = n % 2 ? r[n / 2] : 0.5 * (r[n / 2 - 1] + r[n / 2]);
      const double want = target(family);
      std::printf("%-24s %3zu cases  min %.3fx  median %.3fx", family.c_str(), n, r.front(), median);
      if (want > 0)
        std::printf("  below %.2fx: %zu", want,
                    static_cast<size_t>(std::count_if(r.begin(), r.end(), [&](double x) { return x < want; })));
      std::printf("\n");
    }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_summary(reporter.seconds);
  benchmark::Shutdown();
  return 0;
}
