#pragma once
/// \file tools/backend.hpp
/// fastknn::DefaultBackend: the execution space the command-line tool and the benchmarks run on,
/// chosen with FASTKNN_BACKEND at configure time (a setting of these programs, not of the
/// installed library: a library user passes the execution space it wants). CMake defines
/// FASTKNN_BACKEND_<NAME> for the targets that link fastknn_tool_backend.

#include <Kokkos_Core.hpp>

namespace fastknn
{
#if defined(FASTKNN_BACKEND_CUDA) && defined(KOKKOS_ENABLE_CUDA)
using DefaultBackend = Kokkos::Cuda;
#elif defined(FASTKNN_BACKEND_HIP) && defined(KOKKOS_ENABLE_HIP)
using DefaultBackend = Kokkos::HIP;
#elif defined(FASTKNN_BACKEND_SYCL) && defined(KOKKOS_ENABLE_SYCL)
using DefaultBackend = Kokkos::SYCL;
#elif defined(FASTKNN_BACKEND_OPENMP) && defined(KOKKOS_ENABLE_OPENMP)
using DefaultBackend = Kokkos::OpenMP;
#elif defined(FASTKNN_BACKEND_THREADS) && defined(KOKKOS_ENABLE_THREADS)
using DefaultBackend = Kokkos::Threads;
#elif defined(FASTKNN_BACKEND_SERIAL) && defined(KOKKOS_ENABLE_SERIAL)
using DefaultBackend = Kokkos::Serial;
#else
/// The configured backend is not enabled in this Kokkos: fall back to Kokkos' default.
using DefaultBackend = Kokkos::DefaultExecutionSpace;
#endif

/// The backend's name as Kokkos spells it, for reports.
inline char const *backend_name()
{
  return DefaultBackend::name();
}
} // namespace fastknn
