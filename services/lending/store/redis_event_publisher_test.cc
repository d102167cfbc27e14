// RedisEventPublisher against a real Redis: events go out in entries of at most
// kMaxEventsPerEntry (or kMaxEntryBytes), in order, each readable as a consumer reads it.
#include "services/lending/store/redis_event_publisher.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "harness/event_stream.h"
#include "harness/shared_stack_test.h"
#include "redis/redis_client.h"

namespace microlend::lending {
namespace {

using microlend::testing::ReadStreamEvents;
using microlend::testing::StreamEvent;

class RedisEventPublisherTest : public microlend::testing::SharedComponentsTest {
 protected:
  // A fresh stream per test.
  std::string Stream() const {
    return absl::StrCat("test.", ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  static OutboxEvent Event(int64_t id, std::string payload) {
    OutboxEvent e;
    e.event_id = absl::StrCat("transfer-", id);
    e.kind = "transfer_committed";
    e.account_id = AccountId(1000 + id % 7);
    e.payload = std::move(payload);
    return e;
  }

  // Entries on `stream` (XLEN).
  static int64_t Entries(const std::string& stream) {
    auto redis = redis::RedisClient::Connect(stack_->redis_endpoint(), absl::Seconds(2));
    EXPECT_TRUE(redis.ok());
    if (!redis.ok()) return -1;
    auto len = (*redis)->Command({"XLEN", stream});
    EXPECT_TRUE(len.ok());
    return len.ok() ? len->integer : -1;
  }
};

TEST_F(RedisEventPublisherTest, EventsArePublishedInOrderInEntriesOfAtMostTheCap) {
  const size_t cap = RedisEventPublisher::kMaxEventsPerEntry;
  std::vector<OutboxEvent> events;
  for (int64_t i = 1; i <= static_cast<int64_t>(2 * cap + 3); ++i) {
    events.push_back(Event(i, absl::StrCat(R"({"id":")", i, R"(","memo":"line\nbreak \"q\" \\"})")));
  }
  events[5].account_id.reset();
  RedisEventPublisher publisher(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(publisher.Publish(events).ok());
  ASSERT_TRUE(publisher.Publish({Event(999, R"({"id":"999"})")}).ok());  // a second round

  absl::StatusOr<std::vector<StreamEvent>> read = ReadStreamEvents(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), events.size() + 1);
  for (size_t i = 0; i < events.size(); ++i) {
    const StreamEvent& e = (*read)[i];
    EXPECT_EQ(e.event_id, events[i].event_id);
    EXPECT_EQ(e.kind, "transfer_committed");
    EXPECT_EQ(e.account_id, events[i].account_id ? events[i].account_id->ToString() : "");
    EXPECT_EQ(e.payload.dump(), nlohmann::json::parse(events[i].payload).dump());
    EXPECT_EQ(e.payload.value("memo", ""), "line\nbreak \"q\" \\");
  }
  EXPECT_EQ(read->back().event_id, "transfer-999");
  // 128 + 128 + 3 from the first round, 1 from the second.
  EXPECT_EQ(Entries(Stream()), 4);
  EXPECT_EQ((*read)[0].entry_id, (*read)[cap - 1].entry_id);
  EXPECT_NE((*read)[cap - 1].entry_id, (*read)[cap].entry_id);
  EXPECT_NE((*read)[2 * cap + 2].entry_id, read->back().entry_id);
}

TEST_F(RedisEventPublisherTest, AnEntryEndsOnceItsLinesReachTheByteCap) {
  // Each event ~40 kB: an entry closes once past 128 kB, i.e. every 4 events.
  const std::string big(40 * 1024, 'x');
  std::vector<OutboxEvent> events;
  for (int64_t i = 1; i <= 10; ++i) {
    events.push_back(Event(i, absl::StrCat(R"({"id":")", i, R"(","blob":")", big, R"("})")));
  }
  RedisEventPublisher publisher(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(publisher.Publish(events).ok());
  absl::StatusOr<std::vector<StreamEvent>> read = ReadStreamEvents(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 10u);
  EXPECT_EQ(Entries(Stream()), 3);  // 4 + 4 + 2
  EXPECT_EQ((*read)[9].payload.value("blob", "").size(), big.size());
}

TEST_F(RedisEventPublisherTest, ARoundOfManyMegabytesGoesOutWhole) {
  // ~10,000 events of ~700 bytes, the size of a relay round under load: several pipeline slices.
  std::vector<OutboxEvent> events;
  const std::string filler(650, 'f');
  for (int64_t i = 1; i <= 10'000; ++i) {
    events.push_back(Event(i, absl::StrCat(R"({"id":")", i, R"(","f":")", filler, R"("})")));
  }
  RedisEventPublisher publisher(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(publisher.Publish(events).ok());
  absl::StatusOr<std::vector<StreamEvent>> read = ReadStreamEvents(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ((*read)[i].event_id, events[i].event_id) << i;
  }
}

TEST_F(RedisEventPublisherTest, RawNewlinesInAPayloadDoNotSplitTheEventsLine) {
  RedisEventPublisher publisher(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(publisher
                  .Publish({Event(1, "{\n  \"id\": \"1\",\r\n  \"list\": [1,\n2]\n}"),
                            Event(2, R"({"id":"2","memo":"escaped \n stays"})"), Event(3, "")})
                  .ok());
  absl::StatusOr<std::vector<StreamEvent>> read = ReadStreamEvents(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 3u);
  EXPECT_EQ((*read)[0].payload, nlohmann::json::parse(R"({"id":"1","list":[1,2]})"));
  EXPECT_EQ((*read)[1].payload.value("memo", ""), "escaped \n stays");
  EXPECT_TRUE((*read)[2].payload.is_null());
}

TEST_F(RedisEventPublisherTest, AnErrorReplyIsInternalAndTheNextRoundStillGoesOut) {
  auto redis = redis::RedisClient::Connect(stack_->redis_endpoint(), absl::Seconds(2));
  ASSERT_TRUE(redis.ok());
  ASSERT_TRUE((*redis)->Command({"SET", Stream(), "not a stream"}).ok());
  RedisEventPublisher publisher(stack_->redis_endpoint(), Stream());
  absl::Status s = publisher.Publish({Event(1, "{}")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  ASSERT_TRUE((*redis)->Command({"DEL", Stream()}).ok());
  ASSERT_TRUE(publisher.Publish({Event(2, "{}")}).ok());
  absl::StatusOr<std::vector<StreamEvent>> read = ReadStreamEvents(stack_->redis_endpoint(), Stream());
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ(read->front().event_id, "transfer-2");
}

TEST_F(RedisEventPublisherTest, AReaderRefusesAnEntryWhoseCountDisagreesWithItsLines) {
  auto redis = redis::RedisClient::Connect(stack_->redis_endpoint(), absl::Seconds(2));
  ASSERT_TRUE(redis.ok());
  ASSERT_TRUE((*redis)
                  ->Command({"XADD", Stream(), "*", "count", "2", "first_event_id", "e-1",
                             "last_event_id", "e-2",
                             "events", R"({"event_id":"e-1","kind":"k","payload":{}})" "\n"})
                  .ok());
  absl::StatusOr<std::vector<StreamEvent>> read = ReadStreamEvents(stack_->redis_endpoint(), Stream());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition) << read.status();
}

TEST_F(RedisEventPublisherTest, AnUnreachableRedisIsUnavailable) {
  RedisEventPublisher publisher("127.0.0.1:1", Stream());
  absl::Status s = publisher.Publish({Event(1, "{}")});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

}  // namespace
}  // namespace microlend::lending
