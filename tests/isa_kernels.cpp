// The CPU kernels of one instruction set (this file is compiled once per variant: generic
// x86-64, AVX2 + FMA, AVX-512 with VNNI), each against an independent reference: the float
// and double register blocks against sums in long double with the rounding bound of their
// depth, the integer blocks against 64-bit integer sums (exactly), and the masked appends
// against a plain loop (identical lists). Built for every variant the compiler can target, so
// code for an instruction set the machine lacks still compiles; run only where the CPU has it
// (CTest lists the others as not run, "Disabled", by name). Started on a CPU that lacks the
// instruction set anyway (configured on another machine), it fails: nothing was checked.

#include <fastknn/backends/compress.hpp>
#include <fastknn/backends/float_dot.hpp>
#include <fastknn/backends/int8_dot.hpp>
#include <fastknn/backends/isa.hpp>

#include "kernel_checks.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

namespace
{
using Cpu = Kokkos::OpenMP;
int passed = 0, failed = 0;

void check(bool ok, char const *what, int mr, int nr)
{
  ++(ok ? passed : failed);
  if (!ok)
    std::printf("FAILED: %s (block %d x %d)\n", what, mr, nr);
}

template <class T, bool Dot, int MR, int NR>
void float_block(unsigned seed)
{
  std::size_t const depth = 301;
  std::mt19937 gen(seed);
  std::uniform_real_distribution<T> u(T(-2), T(2));
  std::vector<T> a(depth * MR), b(depth * NR);
  for (auto &v : a)
    v = u(gen);
  for (auto &v : b)
    v = u(gen);
  for (std::size_t k0 : {std::size_t(0), std::size_t(5)})
  {
    T acc[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        acc[i][j] = T(i - j); // accumulates onto what is there
    fastknn::backends::FloatDot<Cpu>::accumulate<Dot, MR, NR>(a.data(), b.data(), k0, depth, acc);
    bool ok = true;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
      {
        long double exact = i - j, magnitude = std::fabs(double(i - j));
        for (std::size_t p = k0; p < depth; ++p)
        {
          long double const x = a[p * MR + i], y = b[p * NR + j];
          long double const term = Dot ? x * y : std::fabs(x - y);
          exact += term;
          magnitude += std::fabs(term);
        }
        // gamma_{depth + 2} of the magnitudes: any order of the additions, FMA or not.
        long double const eps = std::numeric_limits<T>::epsilon() / 2;
        long double const n = depth + 2;
        ok &= std::fabs(acc[i][j] - exact) <= n * eps / (1 - n * eps) * magnitude;
      }
    check(ok,
          Dot ? "float block: dot products within the rounding bound"
              : "float block: L1 sums within the rounding bound",
          MR, NR);
  }
}

template <int MR, int NR>
void integer_block(unsigned seed)
{
  check(fastknn::test::integer_block_exact<MR, NR, fastknn::backends::Int8Dot<Cpu>>(seed),
        "integer block: exact sums", MR, NR);
}

template <int NR>
void masked_append(unsigned seed)
{
  std::mt19937_64 gen(seed);
  float s[NR];
  for (int j = 0; j < NR; ++j)
    s[j] = float(j) * 0.5f - 3.0f;
  bool ok = true;
  for (int rep = 0; rep < 200; ++rep)
  {
    std::uint64_t mask = gen();
    if (NR < 64)
      mask &= (std::uint64_t(1) << NR) - 1;
    float val[NR], want_val[NR];
    std::int32_t idx[NR], want_idx[NR];
    int const c = fastknn::backends::MaskedAppend<Cpu>::append<NR>(mask, s, 40, val, idx);
    int w = 0;
    for (int j = 0; j < NR; ++j)
      if (mask >> j & 1)
      {
        want_val[w] = s[j];
        want_idx[w++] = 40 + j;
      }
    ok &= c == w;
    for (int j = 0; j < w && j < c; ++j)
      ok &= val[j] == want_val[j] && idx[j] == want_idx[j];
  }
  check(ok, "masked append: the selected pairs in order", 1, NR);
}

bool cpu_has(fastknn::backends::HostIsa isa)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (isa == fastknn::backends::HostIsa::avx512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
  if (isa == fastknn::backends::HostIsa::avx2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  (void)isa;
  return true;
}
} // namespace

int main()
{
  auto const isa = fastknn::backends::host_isa;
  if (!cpu_has(isa))
  {
    std::printf("FAIL: this CPU cannot run the %s kernels, so nothing was checked (the build "
                "was configured on a CPU that can: reconfigure here to list it as not run)\n",
                fastknn::backends::isa_name(isa));
    return 1;
  }
  float_block<float, true, 6, 16>(1);
  float_block<float, false, 6, 16>(2);
  float_block<float, true, 12, 32>(3);
  float_block<float, true, 4, 8>(4);
  float_block<float, true, 3, 4>(5); // NR not a multiple of any vector: generic code
  float_block<double, true, 6, 16>(6);
  float_block<double, false, 6, 16>(7);
  float_block<double, true, 5, 12>(8);
  integer_block<6, 16>(9);
  integer_block<12, 32>(10);
  integer_block<4, 8>(11);
  integer_block<3, 4>(12);
  masked_append<16>(13);
  masked_append<32>(14);
  masked_append<8>(15);
  std::printf("%s kernels: %d passed, %d failed\n", fastknn::backends::isa_name(isa), passed,
              failed);
  return failed == 0 ? 0 : 1;
}
