#pragma once
/// \file fastknn/fastknn.hpp
/// Umbrella header: everything a fastknn user needs.

#include <fastknn/backend.hpp>
#include <fastknn/classifier.hpp>
#include <fastknn/config.hpp>
#include <fastknn/error.hpp>
#include <fastknn/options.hpp>
#include <fastknn/search.hpp>
