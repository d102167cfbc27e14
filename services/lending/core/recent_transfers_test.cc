#include "services/lending/core/recent_transfers.h"

#include "gtest/gtest.h"

namespace microlend::lending {
namespace {

Account Acct(int64_t id) {
  Account a;
  a.id = AccountId(id);
  a.owner_id = absl::StrCat("owner-", id);
  return a;
}

Transfer Xfer(int64_t id, int64_t debit, int64_t credit, std::string memo = "") {
  Transfer t;
  t.id = TransferId(id);
  t.debit_account_id = AccountId(debit);
  t.credit_account_id = AccountId(credit);
  t.memo = std::move(memo);
  return t;
}

std::optional<RecentTransfers::Found> Lookup(const RecentTransfers& recent, int64_t id) {
  RecentTransfers::Found f;
  if (!recent.Find(TransferId(id), &f)) return std::nullopt;
  return f;
}

TEST(RecentTransfersTest, FindsATransferWithBothItsAccounts) {
  RecentTransfers recent(100);
  recent.Remember({Xfer(1, 10, 11, "one"), Xfer(2, 11, 12)}, {Acct(10), Acct(11), Acct(12)});
  std::optional<RecentTransfers::Found> f = Lookup(recent, 1);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->transfer->memo, "one");
  EXPECT_EQ(f->debit->owner_id, "owner-10");
  EXPECT_EQ(f->credit->owner_id, "owner-11");
  EXPECT_FALSE(Lookup(recent, 3).has_value());
}

TEST(RecentTransfersTest, FindAllAnswersEachIdInOrderAndKeepsTheGroupsAlive) {
  RecentTransfers recent(3);
  recent.Remember({Xfer(1, 10, 11, "a"), Xfer(2, 11, 10, "b")}, {Acct(10), Acct(11)});
  recent.Remember({Xfer(3, 10, 12, "c")}, {Acct(10), Acct(12)});
  std::vector<std::optional<RecentTransfers::Hit>> hits;
  auto kept = recent.FindAll({TransferId(3), TransferId(9), TransferId(1), TransferId(2)}, &hits);
  ASSERT_EQ(hits.size(), 4u);
  ASSERT_TRUE(hits[0].has_value());
  EXPECT_EQ(hits[0]->transfer->memo, "c");
  EXPECT_EQ(hits[0]->credit->owner_id, "owner-12");
  EXPECT_FALSE(hits[1].has_value());
  EXPECT_EQ(hits[2]->transfer->memo, "a");
  EXPECT_EQ(hits[3]->transfer->memo, "b");
  EXPECT_EQ(hits[3]->debit->owner_id, "owner-11");
  recent.Remember({Xfer(4, 10, 11), Xfer(5, 10, 11), Xfer(6, 10, 11)}, {Acct(10), Acct(11)});
  RecentTransfers::Found gone;
  EXPECT_FALSE(recent.Find(TransferId(1), &gone));  // evicted, yet the hits stay readable
  EXPECT_EQ(hits[2]->transfer->memo, "a");
  EXPECT_EQ(kept.size(), 2u);
}

TEST(RecentTransfersTest, ATransferWhoseAccountsAreMissingIsNotFound) {
  RecentTransfers recent(100);
  recent.Remember({Xfer(1, 10, 11)}, {Acct(10)});
  EXPECT_FALSE(Lookup(recent, 1).has_value());  // the caller reads it back instead
}

TEST(RecentTransfersTest, AnAccountItsGroupDidNotLoadIsFoundAmongTheAccountsSeen) {
  RecentTransfers recent(100);
  recent.Remember({Xfer(1, 10, 11)}, {Acct(10), Acct(11)});
  // Credits by increment: the group loaded only the debit account.
  recent.Remember({Xfer(2, 10, 11), Xfer(3, 10, 12)}, {Acct(10)});
  std::optional<RecentTransfers::Found> seen = Lookup(recent, 2);
  ASSERT_TRUE(seen.has_value());  // 11 was seen in the first group
  EXPECT_EQ(seen->credit->owner_id, "owner-11");
  EXPECT_EQ(seen->accounts.size(), 1u);
  EXPECT_FALSE(Lookup(recent, 3).has_value());  // 12 never seen: read back instead
  recent.RememberAccounts({Acct(12)});
  std::vector<std::optional<RecentTransfers::Hit>> hits;
  RecentTransfers::Kept kept = recent.FindAll({TransferId(3), TransferId(2)}, &hits);
  ASSERT_TRUE(hits[0].has_value());
  EXPECT_EQ(hits[0]->credit->owner_id, "owner-12");
  ASSERT_TRUE(hits[1].has_value());
  EXPECT_EQ(kept.size(), 3u);  // the group once, and the two accounts seen
  EXPECT_EQ(recent.accounts_seen(), 3u);
}

TEST(RecentTransfersTest, ForgetsTheAccountsSeenWhenFull) {
  RecentTransfers recent(2);
  recent.RememberAccounts({Acct(10), Acct(11)});
  EXPECT_EQ(recent.accounts_seen(), 2u);
  recent.RememberAccounts({Acct(12)});
  EXPECT_EQ(recent.accounts_seen(), 1u);
  recent.Remember({Xfer(1, 12, 11)}, {Acct(12)});
  EXPECT_FALSE(Lookup(recent, 1).has_value());  // 11 was forgotten
  recent.Remember({Xfer(2, 12, 13)}, {Acct(12)});
  EXPECT_FALSE(Lookup(recent, 2).has_value());  // 13 was never seen
}

TEST(RecentTransfersTest, KeepsTheNewestGroupsWithinItsCapacity) {
  RecentTransfers recent(4);
  recent.Remember({Xfer(1, 10, 11), Xfer(2, 10, 11)}, {Acct(10), Acct(11)});
  recent.Remember({Xfer(3, 10, 11), Xfer(4, 10, 11)}, {Acct(10), Acct(11)});
  EXPECT_TRUE(Lookup(recent, 1).has_value());
  recent.Remember({Xfer(5, 10, 11)}, {Acct(10), Acct(11)});  // 5 held: the oldest group goes
  EXPECT_FALSE(Lookup(recent, 1).has_value());
  EXPECT_FALSE(Lookup(recent, 2).has_value());
  EXPECT_TRUE(Lookup(recent, 3).has_value());
  EXPECT_TRUE(Lookup(recent, 5).has_value());
  EXPECT_EQ(recent.transfers_held(), 3u);
}

TEST(RecentTransfersTest, AGroupLargerThanTheCapacityIsStillKeptAlone) {
  RecentTransfers recent(1);
  recent.Remember({Xfer(1, 10, 11)}, {Acct(10), Acct(11)});
  recent.Remember({Xfer(2, 10, 11), Xfer(3, 10, 11)}, {Acct(10), Acct(11)});
  EXPECT_FALSE(Lookup(recent, 1).has_value());
  EXPECT_TRUE(Lookup(recent, 3).has_value());
}

TEST(RecentTransfersTest, AFoundTransferOutlivesItsEviction) {
  RecentTransfers recent(1);
  recent.Remember({Xfer(1, 10, 11, "kept")}, {Acct(10), Acct(11)});
  std::optional<RecentTransfers::Found> found = Lookup(recent, 1);
  ASSERT_TRUE(found.has_value());
  recent.Remember({Xfer(2, 10, 11)}, {Acct(10), Acct(11)});
  EXPECT_FALSE(Lookup(recent, 1).has_value());
  EXPECT_EQ(found->transfer->memo, "kept");
  EXPECT_EQ(found->debit->owner_id, "owner-10");
}

TEST(RecentTransfersTest, ManySmallGroupsAreHeldAndEvictedByTransferCount) {
  // Single-transfer commits (deposits, one-off transfers) make many small groups; the capacity
  // still counts transfers, and lookups go through one index.
  RecentTransfers recent(1000);
  for (int64_t id = 1; id <= 5000; ++id) recent.Remember({Xfer(id, 10, 11)}, {Acct(10), Acct(11)});
  EXPECT_EQ(recent.transfers_held(), 1000u);
  EXPECT_FALSE(Lookup(recent, 4000).has_value());
  EXPECT_TRUE(Lookup(recent, 4001).has_value());
  EXPECT_TRUE(Lookup(recent, 5000).has_value());
}

}  // namespace
}  // namespace microlend::lending
