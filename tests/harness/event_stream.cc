#include "harness/event_stream.h"

#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "redis/redis_client.h"

namespace microlend::testing {
namespace {

// One entry's fields (XRANGE flattens an entry as id, field, value, field, value, ...).
struct Entry {
  std::string id;
  std::string count, first_event_id, last_event_id, events;
};

absl::Status Unpack(const Entry& entry, std::vector<StreamEvent>* out) {
  auto bad = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat("stream entry ", entry.id, ": ", why));
  };
  int64_t count = 0;
  if (!absl::SimpleAtoi(entry.count, &count) || count <= 0) return bad("bad count");
  if (entry.events.empty() || entry.events.back() != '\n') return bad("events do not end a line");
  std::vector<std::string> lines =
      absl::StrSplit(absl::string_view(entry.events.data(), entry.events.size() - 1), '\n');
  if (static_cast<int64_t>(lines.size()) != count) {
    return bad(absl::StrCat("count ", count, " but ", lines.size(), " lines"));
  }
  for (const std::string& line : lines) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("event_id") || !j["event_id"].is_string() ||
        !j.contains("kind") || !j["kind"].is_string() || !j.contains("payload")) {
      return bad(absl::StrCat("malformed line ", line));
    }
    StreamEvent e{.entry_id = entry.id,
                  .event_id = j["event_id"].get<std::string>(),
                  .kind = j["kind"].get<std::string>(),
                  .account_id = j.value("account_id", std::string()),
                  .payload = j["payload"]};
    out->push_back(std::move(e));
  }
  const size_t first = out->size() - lines.size();
  if ((*out)[first].event_id != entry.first_event_id) return bad("first_event_id disagrees");
  if (out->back().event_id != entry.last_event_id) return bad("last_event_id disagrees");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<StreamEvent>> ReadStreamEvents(const std::string& redis_endpoint,
                                                          const std::string& stream) {
  absl::StatusOr<std::unique_ptr<redis::RedisClient>> redis =
      redis::RedisClient::Connect(redis_endpoint, absl::Seconds(5));
  if (!redis.ok()) return redis.status();
  std::vector<StreamEvent> out;
  std::string from = "-";
  while (true) {
    absl::StatusOr<redis::Reply> page = (*redis)->Command({"XRANGE", stream, from, "+", "COUNT", "500"});
    if (!page.ok()) return page.status();
    if (page->elements.empty()) break;
    // Each entry flattens to its id then 4 field/value pairs.
    const std::vector<std::string>& el = page->elements;
    if (el.size() % 9 != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("stream ", stream, ": entries are not 4 fields each"));
    }
    for (size_t i = 0; i < el.size(); i += 9) {
      Entry entry{.id = el[i]};
      for (size_t f = i + 1; f < i + 9; f += 2) {
        const std::string& name = el[f];
        const std::string& value = el[f + 1];
        if (name == "count") entry.count = value;
        else if (name == "first_event_id") entry.first_event_id = value;
        else if (name == "last_event_id") entry.last_event_id = value;
        else if (name == "events") entry.events = value;
        else return absl::FailedPreconditionError(absl::StrCat("stream entry ", entry.id, ": unknown field ", name));
      }
      if (absl::Status s = Unpack(entry, &out); !s.ok()) return s;
      from = "(" + entry.id;
    }
  }
  return out;
}

}  // namespace microlend::testing
