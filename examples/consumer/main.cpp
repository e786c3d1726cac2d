// Minimal fastknn user: 3 nearest neighbours of two queries among eight 2-D points.
#include <fastknn/fastknn.hpp>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char *argv[])
{
  // Kokkos' OpenMP backend prints advice about OMP_PROC_BIND when it is unset. Choosing a value
  // before Kokkos starts silences it; the last argument 0 keeps a value the user set.
  setenv("OMP_PROC_BIND", "false", 0);
  Kokkos::ScopeGuard guard(argc, argv);
  std::vector<float> const points{0, 0, 1, 0, 0, 1, 1, 1, 2, 2, 3, 3, 5, 5, 8, 8};
  std::vector<float> const queries{0.9f, 0.8f, 6, 6};
  auto const found =
      fastknn::search(std::span<float const>(points), std::span<float const>(queries), 2, 3);
  for (std::size_t q = 0; q < found.queries; ++q)
  {
    std::printf("query %zu:", q);
    for (int j = 0; j < found.k; ++j)
      std::printf(" %d (%.2f)", found.indices[q * found.k + j], found.distances[q * found.k + j]);
    std::printf("\n");
  }
  // Query 0 is nearest to point 3 (1,1), query 1 to point 6 (5,5).
  return found.indices[0] == 3 && found.indices[3] == 6 ? 0 : 1;
}
