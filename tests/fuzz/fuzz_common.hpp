#pragma once
/// \file tests/fuzz/fuzz_common.hpp
/// Shared plumbing for the libFuzzer targets of fastknn's file loaders (fastknn/io.hpp).
///
/// Every target reads its input as
///   byte 0      mode: bit 0 = 1 -> gzip-compress the rest (zlib, gzip wrapper) before writing it,
///               bits 1..7 pick the loader (modulo the number of loaders of that target);
///   bytes 1..   the file contents.
/// The bytes are written to a per-process temporary file (reused across iterations) and the loader
/// is called on its path. fastknn::Error is the expected outcome for bad input; any other exception,
/// a crash, a sanitizer report, a leak, a timeout or a violated result invariant is a finding.

#include <fastknn/error.hpp>

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace fuzz
{

/// Prints msg and aborts, so libFuzzer records the input as a crash.
[[noreturn]] inline void fail(char const *msg)
{
  std::fprintf(stderr, "fastknn fuzz: invariant violated: %s\n", msg);
  std::fflush(stderr);
  std::abort();
}

/// Aborts (a finding) when cond is false.
inline void check(bool cond, char const *msg)
{
  if (!cond)
    fail(msg);
}

/// Paths of the temporary files this process created; removed at exit.
inline std::vector<std::string> &temp_files()
{
  static std::vector<std::string> files;
  return files;
}

/// Returns the per-process temporary path for a file with the given extension (".npy", ...),
/// e.g. /tmp/fastknn_fuzz_npy_1234.npy. The same path is returned on every call.
inline std::string const &temp_path(char const *target, char const *ext)
{
  struct Slot
  {
    std::string ext, path;
  };
  static std::deque<Slot> slots; // stable references: callers keep the returned path
  for (Slot const &s : slots)
    if (s.ext == ext)
      return s.path;
  if (temp_files().empty())
    std::atexit([] {
      for (std::string const &p : temp_files())
        std::remove(p.c_str());
    });
  std::string const path = (std::filesystem::temp_directory_path() /
                            ("fastknn_fuzz_" + std::string(target) + "_" +
                             std::to_string(static_cast<long>(::getpid())) + ext))
                               .string();
  temp_files().push_back(path);
  slots.push_back({ext, path});
  return slots.back().path;
}

/// Returns data[0..size) gzip-compressed (deterministic: no name, mtime 0).
inline std::vector<unsigned char> gzip(std::uint8_t const *data, std::size_t size)
{
  z_stream s{};
  if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fail("deflateInit2 failed");
  std::vector<unsigned char> out(deflateBound(&s, static_cast<uLong>(size)) + 64);
  s.next_in = const_cast<Bytef *>(data);
  s.avail_in = static_cast<uInt>(size);
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  int const rc = deflate(&s, Z_FINISH);
  out.resize(out.size() - s.avail_out);
  deflateEnd(&s);
  check(rc == Z_STREAM_END, "deflate did not finish in one call");
  return out;
}

/// Writes bytes to path (overwriting it); returns nothing.
inline void write_file(std::string const &path, unsigned char const *data, std::size_t size)
{
  std::FILE *f = std::fopen(path.c_str(), "wb");
  if (f == nullptr)
    fail("cannot create the temporary input file");
  bool const ok = (size == 0 || std::fwrite(data, 1, size, f) == size);
  if (std::fclose(f) != 0 || !ok)
    fail("cannot write the temporary input file");
}

/// Decoded fuzzer input: which loader to call, the file's bytes as written, whether compressed.
struct Input
{
  unsigned selector = 0;
  bool gzipped = false;
  std::size_t raw_size = 0; ///< size of the uncompressed contents (bytes 1.. of the input)
};

/// Splits the fuzzer input, writes the file to path (gzip-compressed when bit 0 of the mode byte is
/// set) and returns the decoded mode. Returns false for an empty input (nothing to do).
inline bool prepare(std::uint8_t const *data, std::size_t size, std::string const &path,
                    unsigned n_loaders, Input &in)
{
  if (size == 0)
    return false;
  std::uint8_t const mode = data[0];
  in.gzipped = (mode & 1u) != 0;
  in.selector = (static_cast<unsigned>(mode) >> 1) % n_loaders;
  in.raw_size = size - 1;
  if (in.gzipped)
  {
    std::vector<unsigned char> const z = gzip(data + 1, size - 1);
    write_file(path, z.data(), z.size());
  }
  else
    write_file(path, data + 1, size - 1);
  return true;
}

/// Returns true when the contents start with the gzip magic bytes (the loaders then decompress).
inline bool starts_like_gzip(std::uint8_t const *contents, std::size_t size)
{
  return size >= 2 && contents[0] == 0x1f && contents[1] == 0x8b;
}

/// Returns load(path), or nothing when it throws fastknn::Error (the expected rejection of bad
/// input; its message must name the file). Any other exception propagates out of
/// LLVMFuzzerTestOneInput, which libFuzzer reports as a crash.
template <class Load>
auto try_load(Load &&load, std::string const &path) -> std::optional<decltype(load(path))>
{
  // FASTKNN_FUZZ_VERBOSE=1 prints each load's outcome (for replaying inputs by hand).
  static bool const verbose = std::getenv("FASTKNN_FUZZ_VERBOSE") != nullptr;
  try
  {
    auto result = load(path);
    if (verbose)
      std::fprintf(stderr, "fastknn fuzz: accepted\n");
    return result;
  }
  catch (fastknn::Error const &e)
  {
    if (verbose)
      std::fprintf(stderr, "fastknn fuzz: rejected: %s\n", e.what());
    check(std::string(e.what()).find(path) != std::string::npos,
          "fastknn::Error message does not name the file");
    return std::nullopt;
  }
}

/// Writes the input's file, loads it and checks the result with verify(result, input). When the
/// contents were written uncompressed (and do not themselves look like gzip), the same contents are
/// also written gzip-compressed to gz_path and loaded again: both paths must agree (both rejected,
/// or both accepted with bit-identical results, compared by same(a, b)).
template <class Load, class Verify, class Same>
void run(std::uint8_t const *data, std::size_t size, std::string const &path,
         std::string const &gz_path, Input const &in, Load &&load, Verify &&verify, Same &&same)
{
  auto const a = try_load(load, path);
  if (a)
    verify(*a, in);
  if (in.gzipped || starts_like_gzip(data + 1, size - 1))
    return;
  std::vector<unsigned char> const z = gzip(data + 1, size - 1);
  write_file(gz_path, z.data(), z.size());
  auto const b = try_load(load, gz_path);
  check(a.has_value() == b.has_value(),
        a ? "plain file accepted but its gzip-compressed copy rejected"
          : "plain file rejected but its gzip-compressed copy accepted");
  if (a)
    check(same(*a, *b), "plain and gzip-compressed copies load to different results");
}

/// Returns true when two vectors hold bit-identical elements (NaNs compare equal to themselves).
template <class T>
bool same_bits(std::vector<T> const &a, std::vector<T> const &b)
{
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

} // namespace fuzz
