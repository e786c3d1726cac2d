#pragma once
/// \file fastknn/detail/progress.hpp
/// Progress reports and cancellation between kernel launches.

#include <Kokkos_Core.hpp>

#include <chrono>

#include <fastknn/error.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

/// Reports progress after the first block of work, then at most a few times a second (fencing
/// first, so the fraction is true); throws Cancelled when the callback asks to stop.
class ProgressReporter
{
public:
  explicit ProgressReporter(ProgressCallback const &cb) : _cb(cb) {}
  template <class ExecSpace>
  void update(ExecSpace const &space, double fraction)
  {
    if (!_cb)
      return;
    auto const now = std::chrono::steady_clock::now();
    if (_reported && now - _last < std::chrono::milliseconds(200))
      return;
    space.fence("fastknn::search::progress");
    _last = now;
    _reported = true;
    if (!_cb(fraction))
      throw Cancelled("the search was stopped by its progress callback; no result was kept");
  }
  /// The work is complete: the callback's answer no longer matters.
  void done()
  {
    if (_cb)
      static_cast<void>(_cb(1.0));
  }

private:
  ProgressCallback const &_cb;
  std::chrono::steady_clock::time_point _last{};
  bool _reported = false;
};

} // namespace fastknn::detail
