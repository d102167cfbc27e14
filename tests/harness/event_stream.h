// Reads the lending service's event stream back as a consumer would (ADR 0009): every entry of
// the Redis stream, each unpacked into its events, in stream order. Checks each entry's shape on
// the way: its count, first_event_id and last_event_id agree with its JSON lines, and every line
// is an object with event_id, kind and payload. For the tests and benchmarks that verify the
// outbox.
#ifndef MICROLEND_TESTS_HARNESS_EVENT_STREAM_H_
#define MICROLEND_TESTS_HARNESS_EVENT_STREAM_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace microlend::testing {

struct StreamEvent {
  std::string entry_id;  // the Redis stream entry holding it
  std::string event_id;
  std::string kind;
  std::string account_id;  // empty when the event has none
  nlohmann::json payload;
};

inline constexpr char kLendingEventStream[] = "microlend.lending.events";

// Every event on `stream`; FailedPrecondition naming the entry when one is malformed.
absl::StatusOr<std::vector<StreamEvent>> ReadStreamEvents(const std::string& redis_endpoint,
                                                          const std::string& stream = kLendingEventStream);

}  // namespace microlend::testing

#endif  // MICROLEND_TESTS_HARNESS_EVENT_STREAM_H_
