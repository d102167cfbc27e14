// OutboxRelay: moves committed outbox events to the event stream, at least once, in sequence
// order. A background thread fetches the oldest unpublished events, publishes them, and only
// then marks them published; a crash between the two republishes them, which consumers absorb
// by deduplicating on event_id. Publishing failures are retried with a capped backoff; nothing
// is dropped. Start/Stop/RelayOnce are thread-safe.
#ifndef MICROLEND_SERVICES_LENDING_CORE_OUTBOX_RELAY_H_
#define MICROLEND_SERVICES_LENDING_CORE_OUTBOX_RELAY_H_

#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "services/lending/core/ledger_store.h"

namespace microlend::lending {

// Where events go (Redis Streams in production). OK means every event is durably accepted.
class EventPublisher {
 public:
  virtual ~EventPublisher() = default;
  virtual absl::Status Publish(const std::vector<OutboxEvent>& events) = 0;
};

struct OutboxRelayOptions {
  size_t batch_size = 2000;
  absl::Duration idle_poll = absl::Milliseconds(20);
  absl::Duration max_backoff = absl::Seconds(2);
};

class OutboxRelay {
 public:
  // `store`, `publisher` outlive the relay.
  OutboxRelay(LedgerStore* store, EventPublisher* publisher, OutboxRelayOptions options = {})
      : store_(store), publisher_(publisher), options_(options) {}
  ~OutboxRelay() { Stop(); }

  void Start();
  void Stop();
  // One round: returns how many events were published (0 when none were waiting).
  absl::StatusOr<size_t> RelayOnce();

 private:
  void Loop();

  LedgerStore* store_;
  EventPublisher* publisher_;
  OutboxRelayOptions options_;
  absl::Mutex run_mu_;   // one round at a time
  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread thread_;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_OUTBOX_RELAY_H_
