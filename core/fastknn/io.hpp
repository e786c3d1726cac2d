#pragma once
/// \file fastknn/io.hpp
/// Header-only loaders for IDX (MNIST format, plain or gzip), .npy, .fvecs/.ivecs/.bvecs and
/// big-ann-benchmarks' .fbin/.u8bin/.i8bin files (target FastKNN::io, which adds zlib). Depends on
/// zlib and the standard library only. Every failure throws fastknn::Error naming the file.

#include <fastknn/io/bin.hpp>
#include <fastknn/io/idx.hpp>
#include <fastknn/io/matrix.hpp>
#include <fastknn/io/npy.hpp>
#include <fastknn/io/vecs.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>

namespace fastknn::io
{

namespace detail
{
/// The rows of `part` of a matrix read whole.
inline Matrix<float> keep_rows(Matrix<float> m, RowPart const &part)
{
  m.file_rows = m.rows;
  if (part.whole())
    return m;
  auto const [first, end] = part.range(m.rows);
  m.data.erase(m.data.begin() + std::ptrdiff_t(end * m.cols), m.data.end());
  m.data.erase(m.data.begin(), m.data.begin() + std::ptrdiff_t(first * m.cols));
  m.first_row = first;
  m.rows = end - first;
  return m;
}
} // namespace detail

/// Returns the float matrix in a .npy, .fvecs, .bvecs, .ivecs, .fbin, .u8bin or .i8bin file (by
/// extension) or in any other file that starts with an IDX magic number (plain or gzip; reshaped to
/// dims[0] x rest). With a RowPart, only its rows are kept: .npy and IDX files read the rest
/// without storing it; .fvecs/.bvecs/.ivecs are read whole first (their rows carry their own
/// lengths).
inline Matrix<float> read_matrix(std::string const &path, RowPart const &part = {})
{
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".npy")
    return read_npy<float>(path, part);
  if (bin_element_size(path) != 0)
    return read_bin(path, part);
  if (ext == ".fvecs")
    return detail::keep_rows(read_fvecs(path), part);
  if (ext == ".bvecs")
    return detail::keep_rows(read_bvecs(path), part);
  if (ext == ".ivecs")
    return detail::keep_rows(detail::to_float_matrix(read_ivecs(path)), part);
  {
    detail::Reader in(path);
    unsigned char magic[4] = {};
    if (in.read(magic, 4) != 4 || !detail::looks_like_idx(magic))
      throw detail::file_error(path, "unrecognised file format: expected a .npy, .fvecs, .bvecs, "
                                     ".ivecs, .fbin, .u8bin or .i8bin extension, or an IDX file "
                                     "(plain or gzip) starting with the magic bytes 00 00 <type> "
                                     "<ndims>");
  }
  return detail::idx_to_matrix(read_idx(path, part));
}

} // namespace fastknn::io
