// PeriodicTask: runs a function on its own thread every `interval` until stopped (the expiry
// sweep, the relay's fallback polls). Stop() wakes it at once and joins. The function must not
// throw; its failures are its own to log.
#ifndef MICROLEND_COMMON_PERIODIC_H_
#define MICROLEND_COMMON_PERIODIC_H_

#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace microlend {

class PeriodicTask {
 public:
  PeriodicTask(absl::Duration interval, std::function<void()> fn)
      : interval_(interval), fn_(std::move(fn)) {}
  ~PeriodicTask() { Stop(); }

  void Start() {
    thread_ = std::thread([this] {
      while (true) {
        {
          absl::MutexLock lock(&mu_);
          if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_)) return;
        }
        fn_();
      }
    });
  }
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  absl::Duration interval_;
  std::function<void()> fn_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace microlend

#endif  // MICROLEND_COMMON_PERIODIC_H_
