// The ledger's storage seam, owned by the core. PgLedgerStore (store/) implements it on
// PostgreSQL; FakeLedgerStore (testing/) in memory for unit tests.
//
// Writes happen only inside Transact(): the core loads what a group of batches touches with
// LoadForUpdate (row locks, taken in ascending id order so concurrent transactions cannot
// deadlock), decides everything in memory (LedgerEngine), then hands one CommitSet to Write().
// Transact commits when the function returns OK and rolls back otherwise; nothing of a
// rolled-back transaction is visible. Status codes from the store:
//   Unavailable  database unreachable or outcome unknown (the caller may retry the request id)
//   Aborted      serialization failure / deadlock: retry the transaction
//   AlreadyExists unique key taken (e.g. an account's owner key)
//   NotFound     for Get* of a missing row
// Implementations are thread-safe; each Transact runs on its own connection.
#ifndef MICROLEND_SERVICES_LENDING_CORE_LEDGER_STORE_H_
#define MICROLEND_SERVICES_LENDING_CORE_LEDGER_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "services/lending/core/ledger_types.h"
#include "services/lending/core/schedule.h"

namespace microlend::lending {

// An idempotency record: the request's key and, once decided, its remembered outcome.
// `payload` is opaque to the core (the adapter's encoded response or rejection).
struct IdempotencyRecord {
  std::string caller;      // principal subject; request ids are scoped per caller
  std::string request_id;  // 1..128 chars
  std::string method;      // e.g. "LedgerService.CreateTransfers"
  std::string body_hash;   // SHA-256 of the request without its request_id (binary, 32 bytes)
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message;
  std::string payload;
  friend bool operator==(const IdempotencyRecord&, const IdempotencyRecord&) = default;
};

// What a transfer_committed event needs beyond the transfer itself (which is immutable and in
// the same transaction): both accounts' balance and available amount right after it.
//
// A credit by increment (CommitSet::credit_increments) leaves the committer without the credit
// account's totals: `credit_by_increment` is then set and credit_balance / credit_available hold
// what this commit added to the account up to and including this transfer. The store makes them
// the account's balance and available amount right after the transfer when it writes the event.
struct TransferEventRef {
  TransferId transfer_id{0};
  int64_t debit_balance = 0;
  int64_t debit_available = 0;
  int64_t credit_balance = 0;
  int64_t credit_available = 0;
  bool credit_by_increment = false;
  friend bool operator==(const TransferEventRef&, const TransferEventRef&) = default;
};

// An event for the outbox: written in the same transaction as the money movement, relayed to
// Redis Streams at least once. `event_id` is unique ("transfer-<id>"); `payload` is JSON.
//
// The committer writes a transfer's event by reference: `ref` set and `payload` empty. A store
// keeps the reference (a few numbers, not kilobytes of JSON per transfer on the commit path) and
// renders the payload with RenderTransferEvent (ledger_engine.h) when the relay fetches it, so
// FetchUnpublished always returns payloads.
struct OutboxEvent {
  int64_t sequence = 0;  // assigned by the store at write; commit order per account
  std::string event_id;
  std::string kind;  // "transfer_committed", "hold_resolved", ...
  std::optional<AccountId> account_id;  // ordering key (the debit account)
  std::string payload;
  absl::Time created_at;
  std::optional<TransferEventRef> ref;
  friend bool operator==(const OutboxEvent&, const OutboxEvent&) = default;
};

// A lender's withdrawal: requested (with a hold on the wallet) -> approved -> paid (the hold is
// posted), or rejected / cancelled (the hold is voided).
enum class WithdrawalState { kRequested = 1, kApproved = 2, kPaid = 3, kRejected = 4, kCancelled = 5 };

struct Withdrawal {
  WithdrawalId id{0};
  LenderId lender_id{0};
  AccountId wallet_account_id{0};
  Money amount = Money::Zero(Currency::Usd());
  WithdrawalState state = WithdrawalState::kRequested;
  HoldId hold_id{0};
  std::string external_payment_id;  // set when paid
  std::string reason;               // set when rejected / cancelled
  std::string destination;          // where to pay it, as the lender gave it
  absl::Time created_at;
  absl::Time updated_at;
  friend bool operator==(const Withdrawal&, const Withdrawal&) = default;
};

// The money side of a loan row (ADR 0005): what the committer reads under the loan's row lock and
// writes back in the transaction of the transfers that change it. Amounts USD minor units
// unless named local. `held_minor`/`funded_minor` mirror the funding account's credits pending /
// posted; the account is the truth and the engine decides over-funding from it.
struct LoanMoney {
  LoanId id{0};
  PartnerId partner_id{0};
  LoanStatus status = LoanStatus::kDraft;
  int64_t usd_amount_minor = 0;
  Currency local_currency = Currency::Usd();
  int64_t local_amount_minor = 0;
  std::string posting_fx_rate;
  bool pre_disbursed = false;
  std::optional<absl::Time> fundraising_deadline;
  AccountId funding_account_id{0};     // 0 until the first money movement names it
  AccountId settlement_account_id{0};  // the partner's settlement account, likewise
  int64_t funded_minor = 0;
  int64_t held_minor = 0;
  std::optional<absl::Time> funded_at;
  std::optional<absl::Time> disbursed_at;
  std::optional<absl::CivilDay> disbursed_on;
  std::optional<absl::Time> closed_at;
  int64_t repaid_local_minor = 0;   // local principal repaid
  int64_t expected_usd_minor = 0;   // cumulative USD of the repaid local at the posting rate
  int64_t received_usd_minor = 0;   // cumulative USD at the settlement rates
  int64_t coverage_usd_minor = 0;   // cumulative partner currency-loss coverage
  int64_t currency_loss_minor = 0;  // cumulative currency loss borne by funders
  int64_t repaid_usd_minor = 0;     // cumulative USD credited to funders
  int64_t written_off_minor = 0;
  int32_t repayment_count = 0;
  bool delinquent = false;
  int32_t days_in_arrears = 0;
  int64_t arrears_local_minor = 0;
  bool ended_with_currency_loss = false;
  friend bool operator==(const LoanMoney&, const LoanMoney&) = default;
};

// One funder of a loan (a lender's wallet or a sponsor's budget) and its position.
// `repaid_minor` is read from the loan's FunderBook (0 before disbursement); writing a LoanFunder
// never changes it: repayments change the book.
struct LoanFunder {
  LoanId loan_id{0};
  AccountId account_id{0};
  OwnerType owner_type = OwnerType::kLender;
  std::string owner_id;
  int64_t amount_minor = 0;   // total share
  int32_t share_count = 0;
  int64_t repaid_minor = 0;   // credited by repayments
  int64_t refunded_minor = 0; // returned by expiry or refund
  absl::Time first_lent_at;
  friend bool operator==(const LoanFunder&, const LoanFunder&) = default;
};

// A disbursed loan's funders as repayments see them, in one record (ADR 0011): account order,
// each one's share (fixed since the loan was funded) and what repayments credited it so far.
// Opened when the loan is disbursed (CommitSet::books_to_open); each repayment reads it and
// writes back `credited`. The three vectors have one element per funder.
struct FunderBook {
  LoanId loan_id{0};
  std::vector<AccountId> account_ids;  // ascending
  std::vector<int64_t> shares;         // > 0
  std::vector<int64_t> credited;       // >= 0
  friend bool operator==(const FunderBook&, const FunderBook&) = default;
};

// A credit the store applies as an increment to an account the committer did not load (ADR
// 0011): credits_posted += amount_minor. Only for accounts of `currency` whose credits are not
// limited (credits_must_not_exceed_debits unset): a credit can then break no rule of the
// account, so it needs neither its totals nor its row lock until the write. The store refuses
// (Internal) an account that is missing, of another currency or limited.
struct CreditIncrement {
  AccountId account_id{0};
  Currency currency = Currency::Usd();
  int64_t amount_minor = 0;  // > 0, the sum of the commit's credits to it
  friend bool operator==(const CreditIncrement&, const CreditIncrement&) = default;
};

// A lender's basket item: a share reserved by a hold (none when the loan had under six hours of
// fundraising left; checkout then makes a plain transfer).
struct BasketItem {
  LenderId lender_id{0};
  LoanId loan_id{0};
  std::optional<HoldId> hold_id;
  int64_t amount_minor = 0;  // USD
  absl::Time added_at;
  absl::Time expires_at;
  friend bool operator==(const BasketItem&, const BasketItem&) = default;
};

// A posted repayment (lending.v1.Repayment).
struct RepaymentRecord {
  RepaymentId id{0};
  LoanId loan_id{0};
  PartnerId partner_id{0};
  Money local_amount = Money::Zero(Currency::Usd());
  std::string settlement_fx_rate;
  absl::CivilDay repaid_on;
  std::string partner_reference;
  int64_t expected_usd_minor = 0;
  int64_t credited_usd_minor = 0;
  int64_t coverage_usd_minor = 0;
  int64_t currency_loss_minor = 0;  // expected - credited; negative when a gain recovers loss
  int32_t credited_account_count = 0;
  absl::Time posted_at;
  friend bool operator==(const RepaymentRecord&, const RepaymentRecord&) = default;
};

// A loan repayments still go to (PAYING_BACK or DEFAULTED), with its schedule, for the sweep.
struct ActiveLoan {
  LoanMoney loan;
  std::vector<ScheduleEntry> schedule;
  friend bool operator==(const ActiveLoan&, const ActiveLoan&) = default;
};

// What the loan desk checks before it queues a repayment to a loan: the loan's money side, its
// schedule (for arrears) and how many funders it has (as CountFunders: sizes the mutation).
struct RepaymentTarget {
  LoanMoney loan;
  std::vector<ScheduleEntry> schedule;
  int64_t funder_count = 0;
  friend bool operator==(const RepaymentTarget&, const RepaymentTarget&) = default;
};

// One loan of a funder's portfolio (core/loan_stats.h values it): the funder's position, the
// loan's money side and what a portfolio shows of the loan. `schedule` is the loan's schedule
// for loans not yet closed (FUNDRAISING, FUNDED, PAYING_BACK) and empty for the others.
struct PortfolioPosition {
  LoanFunder funder;
  LoanMoney loan;
  std::string loan_name;
  std::string country;
  int32_t sector = 0;
  std::vector<ScheduleEntry> schedule;
  friend bool operator==(const PortfolioPosition&, const PortfolioPosition&) = default;
};

// LoadForUpdate locks, in this order (one lock order for every transaction): the loans, then the
// union of `accounts`, every loaded loan's funding and settlement accounts and every loaded
// hold's debit and credit accounts (in ascending id order), then the holds (those named and the
// pending holds crediting the funding accounts of `loans_open_holds`), then withdrawals. Ids
// are deduplicated; missing rows are simply absent from Loaded.
struct LoadRequest {
  std::vector<AccountId> accounts;      // locked FOR UPDATE
  std::vector<HoldId> holds;            // locked FOR UPDATE, with their accounts
  std::vector<TransferId> client_ids;   // checked for existence only
  std::vector<std::pair<std::string, std::string>> idempotency;  // (caller, request_id)
  std::vector<WithdrawalId> withdrawals;  // locked FOR UPDATE
  std::vector<LoanId> loans;              // locked FOR UPDATE first
  std::vector<LoanId> loan_funders;       // every funder of these loans (loans must be locked);
                                          // their accounts are not loaded
  std::vector<LoanId> loan_books;         // the funder books of these loans (loans must be locked)
  std::vector<LoanId> loans_open_holds;   // pending holds on these loans, locked
  std::vector<LenderId> baskets;          // basket items of these lenders
};

struct Loaded {
  std::vector<Account> accounts;           // those found; missing ids are simply absent
  std::vector<Hold> holds;
  std::vector<TransferId> existing_ids;
  std::vector<IdempotencyRecord> records;
  std::vector<Withdrawal> withdrawals;
  std::vector<LoanMoney> loans;
  std::vector<LoanFunder> funders;
  std::vector<FunderBook> books;           // those that exist
  std::vector<BasketItem> basket_items;
};

struct CommitSet {
  std::vector<Transfer> transfers;            // new, in commit order
  std::vector<Hold> holds;                    // new holds and resolved ones (upsert by id)
  std::vector<Account> accounts;              // touched accounts with their new totals
  std::vector<CreditIncrement> credit_increments;  // accounts not loaded, ascending id
  // The transfers made with TransferSpec::credit_by_increment (the loan desk's credits to a
  // loan's funders), ascending: only these may be stored as repayment packs (ADR 0011).
  std::vector<TransferId> funder_credits;
  std::vector<IdempotencyRecord> idempotency;  // new records (insert; a duplicate key fails)
  std::vector<OutboxEvent> events;
  std::vector<Withdrawal> withdrawals;        // upsert by id
  std::vector<LoanMoney> loans;               // update of the money columns by id
  std::vector<LoanFunder> funders;            // upsert by (loan, account), whole rows
  std::vector<LoanFunder> funder_additions;   // new shares: insert, or add amount and count
  std::vector<BasketItem> basket_inserts;
  std::vector<std::pair<LenderId, LoanId>> basket_deletes;
  std::vector<RepaymentRecord> repayments;    // insert
  std::vector<LoanId> books_to_open;          // open these loans' books from their funders
  std::vector<FunderBook> books;              // write back `credited` of existing books
  bool empty() const {
    return transfers.empty() && holds.empty() && accounts.empty() && credit_increments.empty() &&
           idempotency.empty() && events.empty() && withdrawals.empty() && loans.empty() &&
           funders.empty() && funder_additions.empty() && basket_inserts.empty() &&
           basket_deletes.empty() && repayments.empty() && books_to_open.empty() &&
           books.empty();
  }
};

class LedgerTxn {
 public:
  virtual ~LedgerTxn() = default;
  virtual absl::StatusOr<Loaded> LoadForUpdate(const LoadRequest& request) = 0;
  // Fresh, unique, increasing ids for transfers the client did not name.
  virtual absl::StatusOr<std::vector<TransferId>> AllocateTransferIds(size_t count) = 0;
  // `count` fresh, unique ids each, ascending: one round trip for a group's withdrawals or
  // repayments (a partner's bulk commits up to 300 repayments in one group).
  virtual absl::StatusOr<std::vector<WithdrawalId>> AllocateWithdrawalIds(size_t count) = 0;
  virtual absl::StatusOr<std::vector<RepaymentId>> AllocateRepaymentIds(size_t count) = 0;
  virtual absl::Status Write(const CommitSet& commit) = 0;
};

struct PageSpec {
  int32_t limit = 100;       // already capped by the caller
  int64_t after_id = 0;      // cursor: rows with id (or sequence) beyond this
  bool newest_first = false;
};

struct AccountFilter {
  std::optional<OwnerType> owner_type;
  std::string owner_id;  // empty = any
  std::optional<AccountKind> kind;
  std::optional<Currency> currency;
};

struct TransferFilter {
  std::optional<AccountId> account_id;  // debit or credit side
  std::optional<absl::Time> from_time;  // inclusive
  std::optional<absl::Time> to_time;    // exclusive
  std::vector<TransferCode> codes;      // empty = any
  std::vector<TransferType> types;      // empty = any
  std::optional<LoanId> loan_id;
};

template <typename T>
struct Page {
  std::vector<T> items;
  int64_t next_after_id = 0;  // 0 = no more
  int64_t total_count = 0;
};

// One statement row: a posted transfer touching the account, with the account's balance after
// it (running balance). Pending holds are not rows; they show in GetBalance.
struct StatementRow {
  Transfer transfer;
  int64_t signed_amount = 0;    // + credit to the account, - debit
  int64_t balance_after = 0;
};

struct ReconcileFinding {
  enum class Kind { kCurrencySumNonzero = 1, kBalanceReplayMismatch, kConstrainedAccountNegative,
                    kLoanOverfunded, kOutboxUnpublished, kAccountHistoryMismatch };
  Kind kind;
  std::optional<AccountId> account_id;
  std::string currency;
  int64_t expected = 0;
  int64_t actual = 0;
  int64_t count = 0;
  std::string detail;
};

struct CurrencyTotals {
  Currency currency = Currency::Usd();
  int64_t balance_sum = 0;
  int64_t posted_volume = 0;
  int64_t account_count = 0;
};

struct ReconcileData {
  std::vector<CurrencyTotals> totals;
  std::vector<ReconcileFinding> findings;
  int64_t accounts_checked = 0;
  int64_t transfers_checked = 0;
};

// What the outbox relay needs of the store. Sequences are assigned at commit and increase;
// they may have gaps (a rolled-back transaction's unused numbers). Consecutive events may share
// a sequence (a store that writes several events per row): such events are fetched, published
// and marked together.
class OutboxSource {
 public:
  virtual ~OutboxSource() = default;
  // Events after the published cursor, oldest first: about `limit` (whole groups of events that
  // share a sequence, so possibly a few more), at least one group when any is unpublished.
  virtual absl::StatusOr<std::vector<OutboxEvent>> FetchUnpublished(size_t limit) = 0;
  // Records that every event up to the largest of `sequences` is published: the relay passes
  // the whole prefix it fetched and published, in order (the store may keep just a cursor).
  virtual absl::Status MarkPublished(const std::vector<int64_t>& sequences, absl::Time at) = 0;
  // The cursor: every event with a sequence up to this one is published (0 at the start).
  virtual absl::StatusOr<int64_t> PublishedThrough() = 0;
};

class LedgerStore : public OutboxSource {
 public:
  virtual ~LedgerStore() = default;

  virtual absl::Status Transact(const std::function<absl::Status(LedgerTxn&)>& fn) = 0;

  // Opens an account and remembers `record` (with the encoded response the caller put in its
  // payload) in one transaction. AlreadyExists when the owner key or the id is taken.
  virtual absl::StatusOr<Account> CreateAccount(const NewAccount& account, absl::Time now,
                                                const IdempotencyRecord& record) = 0;
  virtual absl::StatusOr<std::optional<IdempotencyRecord>> FindIdempotency(
      const std::string& caller, const std::string& request_id) = 0;
  // The records of those (caller, request id) keys that were used, in no particular order: one
  // read for every item of a bulk call.
  virtual absl::StatusOr<std::vector<IdempotencyRecord>> FindIdempotencies(
      const std::vector<std::pair<std::string, std::string>>& keys) = 0;

  virtual absl::StatusOr<Account> GetAccount(AccountId id) = 0;
  virtual absl::StatusOr<std::optional<Account>> FindAccountByOwner(OwnerType owner_type,
                                                                    const std::string& owner_id,
                                                                    AccountKind kind,
                                                                    Currency currency) = 0;
  virtual absl::StatusOr<Page<Account>> ListAccounts(const AccountFilter& filter,
                                                     const PageSpec& page) = 0;
  // A transfer; for a hold also its state (Hold.transfer.type == kPending).
  virtual absl::StatusOr<Hold> GetTransfer(TransferId id) = 0;
  // Transfers in the order of `ids` (a remembered batch read back); NotFound naming the first
  // missing one.
  virtual absl::StatusOr<std::vector<Transfer>> GetTransfers(const std::vector<TransferId>& ids) = 0;
  virtual absl::StatusOr<Page<Transfer>> ListTransfers(const TransferFilter& filter,
                                                       const PageSpec& page) = 0;
  virtual absl::StatusOr<Page<StatementRow>> Statement(AccountId account,
                                                       const TransferFilter& filter,
                                                       const PageSpec& page) = 0;
  virtual absl::StatusOr<std::vector<HoldId>> ListExpiredHolds(absl::Time now, size_t limit) = 0;

  virtual absl::StatusOr<Withdrawal> GetWithdrawal(WithdrawalId id) = 0;

  // The loan lifecycle's reads (core/loan_desk.h). NotFound for a missing loan.
  virtual absl::StatusOr<LoanMoney> GetLoanMoney(LoanId id) = 0;
  // A lender's basket, oldest first, each with its hold's state (nullopt without a hold).
  virtual absl::StatusOr<std::vector<std::pair<BasketItem, std::optional<HoldState>>>> ListBasket(
      LenderId lender) = 0;
  // A loan's funders, earliest first.
  virtual absl::StatusOr<Page<LoanFunder>> ListFunders(LoanId loan, const PageSpec& page) = 0;
  // How many funders a loan has (0 for a loan nobody lent to, or none at all): sizes the
  // mutations that move money to or from every funder.
  virtual absl::StatusOr<int64_t> CountFunders(LoanId loan) = 0;
  // The RepaymentTarget of each of `loans` that GetLoanMoney finds (the others are left out),
  // in one read, by ascending loan id: a partner's bulk of 300 repayments read each loan, its
  // schedule and its funder count one statement at a time, 0.5 s before the committer.
  virtual absl::StatusOr<std::vector<RepaymentTarget>> GetRepaymentTargets(
      const std::vector<LoanId>& loans) = 0;
  // Every loan a funding account lent to, most recent first.
  virtual absl::StatusOr<std::vector<LoanFunder>> ListPositions(AccountId funder) = 0;
  // A loan's repayments, newest first (the cursor is a repayment id).
  virtual absl::StatusOr<Page<RepaymentRecord>> ListRepayments(LoanId loan,
                                                               const PageSpec& page) = 0;
  // FUNDRAISING loans whose deadline is at or before `now`, oldest deadline first.
  virtual absl::StatusOr<std::vector<LoanId>> ListLoansToExpire(absl::Time now, size_t limit) = 0;
  // PAYING_BACK and DEFAULTED loans with an id above `after`, ascending, at most `limit`, each
  // with its repayment schedule (what the lifecycle sweep needs, in one read per page).
  virtual absl::StatusOr<std::vector<ActiveLoan>> ListActiveLoans(LoanId after, size_t limit) = 0;
  // Sets the arrears of a loan unless a repayment changed it since it was read (its
  // repaid_local_minor still equals `expected_repaid_local`); false when it had changed.
  virtual absl::StatusOr<bool> SetArrears(LoanId id, int64_t expected_repaid_local, bool delinquent,
                                          int32_t days_in_arrears, int64_t arrears_local_minor) = 0;
  // Every loan a funding account lent to, with the loan (PortfolioPosition), in one read: most
  // recent first_lent_at first (then loan id, descending), at most `limit`.
  virtual absl::StatusOr<std::vector<PortfolioPosition>> ListPortfolio(AccountId funder,
                                                                       size_t limit) = 0;
  virtual absl::StatusOr<Page<Withdrawal>> ListWithdrawals(std::optional<LenderId> lender,
                                                           std::optional<WithdrawalState> state,
                                                           const PageSpec& page) = 0;

  // The invariant checks, on one consistent snapshot. `outbox_deadline`: events older than this
  // and still unpublished are findings.
  virtual absl::StatusOr<ReconcileData> Reconcile(const std::vector<Currency>& currencies,
                                                  bool replay_balances,
                                                  absl::Time outbox_deadline) = 0;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_LEDGER_STORE_H_
