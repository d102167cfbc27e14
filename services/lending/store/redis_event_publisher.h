// Publishes outbox events to a Redis Stream (default "microlend.lending.events") in batches
// (ADR 0009): one stream entry holds up to kMaxEventsPerEntry consecutive events, in commit
// order, so Redis does one command's work per batch instead of per event. Entry fields:
//   count            the number of events in the entry
//   first_event_id   event id of its first event
//   last_event_id    event id of its last event
//   events           the events as JSON lines, one per event, in commit order:
//                    {"event_id":"transfer-42","kind":"transfer_committed","account_id":"7",
//                     "payload":{...}}   (account_id only when the event has one)
// At least once: after a crash between publishing and marking published, events are published
// again, possibly grouped differently; consumers deduplicate by event_id. The stream keeps about
// kStreamMaxEvents events so Redis memory stays bounded: each XADD trims to
// MAXLEN ~ kStreamMaxEvents / (its entry's event count) entries, exact under steady load (full
// entries at peak, entries of one or two events when quiet) and approximate while it changes. A
// payload is JSON: any raw newline in it (only whitespace between tokens, in valid JSON) is
// written as a space, so each event stays on its line; an empty payload is written as null. The
// commands are encoded straight into one reused buffer (a relay round is up to ~10,000 events,
// megabytes). Reconnects on the next call after a failure. Not thread-safe: one relay thread
// uses it.
#ifndef MICROLEND_SERVICES_LENDING_STORE_REDIS_EVENT_PUBLISHER_H_
#define MICROLEND_SERVICES_LENDING_STORE_REDIS_EVENT_PUBLISHER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "redis/redis_client.h"
#include "services/lending/core/outbox_relay.h"

namespace microlend::lending {

class RedisEventPublisher final : public EventPublisher {
 public:
  static constexpr char kDefaultStream[] = "microlend.lending.events";
  // An entry ends at this many events, or once its JSON lines reach kMaxEntryBytes.
  static constexpr size_t kMaxEventsPerEntry = 128;
  static constexpr size_t kMaxEntryBytes = 128 * 1024;
  // ~3.5 GB of ~700-byte events.
  static constexpr int64_t kStreamMaxEvents = 5'000'000;

  explicit RedisEventPublisher(std::string endpoint, std::string stream = kDefaultStream)
      : endpoint_(std::move(endpoint)), stream_(std::move(stream)) {}

  // Every event's payload must be a JSON value (the relay renders JSON objects). Unavailable when
  // Redis cannot be reached (the connection is dropped and reopened next time); Internal for an
  // error reply (the connection stays).
  absl::Status Publish(const std::vector<OutboxEvent>& events) override;

 private:
  void AddEntry(const std::vector<OutboxEvent>& events, size_t from, size_t to);

  std::string endpoint_;
  std::string stream_;
  std::unique_ptr<redis::RedisClient> client_;
  redis::CommandBuffer buffer_;  // one round's XADDs, reused
  std::string lines_;            // one entry's JSON lines, reused
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_STORE_REDIS_EVENT_PUBLISHER_H_
