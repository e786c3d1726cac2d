#pragma once
/// \file fastknn/io/matrix.hpp
/// The in-memory results of the loaders: a dense row-major matrix, IDX contents, MNIST splits.
/// No dependency beyond the standard library (the classifier takes io::Matrix).

#include <cstddef>
#include <cstdint>
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

} // namespace fastknn::io
