#pragma once
/// \file fastknn/io/reader.hpp
/// What every loader shares: file errors, checked sizes, byte order, and a reader for plain or
/// gzip files that checks every length against the bytes present.

#include <fastknn/error.hpp>
#include <fastknn/io/matrix.hpp>

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

/// The element range [begin, end) of a RowPart's rows in a file of `rows` x `cols` elements
/// (cols = the elements of one row).
inline std::pair<std::size_t, std::size_t> part_elements(RowPart const &part, std::size_t rows,
                                                         std::size_t cols)
{
  auto const [a, b] = part.range(rows);
  return {a * cols, b * cols};
}

/// Reads `count` elements of `elem_size` bytes, appending convert(bytes) to out for those with
/// index in [keep_begin, keep_end) (all by default; the others are read, checked and dropped).
/// Plain files are size-checked first; gzip data grows the vector chunk by chunk because its header
/// may lie about the size.
template <class Out, class Convert>
void read_payload(Reader &in, std::vector<Out> &out, std::size_t count, std::size_t elem_size,
                  std::string const &what, Convert convert, std::size_t keep_begin = 0,
                  std::size_t keep_end = static_cast<std::size_t>(-1))
{
  std::size_t const bytes = checked_mul(count, elem_size, in.path(), "size of the " + what);
  in.require_remaining(bytes, what);
  keep_end = std::min(keep_end, count);
  if (!in.is_gzip() && keep_begin < keep_end)
    out.reserve(out.size() + (keep_end - keep_begin));
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
    std::size_t const lo = std::clamp(keep_begin, done, done + n) - done;
    std::size_t const hi = std::clamp(keep_end, done, done + n) - done;
    for (std::size_t i = lo; i < hi; ++i)
      out.push_back(convert(buf.data() + i * elem_size));
    done += n;
  }
  in.require_end(what);
}

} // namespace detail

} // namespace fastknn::io
