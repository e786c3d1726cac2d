#pragma once
// Checks of the register-block kernels shared by the test suite and the per-ISA kernel tests.

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace fastknn::test
{

/// Whether an integer register block (Kernel: a backends::Int8Dot) gives exactly the 64-bit
/// integer sums of its products, in the kernel's own storage (bytes in groups of four, or
/// 16-bit pairs), starting at group 0 and 7 and accumulating onto what acc holds.
template <int MR, int NR, class Kernel>
bool integer_block_exact(unsigned seed)
{
  using A = typename Kernel::q_type;
  using B = typename Kernel::x_type;
  constexpr int G = Kernel::group;
  std::size_t const groups = 53 * 4 / G;
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> ua(0, 255), sb(-128, 127);
  std::vector<A> a(groups * MR * G);
  std::vector<B> b(groups * NR * G);
  for (auto &v : a)
    v = A(ua(gen));
  for (auto &v : b)
    v = B(sb(gen));
  // The extremes, whose products are the largest in magnitude.
  a[0] = 255;
  b[0] = -128;
  bool ok = true;
  for (std::size_t g0 : {std::size_t(0), std::size_t(7)})
  {
    std::int32_t acc[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        acc[i][j] = i - j; // accumulates onto what is there
    Kernel::template accumulate<MR, NR>(a.data(), b.data(), g0, groups, acc);
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
      {
        long long expect = i - j;
        for (std::size_t g = g0; g < groups; ++g)
          for (int t = 0; t < G; ++t)
            expect += (long long)a[(g * MR + i) * G + t] * (long long)b[(g * NR + j) * G + t];
        ok &= acc[i][j] == expect;
      }
  }
  return ok;
}

} // namespace fastknn::test
