#pragma once
/// \file fastknn/io/matrix.hpp
/// The in-memory results of the loaders: a dense row-major matrix, IDX contents, MNIST splits.
/// No dependency beyond the standard library (the classifier takes io::Matrix).

#include <cstddef>
#include <cstdint>
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
  /// Read as a part of a file (io::RowPart): the file row that is row 0 here, and the rows the
  /// file holds (0 when unknown: matrices built in memory).
  std::size_t first_row = 0, file_rows = 0;
};

/// The rows a loader keeps: of the file's first `limit` rows, the `part`-th of `parts` nearly
/// equal consecutive runs (e.g. one per MPI rank). The default keeps every row.
struct RowPart
{
  std::size_t part = 0, parts = 1;
  std::size_t limit = static_cast<std::size_t>(-1);
  /// Rows [first, end) of a file with `rows` rows.
  std::pair<std::size_t, std::size_t> range(std::size_t rows) const
  {
    std::size_t const n = rows < limit ? rows : limit;
    std::size_t const base = n / parts, extra = n % parts;
    std::size_t const first = part * base + (part < extra ? part : extra);
    return {first, first + base + (part < extra ? 1 : 0)};
  }
  bool whole() const { return parts == 1 && limit == static_cast<std::size_t>(-1); }
};

/// Contents of a generic IDX file: its dimensions, its elements converted to float, its type code.
struct IdxArray
{
  std::vector<std::size_t> dims; // dims[0]: the rows read (all, or those of a RowPart)
  std::vector<float> data;
  unsigned char type_code = 0;
  std::size_t first_row = 0, file_rows = 0; // as in Matrix
};

/// One MNIST split: n x (rows*cols) images with values 0..255 and their n labels.
struct LabeledSplit
{
  Matrix<float> images; // first_row and file_rows say which rows a RowPart kept
  std::vector<std::int32_t> labels;
};

/// The training and test splits of an MNIST-format data set.
struct MnistData
{
  LabeledSplit train, test;
};

} // namespace fastknn::io
