#pragma once
/// \file fastknn/backends/host_preselect.hpp
/// The CPU's pre-selection kernels: one thread per team, so each register block's scores are
/// compared with the queries' thresholds while still in registers, and a streamed search of a
/// few queries scores the database rows where they lie. Host execution spaces whose tile traits
/// ask for selection in registers use them (`host_preselect_available`, the "specialisation
/// available" pattern of kokkos-kernels); every other space runs core's team-parallel path
/// (detail::ChunkKernel::scratch_path), which these kernels must match result for result.

#include <Kokkos_Core.hpp>

#include "compress.hpp"
#include "float_dot.hpp"
#include "tile_traits.hpp"

#include <fastknn/detail/candidate_buffer.hpp>
#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/options.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace fastknn::backends
{

/// Whether ExecSpace runs the kernels below: where its traits select in registers (one thread
/// per team).
template <class ExecSpace>
inline constexpr bool host_preselect_available = TileTraits<ExecSpace>::select_in_registers;

/// K is detail::ChunkKernel: the pre-selection launch these kernels work for.
struct HostPreselect
{
  /// Streamed float pre-selection for at most NQ queries (one thread per team): each database
  /// row of the team's run is read once where it lies and scored against the queries, the dot
  /// products (or L1 sums) split into L lanes along the dimension so that they vectorise. No
  /// packed copy: with so few queries the register-blocked kernel would mostly multiply padding.
  /// Same fast score as the packed kernels up to the summation order, which the error bound
  /// does not depend on.
  template <int NQ, class K>
  KOKKOS_FUNCTION static void direct(K const &k, typename K::Member const &team)
  {
    using T = typename K::value_type;
    using P = typename K::score_policy;
    using Aux = typename K::Aux;
    using X = typename K::X;
    using XV = typename K::database_view;
    constexpr Metric M = K::metric;
    constexpr int MR = K::mr;
    constexpr int L = backends::host_vector_bytes / int(sizeof(T));
    int const seg = team.league_rank();
    int const nq = static_cast<int>(k.q_rows);
    // The queries' centred values (packed in blocks of MR) row by row, zero rows up to NQ, in
    // the scratch the packed chunk would use.
    T *qs = static_cast<T *>(team.team_scratch(1).get_shmem(k.launch * k.dp * sizeof(X)));
    for (int i = 0; i < NQ; ++i)
      for (std::size_t p = 0; p < k.dp; ++p)
        qs[std::size_t(i) * k.dp + p] =
            i < nq ? T(k.packed_q((std::size_t(i) / MR * k.dp + p) * MR + std::size_t(i) % MR))
                   : T(0);
    detail::CandidateBuffer<T> buf[NQ] = {};
    Aux qa[NQ] = {};
    for (int i = 0; i < nq; ++i)
    {
      buf[i] = k.load(std::size_t(i) * k.segments + seg);
      qa[i] = k.q_aux(k.q0 + std::size_t(i));
    }
    T const *cen = k.shift.centre.data();
    std::size_t const body = k.d_real / L * L;
    std::size_t const r0 = std::size_t(seg) * k.seg_chunks * k.launch;
    std::size_t const r1 =
        r0 + k.seg_chunks * k.launch < k.tile_rows ? r0 + k.seg_chunks * k.launch : k.tile_rows;
    for (std::size_t r = r0; r < r1; ++r)
    {
      std::size_t const row = k.x0 + r;
      T acc[NQ][L] = {};
      auto const add = [&](int l, std::size_t p, double v)
      {
        T const b = static_cast<T>(v - double(cen[p]));
        for (int i = 0; i < NQ; ++i)
        {
          T const a = qs[std::size_t(i) * k.dp + p];
          if constexpr (detail::uses_dot(M))
            acc[i][l] += a * b;
          else
            acc[i][l] += Kokkos::fabs(a - b);
        }
      };
      if constexpr (std::is_same_v<typename XV::array_layout, Kokkos::LayoutRight>)
      {
        auto const *src = &k.database(row, 0);
        for (std::size_t p = 0; p < body; p += L)
          for (int l = 0; l < L; ++l)
            add(l, p + l, double(src[p + l]));
      }
      else
        for (std::size_t p = 0; p < body; p += L)
          for (int l = 0; l < L; ++l)
            add(l, p + l, double(k.database(row, p + l)));
      for (std::size_t p = body; p < k.d_real; ++p)
        add(int(p - body), p, double(k.database(row, p)));
      Aux const xa = k.x_aux(row);
      for (int i = 0; i < nq; ++i)
      {
        T sum = 0;
        for (int l = 0; l < L; ++l)
          sum += acc[i][l];
        T const s = P::template score<M>(sum, qa[i], xa);
        if (s < buf[i].threshold && !(k.exclude_self && row == k.q0 + std::size_t(i)))
          buf[i].offer(s, static_cast<index_type>(row));
      }
    }
    for (int i = 0; i < nq; ++i)
      k.store(std::size_t(i) * k.segments + seg, buf[i]);
  }

  /// One register block row after another: each block of MR queries against NR rows is scored
  /// and compared with the MR thresholds in registers; only candidates reach memory.
  template <class K>
  KOKKOS_FUNCTION static void select_in_registers(K const &k, int bi, int seg, std::size_t chunk0,
                                                  std::size_t chunk_rows, typename K::X const *xs,
                                                  typename K::Ahead ahead)
  {
    using T = typename K::value_type;
    using P = typename K::score_policy;
    using Aux = typename K::Aux;
    using Acc = typename K::Acc;
    using ExecSpace = typename K::exec_space;
    constexpr Metric M = K::metric;
    constexpr int MR = K::mr, NR = K::nr;
    detail::CandidateBuffer<T> buf[MR] = {};
    Aux qa[MR] = {};
    std::size_t const first_row = k.x0 + chunk0;
    for (int i = 0; i < MR; ++i)
    {
      std::size_t const ql = std::size_t(bi) * MR + i;
      if (ql < k.q_rows)
      {
        buf[i] = k.load(ql * k.segments + seg);
        qa[i] = k.q_aux(k.q0 + ql);
      }
      else
      {
        buf[i] = detail::CandidateBuffer<T>{nullptr, nullptr, 0,
                                            -Kokkos::Experimental::infinity_v<T>, k.kept};
        qa[i] = Aux(0);
      }
    }
    int const panels = static_cast<int>(chunk_rows / NR);
    auto const *a = k.packed_q.data() + std::size_t(bi) * k.dp * MR;
    for (int pj = 0; pj < panels; ++pj)
    {
      if (ahead.bytes > 0)
      {
        typename K::Ahead const mine = ahead.part(std::size_t(pj), std::size_t(panels));
        backends::prefetch_row(mine.at, mine.bytes);
      }
      Acc acc[MR][NR] = {};
      P::template accumulate<M, ExecSpace, MR, NR>(a, xs + std::size_t(pj) * k.dp * NR, 0, k.dp,
                                                   acc);
      std::size_t const row0 = first_row + std::size_t(pj) * NR;
      Aux xa[NR];
      for (int j = 0; j < NR; ++j)
        xa[j] = row0 + j < k.n ? k.x_aux(row0 + j) : Aux(0);
      for (int i = 0; i < MR; ++i)
      {
        // One vector compare per 16 scores gives a bit mask of the candidates; only those are
        // visited (with large k most panels hold a few). Locals and an integer mask keep this
        // loop vectorisable (GCC 12 gives up when the test reads the buffer's member).
        static_assert(NR <= 64, "the candidate mask has 64 bits");
        T s[NR];
        T const threshold = buf[i].threshold;
        Aux const qai = qa[i];
        for (int j = 0; j < NR; ++j)
          s[j] = P::template score<M>(acc[i][j], qai, xa[j]);
        // Per-lane bits, then an OR reduction: both loops vectorise (one combined loop does not).
        using Bits = std::conditional_t<NR <= 32, std::uint32_t, std::uint64_t>;
        Bits bit[NR];
        for (int j = 0; j < NR; ++j)
          bit[j] = Bits(s[j] < threshold ? 1 : 0) << j;
        Bits lanes = 0;
        for (int j = 0; j < NR; ++j)
          lanes |= bit[j];
        std::uint64_t mask = lanes;
        if (mask == 0) // the common case for small k
          continue;
        if (row0 + NR > k.n) // padding rows past the end
          mask &= (std::uint64_t(1) << (k.n - row0)) - 1;
        std::size_t const qg = k.q0 + std::size_t(bi) * MR + i;
        if (k.exclude_self && qg >= row0 && qg < row0 + NR)
          mask &= ~(std::uint64_t(1) << (qg - row0));
        buf[i].template offer_masked<ExecSpace>(mask, s, static_cast<index_type>(row0));
      }
    }
    for (int i = 0; i < MR; ++i)
      if (std::size_t(bi) * MR + i < k.q_rows)
        k.store((std::size_t(bi) * MR + i) * k.segments + seg, buf[i]);
  }
};

} // namespace fastknn::backends
