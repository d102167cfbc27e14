// Publishes outbox events to a Redis Stream (default "microlend.lending.events") with XADD, one
// entry per event with fields event_id, kind, account_id, payload; pipelined per batch. The
// stream is capped approximately (MAXLEN ~) so Redis memory stays bounded. Reconnects on the
// next call after a failure. Not thread-safe: one relay thread uses it.
#ifndef MICROLEND_SERVICES_LENDING_STORE_REDIS_EVENT_PUBLISHER_H_
#define MICROLEND_SERVICES_LENDING_STORE_REDIS_EVENT_PUBLISHER_H_

#include <memory>
#include <string>

#include "redis/redis_client.h"
#include "services/lending/core/outbox_relay.h"

namespace microlend::lending {

class RedisEventPublisher final : public EventPublisher {
 public:
  static constexpr char kDefaultStream[] = "microlend.lending.events";
  static constexpr int64_t kStreamMaxLen = 5'000'000;

  explicit RedisEventPublisher(std::string endpoint, std::string stream = kDefaultStream)
      : endpoint_(std::move(endpoint)), stream_(std::move(stream)) {}

  absl::Status Publish(const std::vector<OutboxEvent>& events) override;

 private:
  std::string endpoint_;
  std::string stream_;
  std::unique_ptr<redis::RedisClient> client_;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_STORE_REDIS_EVENT_PUBLISHER_H_
