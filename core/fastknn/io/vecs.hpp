#pragma once
/// \file fastknn/io/vecs.hpp
/// The .fvecs / .ivecs / .bvecs formats of the ANN benchmarks (TEXMEX).

#include <fastknn/io/reader.hpp>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace fastknn::io
{

namespace detail
{

/// Returns the records of an .fvecs-style file (int32 d, then d elements of elem_size bytes).
template <class Out, class Convert>
Matrix<Out> read_vecs(std::string const &path, std::size_t elem_size, char const *kind,
                      Convert convert)
{
  Reader in(path);
  Matrix<Out> m;
  unsigned char dbuf[4];
  std::size_t got = in.read(dbuf, 4);
  if (got == 0)
    throw file_error(path, std::string("empty file; expected ") + kind +
                               " records (int32 dimension, then the vector)");
  if (got < 4)
    throw file_error(path, "truncated record 0: the file ends inside its dimension field");
  std::int32_t const d = std::bit_cast<std::int32_t>(load_uint<std::uint32_t>(dbuf, false));
  if (d <= 0 || d > (1 << 24))
    throw file_error(path, "record 0 declares dimension " + std::to_string(d) +
                               ", expected 1..16777216; is this really a " + kind + " file?");
  auto const dim = static_cast<std::size_t>(d);
  std::size_t const record_bytes = 4 + dim * elem_size;
  // A plain file must hold at least one whole record before the record buffer is allocated, so a
  // lying dimension in a tiny file cannot make us allocate megabytes (found by fuzz_vecs).
  if (!in.is_gzip() && in.remaining() < dim * elem_size)
    throw file_error(path, "truncated record 0: expected " + std::to_string(dim * elem_size) +
                               " data bytes, found " + std::to_string(in.remaining()));
  // Reserve only when the plain file size is a whole number of records; otherwise the loop fails.
  if (!in.is_gzip() && (in.remaining() + 4) % record_bytes == 0)
    m.data.reserve(static_cast<std::size_t>((in.remaining() + 4) / record_bytes) * dim);

  std::vector<unsigned char> buf(dim * elem_size);
  for (std::size_t row = 0;; ++row)
  {
    if (row > 0)
    {
      got = in.read(dbuf, 4);
      if (got == 0)
        break;
      if (got < 4)
        throw file_error(path, "truncated record " + std::to_string(row) +
                                   ": the file ends inside its dimension field");
      auto const dr = std::bit_cast<std::int32_t>(load_uint<std::uint32_t>(dbuf, false));
      if (dr != d)
        throw file_error(path, "inconsistent dimension: record " + std::to_string(row) +
                                   " declares " + std::to_string(dr) + " but record 0 declares " +
                                   std::to_string(d) +
                                   "; all records must have the same dimension");
    }
    got = in.read(buf.data(), buf.size());
    if (got != buf.size())
      throw file_error(path, "truncated record " + std::to_string(row) + ": expected " +
                                 std::to_string(buf.size()) + " data bytes, found " +
                                 std::to_string(got));
    for (std::size_t i = 0; i < dim; ++i)
      m.data.push_back(convert(buf.data() + i * elem_size));
    ++m.rows;
  }
  m.cols = dim;
  return m;
}

} // namespace detail

/// Returns the records of an .fvecs file (int32 d, then d float32 per record) as a float matrix.
inline Matrix<float> read_fvecs(std::string const &path)
{
  return detail::read_vecs<float>(
      path, 4, ".fvecs",
      [](unsigned char const *p)
      { return std::bit_cast<float>(detail::load_uint<std::uint32_t>(p, false)); });
}

/// Returns the records of an .ivecs file (int32 d, then d int32 per record) as an int32 matrix.
inline Matrix<std::int32_t> read_ivecs(std::string const &path)
{
  return detail::read_vecs<std::int32_t>(
      path, 4, ".ivecs",
      [](unsigned char const *p)
      { return std::bit_cast<std::int32_t>(detail::load_uint<std::uint32_t>(p, false)); });
}

/// Returns the records of a .bvecs file (int32 d, then d uint8 per record) as a float matrix.
inline Matrix<float> read_bvecs(std::string const &path)
{
  return detail::read_vecs<float>(path, 1, ".bvecs",
                                  [](unsigned char const *p) { return static_cast<float>(p[0]); });
}

} // namespace fastknn::io
