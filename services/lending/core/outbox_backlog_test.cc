#include "services/lending/core/outbox_backlog.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace microlend::lending {
namespace {

TEST(OutboxBacklogTest, CommitterWaitsUntilTheRelayPublishesEnough) {
  OutboxBacklog backlog(/*max_events=*/100, /*stalled_after=*/absl::Hours(1));
  backlog.Committed(100);
  backlog.WaitForRoom();  // at the limit: room
  backlog.Committed(50);
  EXPECT_EQ(backlog.unpublished(), 150u);
  std::atomic<bool> returned{false};
  std::thread committer([&] {
    backlog.WaitForRoom();
    returned = true;
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(returned.load());  // still 150 unpublished
  backlog.Published(40);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(returned.load());  // 110: still over
  backlog.Published(10);
  committer.join();  // 100: room (the join would hang, and the test time out, otherwise)
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(backlog.unpublished(), 100u);
}

TEST(OutboxBacklogTest, CommitterStopsWaitingForARelayThatPublishesNothing) {
  OutboxBacklog backlog(/*max_events=*/10, /*stalled_after=*/absl::Milliseconds(30));
  backlog.Committed(11);
  backlog.WaitForRoom();  // returns once the relay has been silent for 30 ms
  EXPECT_EQ(backlog.unpublished(), 11u);
  // Any progress restarts the patience, but still ends without room.
  backlog.Published(1);
  backlog.Committed(5);
  backlog.WaitForRoom();
  EXPECT_EQ(backlog.unpublished(), 15u);
}

TEST(OutboxBacklogTest, EventsPublishedButNotCountedNeverMakeItNegative) {
  OutboxBacklog backlog(/*max_events=*/10, /*stalled_after=*/absl::Hours(1));
  backlog.Committed(3);
  backlog.Published(8);  // five written outside the committer, or before a restart
  EXPECT_EQ(backlog.unpublished(), 0u);
  backlog.Committed(10);
  backlog.WaitForRoom();  // 10: room
  EXPECT_EQ(backlog.unpublished(), 10u);
}

}  // namespace
}  // namespace microlend::lending
