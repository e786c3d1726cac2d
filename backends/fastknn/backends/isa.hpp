#pragma once
/// \file fastknn/backends/isa.hpp
/// The host instruction set the CPU kernels are compiled for, read from the compiler's target
/// macros (`-march=native` in the openmp preset; Debian's Kokkos itself is generic x86-64).
/// The register block and the vector width of the CPU kernels follow the instruction set, not
/// the execution space: AVX-512 has 32 vector registers of 64 bytes, AVX2 16 of 32 bytes, and
/// a block sized for one spills on the other (measured on an AVX2-only Zen 3 class machine:
/// the 12 x 32 AVX-512 block ran at ~23 % of the FMA peak there).

#include <Kokkos_Core.hpp>

#include <type_traits>

/// Defined where this compilation generates host code: not in the device pass of nvcc, hipcc or
/// SYCL. The host instruction set's kernels are compiled there, also in translation units that
/// nvcc compiles (a CUDA build keeps them for its OpenMP or Serial host space); a device pass
/// sees the generic code, which is all it could run.
#if !defined(__CUDA_ARCH__) && !defined(__HIP_DEVICE_COMPILE__) && !defined(__SYCL_DEVICE_ONLY__)
#define FASTKNN_HOST_PASS 1
#endif

namespace fastknn::backends
{

/// Execution spaces that run on the host CPU (OpenMP, Serial, Threads, ...): the host
/// instruction set's kernels apply to every one of them.
template <class ExecSpace>
concept host_execution_space = requires
{
  typename ExecSpace::memory_space;
}
&&std::is_same_v<typename ExecSpace::memory_space, Kokkos::HostSpace>;

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
