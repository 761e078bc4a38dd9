// Instruction-set dispatch. CPU features are read once (cpuid plus the OS's XSAVE support for the
// ymm/zmm state). QUENCH_ISA=ref|avx2|avx512|avx512_vnni forces a lower path (never a higher one
// than the CPU has), so tests cover every path on one machine.
#pragma once
#include <string_view>

namespace quench::kernels {

// Ordered: each level includes the ones below it.
//   avx2        AVX2 + FMA
//   avx512      AVX-512 F, BW, VL (+ DQ)
//   avx512_vnni the above plus VNNI (vpdpbusd)
enum class Isa : int { ref = 0, avx2 = 1, avx512 = 2, avx512_vnni = 3 };
inline constexpr int kNumIsas = 4;
inline constexpr std::string_view kIsaNames[kNumIsas] = {"ref", "avx2", "avx512", "avx512_vnni"};

constexpr std::string_view isa_name(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

// The best level this CPU and OS support.
Isa cpu_isa();
// The level in use: cpu_isa(), lowered by QUENCH_ISA or set_isa(). Read once, then cached.
Isa active_isa();
// Forces a level for the rest of the process (tests use it to walk every path). A level above
// cpu_isa() is clamped to it. Returns the level now active.
Isa set_isa(Isa isa);
// Parses "ref", "avx2", "avx512", "avx512_vnni"; throws std::invalid_argument listing the names
// otherwise (kernels/ sits below engine/ and its quench::Error).
Isa parse_isa(std::string_view name);

}  // namespace quench::kernels
