#include "services/lending/store/redis_event_publisher.h"

#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace microlend::lending {
namespace {

void AppendLine(const OutboxEvent& e, std::string* out) {
  out->append("{\"event_id\":");
  AppendJsonString(out, e.event_id);
  out->append(",\"kind\":");
  AppendJsonString(out, e.kind);
  if (e.account_id) {
    out->append(",\"account_id\":\"");
    absl::StrAppend(out, e.account_id->value());
    out->push_back('"');
  }
  out->append(",\"payload\":");
  if (e.payload.empty()) {
    out->append("null");
  } else {
    // Raw newlines can only be whitespace in valid JSON: keep the event on one line. Rendered
    // payloads have none, so look for one (memchr) before going through character by character.
    const size_t start = out->size();
    out->append(e.payload);
    const std::string_view p = e.payload;
    if (std::memchr(p.data(), '\n', p.size()) != nullptr ||
        std::memchr(p.data(), '\r', p.size()) != nullptr) {
      for (size_t i = start; i < out->size(); ++i) {
        if ((*out)[i] == '\n' || (*out)[i] == '\r') (*out)[i] = ' ';
      }
    }
  }
  out->append("}\n");
}

}  // namespace

void RedisEventPublisher::AddEntry(const std::vector<OutboxEvent>& events, size_t from, size_t to) {
  buffer_.Command(14)
      .Arg("XADD").Arg(stream_).Arg("MAXLEN").Arg("~").Arg(kStreamMaxEvents / static_cast<int64_t>(to - from)).Arg("*")
      .Arg("count").Arg(static_cast<int64_t>(to - from))
      .Arg("first_event_id").Arg(events[from].event_id)
      .Arg("last_event_id").Arg(events[to - 1].event_id)
      .Arg("events").Arg(lines_);
}

absl::Status RedisEventPublisher::Publish(const std::vector<OutboxEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  if (client_ == nullptr) {
    absl::StatusOr<std::unique_ptr<redis::RedisClient>> c =
        redis::RedisClient::Connect(endpoint_, absl::Seconds(2));
    if (!c.ok()) return c.status();
    client_ = std::move(*c);
  }
  buffer_.Clear();
  size_t first = 0;
  lines_.clear();
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > first && (i - first == kMaxEventsPerEntry || lines_.size() >= kMaxEntryBytes)) {
      AddEntry(events, first, i);
      first = i;
      lines_.clear();
    }
    AppendLine(events[i], &lines_);
  }
  AddEntry(events, first, events.size());
  absl::Status s = client_->Pipeline(buffer_);
  if (absl::IsUnavailable(s)) client_.reset();  // reconnect next time
  return s;
}

}  // namespace microlend::lending
