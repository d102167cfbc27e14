// Concurrency soak of the ledger over gRPC: 16 client threads for 60 s (MICROLEND_SOAK_SECONDS
// overrides) doing random deposits, wallet-to-wallet transfers, holds that are posted (fully or
// partly), voided or left to expire, and withdrawals; every request is retried with the same
// request_id until it gets a definitive answer, and some are deliberately repeated after one.
// A client-side model of the acknowledged operations must match the server to the cent, and
// reconciliation must be clean. The second test SIGKILLs and restarts the lending server
// several times mid-run: every acknowledged operation must be there exactly once and the
// outbox must lose nothing.
#include <signal.h>

#include <atomic>
#include <random>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "harness/event_stream.h"
#include "harness/local_stack.h"
#include "harness/rpc.h"
#include "microlend/lending/v1/lending.grpc.pb.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;

constexpr int kThreads = 16;
constexpr int kLenders = 24;
constexpr int64_t kFirstLender = 5000;

int SoakSeconds() {
  const char* s = std::getenv("MICROLEND_SOAK_SECONDS");
  return s != nullptr ? std::max(1, std::atoi(s)) : 60;
}

bool Transient(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:  // a connection dropped mid-call
      return true;
    default:
      return false;
  }
}

std::string Cents(int64_t cents) {
  return absl::StrCat(cents / 100, ".", absl::Dec(cents % 100, absl::kZeroPad2));
}

class Soak {
 public:
  Soak(LocalStack* stack) : stack_(stack) {
    svc_ = stack->Token(Role::kService, "soak");
    ops_ = stack->Token(Role::kOps, "soak-ops");
    for (int i = 0; i < kLenders; ++i) posted_[i] = 0;
  }

  // Sends `call` until it answers something other than a transient error; fails the test after
  // two minutes of transient errors (the server should be back long before).
  template <typename Fn>
  grpc::Status Definitive(Fn call) {
    absl::Time give_up = absl::Now() + absl::Minutes(2);
    while (true) {
      grpc::Status s = call();
      if (!Transient(s)) return s;
      if (absl::Now() > give_up) {
        ADD_FAILURE() << "no definitive answer: " << s.error_message();
        return s;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  lv1::LedgerService::Stub* Ledger() {
    thread_local std::unique_ptr<lv1::LedgerService::Stub> stub;
    thread_local std::string target;
    if (!stub || target != stack_->Address(Server::kLending)) {
      target = stack_->Address(Server::kLending);
      stub = lv1::LedgerService::NewStub(Channel(target));
    }
    return stub.get();
  }
  lv1::LenderService::Stub* Lenders() {
    thread_local std::unique_ptr<lv1::LenderService::Stub> stub;
    thread_local std::string target;
    if (!stub || target != stack_->Address(Server::kLending)) {
      target = stack_->Address(Server::kLending);
      stub = lv1::LenderService::NewStub(Channel(target));
    }
    return stub.get();
  }

  void OpenWallets() {
    for (int i = 0; i < kLenders; ++i) {
      grpc::Status s = Deposit(i, 10'000, absl::StrCat("soak-open-", i));
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    for (int i = 0; i < kLenders; ++i) {
      lv1::ListAccountsRequest req;
      req.set_owner_type(lv1::ACCOUNT_OWNER_TYPE_LENDER);
      req.set_owner_id(std::to_string(kFirstLender + i));
      lv1::ListAccountsResponse out;
      ASSERT_TRUE(Ledger()->ListAccounts(Ctx(ops_).get(), req, &out).ok());
      ASSERT_EQ(out.accounts_size(), 1);
      wallet_[i] = out.accounts(0).id().value();
    }
  }

  grpc::Status Deposit(int lender, int64_t cents, const std::string& rid) {
    lv1::DepositRequest req;
    req.set_request_id(rid);
    req.mutable_lender_id()->set_value(std::to_string(kFirstLender + lender));
    *req.mutable_amount() = M(Cents(cents));
    req.set_external_payment_id("card-" + rid);
    lv1::DepositResponse out;
    grpc::Status s = Definitive([&] { return Lenders()->Deposit(Ctx(svc_).get(), req, &out); });
    if (s.ok()) posted_[lender] += cents;
    return s;
  }

  grpc::Status Batch(const std::string& rid, const std::vector<lv1::TransferSpec>& specs,
                     lv1::CreateTransfersResponse* out) {
    lv1::CreateTransfersRequest req;
    req.set_request_id(rid);
    for (const auto& s : specs) *req.add_transfers() = s;
    return Definitive([&] { return Ledger()->CreateTransfers(Ctx(svc_).get(), req, out); });
  }

  lv1::TransferSpec Spec(int from, int to, int64_t cents, bool pending, int64_t timeout_ms) {
    lv1::TransferSpec s;
    s.mutable_debit_account_id()->set_value(wallet_[from]);
    s.mutable_credit_account_id()->set_value(wallet_[to]);
    *s.mutable_amount() = M(Cents(cents));
    s.set_code(lv1::TRANSFER_CODE_CORRECTION);
    s.set_pending(pending);
    s.set_timeout_ms(timeout_ms);
    return s;
  }

  void Move(std::mt19937_64& rng, const std::string& rid) {
    int a = rng() % kLenders, b = (a + 1 + rng() % (kLenders - 1)) % kLenders;
    int64_t cents = 1 + rng() % 5000;
    lv1::CreateTransfersResponse out;
    grpc::Status s = Batch(rid, {Spec(a, b, cents, false, 0)}, &out);
    if (s.ok()) {
      posted_[a] -= cents;
      posted_[b] += cents;
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    }
    MaybeRepeat(rng, [&] {
      lv1::CreateTransfersResponse again;
      grpc::Status r = Batch(rid, {Spec(a, b, cents, false, 0)}, &again);
      EXPECT_EQ(r.error_code(), s.error_code());
      if (r.ok()) {
        EXPECT_TRUE(again.mutation().replayed());
        EXPECT_EQ(again.transfers(0).id().value(), out.transfers(0).id().value());
      }
    });
  }

  // A hold that is then posted in part, posted whole, voided, or left to expire.
  void HoldAndResolve(std::mt19937_64& rng, const std::string& rid) {
    int a = rng() % kLenders, b = (a + 1 + rng() % (kLenders - 1)) % kLenders;
    int64_t cents = 1 + rng() % 3000;
    int fate = rng() % 4;
    int64_t timeout = fate == 3 ? 200 + rng() % 1500 : 0;
    lv1::CreateTransfersResponse held;
    grpc::Status s = Batch(rid + "-h", {Spec(a, b, cents, true, timeout)}, &held);
    if (!s.ok() || fate == 3) return;  // rejected, or left to expire
    lv1::TransferSpec resolve;
    resolve.mutable_pending_id()->set_value(held.transfers(0).id().value());
    resolve.set_pending_action(fate == 2 ? lv1::PENDING_ACTION_VOID : lv1::PENDING_ACTION_POST);
    int64_t posted = fate == 0 ? 1 + rng() % cents : cents;
    if (fate == 0) *resolve.mutable_amount() = M(Cents(posted));
    lv1::CreateTransfersResponse out;
    grpc::Status r = Batch(rid + "-r", {resolve}, &out);
    ASSERT_TRUE(r.ok()) << r.error_message();
    if (fate != 2) {
      posted_[a] -= posted;
      posted_[b] += posted;
    }
  }

  void Withdraw(std::mt19937_64& rng, const std::string& rid) {
    int a = rng() % kLenders;
    int64_t cents = 1 + rng() % 2000;
    lv1::RequestWithdrawalRequest req;
    req.set_request_id(rid + "-w");
    req.mutable_lender_id()->set_value(std::to_string(kFirstLender + a));
    *req.mutable_amount() = M(Cents(cents));
    req.set_destination("soak bank");
    lv1::RequestWithdrawalResponse wd;
    std::string lender_token = stack_->Token(Role::kLender, std::to_string(kFirstLender + a));
    grpc::Status s = Definitive(
        [&] { return Lenders()->RequestWithdrawal(Ctx(lender_token).get(), req, &wd); });
    if (!s.ok()) return;
    bool pay = rng() % 2 == 0;
    lv1::ApproveWithdrawalRequest approve;
    approve.set_request_id(rid + "-a");
    *approve.mutable_withdrawal_id() = wd.withdrawal().id();
    lv1::ApproveWithdrawalResponse approved;
    ASSERT_TRUE(Definitive([&] {
      return Lenders()->ApproveWithdrawal(Ctx(ops_).get(), approve, &approved);
    }).ok());
    if (pay) {
      lv1::MarkWithdrawalPaidRequest paid;
      paid.set_request_id(rid + "-p");
      *paid.mutable_withdrawal_id() = wd.withdrawal().id();
      paid.set_external_payment_id("bank-" + rid);
      lv1::MarkWithdrawalPaidResponse out;
      ASSERT_TRUE(Definitive([&] {
        return Lenders()->MarkWithdrawalPaid(Ctx(ops_).get(), paid, &out);
      }).ok());
      posted_[a] -= cents;
    } else {
      lv1::RejectWithdrawalRequest reject;
      reject.set_request_id(rid + "-x");
      *reject.mutable_withdrawal_id() = wd.withdrawal().id();
      reject.set_reason("soak");
      lv1::RejectWithdrawalResponse out;
      ASSERT_TRUE(Definitive([&] {
        return Lenders()->RejectWithdrawal(Ctx(ops_).get(), reject, &out);
      }).ok());
    }
  }

  template <typename Fn>
  void MaybeRepeat(std::mt19937_64& rng, Fn fn) {
    if (rng() % 7 == 0) fn();
  }

  void Worker(int thread, absl::Time until) {
    std::mt19937_64 rng(1000 + thread);
    for (int op = 0; absl::Now() < until && !::testing::Test::HasFatalFailure(); ++op) {
      std::string rid = absl::StrCat("soak-", thread, "-", op);
      switch (rng() % 10) {
        case 0:
        case 1:
          Deposit(rng() % kLenders, 1 + rng() % 4000, rid);
          break;
        case 2:
        case 3:
        case 4:
          Move(rng, rid);
          break;
        case 5:
        case 6:
        case 7:
          HoldAndResolve(rng, rid);
          break;
        default:
          Withdraw(rng, rid);
          break;
      }
      ops_done_++;
    }
  }

  void Run(absl::Duration duration) {
    absl::Time until = absl::Now() + duration;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back([this, t, until] { Worker(t, until); });
    for (auto& th : threads) th.join();
  }

  // After every timeout has passed and the sweep has run, no hold is left and each wallet's
  // balance is what the model says.
  void Verify() {
    absl::SleepFor(absl::Seconds(4));
    for (int i = 0; i < kLenders; ++i) {
      lv1::GetAccountRequest req;
      req.mutable_account_id()->set_value(wallet_[i]);
      lv1::GetAccountResponse out;
      ASSERT_TRUE(Definitive([&] { return Ledger()->GetAccount(Ctx(ops_).get(), req, &out); }).ok());
      EXPECT_EQ(out.account().balance().amount(), Cents(posted_[i])) << "lender " << i;
      EXPECT_EQ(out.account().debits_pending().amount(), "0.00") << "lender " << i;
      EXPECT_FALSE(out.account().balance().amount().starts_with("-"));
    }
    lv1::ReconcileResponse rec;
    for (int attempt = 0; attempt < 100; ++attempt) {
      ASSERT_TRUE(Definitive([&] { return Ledger()->Reconcile(Ctx(ops_).get(), {}, &rec); }).ok());
      if (rec.report().clean()) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    EXPECT_TRUE(rec.report().clean()) << rec.report().DebugString();
    VerifyStream();
  }

  // Every committed transfer's event is in the stream (at least once). The relay may hold
  // events behind a gap left by a killed transaction for a few seconds: wait for it.
  void VerifyStream() {
    lv1::ListTransfersRequest req;
    lv1::ListTransfersResponse out;
    ASSERT_TRUE(Ledger()->ListTransfers(Ctx(ops_).get(), req, &out).ok());
    size_t distinct = 0;
    for (int attempt = 0; attempt < 60; ++attempt) {
      distinct = DistinctStreamEventIds();
      if (static_cast<int64_t>(distinct) >= out.page().total_count()) break;
      absl::SleepFor(absl::Milliseconds(500));
    }
    EXPECT_EQ(static_cast<int64_t>(distinct), out.page().total_count());
  }

  size_t DistinctStreamEventIds() {
    absl::StatusOr<std::vector<StreamEvent>> events = ReadStreamEvents(stack_->redis_endpoint());
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) return 0;
    absl::flat_hash_set<std::string> ids;
    for (const StreamEvent& e : *events) ids.insert(e.event_id);
    return ids.size();
  }

  LocalStack* stack_;
  std::string svc_, ops_;
  std::string wallet_[kLenders];
  std::atomic<int64_t> posted_[kLenders];
  std::atomic<int64_t> ops_done_{0};
};

TEST(LedgerSoakTest, SixteenClientsAgreeWithTheModelToTheCent) {
  auto stack = LocalStack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status();
  Soak soak(stack->get());
  soak.OpenWallets();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  soak.Run(absl::Seconds(SoakSeconds()));
  soak.Verify();
  std::printf("soak: %lld operations\n", static_cast<long long>(soak.ops_done_.load()));
}

TEST(LedgerSoakTest, KilledAndRestartedServerLosesAndDoublesNothing) {
  auto stack = LocalStack::Start();
  ASSERT_TRUE(stack.ok()) << stack.status();
  Soak soak(stack->get());
  soak.OpenWallets();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  std::atomic<bool> done{false};
  int kills = 0;
  std::thread killer([&] {
    while (!done.load()) {
      absl::SleepFor(absl::Seconds(std::max(2, SoakSeconds() / 8)));
      if (done.load()) break;
      auto st = (*stack)->StopServer(Server::kLending, SIGKILL);
      ASSERT_TRUE(st.ok());
      absl::Status started = (*stack)->StartServer(Server::kLending);
      ASSERT_TRUE(started.ok()) << started;
      ++kills;
    }
  });
  soak.Run(absl::Seconds(SoakSeconds()));
  done = true;
  killer.join();
  EXPECT_GE(kills, 3);
  soak.Verify();
  std::printf("soak with %d kills: %lld operations\n", kills,
              static_cast<long long>(soak.ops_done_.load()));
}

}  // namespace
}  // namespace microlend::testing
