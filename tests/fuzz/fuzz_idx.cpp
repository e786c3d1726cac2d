/// \file tests/fuzz/fuzz_idx.cpp
/// libFuzzer target for the IDX (MNIST-format) loaders of fastknn/io.hpp, plain and gzip.
///
/// Input: mode byte, then the file contents (see fuzz_common.hpp). Bit 0 of the mode byte
/// gzip-compresses the contents before they are written, so the fuzzer reaches the gzip path with
/// well-formed streams; raw contents that start with 1f 8b exercise corrupt gzip streams.
/// Loaders (mode >> 1, modulo 4): 0 read_idx, 1 read_idx_images, 2 read_idx_labels,
/// 3 read_matrix (on a path without a known extension, so it sniffs the IDX magic).

#include "fuzz_common.hpp"

#include <fastknn/io.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace
{

namespace io = fastknn::io;

/// True when every value is an integer in [lo, hi] (what byte/int16 IDX elements convert to).
bool all_integral_in(std::vector<float> const &v, float lo, float hi)
{
  for (float x : v)
    if (!(x >= lo && x <= hi) || std::trunc(x) != x)
      return false;
  return true;
}

bool same_matrix(io::Matrix<float> const &a, io::Matrix<float> const &b)
{
  return a.rows == b.rows && a.cols == b.cols && fuzz::same_bits(a.data, b.data);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const *data, std::size_t size)
{
  std::string const &path = fuzz::temp_path("idx", ".idx");
  std::string const &gz_path = fuzz::temp_path("idx", ".z.idx");
  fuzz::Input in;
  if (!fuzz::prepare(data, size, path, 4, in))
    return 0;
  // The decompressed contents are exactly the input's bytes 1.. unless those are themselves gzip.
  bool const size_known = !fuzz::starts_like_gzip(data + 1, size - 1);
  std::size_t const n = in.raw_size;

  switch (in.selector)
  {
  case 0:
    fuzz::run(
        data, size, path, gz_path, in, [](std::string const &p) { return io::read_idx(p); },
        [&](io::IdxArray const &a, fuzz::Input const &)
        {
          std::size_t const esize = io::detail::idx_element_size(a.type_code);
          fuzz::check(esize != 0, "read_idx returned an unknown type code");
          fuzz::check(a.dims.size() >= 1 && a.dims.size() <= 4, "read_idx returned 0 or >4 dims");
          std::size_t count = 1;
          for (std::size_t d : a.dims)
            count *= d; // checked by the loader
          fuzz::check(count == a.data.size(), "read_idx: data size != product of dims");
          if (size_known)
            fuzz::check(n == 4 + 4 * a.dims.size() + count * esize,
                        "read_idx accepted a file whose size does not match its header");
          if (a.type_code == 0x08)
            fuzz::check(all_integral_in(a.data, 0, 255), "ubyte IDX value outside 0..255");
          if (a.type_code == 0x09)
            fuzz::check(all_integral_in(a.data, -128, 127), "sbyte IDX value outside -128..127");
          if (a.type_code == 0x0B)
            fuzz::check(all_integral_in(a.data, -32768, 32767), "int16 IDX value out of range");
        },
        [](io::IdxArray const &a, io::IdxArray const &b)
        { return a.dims == b.dims && a.type_code == b.type_code && fuzz::same_bits(a.data, b.data); });
    break;
  case 1:
    fuzz::run(
        data, size, path, gz_path, in, [](std::string const &p) { return io::read_idx_images(p); },
        [&](io::Matrix<float> const &m, fuzz::Input const &)
        {
          fuzz::check(m.rows * m.cols == m.data.size(), "read_idx_images: rows*cols != size");
          if (size_known)
            fuzz::check(n == 12 + m.data.size() || n == 16 + m.data.size(),
                        "read_idx_images accepted a file whose size does not match its header");
          fuzz::check(all_integral_in(m.data, 0, 255), "image value outside 0..255");
        },
        same_matrix);
    break;
  case 2:
    fuzz::run(
        data, size, path, gz_path, in, [](std::string const &p) { return io::read_idx_labels(p); },
        [&](std::vector<std::int32_t> const &labels, fuzz::Input const &)
        {
          if (size_known)
            fuzz::check(n == 8 + labels.size(),
                        "read_idx_labels accepted a file whose size does not match its header");
          for (std::int32_t l : labels)
            fuzz::check(l >= 0 && l <= 255, "label outside 0..255");
        },
        [](std::vector<std::int32_t> const &a, std::vector<std::int32_t> const &b)
        { return a == b; });
    break;
  default:
    fuzz::run(
        data, size, path, gz_path, in, [](std::string const &p) { return io::read_matrix(p); },
        [&](io::Matrix<float> const &m, fuzz::Input const &)
        {
          fuzz::check(m.rows * m.cols == m.data.size(), "read_matrix: rows*cols != size");
          if (size_known)
            fuzz::check(n >= 8 + m.data.size(), "read_matrix returned more elements than bytes");
        },
        same_matrix);
    break;
  }
  return 0;
}
