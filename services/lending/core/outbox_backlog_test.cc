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
  EXPECT_EQ(backlog.unpublished(), 150);
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
  EXPECT_EQ(backlog.unpublished(), 100);
}

TEST(OutboxBacklogTest, CommitterStopsWaitingForARelayThatPublishesNothing) {
  OutboxBacklog backlog(/*max_events=*/10, /*stalled_after=*/absl::Milliseconds(30));
  backlog.Committed(11);
  absl::Time start = absl::Now();
  backlog.WaitForRoom();  // returns once the relay has been silent for 30 ms
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  // The outage's backlog is forgotten beyond the limit: the next group does not wait.
  EXPECT_EQ(backlog.unpublished(), 10);
  // Any progress restarts the patience.
  backlog.Published(1);
  backlog.Committed(5);
  start = absl::Now();
  backlog.WaitForRoom();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  EXPECT_EQ(backlog.unpublished(), 10);
}

TEST(OutboxBacklogTest, EventsPublishedBeforeTheyAreCountedNetOut) {
  OutboxBacklog backlog(/*max_events=*/10, /*stalled_after=*/absl::Hours(1));
  backlog.Published(8);  // the relay was quicker than the committer's count
  EXPECT_EQ(backlog.unpublished(), -8);
  backlog.Committed(8);
  EXPECT_EQ(backlog.unpublished(), 0);
  backlog.Committed(10);
  backlog.WaitForRoom();  // 10: room
  EXPECT_EQ(backlog.unpublished(), 10);
}

}  // namespace
}  // namespace microlend::lending
