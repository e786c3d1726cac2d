#pragma once
/// \file fastknn/io/npy.hpp
/// NumPy .npy files: reading (version 1.0/2.0/3.0) and writing (version 1.0, atomically).

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

enum class NpyType
{
  F4,
  F8,
  U1,
  I1,
  I4,
  I8
};

struct NpyHeader
{
  NpyType type = NpyType::F4;
  std::size_t elem_size = 4;
  std::vector<std::size_t> shape;
};

/// Minimal parser for the Python-literal dict in a .npy header.
class NpyHeaderParser
{
public:
  NpyHeaderParser(std::string const &path, std::string const &text) : path_(path), s_(text) {}

  /// Returns the parsed and validated header.
  NpyHeader parse()
  {
    std::string descr;
    bool fortran = false;
    bool have_descr = false, have_fortran = false, have_shape = false;
    NpyHeader h;
    skip_ws();
    expect('{');
    while (true)
    {
      skip_ws();
      if (peek() == '}')
        break;
      std::string const key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr")
      {
        if (peek() == '[')
          throw file_error(path_, "unsupported npy dtype: structured arrays are not supported; "
                                  "save a plain numeric array");
        descr = parse_string();
        have_descr = true;
      }
      else if (key == "fortran_order")
      {
        fortran = parse_bool();
        have_fortran = true;
      }
      else if (key == "shape")
      {
        h.shape = parse_shape();
        have_shape = true;
      }
      else
        skip_value(); // unknown keys are tolerated
      skip_ws();
      if (peek() == ',')
        ++pos_;
      else if (peek() != '}')
        fail("expected ',' or '}'");
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size())
      fail("unexpected text after the closing '}'");

    for (auto [have, name] :
         {std::pair{have_descr, "descr"}, std::pair{have_fortran, "fortran_order"},
          std::pair{have_shape, "shape"}})
      if (!have)
        throw file_error(path_, std::string("npy header is missing the key '") + name + "'");
    set_dtype(h, descr);
    if (fortran)
      throw file_error(path_, "npy array is in Fortran order (fortran_order: True); only C order "
                              "is supported: save np.ascontiguousarray(a) instead");
    if (h.shape.size() < 1 || h.shape.size() > 2)
      throw file_error(path_, "npy shape has " + std::to_string(h.shape.size()) +
                                  " dimensions; only 1-D or 2-D arrays are supported");
    return h;
  }

private:
  [[noreturn]] void fail(std::string const &msg) const
  {
    throw file_error(path_, "npy header is not a parseable dict (" + msg + " at offset " +
                                std::to_string(pos_) + "): " + s_.substr(0, 200));
  }

  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }

  void skip_ws()
  {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  void expect(char c)
  {
    if (peek() != c)
      fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  std::string parse_string()
  {
    char const q = peek();
    if (q != '\'' && q != '"')
      fail("expected a quoted string");
    std::size_t const end = s_.find(q, pos_ + 1);
    if (end == std::string::npos)
      fail("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }

  bool parse_bool()
  {
    if (s_.compare(pos_, 4, "True") == 0)
    {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0)
    {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }

  std::vector<std::size_t> parse_shape()
  {
    std::vector<std::size_t> dims;
    expect('(');
    while (true)
    {
      skip_ws();
      if (peek() == ')')
        break;
      if (peek() < '0' || peek() > '9')
        fail("expected a non-negative integer in the shape");
      std::size_t v = 0;
      while (peek() >= '0' && peek() <= '9')
      {
        auto const digit = static_cast<std::size_t>(peek() - '0');
        if (v > (std::numeric_limits<std::size_t>::max() - digit) / 10)
          throw file_error(path_, "npy shape entry overflows size_t; the header is corrupt");
        v = v * 10 + digit;
        ++pos_;
      }
      if (peek() == 'L') // Python 2 long suffix
        ++pos_;
      dims.push_back(v);
      skip_ws();
      if (peek() == ',')
        ++pos_;
      else if (peek() != ')')
        fail("expected ',' or ')' in the shape");
    }
    ++pos_;
    return dims;
  }

  void skip_value()
  {
    char const c = peek();
    if (c == '\'' || c == '"')
      parse_string();
    else if (c == '(')
      parse_shape();
    else if (c == 'T' || c == 'F')
      parse_bool();
    else
      fail("unsupported value");
  }

  void set_dtype(NpyHeader &h, std::string const &d) const
  {
    if (!d.empty() && d[0] == '>')
      throw file_error(path_,
                       "unsupported npy dtype '" + d +
                           "': big-endian data; convert with a.astype(a.dtype.newbyteorder('<'))");
    struct Entry
    {
      char const *name;
      NpyType type;
      std::size_t size;
    };
    static constexpr Entry table[] = {{"<f4", NpyType::F4, 4}, {"<f8", NpyType::F8, 8},
                                      {"|u1", NpyType::U1, 1}, {"<u1", NpyType::U1, 1},
                                      {"|i1", NpyType::I1, 1}, {"<i1", NpyType::I1, 1},
                                      {"<i4", NpyType::I4, 4}, {"<i8", NpyType::I8, 8}};
    for (Entry const &e : table)
      if (d == e.name)
      {
        h.type = e.type;
        h.elem_size = e.size;
        return;
      }
    throw file_error(path_, "unsupported npy dtype '" + d +
                                "'; supported: '<f4', '<f8', '<i4', '<i8', '|u1', '|i1' "
                                "(convert with a.astype(np.float32))");
  }

  std::string const &path_;
  std::string const &s_;
  std::size_t pos_ = 0;
};

template <class T>
constexpr char const *type_name()
{
  if constexpr (std::is_same_v<T, float>)
    return "float32";
  else if constexpr (std::is_same_v<T, double>)
    return "float64";
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return "int32";
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return "int64";
  else
    return "uint8";
}

/// Returns v converted to T; throws when v has no exact-enough T counterpart (integer range,
/// non-integral or non-finite float to integer, finite double beyond float's range).
template <class T, class S>
T convert_checked(S v, std::string const &path)
{
  bool ok = true;
  if constexpr (std::is_floating_point_v<T>)
  {
    if constexpr (std::is_floating_point_v<S> && sizeof(S) > sizeof(T))
      ok = !std::isfinite(v) || std::fabs(v) <= static_cast<S>(std::numeric_limits<T>::max());
  }
  else if constexpr (std::is_floating_point_v<S>)
  {
    // -min() of a signed type is a power of two, so both bounds are exact in S.
    auto const lo = static_cast<S>(std::numeric_limits<T>::min());
    ok = std::isfinite(v) && std::trunc(v) == v && v >= lo && v < -lo;
  }
  else
    ok = std::in_range<T>(v);
  if (!ok)
    throw file_error(path, "npy value " + std::to_string(v) + " cannot be represented as " +
                               type_name<T>() + "; load it with a wider or floating type");
  return static_cast<T>(v);
}

/// Returns matrix m as float.
template <class S>
Matrix<float> to_float_matrix(Matrix<S> &&m)
{
  Matrix<float> out;
  out.rows = m.rows;
  out.cols = m.cols;
  out.data.assign(m.data.begin(), m.data.end());
  return out;
}

} // namespace detail

/// Returns a .npy array (version 1.0/2.0/3.0, C order, 1-D n -> n x 1 or 2-D) converted to T.
/// With a RowPart, only its rows are kept (the file is still read and checked to the end).
template <class T>
Matrix<T> read_npy(std::string const &path, RowPart const &part = {})
{
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t>,
                "read_npy supports float, double, std::int32_t and std::int64_t");
  using detail::file_error;
  using detail::load_uint;
  detail::Reader in(path);
  unsigned char pre[8] = {};
  std::size_t const got = in.read(pre, 8);
  if (got < 6 || std::memcmp(pre, "\x93NUMPY", 6) != 0)
    throw file_error(path, "bad npy magic: the file does not start with \\x93NUMPY; is this a "
                           ".npy file?");
  if (got < 8)
    throw file_error(path, "truncated npy header: the file ends inside the version bytes");
  if (pre[6] < 1 || pre[6] > 3 || pre[7] != 0)
    throw file_error(path, "unsupported npy format version " + std::to_string(pre[6]) + "." +
                               std::to_string(pre[7]) + "; supported: 1.0, 2.0, 3.0");
  std::size_t const len_bytes = pre[6] == 1 ? 2 : 4;
  unsigned char lenbuf[4] = {};
  if (in.read(lenbuf, len_bytes) != len_bytes)
    throw file_error(path, "truncated npy header: the file ends inside the header length");
  std::size_t const header_len = len_bytes == 2 ? load_uint<std::uint16_t>(lenbuf, false)
                                                : load_uint<std::uint32_t>(lenbuf, false);
  // Real headers are ~100 bytes; refuse absurd lengths rather than allocate them.
  if (header_len > (std::size_t{1} << 20))
    throw file_error(path, "npy header length " + std::to_string(header_len) +
                               " is implausibly large; the file is corrupt");
  std::string text(header_len, '\0');
  if (in.read(text.data(), header_len) != header_len)
    throw file_error(path, "truncated npy header: the file ends inside the header dict");
  detail::NpyHeader const h = detail::NpyHeaderParser(path, text).parse();

  Matrix<T> m;
  m.rows = h.shape[0];
  m.cols = h.shape.size() == 2 ? h.shape[1] : 1;
  std::size_t const count = detail::checked_mul(m.rows, m.cols, path, "npy shape product");
  std::string const what = "npy data";
  m.file_rows = m.rows;
  auto const [first, end] = part.range(m.rows);
  m.first_row = first;
  m.rows = end - first;
  std::size_t const keep_a = first * m.cols, keep_b = end * m.cols;
  auto const conv = [&path](auto v) { return detail::convert_checked<T>(v, path); };
  switch (h.type)
  {
  case detail::NpyType::F4:
    detail::read_payload(
        in, m.data, count, 4, what,
        [&](unsigned char const *p)
        { return conv(std::bit_cast<float>(load_uint<std::uint32_t>(p, false))); },
        keep_a, keep_b);
    break;
  case detail::NpyType::F8:
    detail::read_payload(
        in, m.data, count, 8, what,
        [&](unsigned char const *p)
        { return conv(std::bit_cast<double>(load_uint<std::uint64_t>(p, false))); },
        keep_a, keep_b);
    break;
  case detail::NpyType::U1:
    detail::read_payload(
        in, m.data, count, 1, what, [&](unsigned char const *p) { return conv(p[0]); }, keep_a,
        keep_b);
    break;
  case detail::NpyType::I1:
    detail::read_payload(
        in, m.data, count, 1, what,
        [&](unsigned char const *p) { return conv(static_cast<std::int8_t>(p[0])); }, keep_a,
        keep_b);
    break;
  case detail::NpyType::I4:
    detail::read_payload(
        in, m.data, count, 4, what,
        [&](unsigned char const *p)
        { return conv(std::bit_cast<std::int32_t>(load_uint<std::uint32_t>(p, false))); },
        keep_a, keep_b);
    break;
  case detail::NpyType::I8:
    detail::read_payload(
        in, m.data, count, 8, what,
        [&](unsigned char const *p)
        { return conv(std::bit_cast<std::int64_t>(load_uint<std::uint64_t>(p, false))); },
        keep_a, keep_b);
    break;
  }
  return m;
}

namespace detail
{
/// write_npy and write_npy_vector: `count` elements with the shape `shape` (numpy's tuple text).
template <class T>
void write_npy_shaped(std::string const &path, T const *data, std::size_t count,
                      std::string const &shape);
} // namespace detail

/// Writes rows x cols elements (row-major) as a version 1.0, little-endian, C-order 2-D .npy file;
/// returns nothing. The bytes go to `path` + ".partial" first, renamed to `path` once complete,
/// so a failure (or a kill) never leaves a truncated file under `path`.
template <class T>
void write_npy(std::string const &path, T const *data, std::size_t rows, std::size_t cols)
{
  std::size_t const count = detail::checked_mul(rows, cols, path, "rows * cols");
  detail::write_npy_shaped(path, data, count,
                           "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")");
}

/// Writes `count` elements as a 1-D .npy file (as write_npy).
template <class T>
void write_npy_vector(std::string const &path, T const *data, std::size_t count)
{
  detail::write_npy_shaped(path, data, count, "(" + std::to_string(count) + ",)");
}

template <class T>
void detail::write_npy_shaped(std::string const &path, T const *data, std::size_t count,
                              std::string const &shape)
{
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t> ||
                    std::is_same_v<T, std::uint8_t>,
                "write_npy supports float, double, std::int32_t, std::int64_t and std::uint8_t");
  using detail::file_error;
  if (data == nullptr && count != 0)
    throw file_error(path, "write_npy got a null data pointer for " + std::to_string(count) +
                               " elements");
  char const *descr = std::is_same_v<T, float>          ? "<f4"
                      : std::is_same_v<T, double>       ? "<f8"
                      : std::is_same_v<T, std::int32_t> ? "<i4"
                      : std::is_same_v<T, std::int64_t> ? "<i8"
                                                        : "|u1";
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // numpy pads so the data starts on a 64-byte boundary; the header ends with '\n'.
  std::size_t const unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');

  std::string const partial = path + ".partial";
  std::FILE *f = std::fopen(partial.c_str(), "wb");
  if (f == nullptr)
    throw file_error(path, "cannot open for writing (as '" + partial +
                               "'): " + std::error_code(errno, std::generic_category()).message());
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
  detail::store_uint_le(static_cast<std::uint16_t>(header.size()), pre + 8);
  bool ok = std::fwrite(pre, 1, 10, f) == 10 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size();

  using U = std::conditional_t<sizeof(T) == 1, std::uint8_t,
                               std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;
  std::vector<unsigned char> buf;
  std::size_t const chunk = (std::size_t{1} << 20) / sizeof(T);
  for (std::size_t done = 0; ok && done < count;)
  {
    std::size_t const n = std::min(count - done, chunk);
    buf.resize(n * sizeof(T));
    for (std::size_t i = 0; i < n; ++i)
      detail::store_uint_le(std::bit_cast<U>(data[done + i]), buf.data() + i * sizeof(T));
    ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
    done += n;
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok)
  {
    std::remove(partial.c_str());
    throw file_error(path, "write failed (disk full or I/O error)");
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0)
  {
    int const err = errno;
    std::remove(partial.c_str());
    throw file_error(path, "cannot replace it: " +
                               std::error_code(err, std::generic_category()).message());
  }
}

} // namespace fastknn::io
