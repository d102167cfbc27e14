#include "services/lending/core/outbox_backlog.h"

#include <algorithm>

namespace microlend::lending {

void OutboxBacklog::Committed(size_t events) {
  absl::MutexLock lock(&mu_);
  if (unpublished_ <= max_events_) last_progress_ = absl::Now();  // waiting starts from here
  unpublished_ += events;
}

void OutboxBacklog::Published(size_t events) {
  absl::MutexLock lock(&mu_);
  unpublished_ -= std::min(unpublished_, events);
  last_progress_ = absl::Now();
}

void OutboxBacklog::WaitForRoom() {
  absl::MutexLock lock(&mu_);
  while (unpublished_ > max_events_) {
    const absl::Time give_up = last_progress_ + stalled_after_;
    if (absl::Now() >= give_up) return;  // the relay is stuck: the outbox absorbs the rest
    mu_.AwaitWithDeadline(absl::Condition(
                              +[](OutboxBacklog* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
                                return b->unpublished_ <= b->max_events_;
                              },
                              this),
                          give_up);
  }
}

size_t OutboxBacklog::unpublished() const {
  absl::MutexLock lock(&mu_);
  return unpublished_;
}

}  // namespace microlend::lending
