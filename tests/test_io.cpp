// Tests for fastknn/io.hpp: every fixture is generated into a fresh temp directory.

#include "fastknn/io.hpp"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace io = fastknn::io;
using Bytes = std::vector<unsigned char>;
using Catch::Matchers::ContainsSubstring;

namespace
{

/// A unique temporary directory, removed with its contents on destruction.
struct TempDir
{
  fs::path dir;
  TempDir()
  {
    std::random_device rd;
    auto const stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    dir = fs::temp_directory_path() /
          ("fastknn_test_io_" + std::to_string(stamp) + "_" + std::to_string(rd()));
    fs::create_directories(dir);
  }
  ~TempDir()
  {
    std::error_code ec;
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir, ec);
  }
  std::string file(std::string const &name) const { return (dir / name).string(); }
};

void write_bytes(std::string const &path, Bytes const &b)
{
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<char const *>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

void write_gz(std::string const &path, Bytes const &b)
{
  gzFile g = gzopen(path.c_str(), "wb");
  REQUIRE(g != nullptr);
  if (!b.empty())
    REQUIRE(gzwrite(g, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  REQUIRE(gzclose(g) == Z_OK);
}

Bytes read_bytes(std::string const &path)
{
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void put_be32(Bytes &b, std::uint32_t v)
{
  for (int s = 24; s >= 0; s -= 8)
    b.push_back(static_cast<unsigned char>(v >> s));
}

void put_le32(Bytes &b, std::uint32_t v)
{
  for (int s = 0; s < 32; s += 8)
    b.push_back(static_cast<unsigned char>(v >> s));
}

/// IDX file bytes: magic, big-endian dims, then the raw payload.
Bytes make_idx(unsigned char type, std::vector<std::uint32_t> const &dims, Bytes const &payload)
{
  Bytes b = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims)
    put_be32(b, d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes iota_bytes(std::size_t n, unsigned char start = 0)
{
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i)
    b[i] = static_cast<unsigned char>(start + i);
  return b;
}

/// .npy bytes with a hand-written header dict, padded to 64 bytes like numpy does.
Bytes make_npy(std::string dict, Bytes const &payload, int major = 1, int minor = 0)
{
  std::size_t const len_bytes = major == 1 ? 2 : 4;
  std::size_t const unpadded = 8 + len_bytes + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  // Sized once and filled by position (growing it by insert made g++ 12 warn, wrongly, of an
  // overflow at -O3).
  std::string const magic = "\x93NUMPY";
  Bytes b(magic.size() + 2 + len_bytes + dict.size() + payload.size());
  auto out = std::copy(magic.begin(), magic.end(), b.begin());
  *out++ = static_cast<unsigned char>(major);
  *out++ = static_cast<unsigned char>(minor);
  for (std::size_t i = 0; i < len_bytes; ++i)
    *out++ = static_cast<unsigned char>(dict.size() >> (8 * i));
  out = std::copy(dict.begin(), dict.end(), out);
  std::copy(payload.begin(), payload.end(), out);
  return b;
}

template <class T>
Bytes le_bytes(std::vector<T> const &v)
{
  Bytes b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size()); // the test hosts are little-endian
  return b;
}

/// One .fvecs-style record per row: int32 d, then the row's raw element bytes.
template <class T>
Bytes make_vecs(std::vector<std::vector<T>> const &rows)
{
  Bytes b;
  for (auto const &r : rows)
  {
    put_le32(b, static_cast<std::uint32_t>(r.size()));
    Bytes const p = le_bytes(r);
    b.insert(b.end(), p.begin(), p.end());
  }
  return b;
}

/// Returns the fastknn::Error message thrown by f; fails the test if f does not throw one.
template <class F>
std::string error_of(F &&f)
{
  try
  {
    f();
  }
  catch (fastknn::Error const &e)
  {
    return e.what();
  }
  FAIL("expected fastknn::Error, nothing was thrown");
  return {};
}

/// Checks that f throws fastknn::Error mentioning path and keyword.
template <class F>
void check_error(F &&f, std::string const &path, std::string const &keyword)
{
  std::string const msg = error_of(std::forward<F>(f));
  INFO(msg);
  CHECK_THAT(msg, ContainsSubstring("fastknn: "));
  CHECK_THAT(msg, ContainsSubstring(path));
  CHECK_THAT(msg, ContainsSubstring(keyword));
}

/// Writes a tiny MNIST-format directory: n_train/n_test images of r x c plus labels.
void write_mnist(TempDir const &t, std::string const &sep, bool gz, std::uint32_t n_train,
                 std::uint32_t n_test, std::uint32_t train_labels, std::uint32_t r = 2,
                 std::uint32_t c = 3)
{
  auto put = [&](std::string const &stem, std::string const &idx, Bytes const &b)
  {
    std::string const path = t.file(stem + sep + idx + (gz ? ".gz" : ""));
    gz ? write_gz(path, b) : write_bytes(path, b);
  };
  put("train-images", "idx3-ubyte", make_idx(0x08, {n_train, r, c}, iota_bytes(n_train * r * c)));
  put("train-labels", "idx1-ubyte", make_idx(0x08, {train_labels}, iota_bytes(train_labels, 1)));
  put("t10k-images", "idx3-ubyte", make_idx(0x08, {n_test, 2, 3}, iota_bytes(n_test * 6, 100)));
  put("t10k-labels", "idx1-ubyte", make_idx(0x08, {n_test}, iota_bytes(n_test, 5)));
}

} // namespace

// ====================================================================== IDX

TEST_CASE("IDX images and labels round-trip, plain and gzip", "[io][idx]")
{
  TempDir t;
  Bytes const pixels = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255};
  Bytes const img = make_idx(0x08, {2, 2, 3}, pixels);
  Bytes const lab = make_idx(0x08, {2}, {7, 9});
  write_bytes(t.file("img"), img);
  write_gz(t.file("img.gz"), img);
  write_bytes(t.file("lab"), lab);
  write_gz(t.file("lab.gz"), lab);

  for (std::string name : {"img", "img.gz"})
  {
    io::Matrix<float> const m = io::read_idx_images(t.file(name));
    CHECK(m.rows == 2);
    CHECK(m.cols == 6);
    REQUIRE(m.data.size() == 12);
    for (std::size_t i = 0; i < 12; ++i)
      CHECK(m.data[i] == static_cast<float>(pixels[i]));

    io::IdxArray const a = io::read_idx(t.file(name));
    CHECK(a.type_code == 0x08);
    CHECK(a.dims == std::vector<std::size_t>{2, 2, 3});
    CHECK(a.data == m.data);
  }
  for (std::string name : {"lab", "lab.gz"})
    CHECK(io::read_idx_labels(t.file(name)) == std::vector<std::int32_t>{7, 9});
}

TEST_CASE("IDX idx2 images are accepted", "[io][idx]")
{
  TempDir t;
  write_bytes(t.file("a"), make_idx(0x08, {3, 2}, {1, 2, 3, 4, 5, 6}));
  io::Matrix<float> const m = io::read_idx_images(t.file("a"));
  CHECK(m.rows == 3);
  CHECK(m.cols == 2);
  CHECK(m.data == std::vector<float>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("IDX generic reader converts every element type to float", "[io][idx]")
{
  TempDir t;
  SECTION("0x09 signed byte")
  {
    write_bytes(t.file("a"), make_idx(0x09, {3}, {0xFF, 0x80, 0x7F}));
    CHECK(io::read_idx(t.file("a")).data == std::vector<float>{-1, -128, 127});
  }
  SECTION("0x0B int16 big-endian")
  {
    write_bytes(t.file("a"), make_idx(0x0B, {2}, {0x01, 0x02, 0xFF, 0xFE}));
    CHECK(io::read_idx(t.file("a")).data == std::vector<float>{258, -2});
  }
  SECTION("0x0C int32 big-endian")
  {
    Bytes p;
    put_be32(p, 70000);
    put_be32(p, static_cast<std::uint32_t>(-5));
    write_bytes(t.file("a"), make_idx(0x0C, {1, 2}, p));
    io::IdxArray const a = io::read_idx(t.file("a"));
    CHECK(a.type_code == 0x0C);
    CHECK(a.dims == std::vector<std::size_t>{1, 2});
    CHECK(a.data == std::vector<float>{70000, -5});
  }
  SECTION("0x0D float32 big-endian")
  {
    Bytes p;
    put_be32(p, std::bit_cast<std::uint32_t>(1.5f));
    put_be32(p, std::bit_cast<std::uint32_t>(-0.25f));
    write_gz(t.file("a"), make_idx(0x0D, {2}, p));
    CHECK(io::read_idx(t.file("a")).data == std::vector<float>{1.5f, -0.25f});
  }
  SECTION("0x0E float64 big-endian, 4-D")
  {
    Bytes p;
    for (double v : {3.25, -1e300})
    {
      auto const u = std::bit_cast<std::uint64_t>(v);
      put_be32(p, static_cast<std::uint32_t>(u >> 32));
      put_be32(p, static_cast<std::uint32_t>(u));
    }
    write_bytes(t.file("a"), make_idx(0x0E, {1, 1, 1, 2}, p));
    io::IdxArray const a = io::read_idx(t.file("a"));
    CHECK(a.dims.size() == 4);
    CHECK(a.data[0] == 3.25f);
    CHECK(a.data[1] == -std::numeric_limits<float>::infinity());
  }
}

TEST_CASE("gzip is detected by magic bytes, not by file name", "[io][idx]")
{
  TempDir t;
  Bytes const img = make_idx(0x08, {1, 2, 2}, {1, 2, 3, 4});
  write_gz(t.file("compressed.idx"), img);
  write_bytes(t.file("plain.gz"), img);
  CHECK(io::read_idx_images(t.file("compressed.idx")).data == std::vector<float>{1, 2, 3, 4});
  CHECK(io::read_idx_images(t.file("plain.gz")).data == std::vector<float>{1, 2, 3, 4});
}

TEST_CASE("file access errors", "[io][errors]")
{
  TempDir t;
  SECTION("missing file")
  {
    std::string const p = t.file("nope.idx");
    check_error([&] { io::read_idx(p); }, p, "not found");
    check_error([&] { io::read_npy<float>(p); }, p, "not found");
    check_error([&] { io::read_fvecs(p); }, p, "not found");
    check_error([&] { io::read_matrix(p); }, p, "not found");
  }
  SECTION("directory")
  {
    std::string const p = t.file("sub");
    fs::create_directory(p);
    check_error([&] { io::read_idx(p); }, p, "directory");
    check_error([&] { io::read_matrix(p); }, p, "directory");
  }
}

TEST_CASE("unreadable file", "[io][errors]")
{
  TempDir t;
  std::string const p = t.file("locked.idx");
  write_bytes(p, make_idx(0x08, {1}, {1}));
  fs::permissions(p, fs::perms::none);
  if (::geteuid() != 0)
  {
    check_error([&] { io::read_idx(p); }, p, "cannot open");
    return;
  }
  // Root ignores file permissions (CI runs as root): check as the unprivileged user 'nobody' in
  // a child process, with the directory open to it so that only the file's mode stops it.
  fs::permissions(t.dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
  pid_t const child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0)
  {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0)
      ::_exit(3);
    try
    {
      io::read_idx(p);
      ::_exit(1); // read a file its mode forbids
    }
    catch (fastknn::Error const &e)
    {
      ::_exit(std::string(e.what()).find("cannot open") != std::string::npos ? 0 : 2);
    }
    ::_exit(4);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0); // 1: read anyway, 2: wrong message, 3: could not drop root
}

TEST_CASE("IDX header errors", "[io][idx][errors]")
{
  TempDir t;
  std::string const p = t.file("bad.idx");
  SECTION("first two bytes not zero")
  {
    write_bytes(p, {1, 0, 0x08, 1, 0, 0, 0, 0});
    check_error([&] { io::read_idx(p); }, p, "magic");
  }
  SECTION("unknown type code")
  {
    write_bytes(p, make_idx(0x0A, {1}, {0}));
    check_error([&] { io::read_idx(p); }, p, "magic");
  }
  SECTION("zero dimensions")
  {
    write_bytes(p, {0, 0, 0x08, 0});
    check_error([&] { io::read_idx(p); }, p, "magic");
  }
  SECTION("five dimensions")
  {
    write_bytes(p, make_idx(0x08, {1, 1, 1, 1, 1}, {0}));
    check_error([&] { io::read_idx(p); }, p, "magic");
  }
  SECTION("file shorter than the magic")
  {
    write_bytes(p, {0, 0});
    check_error([&] { io::read_idx(p); }, p, "truncated");
  }
  SECTION("truncated dimension sizes")
  {
    write_bytes(p, {0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0});
    check_error([&] { io::read_idx(p); }, p, "truncated");
  }
  SECTION("size product overflows size_t")
  {
    write_bytes(p, make_idx(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {0}));
    check_error([&] { io::read_idx(p); }, p, "overflows");
  }
  SECTION("element size times count overflows size_t")
  {
    write_bytes(p, make_idx(0x0E, {0xFFFFFFFF, 0xFFFFFFFF}, {0}));
    check_error([&] { io::read_idx(p); }, p, "overflows");
  }
  SECTION("images with a non-ubyte type")
  {
    write_bytes(p, make_idx(0x0D, {1, 1, 1}, {0, 0, 0, 0}));
    check_error([&] { io::read_idx_images(p); }, p, "type");
  }
  SECTION("images with one dimension")
  {
    write_bytes(p, make_idx(0x08, {2}, {0, 0}));
    check_error([&] { io::read_idx_images(p); }, p, "dimension");
  }
  SECTION("labels with two dimensions")
  {
    write_bytes(p, make_idx(0x08, {1, 2}, {0, 0}));
    check_error([&] { io::read_idx_labels(p); }, p, "dimension");
  }
}

TEST_CASE("IDX data size errors", "[io][idx][errors]")
{
  TempDir t;
  std::string const p = t.file("bad.idx");
  SECTION("plain: truncated data")
  {
    write_bytes(p, make_idx(0x08, {2, 2, 2}, iota_bytes(7)));
    check_error([&] { io::read_idx_images(p); }, p, "truncated");
  }
  SECTION("plain: huge declared size fails before allocating")
  {
    write_bytes(p, make_idx(0x08, {0x7FFFFFFF, 0x7FFFFFFF}, iota_bytes(16)));
    check_error([&] { io::read_idx_images(p); }, p, "truncated");
  }
  SECTION("plain: trailing extra bytes")
  {
    write_bytes(p, make_idx(0x08, {2, 2}, iota_bytes(5)));
    check_error([&] { io::read_idx_images(p); }, p, "trailing");
  }
  SECTION("gzip: truncated data")
  {
    write_gz(p, make_idx(0x08, {2, 2, 2}, iota_bytes(7)));
    check_error([&] { io::read_idx_images(p); }, p, "truncated");
  }
  SECTION("gzip: lying header with a huge size does not allocate it")
  {
    write_gz(p, make_idx(0x08, {0x7FFFFFFF, 0x7FFFFFFF}, iota_bytes(100)));
    check_error([&] { io::read_idx_images(p); }, p, "truncated");
  }
  SECTION("gzip: trailing extra bytes")
  {
    write_gz(p, make_idx(0x08, {2}, {1, 2, 3}));
    check_error([&] { io::read_idx_labels(p); }, p, "trailing");
  }
  SECTION("gzip: corrupt stream")
  {
    Bytes b = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03};
    for (int i = 0; i < 64; ++i)
      b.push_back(0xFF);
    write_bytes(p, b);
    check_error([&] { io::read_idx(p); }, p, "gzip");
  }
  SECTION("gzip: compressed stream cut short")
  {
    std::string const whole = t.file("whole.gz");
    write_gz(whole, make_idx(0x08, {1000}, iota_bytes(1000)));
    Bytes b = read_bytes(whole);
    b.resize(b.size() / 2);
    write_bytes(p, b);
    check_error([&] { io::read_idx_labels(p); }, p, "truncated");
  }
}

// ====================================================================== MNIST directory

TEST_CASE("load_mnist_dir reads the four files", "[io][mnist]")
{
  TempDir t;
  SECTION("plain, dash names")
  {
    write_mnist(t, "-", false, 3, 2, 3);
  }
  SECTION("gzip, dot names")
  {
    write_mnist(t, ".", true, 3, 2, 3);
  }
  io::MnistData const d = io::load_mnist_dir(t.dir.string());
  CHECK(d.train.images.rows == 3);
  CHECK(d.train.images.cols == 6);
  CHECK(d.test.images.rows == 2);
  CHECK(d.test.images.cols == 6);
  CHECK(d.train.images.data[17] == 17.0f);
  CHECK(d.test.images.data[0] == 100.0f);
  CHECK(d.train.labels == std::vector<std::int32_t>{1, 2, 3});
  CHECK(d.test.labels == std::vector<std::int32_t>{5, 6});
}

TEST_CASE("load_mnist_dir errors", "[io][mnist][errors]")
{
  TempDir t;
  std::string const dir = t.dir.string();
  SECTION("label count differs from image count")
  {
    write_mnist(t, "-", false, 3, 2, 4);
    check_error([&] { io::load_mnist_dir(dir); }, t.file("train-labels-idx1-ubyte"), "labels");
  }
  SECTION("train and test image sizes differ")
  {
    write_mnist(t, "-", false, 2, 2, 2, 3, 2);
    check_error([&] { io::load_mnist_dir(dir); }, dir, "same image size");
  }
  SECTION("a file is missing")
  {
    write_mnist(t, "-", false, 3, 2, 3);
    fs::remove(t.file("t10k-labels-idx1-ubyte"));
    check_error([&] { io::load_mnist_dir(dir); }, dir, "t10k-labels-idx1-ubyte");
  }
  SECTION("not a directory")
  {
    std::string const p = t.file("missing_dir");
    check_error([&] { io::load_mnist_dir(p); }, p, "not a directory");
  }
}

TEST_CASE("Fashion-MNIST from the Debian package", "[io][mnist][dataset]")
{
  std::string const dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir))
  {
    // CI installs the data set and sets FASTKNN_REQUIRE_TEST_DATA=1: there, absent is a failure.
    if (char const *r = std::getenv("FASTKNN_REQUIRE_TEST_DATA");
        r != nullptr && r == std::string("1"))
      FAIL("dataset-fashion-mnist is not installed (FASTKNN_REQUIRE_TEST_DATA=1)");
    SKIP("dataset-fashion-mnist is not installed");
  }
  io::MnistData const d = io::load_mnist_dir(dir);
  CHECK(d.train.images.rows == 60000);
  CHECK(d.train.images.cols == 784);
  CHECK(d.test.images.rows == 10000);
  CHECK(d.test.images.cols == 784);
  CHECK(d.train.images.data.size() == 60000u * 784u);
  CHECK(d.train.labels.size() == 60000);
  CHECK(d.test.labels.size() == 10000);
  auto in_range = [](std::vector<std::int32_t> const &v)
  { return std::all_of(v.begin(), v.end(), [](std::int32_t l) { return l >= 0 && l <= 9; }); };
  CHECK(in_range(d.train.labels));
  CHECK(in_range(d.test.labels));
  CHECK(*std::max_element(d.train.images.data.begin(), d.train.images.data.end()) <= 255.0f);
}

// ====================================================================== npy

TEST_CASE("npy write/read round-trip for every type", "[io][npy]")
{
  TempDir t;
  std::string const p = t.file("a.npy");
  SECTION("float")
  {
    std::vector<float> const v = {1.5f, -2.25f, 3e-8f, 1e30f, 0.0f, -0.0f};
    io::write_npy(p, v.data(), 2, 3);
    io::Matrix<float> const m = io::read_npy<float>(p);
    CHECK(m.rows == 2);
    CHECK(m.cols == 3);
    CHECK(m.data == v);
    CHECK(io::read_npy<double>(p).data[1] == -2.25);
    CHECK(io::read_matrix(p).data == v);
    CHECK(read_bytes(p).size() == 128 + 24); // header padded to 64 bytes
  }
  SECTION("double")
  {
    std::vector<double> const v = {0.1, -1e300, 42.0};
    io::write_npy(p, v.data(), 3, 1);
    io::Matrix<double> const m = io::read_npy<double>(p);
    CHECK(m.rows == 3);
    CHECK(m.cols == 1);
    CHECK(m.data == v);
  }
  SECTION("int32")
  {
    std::vector<std::int32_t> const v = {-2147483647 - 1, 2147483647, 0, -7};
    io::write_npy(p, v.data(), 1, 4);
    CHECK(io::read_npy<std::int32_t>(p).data == v);
    CHECK(io::read_npy<std::int64_t>(p).data == std::vector<std::int64_t>(v.begin(), v.end()));
  }
  SECTION("int64")
  {
    std::vector<std::int64_t> const v = {INT64_MIN, INT64_MAX, -3};
    io::write_npy(p, v.data(), 3, 1);
    CHECK(io::read_npy<std::int64_t>(p).data == v);
  }
  SECTION("uint8")
  {
    std::vector<std::uint8_t> const v = {0, 128, 255, 7};
    io::write_npy(p, v.data(), 2, 2);
    io::Matrix<float> const m = io::read_npy<float>(p);
    CHECK(m.rows == 2);
    CHECK(m.data == std::vector<float>{0, 128, 255, 7});
    CHECK(io::read_npy<std::int32_t>(p).data == std::vector<std::int32_t>{0, 128, 255, 7});
  }
  SECTION("empty")
  {
    io::write_npy<float>(p, nullptr, 0, 5);
    io::Matrix<float> const m = io::read_npy<float>(p);
    CHECK(m.rows == 0);
    CHECK(m.cols == 5);
    CHECK(m.data.empty());
  }
}

TEST_CASE("npy hand-made headers", "[io][npy]")
{
  TempDir t;
  std::string const p = t.file("a.npy");
  SECTION("version 2.0, double-quoted keys, 1-D shape")
  {
    write_bytes(p, make_npy(R"({"descr": "<i4", "fortran_order": False, "shape": (3,)})",
                            le_bytes(std::vector<std::int32_t>{4, -5, 6}), 2));
    io::Matrix<std::int32_t> const m = io::read_npy<std::int32_t>(p);
    CHECK(m.rows == 3);
    CHECK(m.cols == 1);
    CHECK(m.data == std::vector<std::int32_t>{4, -5, 6});
  }
  SECTION("version 3.0, key order changed, |i1")
  {
    write_bytes(p, make_npy("{'shape': (1, 3), 'fortran_order': False, 'descr': '|i1', }",
                            {0xFF, 0x80, 0x05}, 3));
    CHECK(io::read_npy<float>(p).data == std::vector<float>{-1, -128, 5});
  }
  SECTION("<i8 and <f8 narrowed to int32 when the values fit")
  {
    write_bytes(p, make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
                            le_bytes(std::vector<std::int64_t>{-9, 2147483647})));
    CHECK(io::read_npy<std::int32_t>(p).data == std::vector<std::int32_t>{-9, 2147483647});
    write_bytes(p, make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                            le_bytes(std::vector<double>{-3.0, 8.0})));
    CHECK(io::read_npy<std::int32_t>(p).data == std::vector<std::int32_t>{-3, 8});
  }
}

TEST_CASE("npy errors", "[io][npy][errors]")
{
  TempDir t;
  std::string const p = t.file("bad.npy");
  std::string const good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  Bytes const data16 = iota_bytes(16);
  auto read = [&] { io::read_npy<float>(p); };
  SECTION("bad magic")
  {
    Bytes b = make_npy(good, data16);
    b[1] = 'X';
    write_bytes(p, b);
    check_error(read, p, "magic");
  }
  SECTION("file shorter than the magic")
  {
    write_bytes(p, {0x93, 'N'});
    check_error(read, p, "magic");
  }
  SECTION("unsupported version 4.0")
  {
    write_bytes(p, make_npy(good, data16, 4, 0));
    check_error(read, p, "version");
  }
  SECTION("unsupported version 1.1")
  {
    write_bytes(p, make_npy(good, data16, 1, 1));
    check_error(read, p, "version");
  }
  SECTION("header is not a dict")
  {
    write_bytes(p, make_npy("descr=<f4 shape=2x2", data16));
    check_error(read, p, "parseable dict");
  }
  SECTION("header dict is unterminated")
  {
    write_bytes(p, make_npy("{'descr': '<f4', 'shape': (2, 2)", data16));
    check_error(read, p, "parseable dict");
  }
  SECTION("header truncated")
  {
    Bytes b = make_npy(good, data16);
    b.resize(30);
    write_bytes(p, b);
    check_error(read, p, "truncated");
  }
  SECTION("missing key")
  {
    write_bytes(p, make_npy("{'descr': '<f4', 'fortran_order': False, }", data16));
    check_error(read, p, "missing the key 'shape'");
  }
  SECTION("unsupported dtype")
  {
    write_bytes(p, make_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", data16));
    check_error(read, p, "dtype");
  }
  SECTION("big-endian dtype")
  {
    write_bytes(p, make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", data16));
    check_error(read, p, "big-endian");
  }
  SECTION("fortran order")
  {
    write_bytes(p, make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data16));
    check_error(read, p, "Fortran");
  }
  SECTION("three dimensions")
  {
    write_bytes(p,
                make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 2), }", data16));
    check_error(read, p, "dimensions");
  }
  SECTION("zero dimensions")
  {
    write_bytes(p,
                make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", {0, 0, 0, 0}));
    check_error(read, p, "dimensions");
  }
  SECTION("shape product overflows")
  {
    write_bytes(p, make_npy("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (4294967296, 4294967296), }",
                            data16));
    check_error(read, p, "overflows");
  }
  SECTION("shape entry overflows")
  {
    write_bytes(p, make_npy("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (99999999999999999999999, 1), }",
                            data16));
    check_error(read, p, "overflows");
  }
  SECTION("truncated data")
  {
    write_bytes(p, make_npy(good, iota_bytes(15)));
    check_error(read, p, "truncated");
  }
  SECTION("extra data")
  {
    write_bytes(p, make_npy(good, iota_bytes(17)));
    check_error(read, p, "trailing");
  }
  SECTION("value not representable in the requested type")
  {
    write_bytes(p, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                            le_bytes(std::vector<float>{1.5f})));
    check_error([&] { io::read_npy<std::int32_t>(p); }, p, "cannot be represented");
    write_bytes(p, make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
                            le_bytes(std::vector<std::int64_t>{std::int64_t{1} << 40})));
    check_error([&] { io::read_npy<std::int32_t>(p); }, p, "cannot be represented");
  }
  SECTION("write to a missing directory")
  {
    std::string const q = t.file("no/such/dir/out.npy");
    float const v = 1.0f;
    check_error([&] { io::write_npy(q, &v, 1, 1); }, q, "cannot open for writing");
  }
  SECTION("a failed write leaves neither the file nor a partial one")
  {
    fs::create_directory(p); // rename onto a directory fails after the bytes were written
    float const v = 1.0f;
    check_error([&] { io::write_npy(p, &v, 1, 1); }, p, "cannot replace");
    CHECK(fs::is_directory(p));
    CHECK(!fs::exists(p + ".partial"));
    fs::remove(p);
  }
  SECTION("a complete write replaces the old file and leaves no partial one")
  {
    write_bytes(p, {1, 2, 3});
    float const v[2] = {4.0f, 5.0f};
    io::write_npy(p, v, 1, 2);
    CHECK(io::read_npy<float>(p).data == std::vector<float>{4.0f, 5.0f});
    CHECK(!fs::exists(p + ".partial"));
  }
  SECTION("write with null data")
  {
    check_error([&] { io::write_npy<float>(p, nullptr, 2, 2); }, p, "null");
  }
}

// ====================================================================== fvecs / ivecs / bvecs

TEST_CASE("fvecs, ivecs, bvecs round-trip", "[io][vecs]")
{
  TempDir t;
  write_bytes(t.file("a.fvecs"), make_vecs<float>({{1.5f, -2.0f, 3.0f}, {0.0f, 1e-3f, 7.0f}}));
  write_bytes(t.file("a.ivecs"), make_vecs<std::int32_t>({{1, -2}, {3, 2147483647}, {0, 5}}));
  write_bytes(t.file("a.bvecs"), make_vecs<std::uint8_t>({{0, 255, 9, 10}}));
  write_gz(t.file("gz.fvecs"), make_vecs<float>({{4.0f}, {5.0f}}));

  io::Matrix<float> const f = io::read_fvecs(t.file("a.fvecs"));
  CHECK(f.rows == 2);
  CHECK(f.cols == 3);
  CHECK(f.data == std::vector<float>{1.5f, -2.0f, 3.0f, 0.0f, 1e-3f, 7.0f});

  io::Matrix<std::int32_t> const i = io::read_ivecs(t.file("a.ivecs"));
  CHECK(i.rows == 3);
  CHECK(i.cols == 2);
  CHECK(i.data == std::vector<std::int32_t>{1, -2, 3, 2147483647, 0, 5});

  io::Matrix<float> const b = io::read_bvecs(t.file("a.bvecs"));
  CHECK(b.rows == 1);
  CHECK(b.cols == 4);
  CHECK(b.data == std::vector<float>{0, 255, 9, 10});

  io::Matrix<float> const g = io::read_fvecs(t.file("gz.fvecs"));
  CHECK(g.rows == 2);
  CHECK(g.data == std::vector<float>{4, 5});
}

TEST_CASE("vecs errors", "[io][vecs][errors]")
{
  TempDir t;
  std::string const p = t.file("bad.fvecs");
  SECTION("empty file")
  {
    write_bytes(p, {});
    check_error([&] { io::read_fvecs(p); }, p, "empty");
  }
  SECTION("zero dimension")
  {
    write_bytes(p, {0, 0, 0, 0});
    check_error([&] { io::read_fvecs(p); }, p, "dimension 0");
  }
  SECTION("negative dimension")
  {
    write_bytes(p, {0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0});
    check_error([&] { io::read_ivecs(p); }, p, "dimension -1");
  }
  SECTION("absurd dimension")
  {
    Bytes b;
    put_le32(b, (1u << 24) + 1);
    write_bytes(p, b);
    check_error([&] { io::read_bvecs(p); }, p, "dimension 16777217");
  }
  SECTION("inconsistent dimension")
  {
    write_bytes(p, make_vecs<float>({{1, 2}, {3, 4}, {5, 6, 7}}));
    check_error([&] { io::read_fvecs(p); }, p, "inconsistent");
  }
  SECTION("truncated last record data")
  {
    Bytes b = make_vecs<float>({{1, 2}, {3, 4}});
    b.pop_back();
    write_bytes(p, b);
    check_error([&] { io::read_fvecs(p); }, p, "truncated record 1");
  }
  SECTION("truncated dimension field")
  {
    Bytes b = make_vecs<std::uint8_t>({{1, 2}});
    b.push_back(2);
    write_bytes(p, b);
    check_error([&] { io::read_bvecs(p); }, p, "truncated record 1");
  }
  SECTION("file shorter than one dimension field")
  {
    write_bytes(p, {3, 0});
    check_error([&] { io::read_fvecs(p); }, p, "truncated");
  }
}

// ====================================================================== read_matrix

TEST_CASE("read_matrix dispatches on extension and IDX magic", "[io][matrix]")
{
  TempDir t;
  write_bytes(t.file("x.FVECS"), make_vecs<float>({{1, 2}, {3, 4}}));
  write_bytes(t.file("x.bvecs"), make_vecs<std::uint8_t>({{1, 2}, {3, 4}}));
  write_bytes(t.file("x.ivecs"), make_vecs<std::int32_t>({{1, 2}, {3, 4}}));
  std::vector<double> const d = {1, 2, 3, 4};
  io::write_npy(t.file("x.npy"), d.data(), 2, 2);
  write_bytes(t.file("x-idx3-ubyte"), make_idx(0x08, {2, 1, 2}, {1, 2, 3, 4}));
  write_gz(t.file("x.idx.gz"), make_idx(0x08, {2, 2}, {1, 2, 3, 4}));
  for (std::string name : {"x.FVECS", "x.bvecs", "x.ivecs", "x.npy", "x-idx3-ubyte", "x.idx.gz"})
  {
    INFO(name);
    io::Matrix<float> const m = io::read_matrix(t.file(name));
    CHECK(m.rows == 2);
    CHECK(m.cols == 2);
    CHECK(m.data == std::vector<float>{1, 2, 3, 4});
  }
  write_bytes(t.file("labels"), make_idx(0x08, {3}, {7, 8, 9}));
  io::Matrix<float> const l = io::read_matrix(t.file("labels"));
  CHECK(l.rows == 3);
  CHECK(l.cols == 1);
}

TEST_CASE("read_matrix keeps a RowPart's rows, in every format", "[io][matrix][part]")
{
  TempDir t;
  std::size_t const n = 11, d = 3;
  std::vector<std::vector<float>> rows(n);
  Bytes pixels;
  std::vector<float> all;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j)
    {
      rows[i].push_back(float(i * d + j));
      pixels.push_back(static_cast<unsigned char>(i * d + j));
      all.push_back(float(i * d + j));
    }
  write_bytes(t.file("x.fvecs"), make_vecs<float>(rows));
  io::write_npy(t.file("x.npy"), all.data(), n, d);
  write_bytes(t.file("x-idx"), make_idx(0x08, {std::uint32_t(n), 1, std::uint32_t(d)}, pixels));
  write_gz(t.file("x-idx.gz"), make_idx(0x08, {std::uint32_t(n), std::uint32_t(d)}, pixels));
  for (std::string name : {"x.fvecs", "x.npy", "x-idx", "x-idx.gz"})
    for (std::size_t parts : {std::size_t(1), std::size_t(3), std::size_t(4), std::size_t(13)})
      for (std::size_t limit : {std::size_t(-1), std::size_t(7)})
      {
        INFO(name << " parts " << parts << " limit " << limit);
        std::vector<float> joined;
        std::size_t next = 0;
        for (std::size_t p = 0; p < parts; ++p)
        {
          io::Matrix<float> const m = io::read_matrix(t.file(name), io::RowPart{p, parts, limit});
          CHECK(m.first_row == next);
          CHECK(m.file_rows == n);
          CHECK(m.cols == d);
          CHECK(m.data.size() == m.rows * d);
          // Parts differ by at most one row.
          std::size_t const kept = std::min(n, limit);
          CHECK(m.rows >= kept / parts);
          CHECK(m.rows <= kept / parts + 1);
          next += m.rows;
          joined.insert(joined.end(), m.data.begin(), m.data.end());
        }
        CHECK(joined == std::vector<float>(all.begin(),
                                           all.begin() + std::ptrdiff_t(std::min(n, limit) * d)));
      }
  // A part of a truncated file is still an error (the rest of the file is read and checked).
  Bytes cut = make_idx(0x08, {std::uint32_t(n), std::uint32_t(d)}, pixels);
  cut.resize(cut.size() - 2);
  write_bytes(t.file("cut-idx"), cut);
  write_gz(t.file("cut-idx.gz"), cut);
  for (std::string name : {"cut-idx", "cut-idx.gz"})
    check_error(
        [&] {
          io::read_matrix(t.file(name), io::RowPart{0, 4});
        },
        t.file(name), "truncated");
}

TEST_CASE("read_matrix rejects unknown formats", "[io][matrix][errors]")
{
  TempDir t;
  std::string const p = t.file("data.csv");
  write_bytes(p, {'1', ',', '2', '\n'});
  check_error([&] { io::read_matrix(p); }, p, "unrecognised file format");
  std::string const q = t.file("tiny");
  write_bytes(q, {0, 0});
  check_error([&] { io::read_matrix(q); }, q, "unrecognised file format");
}

TEST_CASE("big-ann-benchmarks .fbin, .u8bin, .i8bin and ground-truth files", "[io][bin]")
{
  TempDir t;
  auto const header = [](std::uint32_t n, std::uint32_t d)
  {
    Bytes b(8);
    io::detail::store_uint_le(n, b.data());
    io::detail::store_uint_le(d, b.data() + 4);
    return b;
  };
  // 3 x 2 of each type; the values are exact in float.
  Bytes u8 = header(3, 2), i8 = header(3, 2), f32 = header(3, 2);
  std::vector<float> const want = {0, 255, 7, 128, 1, 2}, want_i8 = {0, -1, 7, -128, 1, 127};
  for (float v : want)
    u8.push_back(static_cast<unsigned char>(v));
  for (float v : want_i8)
    i8.push_back(static_cast<unsigned char>(static_cast<std::int8_t>(v)));
  for (float v : want_i8)
  {
    auto const u = std::bit_cast<std::uint32_t>(v * 0.5f);
    for (int s = 0; s < 32; s += 8)
      f32.push_back(static_cast<unsigned char>(u >> s));
  }
  write_bytes(t.file("a.u8bin"), u8);
  write_bytes(t.file("a.i8bin"), i8);
  write_bytes(t.file("a.fbin"), f32);
  auto const m = io::read_matrix(t.file("a.u8bin"));
  CHECK(m.rows == 3);
  CHECK(m.cols == 2);
  CHECK(m.data == want);
  CHECK(io::read_matrix(t.file("a.i8bin")).data == want_i8);
  auto const f = io::read_matrix(t.file("a.fbin"));
  for (std::size_t i = 0; i < want_i8.size(); ++i)
    CHECK(f.data[i] == want_i8[i] * 0.5f);
  // Any run of rows, and a RowPart.
  io::BinFile file(t.file("a.i8bin"));
  std::vector<float> rows(4);
  file.read_rows(1, 2, rows.data());
  CHECK(rows == std::vector<float>(want_i8.begin() + 2, want_i8.end()));
  check_error([&] { file.read_rows(2, 2, rows.data()); }, t.file("a.i8bin"), "past its 3 rows");
  auto const part = io::read_matrix(t.file("a.u8bin"), io::RowPart{1, 2});
  CHECK(part.first_row == 2);
  CHECK(part.data == std::vector<float>{1, 2});
  // Size and header errors.
  Bytes cut(u8.begin(), u8.end() - 1);
  write_bytes(t.file("cut.u8bin"), cut);
  check_error([&] { io::read_matrix(t.file("cut.u8bin")); }, t.file("cut.u8bin"), "truncated");
  write_bytes(t.file("short.fbin"), Bytes{1, 0, 0});
  check_error([&] { io::read_matrix(t.file("short.fbin")); }, t.file("short.fbin"),
              "truncated header");
  write_bytes(t.file("zero.u8bin"), header(0, 4));
  check_error([&] { io::read_matrix(t.file("zero.u8bin")); }, t.file("zero.u8bin"), "at least");
  write_bytes(t.file("huge.u8bin"), header(0xffffffffu, 0xffffffffu));
  check_error([&] { io::read_matrix(t.file("huge.u8bin")); }, t.file("huge.u8bin"), "needs");
  // Ground truth: uint32 n, uint32 k, ids, distances.
  std::vector<std::int32_t> const ids = {4, 1, 0, 2};
  std::vector<float> const dist = {0.5f, 1.0f, 0.0f, 3.0f};
  io::write_groundtruth_bin(t.file("gt.bin"), ids.data(), dist.data(), 2, 2);
  Bytes const g = read_bytes(t.file("gt.bin"));
  REQUIRE(g.size() == 8 + 16 + 16);
  CHECK(io::detail::load_uint<std::uint32_t>(g.data(), false) == 2);
  CHECK(io::detail::load_uint<std::uint32_t>(g.data() + 4, false) == 2);
  CHECK(io::detail::load_uint<std::uint32_t>(g.data() + 8 + 4 * 3, false) == 2);
  CHECK(std::bit_cast<float>(io::detail::load_uint<std::uint32_t>(g.data() + 24 + 4 * 3, false)) ==
        3.0f);
  CHECK(!fs::exists(t.file("gt.bin.partial")));
}
