#include "services/lending/core/outbox_backlog.h"

#include <algorithm>

namespace microlend::lending {

void OutboxBacklog::Committed(size_t events) {
  {
    absl::MutexLock lock(&mu_);
    if (unpublished_ <= static_cast<int64_t>(max_events_)) last_progress_ = absl::Now();
    unpublished_ += static_cast<int64_t>(events);
  }
  if (events > 0 && on_committed_) on_committed_();
}

void OutboxBacklog::Published(size_t events) {
  absl::MutexLock lock(&mu_);
  unpublished_ -= static_cast<int64_t>(events);
  last_progress_ = absl::Now();
}

void OutboxBacklog::WaitForRoom() {
  const int64_t max = static_cast<int64_t>(max_events_);
  absl::MutexLock lock(&mu_);
  while (unpublished_ > max) {
    const absl::Time give_up = last_progress_ + stalled_after_;
    if (absl::Now() >= give_up) {
      // The relay is stuck: the outbox absorbs the rest, and it is not waited for again.
      unpublished_ = max;
      return;
    }
    mu_.AwaitWithDeadline(absl::Condition(
                              +[](OutboxBacklog* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
                                return b->unpublished_ <= static_cast<int64_t>(b->max_events_);
                              },
                              this),
                          give_up);
  }
}

int64_t OutboxBacklog::unpublished() const {
  absl::MutexLock lock(&mu_);
  return unpublished_;
}

}  // namespace microlend::lending
