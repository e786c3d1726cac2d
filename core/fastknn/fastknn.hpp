#pragma once
/// \file fastknn/fastknn.hpp
/// Umbrella header: the search library (search, radius_search, Index, the classifier, options,
/// errors). The loaders are <fastknn/io.hpp> (target FastKNN::io).

#include <fastknn/classifier.hpp>
#include <fastknn/config.hpp>
#include <fastknn/error.hpp>
#include <fastknn/index.hpp>
#include <fastknn/options.hpp>
#include <fastknn/radius.hpp>
#include <fastknn/search.hpp>
