#pragma once
/// \file fastknn/backends/device_memory.hpp
/// How much memory a device space has free (what differs per backend): the planner lets a
/// search on a GPU use part of it instead of the host default, so that large k or many queries
/// fill the device rather than running in many small tiles.

#include <Kokkos_Core.hpp>

#include <cstddef>

namespace fastknn::backends
{

/// Free bytes of the space's memory where the backend can say, 0 where it cannot or where the
/// memory is the host's (the host default budget applies there).
template <class ExecSpace>
std::size_t free_device_bytes(ExecSpace const &)
{
  return 0;
}

#ifdef KOKKOS_ENABLE_CUDA
inline std::size_t free_device_bytes(Kokkos::Cuda const &space)
{
  std::size_t free = 0, total = 0;
  // The space's device (an instance may live on another GPU than the current one).
  int current = 0;
  if (cudaGetDevice(&current) != cudaSuccess)
    return 0;
  int const device = space.cuda_device();
  if (device != current && cudaSetDevice(device) != cudaSuccess)
    return 0;
  bool const ok = cudaMemGetInfo(&free, &total) == cudaSuccess;
  if (device != current)
    (void)cudaSetDevice(current);
  return ok ? free : 0;
}
#endif

} // namespace fastknn::backends
