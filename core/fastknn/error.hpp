#pragma once
/// \file fastknn/error.hpp
/// The one exception type fastknn throws for bad input, bad files and failed resources.

#include <stdexcept>
#include <string>

namespace fastknn
{

/// Thrown for every host-side error. The message names the argument (or file) and says what to do.
class Error : public std::invalid_argument
{
public:
  explicit Error(std::string const &what) : std::invalid_argument("fastknn: " + what) {}
};

/// Thrown when a search was asked to stop (its progress callback returned false). The search
/// frees its workspace and leaves no partial result.
class Cancelled : public Error
{
public:
  explicit Cancelled(std::string const &what) : Error(what) {}
};

namespace detail
{
/// Throws fastknn::Error(msg) when cond is false.
inline void require(bool cond, std::string const &msg)
{
  if (!cond)
    throw Error(msg);
}
} // namespace detail

} // namespace fastknn
