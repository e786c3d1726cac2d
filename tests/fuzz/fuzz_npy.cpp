/// \file tests/fuzz/fuzz_npy.cpp
/// libFuzzer target for the .npy loader of fastknn/io.hpp (header dict parser, dtype conversion).
///
/// Input: mode byte, then the file contents (see fuzz_common.hpp; bit 0 gzip-compresses them).
/// Loaders (mode >> 1, modulo 5): 0 read_npy<float>, 1 read_npy<std::int64_t>, 2 read_npy<double>,
/// 3 read_npy<std::int32_t>, 4 read_matrix (".npy" extension).

#include "fuzz_common.hpp"

#include <fastknn/io.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace
{

namespace io = fastknn::io;

template <class T>
bool same_matrix(io::Matrix<T> const &a, io::Matrix<T> const &b)
{
  return a.rows == b.rows && a.cols == b.cols && fuzz::same_bits(a.data, b.data);
}

/// Returns the number of bytes before the data of a .npy file that was accepted (magic, version,
/// header length field, header), read back from the contents.
std::size_t npy_prefix(std::uint8_t const *c)
{
  if (c[6] == 1)
    return 10 + (std::size_t{c[8]} | std::size_t{c[9]} << 8);
  return 12 + (std::size_t{c[8]} | std::size_t{c[9]} << 8 | std::size_t{c[10]} << 16 |
               std::size_t{c[11]} << 24);
}

template <class T>
void fuzz_one(std::uint8_t const *data, std::size_t size, std::string const &path,
              std::string const &gz_path, fuzz::Input const &in)
{
  bool const size_known = !fuzz::starts_like_gzip(data + 1, size - 1);
  fuzz::run(
      data, size, path, gz_path, in,
      [](std::string const &p)
      {
        if constexpr (std::is_void_v<T>)
          return io::read_matrix(p);
        else
          return io::read_npy<T>(p);
      },
      [&](auto const &m, fuzz::Input const &)
      {
        fuzz::check(m.cols >= 1 || m.rows == 0, "read_npy returned 0 columns for a 1-D array");
        fuzz::check(m.rows * m.cols == m.data.size(), "read_npy: rows*cols != data size");
        if (size_known)
        {
          std::size_t const prefix = npy_prefix(data + 1);
          fuzz::check(in.raw_size >= prefix, "read_npy accepted a file shorter than its header");
          std::size_t const payload = in.raw_size - prefix;
          std::size_t const count = m.data.size();
          fuzz::check(payload == count || payload == 4 * count || payload == 8 * count,
                      "read_npy accepted a file whose data size does not match its shape");
        }
        using V = typename std::decay_t<decltype(m.data)>::value_type;
        if constexpr (std::is_same_v<V, float>)
          for (float v : m.data)
            fuzz::check(!std::isfinite(v) || std::fabs(v) <= 3.4028235e38f, "bad float");
      },
      [](auto const &a, auto const &b) { return same_matrix(a, b); });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const *data, std::size_t size)
{
  std::string const &path = fuzz::temp_path("npy", ".npy");
  std::string const &gz_path = fuzz::temp_path("npy", ".z.npy");
  fuzz::Input in;
  if (!fuzz::prepare(data, size, path, 5, in))
    return 0;
  switch (in.selector)
  {
  case 0:
    fuzz_one<float>(data, size, path, gz_path, in);
    break;
  case 1:
    fuzz_one<std::int64_t>(data, size, path, gz_path, in);
    break;
  case 2:
    fuzz_one<double>(data, size, path, gz_path, in);
    break;
  case 3:
    fuzz_one<std::int32_t>(data, size, path, gz_path, in);
    break;
  default:
    fuzz_one<void>(data, size, path, gz_path, in); // read_matrix dispatches on ".npy"
    break;
  }
  return 0;
}
