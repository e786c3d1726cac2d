#pragma once
/// \file fastknn/io/bin.hpp
/// The binary formats of the big-ann-benchmarks data sets: `.fbin` (float32), `.u8bin` (uint8)
/// and `.i8bin` (int8) hold uint32 n, uint32 d (little-endian), then n x d elements row by row;
/// their ground-truth files hold uint32 n, uint32 k, n x k int32 ids, n x k float32 distances.
/// BinFile reads any run of rows of a plain file (seeking: a database can be streamed in
/// blocks), each element converted exactly to float.

#include <fastknn/io/matrix.hpp>
#include <fastknn/io/reader.hpp>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace fastknn::io
{

/// Returns the element size in bytes of a big-ann-benchmarks file from its extension (4 for
/// .fbin, 1 for .u8bin and .i8bin), or 0 for any other file.
inline std::size_t bin_element_size(std::string const &path)
{
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".fbin" ? 4 : (ext == ".u8bin" || ext == ".i8bin") ? 1 : 0;
}

/// An open .fbin / .u8bin / .i8bin file: its shape from the header (checked against the file's
/// size) and reads of any rows.
class BinFile
{
public:
  explicit BinFile(std::string path) : _path(std::move(path)), _elem(bin_element_size(_path))
  {
    if (_elem == 0)
      throw detail::file_error(_path, "not a .fbin, .u8bin or .i8bin file");
    _signed = _path.size() >= 6 &&
              std::tolower(static_cast<unsigned char>(_path[_path.size() - 5])) == 'i';
    _f = std::fopen(_path.c_str(), "rb");
    if (_f == nullptr)
      throw detail::file_error(_path, std::string("cannot open: ") + std::strerror(errno));
    unsigned char head[8];
    if (std::fread(head, 1, 8, _f) != 8)
      throw detail::file_error(_path, "truncated header: expected uint32 rows, uint32 columns");
    rows = detail::load_uint<std::uint32_t>(head, false);
    cols = detail::load_uint<std::uint32_t>(head + 4, false);
    if (rows == 0 || cols == 0)
      throw detail::file_error(_path, "the header declares " + std::to_string(rows) + " x " +
                                          std::to_string(cols) + "; expected at least 1 x 1");
    std::error_code ec;
    auto const size = std::filesystem::file_size(_path, ec);
    std::size_t const want =
        8 + detail::checked_mul(detail::checked_mul(rows, cols, _path, "rows x columns"), _elem,
                                _path, "data bytes");
    if (ec || size != want)
      throw detail::file_error(_path, "holds " + std::to_string(size) + " bytes but its header (" +
                                          std::to_string(rows) + " x " + std::to_string(cols) +
                                          ") needs " + std::to_string(want) +
                                          "; truncated, or not this format");
  }
  BinFile(BinFile const &) = delete;
  BinFile &operator=(BinFile const &) = delete;
  ~BinFile()
  {
    if (_f != nullptr)
      std::fclose(_f);
  }

  std::size_t rows = 0, cols = 0;
  std::size_t element_size() const { return _elem; }

  /// Rows [first, first + count) as floats (exact: float32, uint8 and int8 values all are),
  /// row-major into out (count x cols).
  void read_rows(std::size_t first, std::size_t count, float *out)
  {
    if (first > rows || count > rows - first)
      throw detail::file_error(_path, "rows " + std::to_string(first) + " to " +
                                          std::to_string(first + count) + " are past its " +
                                          std::to_string(rows) + " rows");
    std::size_t const n = count * cols;
    if (::fseeko(_f, off_t(8 + first * cols * _elem), SEEK_SET) != 0)
      throw detail::file_error(_path, std::string("seek failed: ") + std::strerror(errno));
    if (_elem == 4)
    {
      if (std::fread(out, 4, n, _f) != n)
        throw detail::file_error(_path, "read failed (the file changed or an I/O error)");
      if constexpr (std::endian::native != std::endian::little) // the format is little-endian
        for (std::size_t i = 0; i < n; ++i)
          out[i] = std::bit_cast<float>(detail::load_uint<std::uint32_t>(
              reinterpret_cast<unsigned char const *>(out + i), false));
      return;
    }
    _bytes.resize(std::min<std::size_t>(n, std::size_t(1) << 24));
    for (std::size_t done = 0; done < n;)
    {
      std::size_t const m = std::min(_bytes.size(), n - done);
      if (std::fread(_bytes.data(), 1, m, _f) != m)
        throw detail::file_error(_path, "read failed (the file changed or an I/O error)");
      for (std::size_t i = 0; i < m; ++i)
        out[done + i] = _signed ? float(static_cast<std::int8_t>(_bytes[i])) : float(_bytes[i]);
      done += m;
    }
  }

private:
  std::string _path;
  std::size_t _elem;
  bool _signed = false;
  std::FILE *_f = nullptr;
  std::vector<unsigned char> _bytes;
};

/// The float matrix of a .fbin / .u8bin / .i8bin file (the rows of `part`).
inline Matrix<float> read_bin(std::string const &path, RowPart const &part = {})
{
  BinFile f(path);
  auto const [a, b] = part.range(f.rows);
  Matrix<float> m;
  m.rows = b - a;
  m.cols = f.cols;
  m.first_row = a;
  m.file_rows = f.rows;
  m.data.resize(m.rows * m.cols);
  f.read_rows(a, m.rows, m.data.data());
  return m;
}

/// Writes a big-ann-benchmarks ground-truth file (uint32 n, uint32 k, n x k int32 ids, n x k
/// float32 distances), through `path`.partial renamed when complete.
inline void write_groundtruth_bin(std::string const &path, std::int32_t const *ids,
                                  float const *dists, std::size_t n, std::size_t k)
{
  if (n > 0xffffffffu || k > 0xffffffffu)
    throw detail::file_error(path, "n or k does not fit the format's uint32 fields");
  std::string const partial = path + ".partial";
  std::FILE *f = std::fopen(partial.c_str(), "wb");
  if (f == nullptr)
    throw detail::file_error(path, std::string("cannot open for writing: ") + std::strerror(errno));
  unsigned char head[8];
  detail::store_uint_le(std::uint32_t(n), head);
  detail::store_uint_le(std::uint32_t(k), head + 4);
  bool ok = std::fwrite(head, 1, 8, f) == 8 && std::fwrite(ids, 4, n * k, f) == n * k &&
            std::fwrite(dists, 4, n * k, f) == n * k;
  ok = std::fclose(f) == 0 && ok;
  if (ok && std::rename(partial.c_str(), path.c_str()) == 0)
    return;
  std::remove(partial.c_str());
  throw detail::file_error(path, "write failed (disk full, I/O error or not a file)");
}

} // namespace fastknn::io
