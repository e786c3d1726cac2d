#pragma once
/// \file fastknn/detail/mpi_collective.hpp
/// What fastknn::mpi's collective calls share: datatypes, size exchanges, the merge order, and
/// errors raised on every rank at once (mpi::detail::collectively).

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include <fastknn/error.hpp>
#include <fastknn/options.hpp>

namespace fastknn::mpi
{

namespace detail
{

template <class T>
MPI_Datatype datatype()
{
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else
  {
    static_assert(std::is_same_v<T, std::int32_t>);
    return MPI_INT32_T;
  }
}

struct Comm
{
  MPI_Comm comm;
  int rank = 0, size = 1;
  explicit Comm(MPI_Comm c) : comm(c)
  {
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
  }
};

/// Raises on every rank the error of the lowest rank that had one (code 0: none; 1: Cancelled;
/// 2: any other error). Collective.
inline void raise_first_error(Comm const &c, int code, std::string message)
{
  int first = code != 0 ? c.rank : c.size;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, c.comm);
  if (first == c.size)
    return;
  int header[2] = {code, int(std::min<std::size_t>(message.size(), 4096))};
  MPI_Bcast(header, 2, MPI_INT, first, c.comm);
  message.resize(std::size_t(header[1]));
  MPI_Bcast(message.data(), header[1], MPI_CHAR, first, c.comm);
  if (message.rfind("fastknn: ", 0) == 0)
    message.erase(0, 9);
  if (c.size > 1)
    message = "rank " + std::to_string(first) + " of " + std::to_string(c.size) + ": " + message;
  if (header[0] == 1)
    throw Cancelled(message);
  throw Error(message);
}

/// Runs f (which must make no MPI call) on every rank, then raises any rank's exception on all
/// of them: no rank is left waiting in a later collective call. `where` prefixes messages.
template <class F>
void collectively(Comm const &c, std::string const &where, F &&f)
{
  int code = 0;
  std::string message;
  try
  {
    f();
  }
  catch (Cancelled const &e)
  {
    code = 1;
    message = e.what();
  }
  catch (std::bad_alloc const &)
  {
    code = 2;
    message = "out of memory; lower SearchOptions::workspace_bytes or use more ranks";
  }
  catch (std::exception const &e)
  {
    code = 2;
    message = e.what();
  }
  if (code != 0 && message.rfind("fastknn: ", 0) == 0)
    message.erase(0, 9);
  if (code != 0 && !where.empty())
    message = where + message;
  raise_first_error(c, code, message);
}

inline std::vector<std::size_t> all_sizes(Comm const &c, std::size_t mine)
{
  std::vector<unsigned long long> v(std::size_t(c.size));
  unsigned long long m = mine;
  MPI_Allgather(&m, 1, MPI_UNSIGNED_LONG_LONG, v.data(), 1, MPI_UNSIGNED_LONG_LONG, c.comm);
  return {v.begin(), v.end()};
}

inline std::vector<std::size_t> offsets_of(std::vector<std::size_t> const &sizes)
{
  std::vector<std::size_t> off(sizes.size() + 1, 0);
  for (std::size_t i = 0; i < sizes.size(); ++i)
    off[i + 1] = off[i] + sizes[i];
  return off;
}

/// Whether (va, ia) ranks before (vb, ib): best value first, ties to the smaller index. The
/// order of fastknn::search (its ascending keys are distances, or similarities negated).
template <class T>
bool ranks_before(bool similarity, T va, index_type ia, T vb, index_type ib)
{
  if (va != vb)
    return similarity ? va > vb : va < vb;
  return ia < ib;
}

inline std::vector<int> to_int_counts(std::vector<std::size_t> const &v)
{
  std::vector<int> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out[i] = int(v[i]); // sizes are capped below INT_MAX by the batch size
  return out;
}

} // namespace detail

} // namespace fastknn::mpi
