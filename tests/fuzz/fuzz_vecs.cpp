/// \file tests/fuzz/fuzz_vecs.cpp
/// libFuzzer target for the .fvecs/.ivecs/.bvecs loaders of fastknn/io.hpp (plain and gzip).
///
/// Input: mode byte, then the file contents (see fuzz_common.hpp; bit 0 gzip-compresses them).
/// Loaders (mode >> 1, modulo 6): 0 read_fvecs, 1 read_ivecs, 2 read_bvecs, and read_matrix on a
/// path ending in 3 ".fvecs", 4 ".ivecs", 5 ".bvecs".

#include "fuzz_common.hpp"

#include <fastknn/io.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace
{

namespace io = fastknn::io;

template <class T>
bool same_matrix(io::Matrix<T> const &a, io::Matrix<T> const &b)
{
  return a.rows == b.rows && a.cols == b.cols && fuzz::same_bits(a.data, b.data);
}

/// Loads path with the given loader and checks the result against the contents' size.
template <class Load>
void fuzz_one(std::uint8_t const *data, std::size_t size, std::string const &path,
              std::string const &gz_path, fuzz::Input const &in, std::size_t elem_size,
              bool bytes, Load load)
{
  bool const size_known = !fuzz::starts_like_gzip(data + 1, size - 1);
  fuzz::run(
      data, size, path, gz_path, in, load,
      [&](auto const &m, fuzz::Input const &)
      {
        fuzz::check(m.cols >= 1 && m.cols <= (std::size_t{1} << 24), "vecs: dimension out of range");
        fuzz::check(m.rows >= 1, "vecs: accepted a file with no records");
        fuzz::check(m.rows * m.cols == m.data.size(), "vecs: rows*cols != data size");
        if (size_known)
          fuzz::check(in.raw_size == m.rows * (4 + m.cols * elem_size),
                      "vecs: accepted a file whose size is not a whole number of records");
        if (bytes)
          for (auto v : m.data)
            fuzz::check(v >= 0 && v <= 255 && std::trunc(static_cast<double>(v)) == v,
                        "bvecs value outside 0..255");
      },
      [](auto const &a, auto const &b) { return same_matrix(a, b); });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const *data, std::size_t size)
{
  static char const *const ext[3] = {".fvecs", ".ivecs", ".bvecs"};
  static char const *const gz_ext[3] = {".z.fvecs", ".z.ivecs", ".z.bvecs"};
  if (size == 0)
    return 0;
  unsigned const selector = (static_cast<unsigned>(data[0]) >> 1) % 6;
  unsigned const kind = selector % 3; // 0 fvecs, 1 ivecs, 2 bvecs
  std::string const &path = fuzz::temp_path("vecs", ext[kind]);
  std::string const &gz_path = fuzz::temp_path("vecs", gz_ext[kind]);
  fuzz::Input in;
  if (!fuzz::prepare(data, size, path, 6, in))
    return 0;
  std::size_t const elem_size = kind == 2 ? 1 : 4;
  bool const bytes = kind == 2;
  switch (selector)
  {
  case 0:
    fuzz_one(data, size, path, gz_path, in, elem_size, bytes,
             [](std::string const &p) { return io::read_fvecs(p); });
    break;
  case 1:
    fuzz_one(data, size, path, gz_path, in, elem_size, bytes,
             [](std::string const &p) { return io::read_ivecs(p); });
    break;
  case 2:
    fuzz_one(data, size, path, gz_path, in, elem_size, bytes,
             [](std::string const &p) { return io::read_bvecs(p); });
    break;
  default: // read_matrix picks the loader from the extension
    fuzz_one(data, size, path, gz_path, in, elem_size, bytes,
             [](std::string const &p) { return io::read_matrix(p); });
    break;
  }
  return 0;
}
