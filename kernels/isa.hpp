// Instruction-set dispatch. CPU features are read once (cpuid plus the OS's XSAVE support for the
// ymm/zmm state). QUENCH_ISA=ref|avx2|avx_vnni|avx512|avx512_vnni forces a lower path (never one the
// CPU lacks), so tests cover every path on one machine.
#pragma once
#include <string_view>

namespace quench::kernels {

// Ordered by what the kernels may use; each level includes the vector width of the ones below it:
//   avx2        AVX2 + FMA
//   avx_vnni    AVX2 + AVX-VNNI (VEX-encoded 256-bit vpdpbusd: Alder Lake and later, Zen 5)
//   avx512      AVX-512 F, BW, VL (+ DQ)
//   avx512_vnni the above plus AVX-512 VNNI (512-bit vpdpbusd)
// AVX-VNNI is a feature of its own: a CPU at avx512 or avx512_vnni need not have it (Skylake-X,
// Ice Lake, Zen 4 do not), so only the int8 GEMM's table runs its avx_vnni kernel, and at exactly
// that level; every other kernel treats avx_vnni as avx2. Forcing avx_vnni on a CPU without the
// feature gives avx2.
enum class Isa : int { ref = 0, avx2 = 1, avx_vnni = 2, avx512 = 3, avx512_vnni = 4 };
inline constexpr int kNumIsas = 5;
inline constexpr std::string_view kIsaNames[kNumIsas] = {"ref", "avx2", "avx_vnni", "avx512", "avx512_vnni"};

constexpr std::string_view isa_name(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

// The best level this CPU and OS support.
Isa cpu_isa();
// Whether the CPU and OS support AVX-VNNI (cpuid leaf 7 subleaf 1, EAX bit 4, with the ymm state).
bool cpu_has_avx_vnni();
// The level in use: cpu_isa(), lowered by QUENCH_ISA or set_isa(). Read once, then cached.
Isa active_isa();
// Forces a level for the rest of the process (tests use it to walk every path). A level above
// cpu_isa() is clamped to it, avx_vnni without the feature to avx2. Returns the level now active.
Isa set_isa(Isa isa);
// Parses "ref", "avx2", "avx_vnni", "avx512", "avx512_vnni"; throws std::invalid_argument listing the names
// otherwise (kernels/ sits below engine/ and its quench::Error).
Isa parse_isa(std::string_view name);

}  // namespace quench::kernels
