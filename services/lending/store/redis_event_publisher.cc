#include "services/lending/store/redis_event_publisher.h"

#include "absl/strings/str_cat.h"

namespace microlend::lending {

absl::Status RedisEventPublisher::Publish(const std::vector<OutboxEvent>& events) {
  if (client_ == nullptr) {
    absl::StatusOr<std::unique_ptr<redis::RedisClient>> c =
        redis::RedisClient::Connect(endpoint_, absl::Seconds(2));
    if (!c.ok()) return c.status();
    client_ = std::move(*c);
  }
  std::vector<std::vector<std::string>> commands;
  commands.reserve(events.size());
  for (const OutboxEvent& e : events) {
    commands.push_back({"XADD", stream_, "MAXLEN", "~", absl::StrCat(kStreamMaxLen), "*",
                        "event_id", e.event_id, "kind", e.kind, "account_id",
                        e.account_id ? e.account_id->ToString() : "", "payload", e.payload});
  }
  absl::Status s = client_->Pipeline(commands);
  if (!s.ok()) client_.reset();  // reconnect next time
  return s;
}

}  // namespace microlend::lending
