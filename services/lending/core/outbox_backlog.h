// OutboxBacklog: how far the committer may run ahead of the outbox relay. The committer counts
// the events each group commits, the relay the events it publishes; before each group the
// committer waits while more than `max_events` are committed and unpublished. The relay then
// renders every event from RecentTransfers (ADR 0008) instead of falling behind it and reading
// transfers back from PostgreSQL, and a throughput figure is one the relay sustains (ADR 0010).
//
// The outbox still absorbs an outage: when the relay has published nothing for `stalled_after`
// (Redis down, say), the committer stops waiting and the backlog grows in PostgreSQL as before.
// Counts are approximate by design: after a restart the backlog left in PostgreSQL is not
// counted; events written outside the committer are only counted when published, which lets the
// committer run further ahead (never less far); the relay may count events published before the
// committer counts them committed (the count goes below zero for that moment). When the committer
// stops waiting for a stalled relay, it forgets all but max_events of the backlog, so that the
// relay catching up after an outage does not hold the committer back. Waiting uses real time,
// not the business clock. Thread-safe.
#ifndef MICROLEND_SERVICES_LENDING_CORE_OUTBOX_BACKLOG_H_
#define MICROLEND_SERVICES_LENDING_CORE_OUTBOX_BACKLOG_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace microlend::lending {

class OutboxBacklog {
 public:
  OutboxBacklog(size_t max_events, absl::Duration stalled_after)
      : max_events_(max_events), stalled_after_(stalled_after) {}

  // Called by Committed, outside the backlog's lock (the relay's Wake, so that it publishes
  // without waiting for its next poll). Set it before the committer starts; not thread-safe.
  void OnCommitted(std::function<void()> listener) { on_committed_ = std::move(listener); }
  // The committer: `events` more were committed.
  void Committed(size_t events);
  // The relay: `events` more were published.
  void Published(size_t events);
  // The committer, before a group: returns once at most max_events are unpublished, or once the
  // relay has published nothing for stalled_after.
  void WaitForRoom();

  // Committed minus published (negative for a moment when the relay counts first).
  int64_t unpublished() const;

 private:
  const size_t max_events_;
  const absl::Duration stalled_after_;
  std::function<void()> on_committed_;
  mutable absl::Mutex mu_;
  int64_t unpublished_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_) = absl::Now();
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_OUTBOX_BACKLOG_H_
