#pragma once
/// \file fastknn/io/idx.hpp
/// IDX files (the MNIST format), plain or gzip, and MNIST-format data set directories.

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
                                 std::size_t min_dims, std::size_t max_dims, char const *kind,
                                 RowPart const &part = {})
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
  a.file_rows = a.dims[0];
  std::size_t const row_elems = a.dims[0] == 0 ? 1 : count / a.dims[0];
  auto const [first, end] = part.range(a.dims[0]);
  a.first_row = first;
  a.dims[0] = end - first;
  read_payload(
      in, a.data, count, idx_element_size(code), "IDX data",
      [code](unsigned char const *p) { return idx_to_float(code, p); }, first * row_elems,
      end * row_elems);
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
  m.first_row = a.first_row;
  m.file_rows = a.file_rows;
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

} // namespace detail

/// Returns the contents of an IDX file (plain or gzip) with all elements converted to float
/// (or only the rows of `part` along the first dimension).
inline IdxArray read_idx(std::string const &path, RowPart const &part = {})
{
  return detail::read_idx_checked(path, 0, 1, 4, "IDX file", part);
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
/// With parts, each split keeps only those rows of its images and labels (the files are still
/// read and checked to the end).
inline MnistData load_mnist_dir(std::string const &dir, RowPart const &train_part = {},
                                RowPart const &test_part = {})
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
    RowPart const &part = s == 0 ? train_part : test_part;
    IdxArray images = detail::read_idx_checked(images_path, 0x08, 3, 3, "an image file", part);
    shapes[s].assign(images.dims.begin() + 1, images.dims.end());
    LabeledSplit &split = s == 0 ? out.train : out.test;
    split.images = detail::idx_to_matrix(std::move(images));
    IdxArray const labels = detail::read_idx_checked(labels_path, 0x08, 1, 1, "a label file", part);
    split.labels = detail::idx_to_labels(labels);
    if (labels.file_rows != split.images.file_rows)
      throw detail::file_error(labels_path,
                               "has " + std::to_string(labels.file_rows) + " labels but '" +
                                   images_path + "' has " + std::to_string(split.images.file_rows) +
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

} // namespace fastknn::io
