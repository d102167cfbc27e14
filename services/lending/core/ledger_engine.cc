#include "services/lending/core/ledger_engine.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/check.h"
#include "common/strings.h"

namespace microlend::lending {
namespace {

// A rejected item before its index is known.
struct Reject {
  RejectReason reason;
  std::string detail;
};
using ItemResult = std::optional<Reject>;  // nullopt: the item is fine

bool IsKnownCode(TransferCode code) {
  const int value = static_cast<int>(code);
  return value >= 1 && value <= kMaxTransferCode;
}

bool NeedsLoan(TransferCode code) {
  switch (code) {
    case TransferCode::kLoanShare:
    case TransferCode::kMatch:
    case TransferCode::kDisbursement:
    case TransferCode::kRepayment:
    case TransferCode::kRefund:
      return true;
    default:
      return false;
  }
}

std::string_view CodeName(TransferCode code) {
  static constexpr const char* kNames[] = {"deposit",
                                           "loan_share",
                                           "disbursement",
                                           "repayment",
                                           "refund",
                                           "donation",
                                           "withdrawal",
                                           "currency_loss",
                                           "write_off",
                                           "match",
                                           "fee",
                                           "correction",
                                           "order_escrow",
                                           "currency_loss_coverage",
                                           "partner_remittance",
                                           "sponsor_funding"};
  static_assert(std::size(kNames) == kMaxTransferCode);
  ML_CHECK(IsKnownCode(code), absl::StrCat("unknown TransferCode ", static_cast<int>(code)));
  return kNames[static_cast<int>(code) - 1];
}

std::string_view TypeName(TransferType type) {
  switch (type) {
    case TransferType::kPosted:
      return "posted";
    case TransferType::kPending:
      return "pending";
    case TransferType::kPostPending:
      return "post_pending";
    case TransferType::kVoidPending:
      return "void_pending";
  }
  ML_CHECK(false, absl::StrCat("unknown TransferType ", static_cast<int>(type)));
  return "";
}

std::string_view OwnerTypeName(OwnerType type) {
  static constexpr const char* kNames[] = {"lender",   "partner", "loan",
                                           "platform", "sponsor", "external_settlement"};
  const int value = static_cast<int>(type);
  ML_CHECK(value >= 1 && value <= 6, absl::StrCat("unknown OwnerType ", value));
  return kNames[value - 1];
}

std::string_view KindName(AccountKind kind) {
  static constexpr const char* kNames[] = {
      "lender_wallet",    "loan_funding",    "partner_settlement", "sponsor_budget",
      "platform_revenue", "platform_escrow", "platform_loss",      "external_cash"};
  const int value = static_cast<int>(kind);
  ML_CHECK(value >= 1 && value <= 8, absl::StrCat("unknown AccountKind ", value));
  return kNames[value - 1];
}

std::string Code(Currency currency) { return std::string(currency.code()); }

// RFC 3339 in UTC with a "Z", fractional seconds only when there are any.
std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

// "10.00 USD"; a value outside int64 (a sum of totals) is shown in minor units.
std::string Format(__int128 minor, Currency currency) {
  if (minor >= std::numeric_limits<int64_t>::min() &&
      minor <= std::numeric_limits<int64_t>::max()) {
    return absl::StrCat(Money::FromMinor(currency, static_cast<int64_t>(minor)).ToString(), " ",
                        Code(currency));
  }
  return absl::StrCat(minor < 0 ? "below " : "above ", "int64 minor units of ", Code(currency));
}

ItemResult CheckTimeout(const TransferSpec& spec) {
  if (!spec.pending && spec.timeout_ms != 0) {
    return Reject{RejectReason::kTimeoutInvalid, "timeout_ms is only allowed on holds"};
  }
  if (spec.timeout_ms < 0 || spec.timeout_ms > kMaxHoldTimeoutMs) {
    return Reject{
        RejectReason::kTimeoutInvalid,
        absl::StrCat("timeout_ms ", spec.timeout_ms, " is outside 0..", kMaxHoldTimeoutMs)};
  }
  return std::nullopt;
}

ItemResult CheckNewTransferShape(const TransferSpec& spec) {
  if (spec.expiry) return Reject{RejectReason::kShapeInvalid, "expiry applies only to a void"};
  if (!spec.debit_account_id.has_value() || !spec.credit_account_id.has_value()) {
    return Reject{RejectReason::kShapeInvalid,
                  "a new transfer needs debit_account_id and credit_account_id"};
  }
  if (*spec.debit_account_id == *spec.credit_account_id) {
    return Reject{RejectReason::kSameAccount,
                  absl::StrCat("account ", spec.debit_account_id->value(), " on both sides")};
  }
  if (!spec.amount.has_value() || !spec.amount->is_positive()) {
    return Reject{RejectReason::kAmountInvalid, "a new transfer needs a positive amount"};
  }
  if (!spec.code.has_value() || !IsKnownCode(*spec.code)) {
    return Reject{RejectReason::kCodeMissing, "a new transfer needs a code"};
  }
  if (NeedsLoan(*spec.code) && !spec.references.loan_id.has_value()) {
    return Reject{RejectReason::kReferenceMissing,
                  absl::StrCat(AsAbsl(CodeName(*spec.code)), " must name its loan")};
  }
  return CheckTimeout(spec);
}

ItemResult CheckResolutionShape(const TransferSpec& spec) {
  if (spec.pending) {
    return Reject{RejectReason::kShapeInvalid, "a hold resolution cannot itself be pending"};
  }
  if (!spec.pending_id.has_value()) {
    return Reject{RejectReason::kShapeInvalid, "pending_action without pending_id"};
  }
  if (spec.pending_action != PendingAction::kPost && spec.pending_action != PendingAction::kVoid) {
    return Reject{RejectReason::kShapeInvalid, "pending_id without pending_action POST or VOID"};
  }
  if (spec.expiry && spec.pending_action != PendingAction::kVoid) {
    return Reject{RejectReason::kShapeInvalid, "expiry applies only to a void"};
  }
  if (spec.amount.has_value() && !spec.amount->is_positive()) {
    return Reject{RejectReason::kAmountInvalid, "a resolution amount must be positive"};
  }
  if (spec.code.has_value() && !IsKnownCode(*spec.code)) {
    return Reject{RejectReason::kCodeMissing, "unknown code"};
  }
  return CheckTimeout(spec);
}

ItemResult CheckItemShape(const TransferSpec& spec) {
  if (spec.memo.size() > kMaxMemoBytes) {
    return Reject{RejectReason::kShapeInvalid,
                  absl::StrCat("memo has ", spec.memo.size(), " bytes; at most ", kMaxMemoBytes)};
  }
  if (spec.references.external_payment_id.size() > kMaxMemoBytes) {
    return Reject{RejectReason::kShapeInvalid,
                  absl::StrCat("external_payment_id has ", spec.references.external_payment_id.size(),
                               " bytes; at most ", kMaxMemoBytes)};
  }
  if (!IsStorableText(spec.memo) || !IsStorableText(spec.references.external_payment_id)) {
    return Reject{RejectReason::kShapeInvalid,
                  "memo and external_payment_id must be UTF-8 text without NUL bytes"};
  }
  const bool resolution =
      spec.pending_id.has_value() || spec.pending_action != PendingAction::kNone;
  return resolution ? CheckResolutionShape(spec) : CheckNewTransferShape(spec);
}

std::optional<Rejection> CheckBatchSize(size_t count) {
  if (count >= 1 && count <= kMaxTransfersPerBatch) return std::nullopt;
  return Rejection{
      0, RejectReason::kShapeInvalid,
      absl::StrCat("a batch has 1..", kMaxTransfersPerBatch, " transfers, not ", count)};
}

Rejection At(size_t index, Reject reject) {
  return Rejection{static_cast<int32_t>(index), reject.reason, std::move(reject.detail)};
}

// Shape of item `index` plus the uniqueness of its client id among the items before it.
ItemResult CheckItem(const TransferSpec& spec, absl::flat_hash_set<TransferId>& batch_ids) {
  if (ItemResult bad = CheckItemShape(spec)) return bad;
  if (spec.id.has_value() && !batch_ids.insert(*spec.id).second) {
    return Reject{RejectReason::kDuplicateIdInBatch,
                  absl::StrCat("id ", spec.id->value(), " appears earlier in the batch")};
  }
  return std::nullopt;
}

struct Totals {
  int64_t debits_posted = 0;
  int64_t credits_posted = 0;
  int64_t debits_pending = 0;
  int64_t credits_pending = 0;
};

Totals TotalsOf(const Account& account) {
  return {account.debits_posted, account.credits_posted, account.debits_pending,
          account.credits_pending};
}

// `totals` moved by `delta`, or nullopt when a total leaves int64. A total going negative means
// our own books are broken (a pending release larger than what is pending).
std::optional<Totals> Moved(const Account& account, const Totals& delta) {
  Totals out;
  const Totals in = TotalsOf(account);
  if (__builtin_add_overflow(in.debits_posted, delta.debits_posted, &out.debits_posted) ||
      __builtin_add_overflow(in.credits_posted, delta.credits_posted, &out.credits_posted) ||
      __builtin_add_overflow(in.debits_pending, delta.debits_pending, &out.debits_pending) ||
      __builtin_add_overflow(in.credits_pending, delta.credits_pending, &out.credits_pending)) {
    return std::nullopt;
  }
  ML_CHECK(out.debits_posted >= 0 && out.credits_posted >= 0 && out.debits_pending >= 0 &&
               out.credits_pending >= 0,
           absl::StrCat("account ", account.id.value(), " total would go negative"));
  return out;
}

Reject Overflow(const Account& account) {
  return Reject{RejectReason::kAmountInvalid,
                absl::StrCat("account ", account.id.value(), " totals would exceed int64")};
}

// debits_must_not_exceed_credits of `debit`, for a new transfer or hold of `amount` (computed in
// 128 bits: a sum beyond int64 simply exceeds).
ItemResult CheckDebitRoom(const Account& debit, int64_t amount) {
  if (debit.flags.debits_must_not_exceed_credits) {
    const __int128 available =
        __int128{debit.credits_posted} - debit.debits_posted - debit.debits_pending;
    if (available < amount) {
      return Reject{
          RejectReason::kExceedsCredits,
          absl::StrCat("account ", debit.id.value(), " available ",
                       Format(available, debit.currency), " < ", Format(amount, debit.currency))};
    }
  }
  return std::nullopt;
}

// debits_must_not_exceed_credits / credits_must_not_exceed_debits, for a new transfer or hold
// of `amount` (computed in 128 bits: a sum beyond int64 simply exceeds).
ItemResult CheckFlags(const Account& debit, const Account& credit, int64_t amount) {
  if (ItemResult exceeded = CheckDebitRoom(debit, amount)) return exceeded;
  if (credit.flags.credits_must_not_exceed_debits) {
    const __int128 room =
        __int128{credit.debits_posted} - credit.credits_posted - credit.credits_pending;
    if (room < amount) {
      return Reject{
          RejectReason::kExceedsDebits,
          absl::StrCat("account ", credit.id.value(), " room for credits ",
                       Format(room, credit.currency), " < ", Format(amount, credit.currency))};
    }
  }
  return std::nullopt;
}

// The transfer_committed event of `transfer` by reference (the committer's form, ADR 0007).
OutboxEvent CommittedEvent(const Transfer& transfer, const TransferEventRef& ref) {
  OutboxEvent event;
  event.event_id = absl::StrCat("transfer-", transfer.id.value());
  event.kind = "transfer_committed";
  event.account_id = transfer.debit_account_id;
  event.created_at = transfer.created_at;
  event.ref = ref;
  return event;
}

// The working set's parts, as the batch sees them (LedgerEngine is WorkingSet's friend and hands
// them over).
struct Parts {
  absl::flat_hash_map<AccountId, Account>& accounts;
  absl::flat_hash_map<HoldId, Hold>& holds;
  absl::flat_hash_set<TransferId>& taken_ids;
  std::vector<Transfer>& transfers;
  absl::flat_hash_set<AccountId>& touched_accounts;
  absl::flat_hash_set<HoldId>& touched_holds;
  std::vector<OutboxEvent>& events;
  const absl::flat_hash_map<LoanId, LoanMoney>& loans;
  absl::flat_hash_map<AccountId, CreditIncrement>& credit_increments;
  std::vector<TransferId>& funder_credits;
};

// Applies one batch item by item and remembers, before the first change to anything, how it
// was, so that Rollback() returns the working set to exactly its state before the batch.
class BatchApplier {
 public:
  BatchApplier(Parts parts, const BatchContext& context)
      : w_(parts),
        context_(context),
        first_transfer_(parts.transfers.size()),
        first_event_(parts.events.size()),
        first_funder_credit_(parts.funder_credits.size()) {}

  ItemResult Apply(size_t index, const TransferSpec& spec) {
    const bool resolution = spec.pending_id.has_value();
    return resolution ? ApplyResolution(index, spec) : ApplyNew(index, spec);
  }

  std::vector<Transfer> Applied() const {
    return {w_.transfers.begin() + static_cast<ptrdiff_t>(first_transfer_), w_.transfers.end()};
  }

  void Rollback();

 private:
  // What the item will write, decided before anything changes.
  struct Plan {
    Transfer transfer;
    Totals debit;
    Totals credit;
    HoldState hold_state = HoldState::kPending;  // what a resolution leaves the hold in
  };

  ItemResult ApplyNew(size_t index, const TransferSpec& spec);
  ItemResult ApplyCreditByIncrement(size_t index, const TransferSpec& spec, Account& debit);
  ItemResult ApplyResolution(size_t index, const TransferSpec& spec);
  ItemResult CheckHoldState(const Hold& hold, const TransferSpec& spec) const;
  std::variant<int64_t, Reject> ResolvedAmount(const Hold& hold, const TransferSpec& spec) const;
  ItemResult ClientIdFree(const TransferSpec& spec) const;
  ItemResult CheckLoanCredit(const Account& funding, const TransferSpec& spec,
                             int64_t amount) const;
  std::variant<TransferId, Reject> AssignId(const TransferSpec& spec);
  Account& AccountOfHold(const Hold& hold, AccountId id);
  void Commit(Plan plan);
  void SetTotals(Account& account, const Totals& totals);
  void SaveHold(const Hold& hold, bool is_new);
  Transfer NewTransfer(size_t index, const TransferSpec& spec, const Hold* hold) const;

  Parts w_;
  const BatchContext& context_;
  size_t first_transfer_;
  size_t first_event_;
  size_t first_funder_credit_;
  absl::flat_hash_map<AccountId, Account> saved_accounts_;
  absl::flat_hash_map<HoldId, std::optional<Hold>> saved_holds_;  // nullopt: new in the batch
  // Increments before the batch changed them (nullopt: none then).
  absl::flat_hash_map<AccountId, std::optional<CreditIncrement>> saved_increments_;
  std::vector<TransferId> added_ids_;
  std::vector<AccountId> newly_touched_accounts_;
  std::vector<HoldId> newly_touched_holds_;
};

Transfer BatchApplier::NewTransfer(size_t index, const TransferSpec& spec, const Hold* hold) const {
  Transfer t;
  t.memo = spec.memo;
  t.created_at = context_.now;
  t.batch_request_id = context_.request_id;
  t.batch_index = static_cast<int32_t>(index);
  if (hold == nullptr) {
    t.debit_account_id = *spec.debit_account_id;
    t.credit_account_id = *spec.credit_account_id;
    t.amount = *spec.amount;
    t.code = *spec.code;
    t.references = spec.references;
    t.type = spec.pending ? TransferType::kPending : TransferType::kPosted;
    t.timeout_ms = spec.timeout_ms;
    if (spec.pending && spec.timeout_ms > 0) {
      t.expires_at = context_.now + absl::Milliseconds(spec.timeout_ms);
    }
    return t;
  }
  const Transfer& h = hold->transfer;
  t.debit_account_id = h.debit_account_id;
  t.credit_account_id = h.credit_account_id;
  t.amount = h.amount;
  t.code = spec.code.value_or(h.code);
  t.references = spec.references == TransferReferences{} ? h.references : spec.references;
  t.type = spec.pending_action == PendingAction::kPost ? TransferType::kPostPending
                                                       : TransferType::kVoidPending;
  t.pending_id = h.id;
  return t;
}

ItemResult BatchApplier::ClientIdFree(const TransferSpec& spec) const {
  if (spec.id.has_value() && w_.taken_ids.contains(*spec.id)) {
    return Reject{RejectReason::kIdAlreadyExists,
                  absl::StrCat("transfer id ", spec.id->value(), " already exists")};
  }
  return std::nullopt;
}

ItemResult BatchApplier::CheckLoanCredit(const Account& funding, const TransferSpec& spec,
                                         int64_t amount) const {
  if (spec.code != TransferCode::kLoanShare && spec.code != TransferCode::kMatch) {
    return Reject{RejectReason::kShapeInvalid,
                  absl::StrCat("only LOAN_SHARE and MATCH may credit loan funding account ",
                               funding.id.value())};
  }
  const LoanId loan_id = *spec.references.loan_id;  // NeedsLoan made it present
  if (funding.owner_type != OwnerType::kLoan || funding.owner_id != absl::StrCat(loan_id.value())) {
    return Reject{RejectReason::kShapeInvalid,
                  absl::StrCat("account ", funding.id.value(), " is not the funding account of loan ",
                               loan_id.value())};
  }
  auto loan = w_.loans.find(loan_id);
  if (loan == w_.loans.end()) {
    return Reject{RejectReason::kLoanNotFound, absl::StrCat("loan ", loan_id.value(), " not found")};
  }
  if (loan->second.status != LoanStatus::kFundraising) {
    return Reject{RejectReason::kLoanNotFundraising,
                  absl::StrCat("loan ", loan_id.value(), " is ",
                               AsAbsl(LoanStatusName(loan->second.status)), ", not FUNDRAISING")};
  }
  const __int128 after = static_cast<__int128>(funding.credits_posted) + funding.credits_pending +
                         amount;
  if (after > loan->second.usd_amount_minor) {
    const int64_t left = loan->second.usd_amount_minor - funding.credits_posted -
                         funding.credits_pending;
    return Reject{RejectReason::kLoanOverfunded,
                  absl::StrCat("loan ", loan_id.value(), " has ",
                               Format(std::max<int64_t>(left, 0), funding.currency),
                               " left to fund; ", Format(amount, funding.currency),
                               " would over-fund it")};
  }
  return std::nullopt;
}

// Called once every check has passed, so that next_id is consumed only by applied items.
std::variant<TransferId, Reject> BatchApplier::AssignId(const TransferSpec& spec) {
  if (spec.id.has_value()) return *spec.id;
  ML_CHECK(static_cast<bool>(context_.next_id), "BatchContext::next_id is not set");
  const TransferId id = context_.next_id();
  if (w_.taken_ids.contains(id)) {
    // A client-chosen id of this group of batches took the allocated id; request data, so a
    // rejection rather than a crash.
    return Reject{RejectReason::kIdAlreadyExists,
                  absl::StrCat("allocated transfer id ", id.value(),
                               " is already taken by a client-chosen id; retry")};
  }
  return id;
}

ItemResult BatchApplier::ApplyNew(size_t index, const TransferSpec& spec) {
  auto debit = w_.accounts.find(*spec.debit_account_id);
  if (debit == w_.accounts.end()) {
    return Reject{RejectReason::kDebitAccountNotFound,
                  absl::StrCat("debit account ", spec.debit_account_id->value(), " not found")};
  }
  auto credit = w_.accounts.find(*spec.credit_account_id);
  if (credit == w_.accounts.end() && spec.credit_by_increment && !spec.pending) {
    return ApplyCreditByIncrement(index, spec, debit->second);
  }
  if (credit == w_.accounts.end()) {
    return Reject{RejectReason::kCreditAccountNotFound,
                  absl::StrCat("credit account ", spec.credit_account_id->value(), " not found")};
  }
  const Account& d = debit->second;
  const Account& c = credit->second;
  if (d.currency != c.currency || spec.amount->currency() != d.currency) {
    return Reject{RejectReason::kCurrencyMismatch,
                  absl::StrCat("debit account ", d.id.value(), " is ", Code(d.currency),
                               ", credit account ", c.id.value(), " is ", Code(c.currency),
                               ", amount is ", Code(spec.amount->currency()))};
  }
  if (ItemResult taken = ClientIdFree(spec)) return taken;
  const int64_t amount = spec.amount->minor_units();
  if (ItemResult exceeded = CheckFlags(d, c, amount)) return exceeded;
  if (c.kind == AccountKind::kLoanFunding) {
    if (ItemResult refused = CheckLoanCredit(c, spec, amount)) return refused;
  }
  const Totals debit_delta = spec.pending ? Totals{0, 0, amount, 0} : Totals{amount, 0, 0, 0};
  const Totals credit_delta = spec.pending ? Totals{0, 0, 0, amount} : Totals{0, amount, 0, 0};
  const std::optional<Totals> new_debit = Moved(d, debit_delta);
  if (!new_debit.has_value()) return Overflow(d);
  const std::optional<Totals> new_credit = Moved(c, credit_delta);
  if (!new_credit.has_value()) return Overflow(c);
  Plan plan{NewTransfer(index, spec, nullptr), *new_debit, *new_credit};
  std::variant<TransferId, Reject> id = AssignId(spec);
  if (Reject* bad = std::get_if<Reject>(&id)) return std::move(*bad);
  plan.transfer.id = std::get<TransferId>(id);
  if (spec.credit_by_increment) w_.funder_credits.push_back(plan.transfer.id);
  Commit(std::move(plan));
  return std::nullopt;
}

ItemResult BatchApplier::ApplyCreditByIncrement(size_t index, const TransferSpec& spec,
                                                Account& debit) {
  const AccountId credit_id = *spec.credit_account_id;
  if (spec.amount->currency() != debit.currency) {
    return Reject{RejectReason::kCurrencyMismatch,
                  absl::StrCat("debit account ", debit.id.value(), " is ", Code(debit.currency),
                               ", amount is ", Code(spec.amount->currency()))};
  }
  if (ItemResult taken = ClientIdFree(spec)) return taken;
  const int64_t amount = spec.amount->minor_units();
  if (ItemResult exceeded = CheckDebitRoom(debit, amount)) return exceeded;
  const std::optional<Totals> new_debit = Moved(debit, Totals{amount, 0, 0, 0});
  if (!new_debit.has_value()) return Overflow(debit);
  auto previous = w_.credit_increments.find(credit_id);
  int64_t added = amount;
  if (previous != w_.credit_increments.end() &&
      __builtin_add_overflow(previous->second.amount_minor, amount, &added)) {
    return Reject{RejectReason::kAmountInvalid,
                  absl::StrCat("credits to account ", credit_id.value(), " would exceed int64")};
  }
  Transfer transfer = NewTransfer(index, spec, nullptr);
  std::variant<TransferId, Reject> id = AssignId(spec);
  if (Reject* bad = std::get_if<Reject>(&id)) return std::move(*bad);
  transfer.id = std::get<TransferId>(id);
  ML_CHECK(w_.taken_ids.insert(transfer.id).second,
           absl::StrCat("transfer id ", transfer.id.value(), " assigned twice"));
  added_ids_.push_back(transfer.id);
  if (!saved_increments_.contains(credit_id)) {
    saved_increments_.emplace(credit_id, previous == w_.credit_increments.end()
                                             ? std::nullopt
                                             : std::optional<CreditIncrement>(previous->second));
  }
  w_.credit_increments.insert_or_assign(
      credit_id, CreditIncrement{.account_id = credit_id, .currency = debit.currency,
                                 .amount_minor = added});
  SetTotals(debit, *new_debit);
  w_.events.push_back(CommittedEvent(transfer, {.transfer_id = transfer.id,
                                                .debit_balance = debit.balance(),
                                                .debit_available = debit.available(),
                                                .credit_balance = added,
                                                .credit_available = added,
                                                .credit_by_increment = true}));
  w_.funder_credits.push_back(transfer.id);
  w_.transfers.push_back(std::move(transfer));
  return std::nullopt;
}

// Whether `spec` may resolve `hold` now: same accounts, still pending, not past its expiry
// (unless the sweep expires it).
ItemResult BatchApplier::CheckHoldState(const Hold& hold, const TransferSpec& spec) const {
  const int64_t id = hold.transfer.id.value();
  if ((spec.debit_account_id.has_value() &&
       *spec.debit_account_id != hold.transfer.debit_account_id) ||
      (spec.credit_account_id.has_value() &&
       *spec.credit_account_id != hold.transfer.credit_account_id)) {
    return Reject{RejectReason::kPendingAccountsMismatch,
                  absl::StrCat("accounts differ from hold ", id, "'s ",
                               hold.transfer.debit_account_id.value(), " -> ",
                               hold.transfer.credit_account_id.value())};
  }
  switch (hold.state) {
    case HoldState::kPending:
      break;
    case HoldState::kPosted:
      return Reject{RejectReason::kPendingTransferAlreadyPosted,
                    absl::StrCat("hold ", id, " is already posted")};
    case HoldState::kVoided:
      return Reject{RejectReason::kPendingTransferAlreadyVoided,
                    absl::StrCat("hold ", id, " is already voided")};
    case HoldState::kExpired:
      return Reject{RejectReason::kPendingTransferExpired,
                    absl::StrCat("hold ", id, " has expired")};
  }
  const std::optional<absl::Time>& expires_at = hold.transfer.expires_at;
  const bool past = expires_at.has_value() && *expires_at <= context_.now;
  if (spec.expiry && !past) {
    return Reject{RejectReason::kShapeInvalid,
                  absl::StrCat("hold ", id, " is not past an expiry time")};
  }
  if (past && !spec.expiry) {
    return Reject{RejectReason::kPendingTransferExpired,
                  absl::StrCat("hold ", id, " expired at ", Rfc3339(*expires_at))};
  }
  return std::nullopt;
}

// The amount a resolution moves: the whole hold unless a POST names a smaller part.
std::variant<int64_t, Reject> BatchApplier::ResolvedAmount(const Hold& hold,
                                                           const TransferSpec& spec) const {
  const Money& held = hold.transfer.amount;
  if (!spec.amount.has_value()) return held.minor_units();
  const Money& asked = *spec.amount;
  if (asked.currency() != held.currency()) {
    return Reject{RejectReason::kCurrencyMismatch,
                  absl::StrCat("hold ", hold.transfer.id.value(), " is ", Code(held.currency()),
                               ", amount is ", Code(asked.currency()))};
  }
  if (spec.pending_action == PendingAction::kVoid && asked != held) {
    return Reject{RejectReason::kAmountInvalid,
                  absl::StrCat("a void releases the whole hold of ",
                               Format(held.minor_units(), held.currency()), ", not ",
                               Format(asked.minor_units(), held.currency()))};
  }
  if (asked.minor_units() > held.minor_units()) {
    return Reject{RejectReason::kExceedsPendingAmount,
                  absl::StrCat(Format(asked.minor_units(), held.currency()), " exceeds hold ",
                               hold.transfer.id.value(), " of ",
                               Format(held.minor_units(), held.currency()))};
  }
  return asked.minor_units();
}

// A hold's accounts exist in the ledger; the committer loads them with the hold.
Account& BatchApplier::AccountOfHold(const Hold& hold, AccountId id) {
  auto it = w_.accounts.find(id);
  ML_CHECK(it != w_.accounts.end(),
           absl::StrCat("account ", id.value(), " of hold ", hold.transfer.id.value(),
                        " is not in the working set; load a hold's accounts with it"));
  return it->second;
}

ItemResult BatchApplier::ApplyResolution(size_t index, const TransferSpec& spec) {
  auto found = w_.holds.find(*spec.pending_id);
  if (found == w_.holds.end()) {
    return Reject{RejectReason::kPendingTransferNotFound,
                  absl::StrCat("hold ", spec.pending_id->value(), " not found")};
  }
  const Hold& hold = found->second;
  if (ItemResult bad = CheckHoldState(hold, spec)) return bad;
  if (hold.transfer.references.withdrawal_id.has_value() && !spec.withdrawal_step &&
      !spec.expiry) {
    return Reject{RejectReason::kShapeInvalid,
                  absl::StrCat("hold ", hold.transfer.id.value(), " belongs to withdrawal ",
                               hold.transfer.references.withdrawal_id->value(),
                               "; resolve it with the withdrawal RPCs")};
  }
  std::variant<int64_t, Reject> amount = ResolvedAmount(hold, spec);
  if (Reject* bad = std::get_if<Reject>(&amount)) return std::move(*bad);
  Plan plan{NewTransfer(index, spec, &hold), {}, {}};
  if (NeedsLoan(plan.transfer.code) && !plan.transfer.references.loan_id.has_value()) {
    return Reject{RejectReason::kReferenceMissing,
                  absl::StrCat(AsAbsl(CodeName(plan.transfer.code)), " must name its loan")};
  }
  if (ItemResult taken = ClientIdFree(spec)) return taken;
  const int64_t held = hold.transfer.amount.minor_units();
  const int64_t posted =
      spec.pending_action == PendingAction::kPost ? std::get<int64_t>(amount) : 0;
  const Account& d = AccountOfHold(hold, hold.transfer.debit_account_id);
  const Account& c = AccountOfHold(hold, hold.transfer.credit_account_id);
  const std::optional<Totals> new_debit = Moved(d, Totals{posted, 0, -held, 0});
  if (!new_debit.has_value()) return Overflow(d);
  const std::optional<Totals> new_credit = Moved(c, Totals{0, posted, 0, -held});
  if (!new_credit.has_value()) return Overflow(c);
  plan.debit = *new_debit;
  plan.credit = *new_credit;
  plan.hold_state = spec.pending_action == PendingAction::kPost ? HoldState::kPosted
                    : spec.expiry                               ? HoldState::kExpired
                                                                : HoldState::kVoided;
  if (spec.pending_action == PendingAction::kPost) {
    plan.transfer.amount = Money::FromMinor(hold.transfer.amount.currency(), posted);
  }
  std::variant<TransferId, Reject> id = AssignId(spec);
  if (Reject* bad = std::get_if<Reject>(&id)) return std::move(*bad);
  plan.transfer.id = std::get<TransferId>(id);
  Commit(std::move(plan));
  return std::nullopt;
}

void BatchApplier::SetTotals(Account& account, const Totals& totals) {
  if (!saved_accounts_.contains(account.id)) saved_accounts_.emplace(account.id, account);
  if (w_.touched_accounts.insert(account.id).second) newly_touched_accounts_.push_back(account.id);
  account.debits_posted = totals.debits_posted;
  account.credits_posted = totals.credits_posted;
  account.debits_pending = totals.debits_pending;
  account.credits_pending = totals.credits_pending;
}

void BatchApplier::SaveHold(const Hold& hold, bool is_new) {
  const HoldId id = hold.transfer.id;
  if (!saved_holds_.contains(id)) {
    saved_holds_.emplace(id, is_new ? std::nullopt : std::optional<Hold>(w_.holds.at(id)));
  }
  if (w_.touched_holds.insert(id).second) newly_touched_holds_.push_back(id);
  w_.holds.insert_or_assign(id, hold);
}

void BatchApplier::Commit(Plan plan) {
  const Transfer& t = plan.transfer;
  ML_CHECK(w_.taken_ids.insert(t.id).second,
           absl::StrCat("transfer id ", t.id.value(), " assigned twice"));
  added_ids_.push_back(t.id);
  Account& debit = w_.accounts.at(t.debit_account_id);
  Account& credit = w_.accounts.at(t.credit_account_id);
  SetTotals(debit, plan.debit);
  SetTotals(credit, plan.credit);
  if (t.type == TransferType::kPending) {
    SaveHold(Hold{t, HoldState::kPending, 0, std::nullopt}, /*is_new=*/true);
  } else if (t.pending_id.has_value()) {
    Hold hold = w_.holds.at(*t.pending_id);
    hold.state = plan.hold_state;
    hold.posted_amount = t.type == TransferType::kPostPending ? t.amount.minor_units() : 0;
    hold.resolved_by = t.id;
    SaveHold(hold, /*is_new=*/false);
  }
  w_.events.push_back(TransferEventByRef(t, debit, credit));
  w_.transfers.push_back(std::move(plan.transfer));
}

void BatchApplier::Rollback() {
  for (auto& [id, account] : saved_accounts_) w_.accounts.insert_or_assign(id, std::move(account));
  for (auto& [id, hold] : saved_holds_) {
    if (hold.has_value()) {
      w_.holds.insert_or_assign(id, std::move(*hold));
    } else {
      w_.holds.erase(id);
    }
  }
  for (TransferId id : added_ids_) w_.taken_ids.erase(id);
  for (auto& [id, increment] : saved_increments_) {
    if (increment.has_value()) {
      w_.credit_increments.insert_or_assign(id, *increment);
    } else {
      w_.credit_increments.erase(id);
    }
  }
  saved_increments_.clear();
  for (AccountId id : newly_touched_accounts_) w_.touched_accounts.erase(id);
  for (HoldId id : newly_touched_holds_) w_.touched_holds.erase(id);
  w_.transfers.resize(first_transfer_);
  w_.events.resize(first_event_);
  w_.funder_credits.erase(
      w_.funder_credits.begin() + static_cast<ptrdiff_t>(first_funder_credit_),
      w_.funder_credits.end());
  saved_accounts_.clear();
  saved_holds_.clear();
}

}  // namespace

WorkingSet::WorkingSet(Loaded loaded) {
  for (Account& account : loaded.accounts) {
    const AccountId id = account.id;
    accounts_.insert_or_assign(id, std::move(account));
  }
  for (Hold& hold : loaded.holds) {
    // A store may answer a pending_id that names a posted transfer with that transfer: its id
    // is taken, but it is not a hold (resolving it is kPendingTransferNotFound).
    taken_ids_.insert(hold.transfer.id);
    if (hold.resolved_by.has_value()) taken_ids_.insert(*hold.resolved_by);
    if (hold.transfer.type != TransferType::kPending) continue;
    const HoldId id = hold.transfer.id;
    holds_.insert_or_assign(id, std::move(hold));
  }
  taken_ids_.insert(loaded.existing_ids.begin(), loaded.existing_ids.end());
  for (LoanMoney& loan : loaded.loans) {
    const LoanId id = loan.id;
    loans_.insert_or_assign(id, std::move(loan));
  }
}

const LoanMoney* WorkingSet::FindLoan(LoanId id) const {
  auto it = loans_.find(id);
  return it == loans_.end() ? nullptr : &it->second;
}

LoanMoney* WorkingSet::MutableLoan(LoanId id) {
  auto it = loans_.find(id);
  if (it == loans_.end()) return nullptr;
  touched_loans_.insert(id);
  return &it->second;
}

const Account* WorkingSet::FindAccount(AccountId id) const {
  auto it = accounts_.find(id);
  return it == accounts_.end() ? nullptr : &it->second;
}

const Hold* WorkingSet::FindHold(HoldId id) const {
  auto it = holds_.find(id);
  return it == holds_.end() ? nullptr : &it->second;
}

bool WorkingSet::TransferIdTaken(TransferId id) const { return taken_ids_.contains(id); }

CommitSet WorkingSet::TakeCommitSet() {
  CommitSet out;
  out.transfers = std::move(transfers_);
  out.events = std::move(events_);
  transfers_.clear();
  events_.clear();
  for (AccountId id : touched_accounts_) out.accounts.push_back(accounts_.at(id));
  for (HoldId id : touched_holds_) out.holds.push_back(holds_.at(id));
  for (LoanId id : touched_loans_) out.loans.push_back(loans_.at(id));
  for (const auto& [id, increment] : credit_increments_) out.credit_increments.push_back(increment);
  credit_increments_.clear();
  out.funder_credits = std::move(funder_credits_);
  funder_credits_.clear();
  std::sort(out.funder_credits.begin(), out.funder_credits.end());
  std::sort(out.credit_increments.begin(), out.credit_increments.end(),
            [](const CreditIncrement& a, const CreditIncrement& b) {
              return a.account_id < b.account_id;
            });
  touched_accounts_.clear();
  touched_holds_.clear();
  touched_loans_.clear();
  std::sort(out.loans.begin(), out.loans.end(),
            [](const LoanMoney& a, const LoanMoney& b) { return a.id < b.id; });
  std::sort(out.accounts.begin(), out.accounts.end(),
            [](const Account& a, const Account& b) { return a.id < b.id; });
  std::sort(out.holds.begin(), out.holds.end(),
            [](const Hold& a, const Hold& b) { return a.transfer.id < b.transfer.id; });
  return out;
}

std::optional<Rejection> LedgerEngine::ValidateShape(const std::vector<TransferSpec>& specs) {
  if (std::optional<Rejection> bad = CheckBatchSize(specs.size())) return bad;
  absl::flat_hash_set<TransferId> batch_ids;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (ItemResult bad = CheckItem(specs[i], batch_ids)) return At(i, std::move(*bad));
  }
  return std::nullopt;
}

void LedgerEngine::CollectReferences(const std::vector<TransferSpec>& specs, LoadRequest* out) {
  for (const TransferSpec& spec : specs) {
    if (spec.debit_account_id) out->accounts.push_back(*spec.debit_account_id);
    if (spec.credit_account_id) out->accounts.push_back(*spec.credit_account_id);
    if (spec.pending_id) out->holds.push_back(*spec.pending_id);
    if (spec.id) out->client_ids.push_back(*spec.id);
    if (spec.references.loan_id) out->loans.push_back(*spec.references.loan_id);
  }
  auto sort_unique = [](auto& ids) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  };
  sort_unique(out->accounts);
  sort_unique(out->holds);
  sort_unique(out->client_ids);
  sort_unique(out->loans);
}

size_t LedgerEngine::IdsNeeded(const std::vector<TransferSpec>& specs) {
  return static_cast<size_t>(std::count_if(
      specs.begin(), specs.end(), [](const TransferSpec& s) { return !s.id.has_value(); }));
}

std::variant<std::vector<Transfer>, Rejection> LedgerEngine::ApplyBatch(
    const std::vector<TransferSpec>& specs, const BatchContext& context, WorkingSet& working) {
  if (std::optional<Rejection> bad = CheckBatchSize(specs.size())) return *bad;
  BatchApplier applier(
      Parts{working.accounts_, working.holds_, working.taken_ids_, working.transfers_,
            working.touched_accounts_, working.touched_holds_, working.events_, working.loans_,
            working.credit_increments_, working.funder_credits_},
      context);
  // Room for the whole batch up front (growing geometrically), so a group of many batches does
  // not move its transfers and events again and again.
  auto make_room = [n = specs.size()](auto& v) {
    if (v.capacity() < v.size() + n) v.reserve(std::max(v.size() + n, 2 * v.capacity()));
  };
  make_room(working.transfers_);
  make_room(working.events_);
  absl::flat_hash_set<TransferId> batch_ids;
  for (size_t i = 0; i < specs.size(); ++i) {
    ItemResult bad = CheckItem(specs[i], batch_ids);
    if (!bad) bad = applier.Apply(i, specs[i]);
    if (bad) {
      applier.Rollback();
      return At(i, std::move(*bad));
    }
  }
  return applier.Applied();
}

TransferSpec LedgerEngine::ExpirySpec(HoldId hold) {
  TransferSpec spec;
  spec.pending_id = hold;
  spec.pending_action = PendingAction::kVoid;
  spec.expiry = true;
  return spec;
}

namespace {

// A small JSON writer: an event is rendered once per transfer by the relay, ~100,000 a second,
// where a generic JSON library's tree of maps (or a string per field) costs more than the rest
// of relaying it. Nested objects and numbers are written straight into the one output buffer.
class JsonObject {
 public:
  explicit JsonObject(std::string* out) : out_(*out) {
    out_.push_back('{');
    first_ = true;
  }
  JsonObject& Str(std::string_view key, std::string_view value) {
    Key(key);
    Quote(value);
    return *this;
  }
  // A value that is the ledger's own text, never a client's: an enum's name, a currency code, a
  // timestamp. It needs no escaping, so it is appended as it is.
  JsonObject& Name(std::string_view key, std::string_view value) {
    Key(key);
    out_.push_back('"');
    out_.append(value);
    out_.push_back('"');
    return *this;
  }
  // An id or amount as a JSON string ("42", "25.00"): digits, a sign and a point never need
  // escaping.
  JsonObject& IdStr(std::string_view key, int64_t value) {
    Key(key);
    out_.push_back('"');
    absl::StrAppend(&out_, value);
    out_.push_back('"');
    return *this;
  }
  JsonObject& MoneyStr(std::string_view key, const Money& value) {
    Key(key);
    out_.push_back('"');
    value.AppendTo(&out_);
    out_.push_back('"');
    return *this;
  }
  JsonObject& Int(std::string_view key, int64_t value) {
    Key(key);
    absl::StrAppend(&out_, value);
    return *this;
  }
  // Starts a nested object under `key`; EndObject closes it.
  JsonObject& Object(std::string_view key) {
    Key(key);
    out_.push_back('{');
    first_ = true;
    return *this;
  }
  JsonObject& EndObject() {
    out_.push_back('}');
    first_ = false;
    return *this;
  }
  void Close() { out_.push_back('}'); }

 private:
  // Keys are this file's own literals (lower-case letters and '_'), so they are appended as
  // they are, with their separator, quotes and colon, without AppendJsonString's scan.
  void Key(std::string_view key) {
    out_.append(first_ ? "\"" : ",\"", first_ ? 1 : 2);
    first_ = false;
    out_.append(key);
    out_.append("\":", 2);
  }
  void Quote(std::string_view text) { AppendJsonString(&out_, text); }
  std::string& out_;
  bool first_ = true;
};

void SideObject(JsonObject& out, std::string_view key, const Account& account, int64_t balance,
                int64_t available) {
  out.Object(key)
      .Name("owner_type", OwnerTypeName(account.owner_type))
      .Str("owner_id", account.owner_id)
      .Name("kind", KindName(account.kind))
      .MoneyStr("balance", Money::FromMinor(account.currency, balance))
      .MoneyStr("available", Money::FromMinor(account.currency, available))
      .EndObject();
}

void ReferencesObject(JsonObject& out, const TransferReferences& r) {
  out.Object("references");
  if (r.loan_id) out.IdStr("loan_id", r.loan_id->value());
  if (r.order_id) out.IdStr("order_id", r.order_id->value());
  if (r.repayment_id) out.IdStr("repayment_id", r.repayment_id->value());
  if (r.withdrawal_id) out.IdStr("withdrawal_id", r.withdrawal_id->value());
  if (r.campaign_id) out.IdStr("campaign_id", r.campaign_id->value());
  if (!r.external_payment_id.empty()) out.Str("external_payment_id", r.external_payment_id);
  out.EndObject();
}

// Every transfer of a group shares its commit time: format it once.
const std::string& CachedRfc3339(absl::Time t) {
  thread_local absl::Time last = absl::InfinitePast();
  thread_local std::string text;
  if (t != last) {
    last = t;
    text = Rfc3339(t);
  }
  return text;
}

}  // namespace

OutboxEvent TransferEventByRef(const Transfer& transfer, const Account& debit,
                               const Account& credit) {
  return CommittedEvent(transfer, {.transfer_id = transfer.id,
                                  .debit_balance = debit.balance(),
                                  .debit_available = debit.available(),
                                  .credit_balance = credit.balance(),
                                  .credit_available = credit.available()});
}

OutboxEvent RenderTransferEvent(OutboxEvent event, const Transfer& transfer, const Account& debit,
                                const Account& credit) {
  ML_CHECK(event.ref.has_value() && event.ref->transfer_id == transfer.id &&
               debit.id == transfer.debit_account_id && credit.id == transfer.credit_account_id,
           absl::StrCat("rendering event ", event.event_id, " with the wrong transfer or accounts"));
  const TransferEventRef ref = *event.ref;
  event.payload.clear();
  event.payload.reserve(640);  // a transfer event is ~550 bytes
  JsonObject payload(&event.payload);
  payload.IdStr("id", transfer.id.value())
      .Name("type", TypeName(transfer.type))
      .Name("code", CodeName(transfer.code))
      .IdStr("debit_account_id", transfer.debit_account_id.value())
      .IdStr("credit_account_id", transfer.credit_account_id.value())
      .MoneyStr("amount", transfer.amount)
      .Name("currency", transfer.amount.currency().code());
  ReferencesObject(payload, transfer.references);
  payload.Name("created_at", CachedRfc3339(transfer.created_at))
      .Str("batch_request_id", transfer.batch_request_id)
      .Int("batch_index", transfer.batch_index);
  SideObject(payload, "debit_owner", debit, ref.debit_balance, ref.debit_available);
  SideObject(payload, "credit_owner", credit, ref.credit_balance, ref.credit_available);
  if (transfer.pending_id) payload.IdStr("pending_id", transfer.pending_id->value());
  if (transfer.timeout_ms > 0) payload.Int("timeout_ms", transfer.timeout_ms);
  if (transfer.expires_at) payload.Name("expires_at", Rfc3339(*transfer.expires_at));
  if (!transfer.memo.empty()) payload.Str("memo", transfer.memo);
  payload.Close();
  event.account_id = transfer.debit_account_id;
  event.ref.reset();
  return event;
}

OutboxEvent TransferEvent(const Transfer& transfer, const Account& debit, const Account& credit) {
  return RenderTransferEvent(TransferEventByRef(transfer, debit, credit), transfer, debit, credit);
}

}  // namespace microlend::lending
