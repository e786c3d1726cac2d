#pragma once
/// \file fastknn/io.hpp
/// Header-only loaders for IDX (MNIST format, plain or gzip), .npy and .fvecs/.ivecs/.bvecs files.
/// Depends on zlib and the standard library only. Every failure throws fastknn::Error naming the
/// file.

#include "fastknn/error.hpp"

#include <zlib.h>

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

/// Dense row-major matrix: element (r, c) is data[r * cols + c].
template <class T>
struct Matrix
{
  std::vector<T> data;
  std::size_t rows = 0;
  std::size_t cols = 0;
};

/// Contents of a generic IDX file: its dimensions, its elements converted to float, its type code.
struct IdxArray
{
  std::vector<std::size_t> dims;
  std::vector<float> data;
  unsigned char type_code = 0;
};

/// One MNIST split: n x (rows*cols) images with values 0..255 and their n labels.
struct LabeledSplit
{
  Matrix<float> images;
  std::vector<std::int32_t> labels;
};

/// The training and test splits of an MNIST-format data set.
struct MnistData
{
  LabeledSplit train, test;
};

namespace detail
{

/// Returns an Error whose message starts with the quoted file path.
inline Error file_error(std::string const &path, std::string const &what)
{
  return Error("'" + path + "': " + what);
}

/// Returns "0xAB" for a byte.
inline std::string hex_byte(unsigned char b)
{
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", static_cast<unsigned>(b));
  return buf;
}

/// Returns a * b; throws when the product overflows size_t (a corrupt header, not a real size).
inline std::size_t checked_mul(std::size_t a, std::size_t b, std::string const &path,
                               std::string const &what)
{
  if (b != 0 && a > std::numeric_limits<std::size_t>::max() / b)
    throw file_error(path, what + " overflows size_t; the header is corrupt");
  return a * b;
}

/// Returns the unsigned integer stored at p in the given byte order (independent of the host's).
template <class U>
U load_uint(unsigned char const *p, bool big_endian)
{
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i)
  {
    std::size_t const byte = big_endian ? sizeof(U) - 1 - i : i;
    v = static_cast<U>(v | static_cast<U>(static_cast<U>(p[i]) << (8 * byte)));
  }
  return v;
}

/// Stores v at p in little-endian byte order; returns nothing.
template <class U>
void store_uint_le(U v, unsigned char *p)
{
  for (std::size_t i = 0; i < sizeof(U); ++i)
    p[i] = static_cast<unsigned char>((v >> (8 * i)) & 0xFFu);
}

/// Sequential byte reader over a plain or gzip file (gzip detected by the magic bytes 1f 8b).
class Reader
{
public:
  explicit Reader(std::string path) : path_(std::move(path))
  {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::file_status const st = fs::status(path_, ec);
    if (st.type() == fs::file_type::not_found)
      throw file_error(path_, "file not found; check the path");
    if (ec)
      throw file_error(path_, "cannot access file: " + ec.message());
    if (fs::is_directory(st))
      throw file_error(path_, "is a directory, expected a file");
    // Plain-file size checks (done before allocating) need a real size; pipes etc. have none.
    if (!fs::is_regular_file(st))
      throw file_error(path_, "is not a regular file");
    size_ = fs::file_size(path_, ec);
    if (ec)
      throw file_error(path_, "cannot determine file size: " + ec.message());

    file_ = std::fopen(path_.c_str(), "rb");
    if (file_ == nullptr)
      throw file_error(path_, "cannot open for reading: " +
                                  std::error_code(errno, std::generic_category()).message());
    unsigned char magic[2] = {0, 0};
    std::size_t const n = std::fread(magic, 1, 2, file_);
    if (n == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
    {
      std::fclose(file_);
      file_ = nullptr;
      gz_ = gzopen(path_.c_str(), "rb");
      if (gz_ == nullptr)
        throw file_error(path_, "cannot open gzip file for reading");
      gzbuffer(gz_, 1u << 17);
    }
    else if (std::fseek(file_, 0, SEEK_SET) != 0)
    {
      close();
      throw file_error(path_, "cannot seek to the start of the file");
    }
  }

  Reader(Reader const &) = delete;
  Reader &operator=(Reader const &) = delete;
  ~Reader() { close(); }

  /// Returns the path this reader was opened with.
  std::string const &path() const { return path_; }

  /// Returns true when the file is gzip-compressed (its uncompressed size is then unknown).
  bool is_gzip() const { return gz_ != nullptr; }

  /// Returns the bytes left in a plain file; only meaningful when !is_gzip().
  std::uintmax_t remaining() const { return consumed_ >= size_ ? 0 : size_ - consumed_; }

  /// Returns the number of bytes read into dst: n, or fewer only when the data ends.
  std::size_t read(void *dst, std::size_t n)
  {
    auto *out = static_cast<unsigned char *>(dst);
    std::size_t total = 0;
    if (gz_ != nullptr)
    {
      while (total < n)
      {
        auto const want = static_cast<unsigned>(std::min<std::size_t>(n - total, 1u << 30));
        int const got = gzread(gz_, out + total, want);
        if (got < 0)
          throw gz_failure();
        total += static_cast<std::size_t>(got);
        if (static_cast<unsigned>(got) < want)
        {
          int errnum = Z_OK;
          gzerror(gz_, &errnum);
          if (errnum != Z_OK)
            throw gz_failure();
          break;
        }
      }
    }
    else
    {
      total = std::fread(out, 1, n, file_);
      if (total < n && std::ferror(file_))
        throw file_error(path_, "read error: " +
                                    std::error_code(errno, std::generic_category()).message());
    }
    consumed_ += total;
    return total;
  }

  /// Checks (plain files only, before anything is allocated) that exactly `bytes` bytes remain.
  void require_remaining(std::size_t bytes, std::string const &what) const
  {
    if (is_gzip())
      return;
    std::uintmax_t const left = remaining();
    if (left < bytes)
      throw file_error(path_, "truncated " + what + ": the header declares " +
                                  std::to_string(bytes) + " bytes but only " +
                                  std::to_string(left) +
                                  " remain; the file is incomplete (download or export it again)");
    if (left > bytes)
      throw file_error(path_, std::to_string(left - bytes) + " trailing extra bytes after the " +
                                  what + " (the header declares " + std::to_string(bytes) +
                                  "); the file is corrupt or not in the expected format");
  }

  /// Throws when any byte follows the data just read.
  void require_end(std::string const &what)
  {
    unsigned char b = 0;
    if (read(&b, 1) != 0)
      throw file_error(path_, "trailing extra bytes after the " + what +
                                  "; the file is corrupt or not in the expected format");
  }

private:
  Error gz_failure()
  {
    int errnum = Z_OK;
    char const *msg = gzerror(gz_, &errnum);
    // zlib reports a stream that stops mid-way as Z_BUF_ERROR ("unexpected end of file").
    if (errnum == Z_BUF_ERROR)
      return file_error(path_, "truncated gzip stream: the compressed data ends early "
                               "(download the file again)");
    return file_error(path_, std::string("corrupt gzip stream: ") + (msg ? msg : "unknown error"));
  }

  void close()
  {
    if (file_ != nullptr)
      std::fclose(file_);
    if (gz_ != nullptr)
      gzclose(gz_);
    file_ = nullptr;
    gz_ = nullptr;
  }

  std::string path_;
  std::FILE *file_ = nullptr;
  gzFile gz_ = nullptr;
  std::uintmax_t size_ = 0;
  std::uintmax_t consumed_ = 0;
};

/// Reads `count` elements of `elem_size` bytes, appending convert(bytes) for each to out.
/// Plain files are size-checked first; gzip data grows the vector chunk by chunk because its header
/// may lie about the size.
template <class Out, class Convert>
void read_payload(Reader &in, std::vector<Out> &out, std::size_t count, std::size_t elem_size,
                  std::string const &what, Convert convert)
{
  std::size_t const bytes = checked_mul(count, elem_size, in.path(), "size of the " + what);
  in.require_remaining(bytes, what);
  if (!in.is_gzip())
    out.reserve(out.size() + count);
  std::size_t const chunk = std::max<std::size_t>(1, (std::size_t{1} << 20) / elem_size);
  std::vector<unsigned char> buf(std::min(count, chunk) * elem_size);
  std::size_t done = 0;
  while (done < count)
  {
    std::size_t const n = std::min(count - done, chunk);
    std::size_t const got = in.read(buf.data(), n * elem_size);
    if (got != n * elem_size)
      throw file_error(in.path(), "truncated " + what + ": the header declares " +
                                      std::to_string(bytes) + " bytes but the data ends after " +
                                      std::to_string(done * elem_size + got) +
                                      " (download or export the file again)");
    for (std::size_t i = 0; i < n; ++i)
      out.push_back(convert(buf.data() + i * elem_size));
    done += n;
  }
  in.require_end(what);
}

// ---------------------------------------------------------------- IDX

/// Returns the element size in bytes of an IDX type code, or 0 for an unknown code.
inline std::size_t idx_element_size(unsigned char code)
{
  switch (code)
  {
  case 0x08: // unsigned byte
  case 0x09: // signed byte
    return 1;
  case 0x0B: // int16
    return 2;
  case 0x0C: // int32
  case 0x0D: // float32
    return 4;
  case 0x0E: // float64
    return 8;
  default:
    return 0;
  }
}

/// Returns true when the four bytes at m are a valid IDX magic number.
inline bool looks_like_idx(unsigned char const *m)
{
  return m[0] == 0 && m[1] == 0 && idx_element_size(m[2]) != 0 && m[3] >= 1 && m[3] <= 4;
}

/// Returns the float value of one big-endian IDX element of the given type.
inline float idx_to_float(unsigned char code, unsigned char const *p)
{
  switch (code)
  {
  case 0x08:
    return static_cast<float>(p[0]);
  case 0x09:
    return static_cast<float>(static_cast<std::int8_t>(p[0]));
  case 0x0B:
    return static_cast<float>(std::bit_cast<std::int16_t>(load_uint<std::uint16_t>(p, true)));
  case 0x0C:
    return static_cast<float>(std::bit_cast<std::int32_t>(load_uint<std::uint32_t>(p, true)));
  case 0x0D:
    return std::bit_cast<float>(load_uint<std::uint32_t>(p, true));
  default:
  {
    double const v = std::bit_cast<double>(load_uint<std::uint64_t>(p, true));
    // Out-of-range double -> float is undefined behaviour; saturate to infinity explicitly.
    if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max())
      return v > 0 ? std::numeric_limits<float>::infinity()
                   : -std::numeric_limits<float>::infinity();
    return static_cast<float>(v);
  }
  }
}

/// Returns the IDX file at path; when required_type != 0 the type code must match it and the
/// number of dimensions must lie in [min_dims, max_dims] (`kind` names the file role in errors).
inline IdxArray read_idx_checked(std::string const &path, unsigned char required_type,
                                 std::size_t min_dims, std::size_t max_dims, char const *kind)
{
  Reader in(path);
  unsigned char magic[4] = {0, 0, 0, 0};
  std::size_t const got = in.read(magic, 4);
  if (got < 4)
    throw file_error(path, "truncated IDX header: the file has fewer than the 4 magic bytes");
  if (magic[0] != 0 || magic[1] != 0)
    throw file_error(path, "bad IDX magic: the first two bytes must be 0x00 0x00 but are " +
                               hex_byte(magic[0]) + " " + hex_byte(magic[1]) +
                               "; is this an IDX (MNIST-format) file?");
  if (idx_element_size(magic[2]) == 0)
    throw file_error(path, "bad IDX magic: unknown element type code " + hex_byte(magic[2]) +
                               " (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)");
  if (magic[3] < 1 || magic[3] > 4)
    throw file_error(path, "bad IDX magic: number of dimensions is " + std::to_string(magic[3]) +
                               ", expected 1..4");

  IdxArray a;
  a.type_code = magic[2];
  std::size_t const ndims = magic[3];
  if (required_type != 0 && a.type_code != required_type)
    throw file_error(path, std::string(kind) + " must have IDX element type " +
                               hex_byte(required_type) + " (unsigned byte) but the type is " +
                               hex_byte(a.type_code));
  if (ndims < min_dims || ndims > max_dims)
    throw file_error(path, std::string(kind) + " must have " + std::to_string(min_dims) +
                               (min_dims == max_dims ? "" : ".." + std::to_string(max_dims)) +
                               " dimension(s) but the IDX header declares " +
                               std::to_string(ndims));

  unsigned char raw[16];
  if (in.read(raw, 4 * ndims) != 4 * ndims)
    throw file_error(path, "truncated IDX header: the file ends inside the dimension sizes");
  std::size_t count = 1;
  for (std::size_t i = 0; i < ndims; ++i)
  {
    a.dims.push_back(load_uint<std::uint32_t>(raw + 4 * i, true));
    count = checked_mul(count, a.dims.back(), path, "product of the IDX dimensions");
  }
  unsigned char const code = a.type_code;
  read_payload(in, a.data, count, idx_element_size(code), "IDX data",
               [code](unsigned char const *p) { return idx_to_float(code, p); });
  return a;
}

/// Returns an IDX array reshaped to dims[0] x product(other dims).
inline Matrix<float> idx_to_matrix(IdxArray &&a)
{
  Matrix<float> m;
  m.rows = a.dims.empty() ? 0 : a.dims[0];
  m.cols = 1;
  for (std::size_t i = 1; i < a.dims.size(); ++i)
    m.cols *= a.dims[i]; // cannot overflow: the full product was checked
  m.data = std::move(a.data);
  return m;
}

/// Returns the labels of a ubyte idx1 array as int32.
inline std::vector<std::int32_t> idx_to_labels(IdxArray const &a)
{
  std::vector<std::int32_t> labels(a.data.size());
  std::transform(a.data.begin(), a.data.end(), labels.begin(),
                 [](float v) { return static_cast<std::int32_t>(v); });
  return labels;
}

// ---------------------------------------------------------------- npy

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

// ---------------------------------------------------------------- vecs

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

/// Returns the contents of an IDX file (plain or gzip) with all elements converted to float.
inline IdxArray read_idx(std::string const &path)
{
  return detail::read_idx_checked(path, 0, 1, 4, "IDX file");
}

/// Returns a ubyte idx3 (n, rows, cols) or idx2 (n, d) image file as n x (rows*cols) floats 0..255.
inline Matrix<float> read_idx_images(std::string const &path)
{
  return detail::idx_to_matrix(detail::read_idx_checked(path, 0x08, 2, 3, "an image file"));
}

/// Returns the labels of a ubyte idx1 label file.
inline std::vector<std::int32_t> read_idx_labels(std::string const &path)
{
  return detail::idx_to_labels(detail::read_idx_checked(path, 0x08, 1, 1, "a label file"));
}

/// Returns the train and test splits of the four MNIST-format files in dir (plain or .gz, with
/// "-idx" or ".idx" in the name), after checking image/label counts and train/test image shapes.
inline MnistData load_mnist_dir(std::string const &dir)
{
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw detail::file_error(dir,
                             "not a directory; expected a folder holding the four MNIST files "
                             "(train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                             "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz)");
  auto const find = [&](std::string const &stem, std::string const &idx)
  {
    std::string const names[] = {stem + "-" + idx, stem + "-" + idx + ".gz", stem + "." + idx,
                                 stem + "." + idx + ".gz"};
    for (std::string const &name : names)
    {
      fs::path const p = fs::path(dir) / name;
      std::error_code e;
      if (fs::is_regular_file(p, e))
        return p.string();
    }
    throw detail::file_error(dir, "missing " + names[0] + " (looked for " + names[0] + ", " +
                                      names[1] + ", " + names[2] + ", " + names[3] + ")");
  };

  MnistData out;
  std::vector<std::size_t> shapes[2];
  char const *const stems[2] = {"train", "t10k"};
  for (int s = 0; s < 2; ++s)
  {
    std::string const images_path = find(std::string(stems[s]) + "-images", "idx3-ubyte");
    std::string const labels_path = find(std::string(stems[s]) + "-labels", "idx1-ubyte");
    IdxArray images = detail::read_idx_checked(images_path, 0x08, 3, 3, "an image file");
    shapes[s].assign(images.dims.begin() + 1, images.dims.end());
    LabeledSplit &split = s == 0 ? out.train : out.test;
    split.images = detail::idx_to_matrix(std::move(images));
    split.labels = read_idx_labels(labels_path);
    if (split.labels.size() != split.images.rows)
      throw detail::file_error(labels_path,
                               "has " + std::to_string(split.labels.size()) + " labels but '" +
                                   images_path + "' has " + std::to_string(split.images.rows) +
                                   " images; the label and image files do not belong together");
  }
  if (shapes[0] != shapes[1])
    throw detail::file_error(dir, "train images are " + std::to_string(shapes[0][0]) + "x" +
                                      std::to_string(shapes[0][1]) + " but test images are " +
                                      std::to_string(shapes[1][0]) + "x" +
                                      std::to_string(shapes[1][1]) +
                                      "; train and test must have the same image size");
  return out;
}

/// Returns a .npy array (version 1.0/2.0/3.0, C order, 1-D n -> n x 1 or 2-D) converted to T.
template <class T>
Matrix<T> read_npy(std::string const &path)
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
  auto const conv = [&path](auto v) { return detail::convert_checked<T>(v, path); };
  switch (h.type)
  {
  case detail::NpyType::F4:
    detail::read_payload(in, m.data, count, 4, what,
                         [&](unsigned char const *p) {
                           return conv(std::bit_cast<float>(load_uint<std::uint32_t>(p, false)));
                         });
    break;
  case detail::NpyType::F8:
    detail::read_payload(in, m.data, count, 8, what,
                         [&](unsigned char const *p) {
                           return conv(std::bit_cast<double>(load_uint<std::uint64_t>(p, false)));
                         });
    break;
  case detail::NpyType::U1:
    detail::read_payload(in, m.data, count, 1, what,
                         [&](unsigned char const *p) { return conv(p[0]); });
    break;
  case detail::NpyType::I1:
    detail::read_payload(in, m.data, count, 1, what,
                         [&](unsigned char const *p)
                         { return conv(static_cast<std::int8_t>(p[0])); });
    break;
  case detail::NpyType::I4:
    detail::read_payload(
        in, m.data, count, 4, what,
        [&](unsigned char const *p)
        { return conv(std::bit_cast<std::int32_t>(load_uint<std::uint32_t>(p, false))); });
    break;
  case detail::NpyType::I8:
    detail::read_payload(
        in, m.data, count, 8, what,
        [&](unsigned char const *p)
        { return conv(std::bit_cast<std::int64_t>(load_uint<std::uint64_t>(p, false))); });
    break;
  }
  return m;
}

/// Writes rows x cols elements (row-major) as a version 1.0, little-endian, C-order 2-D .npy file;
/// returns nothing. The bytes go to `path` + ".partial" first, renamed to `path` once complete,
/// so a failure (or a kill) never leaves a truncated file under `path`.
template <class T>
void write_npy(std::string const &path, T const *data, std::size_t rows, std::size_t cols)
{
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t> ||
                    std::is_same_v<T, std::uint8_t>,
                "write_npy supports float, double, std::int32_t, std::int64_t and std::uint8_t");
  using detail::file_error;
  std::size_t const count = detail::checked_mul(rows, cols, path, "rows * cols");
  if (data == nullptr && count != 0)
    throw file_error(path, "write_npy got a null data pointer for " + std::to_string(count) +
                               " elements");
  char const *descr = std::is_same_v<T, float>          ? "<f4"
                      : std::is_same_v<T, double>       ? "<f8"
                      : std::is_same_v<T, std::int32_t> ? "<i4"
                      : std::is_same_v<T, std::int64_t> ? "<i8"
                                                        : "|u1";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
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

/// Returns the float matrix in a .npy, .fvecs, .bvecs or .ivecs file (by extension) or in any other
/// file that starts with an IDX magic number (plain or gzip; reshaped to dims[0] x rest).
inline Matrix<float> read_matrix(std::string const &path)
{
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".npy")
    return read_npy<float>(path);
  if (ext == ".fvecs")
    return read_fvecs(path);
  if (ext == ".bvecs")
    return read_bvecs(path);
  if (ext == ".ivecs")
    return detail::to_float_matrix(read_ivecs(path));
  {
    detail::Reader in(path);
    unsigned char magic[4] = {};
    if (in.read(magic, 4) != 4 || !detail::looks_like_idx(magic))
      throw detail::file_error(path, "unrecognised file format: expected a .npy, .fvecs, .bvecs or "
                                     ".ivecs extension, or an IDX file (plain or gzip) starting "
                                     "with the magic bytes 00 00 <type> <ndims>");
  }
  return detail::idx_to_matrix(read_idx(path));
}

} // namespace fastknn::io
