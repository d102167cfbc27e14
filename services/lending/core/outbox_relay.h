// OutboxRelay: moves committed outbox events to the event stream, at least once, in sequence
// order. A background thread fetches the events after the published cursor, publishes them, and
// only then moves the cursor; a crash between the two republishes them, which consumers absorb
// by deduplicating on event_id. Publishing failures are retried with a capped backoff; nothing
// is dropped.
//
// Gaps: a sequence number missing after the cursor is either a transaction that rolled back
// (the number is never used) or one whose commit is not visible yet (an in-doubt commit can
// land late). The relay publishes only the contiguous run after the cursor, and steps over a
// gap only when the event after it is older than `gap_settle`, by when a late commit would have
// become visible. Start/Stop/RelayOnce/Wake are thread-safe.
#ifndef MICROLEND_SERVICES_LENDING_CORE_OUTBOX_RELAY_H_
#define MICROLEND_SERVICES_LENDING_CORE_OUTBOX_RELAY_H_

#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "services/lending/core/ledger_store.h"
#include "services/lending/core/outbox_backlog.h"

namespace microlend::lending {

// Where events go (Redis Streams in production). OK means every event is durably accepted.
class EventPublisher {
 public:
  virtual ~EventPublisher() = default;
  virtual absl::Status Publish(const std::vector<OutboxEvent>& events) = 0;
};

struct OutboxRelayOptions {
  size_t batch_size = 10000;  // events per round: each round also reads and moves the cursor (an fsync)
  absl::Duration gap_settle = absl::Seconds(5);
  // After a round that found nothing, the relay waits idle_poll, and twice as long after each
  // further empty round, up to max_idle_poll; Wake() cuts any wait short. With max_idle_poll
  // above idle_poll, wire Wake() to every commit (OutboxBacklog::OnCommitted): events written
  // elsewhere (another server) then wait up to max_idle_poll.
  absl::Duration idle_poll = absl::Milliseconds(20);
  absl::Duration max_idle_poll = absl::Milliseconds(20);
  absl::Duration max_backoff = absl::Seconds(2);
  // Told how many events each round published (the committer waits on it); may be null.
  OutboxBacklog* backlog = nullptr;
};

class OutboxRelay {
 public:
  // `source`, `publisher` and `clock` outlive the relay.
  OutboxRelay(OutboxSource* source, EventPublisher* publisher, const Clock* clock,
              OutboxRelayOptions options = {})
      : source_(source), publisher_(publisher), clock_(clock), options_(options) {}
  ~OutboxRelay() { Stop(); }

  void Start();
  void Stop();
  // One round: returns how many events were published (0 when none were waiting).
  absl::StatusOr<size_t> RelayOnce();
  // Events were committed: the background thread starts its next round now instead of after
  // its idle wait (or right after the round it is in).
  void Wake();

 private:
  void Loop();
  bool StoppingOrWoken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(stop_mu_);

  OutboxSource* source_;
  EventPublisher* publisher_;
  const Clock* clock_;
  OutboxRelayOptions options_;
  absl::Mutex run_mu_;   // one round at a time
  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  bool woken_ ABSL_GUARDED_BY(stop_mu_) = false;     // Wake() since the round began
  bool wakeable_ ABSL_GUARDED_BY(stop_mu_) = true;   // the last round did not fail
  std::thread thread_;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_OUTBOX_RELAY_H_
