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

struct Found {
  const Transfer* transfer = nullptr;
  const Account* debit = nullptr;
  const Account* credit = nullptr;
};

std::optional<Found> Lookup(const RecentTransfers& recent, int64_t id) {
  Found f;
  if (!RecentTransfers::Find(recent.Snapshot(), TransferId(id), &f.transfer, &f.debit, &f.credit)) {
    return std::nullopt;
  }
  return f;
}

TEST(RecentTransfersTest, FindsATransferWithBothItsAccounts) {
  RecentTransfers recent(100);
  recent.Remember({Xfer(1, 10, 11, "one"), Xfer(2, 11, 12)}, {Acct(10), Acct(11), Acct(12)});
  std::optional<Found> f = Lookup(recent, 1);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->transfer->memo, "one");
  EXPECT_EQ(f->debit->owner_id, "owner-10");
  EXPECT_EQ(f->credit->owner_id, "owner-11");
  EXPECT_FALSE(Lookup(recent, 3).has_value());
}

TEST(RecentTransfersTest, ATransferWhoseAccountsAreMissingIsNotFound) {
  RecentTransfers recent(100);
  recent.Remember({Xfer(1, 10, 11)}, {Acct(10)});
  EXPECT_FALSE(Lookup(recent, 1).has_value());  // the caller reads it back instead
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
  EXPECT_EQ(recent.Snapshot().size(), 2u);
}

TEST(RecentTransfersTest, AGroupLargerThanTheCapacityIsStillKeptAlone) {
  RecentTransfers recent(1);
  recent.Remember({Xfer(1, 10, 11)}, {Acct(10), Acct(11)});
  recent.Remember({Xfer(2, 10, 11), Xfer(3, 10, 11)}, {Acct(10), Acct(11)});
  EXPECT_FALSE(Lookup(recent, 1).has_value());
  EXPECT_TRUE(Lookup(recent, 3).has_value());
}

TEST(RecentTransfersTest, ASnapshotOutlivesEviction) {
  RecentTransfers recent(1);
  recent.Remember({Xfer(1, 10, 11, "kept")}, {Acct(10), Acct(11)});
  auto snapshot = recent.Snapshot();
  recent.Remember({Xfer(2, 10, 11)}, {Acct(10), Acct(11)});
  const Transfer* t = nullptr;
  const Account *d = nullptr, *c = nullptr;
  ASSERT_TRUE(RecentTransfers::Find(snapshot, TransferId(1), &t, &d, &c));
  EXPECT_EQ(t->memo, "kept");
}

}  // namespace
}  // namespace microlend::lending
