#pragma once
/// \file fastknn/backends/isa.hpp
/// The host instruction set the CPU kernels are compiled for, read from the compiler's target
/// macros (`-march=native` in the openmp preset; Debian's Kokkos itself is generic x86-64).
/// The register block and the vector width of the CPU kernels follow the instruction set, not
/// the execution space: AVX-512 has 32 vector registers of 64 bytes, AVX2 16 of 32 bytes, and
/// a block sized for one spills on the other (measured on an AVX2-only Zen 3 class machine:
/// the 12 x 32 AVX-512 block ran at ~23 % of the FMA peak there).

namespace fastknn::backends
{

/// The vector instruction sets the CPU kernels have shapes for.
enum class HostIsa
{
  generic, ///< no assumption beyond the compiler's auto-vectorisation (SSE2 on x86-64)
  avx2,    ///< AVX2 + FMA: 16 registers of 8 floats
  avx512   ///< AVX-512 F/BW: 32 registers of 16 floats
};

#if defined(__AVX512F__) && defined(__AVX512BW__)
inline constexpr HostIsa host_isa = HostIsa::avx512;
#elif defined(__AVX2__) && defined(__FMA__)
inline constexpr HostIsa host_isa = HostIsa::avx2;
#else
inline constexpr HostIsa host_isa = HostIsa::generic;
#endif

/// Bytes of one vector register of the host instruction set.
inline constexpr int host_vector_bytes = host_isa == HostIsa::avx512 ? 64
                                         : host_isa == HostIsa::avx2 ? 32
                                                                     : 16;

/// The instruction set's name, for reports (`fastknn --version`, SearchStats, benchmarks).
constexpr char const *isa_name(HostIsa isa)
{
  return isa == HostIsa::avx512 ? "avx512" : isa == HostIsa::avx2 ? "avx2" : "generic";
}

} // namespace fastknn::backends
