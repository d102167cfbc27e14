#include "services/lending/core/loan_desk.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "services/lending/core/ledger_mutation.h"
#include "services/lending/core/repayment_split.h"

namespace microlend::lending {
namespace {

LedgerReply Fail(absl::Status status) {
  LedgerReply reply;
  reply.status = std::move(status);
  return reply;
}

std::string Usd(int64_t minor) { return Money::FromMinor(Currency::Usd(), minor).ToString(); }

std::string LoanIs(const LoanMoney& loan) {
  return absl::StrCat("loan ", loan.id.value(), " is ", AsAbsl(LoanStatusName(loan.status)));
}

std::optional<LoanId> LoanOfFundingAccount(const Account& account) {
  int64_t id = 0;
  if (account.kind != AccountKind::kLoanFunding || account.owner_type != OwnerType::kLoan ||
      !absl::SimpleAtoi(AsAbsl(account.owner_id), &id)) {
    return std::nullopt;
  }
  return LoanId(id);
}

int64_t Remaining(const LoanMoney& loan, const Account& funding) {
  return loan.usd_amount_minor - funding.credits_posted - funding.credits_pending;
}

// Whether `amount` may be lent to `loan` now (see the header: share units, what remains).
absl::Status CheckShare(const LoanMoney& loan, const Account* funding, int64_t amount,
                        int64_t unit) {
  if (loan.status != LoanStatus::kFundraising) {
    return absl::FailedPreconditionError(absl::StrCat(LoanIs(loan), ", not FUNDRAISING"));
  }
  ML_CHECK(funding != nullptr, "a fundraising loan's funding account was not loaded");
  const int64_t remaining = Remaining(loan, *funding);
  if (amount % unit != 0 && !(remaining < unit && amount == remaining)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amount: a share is a multiple of ", Usd(unit),
        ", or exactly what remains when less than one share does (loan ", loan.id.value(),
        " has ", Usd(remaining), " left)"));
  }
  if (amount > remaining) {
    return absl::FailedPreconditionError(absl::StrCat("loan ", loan.id.value(), " has ",
                                                      Usd(remaining), " left; ", Usd(amount),
                                                      " is more than remains"));
  }
  return absl::OkStatus();
}

TransferSpec ShareSpec(AccountId wallet, AccountId funding, LoanId loan, int64_t amount) {
  TransferSpec spec;
  spec.debit_account_id = wallet;
  spec.credit_account_id = funding;
  spec.amount = Money::FromMinor(Currency::Usd(), amount);
  spec.code = TransferCode::kLoanShare;
  spec.references.loan_id = loan;
  return spec;
}

TransferSpec Posted(AccountId debit, AccountId credit, int64_t amount, TransferCode code,
                    LoanId loan) {
  TransferSpec spec;
  spec.debit_account_id = debit;
  spec.credit_account_id = credit;
  spec.amount = Money::FromMinor(Currency::Usd(), amount);
  spec.code = code;
  spec.references.loan_id = loan;
  return spec;
}

// Records the loan's accounts on the row the first time money moves.
void NameAccounts(Mutation::Group& g, LoanId id, AccountId funding, AccountId settlement) {
  const LoanMoney* loan = g.working.FindLoan(id);
  if (loan == nullptr) return;
  if (loan->funding_account_id == funding && loan->settlement_account_id == settlement) return;
  LoanMoney* m = g.working.MutableLoan(id);
  m->funding_account_id = funding;
  m->settlement_account_id = settlement;
}

// ---- lending ---------------------------------------------------------------------------------

class LendMutation final : public Mutation {
 public:
  LendMutation(LenderId lender, AccountId wallet, LoanId loan, AccountId funding,
               AccountId settlement, int64_t amount, bool to_basket, const LoanDeskOptions& opts,
               DeskEncoder encode)
      : lender_(lender), wallet_(wallet), loan_(loan), funding_(funding), settlement_(settlement),
        amount_(amount), to_basket_(to_basket), opts_(opts), encode_(std::move(encode)) {}

  void Collect(LoadRequest* out) const override {
    out->loans.push_back(loan_);
    out->accounts.push_back(wallet_);
    out->accounts.push_back(funding_);
    out->accounts.push_back(settlement_);
    if (to_basket_) out->baskets.push_back(lender_);
  }
  size_t IdsNeeded() const override { return 1; }
  size_t TransferCount() const override { return 1; }

  LedgerReply Apply(Group& g, const BatchContext& context) override {
    const LoanMoney* loan = g.working.FindLoan(loan_);
    if (loan == nullptr) return Fail(absl::NotFoundError(absl::StrCat("loan ", loan_.value(), " not found")));
    std::vector<BasketItem>* basket = nullptr;
    if (to_basket_) {
      basket = &g.baskets[lender_];
      for (const BasketItem& item : *basket) {
        if (item.loan_id == loan_) {
          return Fail(absl::AlreadyExistsError(absl::StrCat(
              "loan ", loan_.value(), " is already in the basket; remove it first")));
        }
      }
      if (basket->size() >= opts_.max_basket_items) {
        return Fail(absl::FailedPreconditionError(
            absl::StrCat("the basket is full (", opts_.max_basket_items, " items)")));
      }
    }
    if (absl::Status ok = CheckShare(*loan, g.working.FindAccount(funding_), amount_,
                                     opts_.share_unit_minor);
        !ok.ok()) {
      return Fail(ok);
    }
    TransferSpec spec = ShareSpec(wallet_, funding_, loan_, amount_);
    const bool hold = to_basket_ && loan->fundraising_deadline.has_value() &&
                      *loan->fundraising_deadline - context.now >= opts_.no_hold_within;
    if (hold) {
      spec.pending = true;
      spec.timeout_ms = absl::ToInt64Milliseconds(opts_.basket_hold_ttl);
    }
    NameAccounts(g, loan_, funding_, settlement_);
    DeskOutcome outcome;
    if (to_basket_ && !hold) {
      // No reservation: the share is made (or refused) at checkout.
      if (absl::Status ok = CheckNoHoldFits(g); !ok.ok()) return Fail(ok);
    } else {
      LedgerReply applied = ApplySpecs({spec}, g, context, {});
      if (!applied.status.ok()) return applied;
      if (!to_basket_) outcome.shares = applied.transfers;
      if (hold) item_hold_ = applied.transfers[0].id;
      applied_ = std::move(applied.transfers);
    }
    LedgerReply reply;
    reply.committed_at = context.now;
    if (to_basket_) {
      BasketItem item{.lender_id = lender_, .loan_id = loan_, .amount_minor = amount_,
                      .added_at = context.now};
      if (hold) {
        item.hold_id = item_hold_;
        item.expires_at = context.now + opts_.basket_hold_ttl;
      } else {
        item.expires_at = loan->fundraising_deadline.value_or(context.now);
      }
      basket->push_back(item);
      g.basket_inserts.push_back(item);
      outcome.item = item;
      outcome.basket = *basket;
    }
    reply.transfers = std::move(applied_);
    reply.payload = encode_(outcome);
    return reply;
  }

 private:
  absl::Status CheckNoHoldFits(Group& g) const {
    const Account* wallet = g.working.FindAccount(wallet_);
    if (wallet == nullptr || wallet->available() < amount_) {
      return absl::FailedPreconditionError(absl::StrCat("available balance is below ", Usd(amount_)));
    }
    return absl::OkStatus();
  }

  LenderId lender_;
  AccountId wallet_;
  LoanId loan_;
  AccountId funding_;
  AccountId settlement_;
  int64_t amount_;
  bool to_basket_;
  LoanDeskOptions opts_;
  DeskEncoder encode_;
  TransferId item_hold_{0};
  std::vector<Transfer> applied_;  // for FollowLoanTransfers
};

class RemoveItemMutation final : public Mutation {
 public:
  RemoveItemMutation(LenderId lender, LoanId loan, std::optional<HoldId> hold, DeskEncoder encode)
      : lender_(lender), loan_(loan), hold_(hold), encode_(std::move(encode)) {}
  void Collect(LoadRequest* out) const override {
    out->loans.push_back(loan_);
    out->baskets.push_back(lender_);
    if (hold_) out->holds.push_back(*hold_);
  }
  size_t IdsNeeded() const override { return 1; }
  size_t TransferCount() const override { return 1; }

  LedgerReply Apply(Group& g, const BatchContext& context) override {
    std::vector<BasketItem>& basket = g.baskets[lender_];
    auto it = std::find_if(basket.begin(), basket.end(),
                           [&](const BasketItem& i) { return i.loan_id == loan_; });
    if (it == basket.end()) {
      return Fail(absl::NotFoundError(absl::StrCat("loan ", loan_.value(), " is not in the basket")));
    }
    LedgerReply reply;
    reply.committed_at = context.now;
    if (it->hold_id) {
      const Hold* hold = g.working.FindHold(*it->hold_id);
      const bool live = hold != nullptr && hold->state == HoldState::kPending &&
                        (!hold->transfer.expires_at || *hold->transfer.expires_at > context.now);
      if (live) {
        TransferSpec spec;
        spec.pending_id = *it->hold_id;
        spec.pending_action = PendingAction::kVoid;
        reply = ApplySpecs({spec}, g, context, {});
        if (!reply.status.ok()) return reply;
      }
      // An expired hold is simply dropped; the sweep expires it.
    }
    auto pending = std::find_if(g.basket_inserts.begin(), g.basket_inserts.end(),
                                [&](const BasketItem& i) {
                                  return i.lender_id == lender_ && i.loan_id == loan_;
                                });
    if (pending != g.basket_inserts.end()) {
      g.basket_inserts.erase(pending);
    } else {
      g.basket_deletes.emplace_back(lender_, loan_);
    }
    basket.erase(it);
    DeskOutcome outcome;
    outcome.basket = basket;
    reply.payload = encode_(outcome);
    return reply;
  }

 private:
  LenderId lender_;
  LoanId loan_;
  std::optional<HoldId> hold_;
  DeskEncoder encode_;
};

class CheckoutMutation final : public Mutation {
 public:
  CheckoutMutation(LenderId lender, AccountId wallet, std::vector<BasketItem> seen,
                   std::vector<std::pair<AccountId, AccountId>> loan_accounts,
                   std::optional<std::pair<AccountId, int64_t>> donation, DeskEncoder encode)
      : lender_(lender), wallet_(wallet), seen_(std::move(seen)),
        loan_accounts_(std::move(loan_accounts)), donation_(donation),
        encode_(std::move(encode)) {}
  void Collect(LoadRequest* out) const override {
    out->baskets.push_back(lender_);
    out->accounts.push_back(wallet_);
    for (const BasketItem& item : seen_) {
      out->loans.push_back(item.loan_id);
      if (item.hold_id) out->holds.push_back(*item.hold_id);
    }
    for (const auto& [funding, settlement] : loan_accounts_) {
      out->accounts.push_back(funding);
      out->accounts.push_back(settlement);
    }
    if (donation_) out->accounts.push_back(donation_->first);
  }
  size_t IdsNeeded() const override { return seen_.size() + 1; }
  size_t TransferCount() const override { return seen_.size() + 1; }

  LedgerReply Apply(Group& g, const BatchContext& context) override {
    std::vector<BasketItem>& basket = g.baskets[lender_];
    if (basket.empty()) return Fail(absl::FailedPreconditionError("the basket is empty"));
    std::vector<std::string> expired, closed;
    std::vector<TransferSpec> specs;
    std::vector<LoanId> spec_loans;
    for (const BasketItem& item : basket) {
      const LoanMoney* loan = g.working.FindLoan(item.loan_id);
      if (loan == nullptr) {
        return Fail(absl::AbortedError("the basket changed during checkout; retry"));
      }
      if (loan->status != LoanStatus::kFundraising) {
        closed.push_back(absl::StrCat(item.loan_id.value(), " (",
                                      AsAbsl(LoanStatusName(loan->status)), ")"));
        continue;
      }
      if (item.hold_id) {
        const Hold* hold = g.working.FindHold(*item.hold_id);
        if (hold == nullptr) return Fail(absl::AbortedError("the basket changed during checkout; retry"));
        if (hold->state != HoldState::kPending ||
            (hold->transfer.expires_at && *hold->transfer.expires_at <= context.now)) {
          expired.push_back(absl::StrCat(item.loan_id.value()));
          continue;
        }
        TransferSpec post;
        post.pending_id = *item.hold_id;
        post.pending_action = PendingAction::kPost;
        specs.push_back(post);
      } else {
        if (loan->funding_account_id.value() == 0) {
          return Fail(absl::AbortedError("the basket changed during checkout; retry"));
        }
        specs.push_back(ShareSpec(wallet_, loan->funding_account_id, item.loan_id, item.amount_minor));
      }
      spec_loans.push_back(item.loan_id);
    }
    if (!expired.empty() || !closed.empty()) {
      std::vector<std::string> parts;
      if (!expired.empty()) parts.push_back(absl::StrCat("expired items for loans ", absl::StrJoin(expired, ", ")));
      if (!closed.empty()) parts.push_back(absl::StrCat("loans no longer fundraising: ", absl::StrJoin(closed, ", ")));
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "checkout refused: ", absl::StrJoin(parts, "; "), "; remove them and retry")));
    }
    if (donation_) {
      TransferSpec d;
      d.debit_account_id = wallet_;
      d.credit_account_id = donation_->first;
      d.amount = Money::FromMinor(Currency::Usd(), donation_->second);
      d.code = TransferCode::kDonation;
      specs.push_back(d);
    }
    LedgerReply reply = ApplySpecs(specs, g, context, {});
    if (!reply.status.ok()) {
      if (reply.rejection && static_cast<size_t>(reply.rejection->item_index) < spec_loans.size()) {
        reply.status = absl::Status(reply.status.code(),
                                    absl::StrCat("loan ", spec_loans[reply.rejection->item_index].value(),
                                                 ": ", reply.rejection->detail));
      } else if (reply.rejection) {
        reply.status = absl::Status(reply.status.code(),
                                    absl::StrCat("donation: ", reply.rejection->detail));
      }
      return reply;
    }
    DeskOutcome outcome;
    outcome.shares.assign(reply.transfers.begin(),
                          reply.transfers.begin() + static_cast<ptrdiff_t>(spec_loans.size()));
    if (donation_) outcome.donation = reply.transfers.back();
    for (const BasketItem& item : basket) {
      auto pending = std::find_if(g.basket_inserts.begin(), g.basket_inserts.end(),
                                  [&](const BasketItem& i) {
                                    return i.lender_id == lender_ && i.loan_id == item.loan_id;
                                  });
      if (pending != g.basket_inserts.end()) {
        g.basket_inserts.erase(pending);
      } else {
        g.basket_deletes.emplace_back(lender_, item.loan_id);
      }
    }
    basket.clear();
    reply.payload = encode_(outcome);
    return reply;
  }

 private:
  LenderId lender_;
  AccountId wallet_;
  std::vector<BasketItem> seen_;
  std::vector<std::pair<AccountId, AccountId>> loan_accounts_;
  std::optional<std::pair<AccountId, int64_t>> donation_;
  DeskEncoder encode_;
};

// ---- partner side ----------------------------------------------------------------------------

class DisburseMutation final : public Mutation {
 public:
  DisburseMutation(LoanId loan, AccountId funding, AccountId settlement, absl::CivilDay on,
                   int64_t local_minor, DeskEncoder encode)
      : loan_(loan), funding_(funding), settlement_(settlement), on_(on),
        local_minor_(local_minor), encode_(std::move(encode)) {}
  void Collect(LoadRequest* out) const override {
    out->loans.push_back(loan_);
    out->accounts.push_back(funding_);
    out->accounts.push_back(settlement_);
  }
  size_t IdsNeeded() const override { return 1; }
  size_t TransferCount() const override { return 1; }

  LedgerReply Apply(Group& g, const BatchContext& context) override {
    const LoanMoney* loan = g.working.FindLoan(loan_);
    if (loan == nullptr) return Fail(absl::NotFoundError(absl::StrCat("loan ", loan_.value(), " not found")));
    if (loan->status != LoanStatus::kFunded) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(LoanIs(*loan), ", not FUNDED")));
    }
    if (local_minor_ != loan->local_amount_minor) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "local_amount: ", Money::FromMinor(loan->local_currency, local_minor_).ToString(),
          " differs from the loan's ",
          Money::FromMinor(loan->local_currency, loan->local_amount_minor).ToString())));
    }
    const Account* funding = g.working.FindAccount(funding_);
    ML_CHECK(funding != nullptr && funding->balance() == loan->usd_amount_minor,
             absl::StrCat("funded loan ", loan_.value(), " does not hold its amount"));
    NameAccounts(g, loan_, funding_, settlement_);
    LedgerReply reply = ApplySpecs(
        {Posted(funding_, settlement_, loan->usd_amount_minor, TransferCode::kDisbursement, loan_)},
        g, context, {});
    if (!reply.status.ok()) return reply;
    LoanMoney* m = g.working.MutableLoan(loan_);
    m->status = LoanStatus::kPayingBack;
    m->disbursed_at = context.now;
    m->disbursed_on = on_;
    g.books_to_open.push_back(loan_);
    DeskOutcome outcome;
    outcome.loan = *m;
    outcome.transfer = reply.transfers[0];
    reply.payload = encode_(outcome);
    return reply;
  }

 private:
  LoanId loan_;
  AccountId funding_;
  AccountId settlement_;
  absl::CivilDay on_;
  int64_t local_minor_;
  DeskEncoder encode_;
};

class RepaymentMutation final : public Mutation {
 public:
  RepaymentMutation(RepaymentInput input, AccountId loss, int32_t coverage_bps,
                    std::vector<ScheduleEntry> schedule, size_t funder_count, DeskEncoder encode)
      : input_(std::move(input)), loss_(loss), coverage_bps_(coverage_bps),
        schedule_(std::move(schedule)), funder_count_(funder_count), encode_(std::move(encode)) {}
  void Collect(LoadRequest* out) const override {
    out->loans.push_back(input_.loan_id);
    out->loan_books.push_back(input_.loan_id);
    out->accounts.push_back(loss_);
  }
  size_t IdsNeeded() const override { return funder_count_ + 2; }
  size_t TransferCount() const override { return funder_count_ + 2; }
  bool NeedsRepaymentId() const override { return true; }

  LedgerReply Apply(Group& g, const BatchContext& context) override {
    ML_CHECK(!g.fresh_repayment_ids.empty(), "repayment id not allocated");
    const LoanMoney* loan = g.working.FindLoan(input_.loan_id);
    if (loan == nullptr) {
      return Fail(absl::NotFoundError(absl::StrCat("loan ", input_.loan_id.value(), " not found")));
    }
    if (loan->status != LoanStatus::kPayingBack && loan->status != LoanStatus::kDefaulted) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat(LoanIs(*loan), "; only PAYING_BACK or DEFAULTED loans take repayments")));
    }
    const int64_t local = input_.local_amount.minor_units();
    const int64_t outstanding = loan->local_amount_minor - loan->repaid_local_minor;
    if (local > outstanding) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "local_amount: ", input_.local_amount.ToString(), " exceeds the outstanding principal ",
          Money::FromMinor(loan->local_currency, outstanding).ToString(), " of loan ",
          input_.loan_id.value(), " (overpayment)")));
    }
    absl::StatusOr<RepaymentUsd> usd =
        ComputeRepaymentUsd(*loan, local, input_.settlement_fx_rate, coverage_bps_);
    if (!usd.ok()) return Fail(usd.status());
    // Funders in account order (the book's): the same input always gives the same split. Their
    // wallets are not loaded: the credits go to them by increment (ADR 0011).
    auto book_it = g.books.find(input_.loan_id);
    if (book_it == g.books.end()) {
      if (std::find(g.books_to_open.begin(), g.books_to_open.end(), input_.loan_id) !=
          g.books_to_open.end()) {
        // Disbursed in this same commit: its book is written with it. Not recorded; a retry
        // lands in a later commit.
        return Fail(absl::AbortedError(absl::StrCat(
            "loan ", input_.loan_id.value(), " is being disbursed in this same commit; retry")));
      }
      return Fail(absl::InternalError(
          absl::StrCat("disbursed loan ", input_.loan_id.value(), " has no funder book")));
    }
    const FunderBook& book = book_it->second;
    if (book.account_ids.empty()) return Fail(absl::InternalError("a disbursed loan has no funders"));
    std::vector<TransferSpec> specs;
    std::vector<int64_t> parts;
    const RepaymentId id = g.fresh_repayment_ids.back();
    if (usd->credited_minor > 0) {
      std::vector<FunderPosition> positions;
      positions.reserve(book.account_ids.size());
      for (size_t i = 0; i < book.account_ids.size(); ++i) {
        positions.push_back({book.shares[i], book.credited[i]});
      }
      absl::StatusOr<std::vector<int64_t>> split = SplitRepayment(
          positions, usd->credited_minor, static_cast<uint64_t>(loan->repayment_count));
      if (!split.ok()) return Fail(absl::InternalError(split.status().message()));
      parts = *std::move(split);
      if (loan->status == LoanStatus::kDefaulted) {
        TransferSpec recover = Posted(loss_, loan->settlement_account_id, usd->credited_minor,
                                      TransferCode::kWriteOff, input_.loan_id);
        recover.references.repayment_id = id;
        recover.memo = "recovery after default";
        specs.push_back(recover);
      }
      specs.reserve(specs.size() + parts.size() + 1);
      for (size_t i = 0; i < parts.size(); ++i) {
        if (parts[i] == 0) continue;
        TransferSpec credit = Posted(loan->settlement_account_id, book.account_ids[i], parts[i],
                                     TransferCode::kRepayment, input_.loan_id);
        credit.references.repayment_id = id;
        credit.credit_by_increment = true;
        specs.push_back(std::move(credit));
      }
    }
    LoanMoney next = *loan;
    next.repaid_local_minor += local;
    next.expected_usd_minor += usd->expected_minor;
    next.received_usd_minor += usd->received_minor;
    next.coverage_usd_minor += usd->coverage_minor;
    next.currency_loss_minor += usd->loss_minor;
    next.repaid_usd_minor += usd->credited_minor;
    next.repayment_count += 1;
    const bool ends = next.repaid_local_minor == next.local_amount_minor;
    if (ends) {
      if (loan->status == LoanStatus::kPayingBack && next.currency_loss_minor > 0) {
        TransferSpec loss = Posted(loan->settlement_account_id, loss_, next.currency_loss_minor,
                                   TransferCode::kCurrencyLoss, input_.loan_id);
        loss.references.repayment_id = id;
        specs.push_back(loss);
      }
      next.status = LoanStatus::kEnded;
      next.closed_at = context.now;
      next.ended_with_currency_loss = next.currency_loss_minor > 0;
      next.delinquent = false;
      next.days_in_arrears = 0;
      next.arrears_local_minor = 0;
    } else {
      Arrears arrears = ComputeArrears(schedule_, next.repaid_local_minor,
                                       absl::ToCivilDay(context.now, absl::UTCTimeZone()));
      next.days_in_arrears = arrears.days;
      next.arrears_local_minor = arrears.local_minor;
      next.delinquent = arrears.days > 0;
    }
    LedgerReply reply;
    reply.committed_at = context.now;
    if (!specs.empty()) {
      reply = ApplySpecs(specs, g, context, {});
      if (!reply.status.ok()) return reply;
    }
    g.fresh_repayment_ids.pop_back();
    int32_t credited_accounts = 0;
    if (!parts.empty()) {
      FunderBook& changed = book_it->second;
      for (size_t i = 0; i < parts.size(); ++i) {
        if (parts[i] == 0) continue;
        ++credited_accounts;
        changed.credited[i] += parts[i];
      }
      g.changed_books.insert(input_.loan_id);
    }
    *g.working.MutableLoan(input_.loan_id) = next;
    RepaymentRecord record{.id = id, .loan_id = input_.loan_id, .partner_id = loan->partner_id,
                           .local_amount = input_.local_amount,
                           .settlement_fx_rate = input_.settlement_fx_rate,
                           .repaid_on = input_.repaid_on,
                           .partner_reference = input_.partner_reference,
                           .expected_usd_minor = usd->expected_minor,
                           .credited_usd_minor = usd->credited_minor,
                           .coverage_usd_minor = usd->coverage_minor,
                           .currency_loss_minor = usd->expected_minor - usd->credited_minor,
                           .credited_account_count = credited_accounts,
                           .posted_at = context.now};
    g.repayments.push_back(record);
    DeskOutcome outcome;
    outcome.loan = next;
    outcome.repayment = record;
    reply.payload = encode_(outcome);
    return reply;
  }

 private:
  RepaymentInput input_;
  AccountId loss_;
  int32_t coverage_bps_;
  std::vector<ScheduleEntry> schedule_;
  size_t funder_count_;
  DeskEncoder encode_;
};

// Expiry (sweep) and refund (ops): every share back to its funder, every open hold voided.
class CloseFundraisingMutation final : public Mutation {
 public:
  CloseFundraisingMutation(LoanId loan, bool refund, size_t funder_count, DeskEncoder encode)
      : loan_(loan), refund_(refund), funder_count_(funder_count), encode_(std::move(encode)) {}
  void Collect(LoadRequest* out) const override {
    out->loans.push_back(loan_);
    out->loan_funders.push_back(loan_);
    out->loans_open_holds.push_back(loan_);
  }
  size_t IdsNeeded() const override { return funder_count_ + 64; }
  size_t TransferCount() const override { return funder_count_ + 64; }

  LedgerReply Apply(Group& g, const BatchContext& context) override {
    const LoanMoney* loan = g.working.FindLoan(loan_);
    if (loan == nullptr) return Fail(absl::NotFoundError(absl::StrCat("loan ", loan_.value(), " not found")));
    const bool allowed = refund_ ? (loan->status == LoanStatus::kFundraising ||
                                    loan->status == LoanStatus::kFunded)
                                 : (loan->status == LoanStatus::kFundraising &&
                                    loan->fundraising_deadline &&
                                    *loan->fundraising_deadline <= context.now);
    if (!allowed) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          LoanIs(*loan), refund_ ? "; only FUNDRAISING or FUNDED loans can be refunded"
                                 : "; it is not a fundraising loan past its deadline")));
    }
    std::vector<TransferSpec> specs;
    DeskOutcome outcome;
    for (HoldId hold_id : g.open_holds[loan_]) {
      const Hold* hold = g.working.FindHold(hold_id);
      if (hold == nullptr || hold->state != HoldState::kPending) continue;
      TransferSpec v;
      v.pending_id = hold_id;
      v.pending_action = PendingAction::kVoid;
      v.expiry = hold->transfer.expires_at && *hold->transfer.expires_at <= context.now;
      specs.push_back(v);
      ++outcome.voided_holds;
    }
    std::vector<LoanFunder> funders;
    for (const auto& [account, funder] : g.funders[loan_]) funders.push_back(funder);
    std::sort(funders.begin(), funders.end(),
              [](const LoanFunder& a, const LoanFunder& b) { return a.account_id < b.account_id; });
    for (LoanFunder& f : funders) {
      const int64_t back = f.amount_minor - f.refunded_minor - f.repaid_minor;
      if (back <= 0) continue;
      TransferSpec refund = Posted(loan->funding_account_id, f.account_id, back,
                                   TransferCode::kRefund, loan_);
      refund.credit_by_increment = true;  // funders' wallets are not loaded (ADR 0011)
      specs.push_back(std::move(refund));
      f.refunded_minor += back;
      outcome.refunded_minor += back;
      ++outcome.refunded_accounts;
    }
    LedgerReply reply;
    reply.committed_at = context.now;
    if (!specs.empty()) {
      reply = ApplySpecs(specs, g, context, {});
      if (!reply.status.ok()) return reply;
    }
    for (const LoanFunder& f : funders) {
      g.funders[loan_].insert_or_assign(f.account_id, f);
      g.changed_funders.insert_or_assign({f.loan_id, f.account_id}, f);
    }
    LoanMoney* m = g.working.MutableLoan(loan_);
    m->status = refund_ ? LoanStatus::kRefunded : LoanStatus::kExpired;
    m->closed_at = context.now;
    outcome.loan = *m;
    reply.payload = encode_ ? encode_(outcome) : "";
    return reply;
  }

 private:
  LoanId loan_;
  bool refund_;
  size_t funder_count_;
  DeskEncoder encode_;
};

class DefaultMutation final : public Mutation {
 public:
  DefaultMutation(LoanId loan, AccountId loss) : loan_(loan), loss_(loss) {}
  void Collect(LoadRequest* out) const override {
    out->loans.push_back(loan_);
    out->accounts.push_back(loss_);
  }
  size_t IdsNeeded() const override { return 1; }
  size_t TransferCount() const override { return 1; }

  LedgerReply Apply(Group& g, const BatchContext& context) override {
    const LoanMoney* loan = g.working.FindLoan(loan_);
    if (loan == nullptr || loan->status != LoanStatus::kPayingBack || !loan->delinquent) {
      return Fail(absl::FailedPreconditionError(absl::StrCat("loan ", loan_.value(),
                                                             " is no longer due to default")));
    }
    const int64_t owed = loan->usd_amount_minor - loan->repaid_usd_minor;
    LedgerReply reply;
    reply.committed_at = context.now;
    if (owed > 0) {
      reply = ApplySpecs({Posted(loan->settlement_account_id, loss_, owed, TransferCode::kWriteOff,
                                 loan_)},
                         g, context, {});
      if (!reply.status.ok()) return reply;
    }
    LoanMoney* m = g.working.MutableLoan(loan_);
    m->status = LoanStatus::kDefaulted;
    m->written_off_minor = owed;
    m->closed_at = context.now;
    return reply;
  }

 private:
  LoanId loan_;
  AccountId loss_;
};

}  // namespace

// ---- what transfers mean for loans -----------------------------------------------------------

void FollowLoanTransfers(Mutation::Group& g, const std::vector<Transfer>& transfers,
                         const BatchContext& context) {
  std::vector<LoanId> refreshed;
  for (const Transfer& t : transfers) {
    for (AccountId side : {t.debit_account_id, t.credit_account_id}) {
      const Account* account = g.working.FindAccount(side);
      if (account == nullptr) continue;
      std::optional<LoanId> loan_id = LoanOfFundingAccount(*account);
      if (!loan_id || g.working.FindLoan(*loan_id) == nullptr) continue;
      LoanMoney* loan = g.working.MutableLoan(*loan_id);
      loan->funding_account_id = account->id;
      loan->funded_minor = account->credits_posted;
      loan->held_minor = account->credits_pending;
      refreshed.push_back(*loan_id);
    }
    const Account* credit = g.working.FindAccount(t.credit_account_id);
    const Account* debit = g.working.FindAccount(t.debit_account_id);
    const bool share = (t.code == TransferCode::kLoanShare || t.code == TransferCode::kMatch) &&
                       (t.type == TransferType::kPosted || t.type == TransferType::kPostPending);
    if (!share || credit == nullptr || debit == nullptr) continue;
    std::optional<LoanId> loan_id = LoanOfFundingAccount(*credit);
    if (!loan_id) continue;
    const int64_t amount = t.amount.minor_units();
    if (auto loaded = g.funders.find(*loan_id); loaded != g.funders.end()) {
      auto [it, fresh] = loaded->second.try_emplace(
          debit->id, LoanFunder{.loan_id = *loan_id, .account_id = debit->id,
                                .owner_type = debit->owner_type, .owner_id = debit->owner_id,
                                .first_lent_at = context.now});
      it->second.amount_minor += amount;
      it->second.share_count += 1;
      g.changed_funders.insert_or_assign({*loan_id, debit->id}, it->second);
    } else {
      g.funder_additions.push_back(LoanFunder{.loan_id = *loan_id, .account_id = debit->id,
                                              .owner_type = debit->owner_type,
                                              .owner_id = debit->owner_id,
                                              .amount_minor = amount, .share_count = 1,
                                              .first_lent_at = context.now});
    }
  }
  std::sort(refreshed.begin(), refreshed.end());
  refreshed.erase(std::unique(refreshed.begin(), refreshed.end()), refreshed.end());
  for (LoanId id : refreshed) {
    LoanMoney* loan = g.working.MutableLoan(id);
    if (loan->status != LoanStatus::kFundraising || loan->funded_minor != loan->usd_amount_minor) {
      continue;
    }
    loan->status = LoanStatus::kFunded;
    loan->funded_at = context.now;
    const Account* settlement = g.working.FindAccount(loan->settlement_account_id);
    if (!loan->pre_disbursed || settlement == nullptr) continue;
    // A pre-disbursed loan: the partner already lent the money, so it is paid out at once.
    const LoanMoney snapshot = *loan;
    auto outcome = LedgerEngine::ApplyBatch(
        {Posted(snapshot.funding_account_id, snapshot.settlement_account_id,
                snapshot.usd_amount_minor, TransferCode::kDisbursement, id)},
        context, g.working);
    if (!std::holds_alternative<std::vector<Transfer>>(outcome)) continue;  // stays FUNDED
    loan = g.working.MutableLoan(id);
    loan->status = LoanStatus::kPayingBack;
    loan->disbursed_at = context.now;
    loan->disbursed_on = absl::ToCivilDay(context.now, absl::UTCTimeZone());
    g.books_to_open.push_back(id);
  }
}

// ---- pure parts ------------------------------------------------------------------------------

Arrears ComputeArrears(const std::vector<ScheduleEntry>& schedule, int64_t repaid_local_minor,
                       absl::CivilDay today) {
  Arrears out;
  int64_t cumulative = 0;
  for (const ScheduleEntry& entry : schedule) {
    cumulative += entry.principal.minor_units();
    if (entry.due >= today) break;
    if (cumulative > repaid_local_minor) {
      if (out.days == 0) out.days = static_cast<int32_t>(today - entry.due);
      out.local_minor = cumulative - repaid_local_minor;
    }
  }
  return out;
}

absl::StatusOr<RepaymentUsd> ComputeRepaymentUsd(const LoanMoney& loan, int64_t local_minor,
                                                 std::string_view settlement_fx_rate,
                                                 int32_t coverage_bps) {
  if (local_minor <= 0) return absl::InvalidArgumentError("local_amount must be positive");
  const int64_t repaid_local = loan.repaid_local_minor + local_minor;
  int64_t expected_total = loan.usd_amount_minor;
  if (repaid_local != loan.local_amount_minor) {
    ML_ASSIGN_OR_RETURN(Money expected, ConvertToUsd(Money::FromMinor(loan.local_currency, repaid_local),
                                                     loan.posting_fx_rate));
    expected_total = std::min(expected.minor_units(), loan.usd_amount_minor);
  }
  // Received = this repayment's expected USD moved by the rate difference, each side converted
  // the same way, so that a repayment at the posting rate receives exactly what was expected
  // (converting it alone would round differently from the cumulative expected and invent a loss).
  const Money local = Money::FromMinor(loan.local_currency, local_minor);
  ML_ASSIGN_OR_RETURN(Money at_settlement, ConvertToUsd(local, settlement_fx_rate));
  ML_ASSIGN_OR_RETURN(Money at_posting, ConvertToUsd(local, loan.posting_fx_rate));
  const int64_t expected_delta = expected_total - loan.expected_usd_minor;
  const int64_t received_minor = std::max<int64_t>(
      0, expected_delta + at_settlement.minor_units() - at_posting.minor_units());
  const int64_t received_total = loan.received_usd_minor + received_minor;
  const int64_t loss_total = std::max<int64_t>(0, expected_total - received_total);
  const int64_t cap = static_cast<int64_t>(static_cast<__int128>(expected_total) * coverage_bps / 10'000);
  const int64_t coverage_total = std::min(loss_total, cap);
  const int64_t borne_total = loss_total - coverage_total;
  RepaymentUsd out;
  out.expected_minor = expected_total - loan.expected_usd_minor;
  out.received_minor = received_minor;
  out.coverage_minor = coverage_total - loan.coverage_usd_minor;
  out.loss_minor = borne_total - loan.currency_loss_minor;
  out.credited_minor = (expected_total - borne_total) -
                       (loan.expected_usd_minor - loan.currency_loss_minor);
  if (out.credited_minor < 0 || loan.repaid_usd_minor + out.credited_minor > loan.usd_amount_minor) {
    return absl::InternalError(absl::StrCat("repayment split out of range for loan ", loan.id.value()));
  }
  return out;
}

// ---- LoanDesk --------------------------------------------------------------------------------

LoanDesk::LoanDesk(Ledger* ledger, Wallets* wallets, PartnerStore* partners, const Clock* clock,
                   LoanDeskOptions options)
    : ledger_(ledger), wallets_(wallets), partners_(partners), clock_(clock), options_(options) {}

absl::Status LoanDesk::EnsureAccounts(const LoanMoney& loan, AccountId* funding,
                                      AccountId* settlement) {
  if (loan.funding_account_id.value() != 0 && loan.settlement_account_id.value() != 0) {
    *funding = loan.funding_account_id;
    *settlement = loan.settlement_account_id;
    return absl::OkStatus();
  }
  ML_ASSIGN_OR_RETURN(*funding, wallets_->SystemAccount(OwnerType::kLoan,
                                                        absl::StrCat(loan.id.value()),
                                                        AccountKind::kLoanFunding, Currency::Usd()));
  ML_ASSIGN_OR_RETURN(*settlement,
                      wallets_->SystemAccount(OwnerType::kPartner, absl::StrCat(loan.partner_id.value()),
                                              AccountKind::kPartnerSettlement, Currency::Usd()));
  return absl::OkStatus();
}

namespace {

absl::Status CheckUsdAmount(const Money& amount) {
  if (amount.currency() != Currency::Usd()) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount: shares are in USD, got ", AsAbsl(amount.currency().code())));
  }
  if (!amount.is_positive()) return absl::InvalidArgumentError("amount: must be positive");
  return absl::OkStatus();
}

absl::StatusOr<AccountId> LossAccount(Wallets* wallets) {
  return wallets->SystemAccount(OwnerType::kPlatform, "loss", AccountKind::kPlatformLoss,
                                Currency::Usd());
}

}  // namespace

LedgerReply LoanDesk::Lend(RequestKey key, LenderId lender, LoanId loan, Money amount,
                           bool to_basket, DeskEncoder encode) {
  if (std::optional<LedgerReply> recorded = ledger_->Recorded(key)) return *std::move(recorded);
  if (absl::Status ok = CheckUsdAmount(amount); !ok.ok()) return Fail(ok);
  if (amount.minor_units() > options_.share_unit_minor &&
      amount.minor_units() % options_.share_unit_minor != 0) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "amount: a share is a multiple of ", Usd(options_.share_unit_minor))));
  }
  absl::StatusOr<LoanMoney> money = ledger_->store()->GetLoanMoney(loan);
  if (!money.ok()) return Fail(money.status());
  absl::StatusOr<Account> wallet = wallets_->FindWallet(lender, Currency::Usd());
  if (!wallet.ok()) {
    return Fail(wallet.status().code() == absl::StatusCode::kNotFound
                    ? absl::FailedPreconditionError(absl::StrCat(
                          "lender ", lender.value(), " has no USD wallet yet; deposit first"))
                    : wallet.status());
  }
  if (money->status != LoanStatus::kFundraising) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(LoanIs(*money), ", not FUNDRAISING")));
  }
  AccountId funding{0}, settlement{0};
  if (absl::Status ok = EnsureAccounts(*money, &funding, &settlement); !ok.ok()) return Fail(ok);
  auto m = std::make_unique<LendMutation>(lender, wallet->id, loan, funding, settlement,
                                          amount.minor_units(), to_basket, options_,
                                          std::move(encode));
  m->key = std::move(key);
  return ledger_->Submit(std::move(m));
}

LedgerReply LoanDesk::LendNow(RequestKey key, LenderId lender, LoanId loan, Money amount,
                              DeskEncoder encode) {
  return Lend(std::move(key), lender, loan, amount, /*to_basket=*/false, std::move(encode));
}

LedgerReply LoanDesk::AddToBasket(RequestKey key, LenderId lender, LoanId loan, Money amount,
                                  DeskEncoder encode) {
  return Lend(std::move(key), lender, loan, amount, /*to_basket=*/true, std::move(encode));
}

LedgerReply LoanDesk::RemoveFromBasket(RequestKey key, LenderId lender, LoanId loan,
                                       DeskEncoder encode) {
  if (std::optional<LedgerReply> recorded = ledger_->Recorded(key)) return *std::move(recorded);
  auto basket = ledger_->store()->ListBasket(lender);
  if (!basket.ok()) return Fail(basket.status());
  std::optional<HoldId> hold;
  for (const auto& [item, state] : *basket) {
    if (item.loan_id == loan) hold = item.hold_id;
  }
  auto m = std::make_unique<RemoveItemMutation>(lender, loan, hold, std::move(encode));
  m->key = std::move(key);
  return ledger_->Submit(std::move(m));
}

absl::StatusOr<std::vector<LoanDesk::BasketLine>> LoanDesk::GetBasket(LenderId lender) {
  ML_ASSIGN_OR_RETURN(auto items, ledger_->store()->ListBasket(lender));
  const absl::Time now = clock_->Now();
  std::vector<BasketLine> out;
  for (auto& [item, state] : items) {
    const bool expired = item.expires_at <= now ||
                         (item.hold_id.has_value() && state != HoldState::kPending);
    out.push_back({std::move(item), expired});
  }
  return out;
}

LedgerReply LoanDesk::Checkout(RequestKey key, LenderId lender, std::optional<Money> donation,
                               DeskEncoder encode) {
  if (std::optional<LedgerReply> recorded = ledger_->Recorded(key)) return *std::move(recorded);
  std::optional<std::pair<AccountId, int64_t>> gift;
  if (donation.has_value() && !donation->is_zero()) {
    if (donation->currency() != Currency::Usd() || donation->is_negative()) {
      return Fail(absl::InvalidArgumentError("donation: must be a non-negative USD amount"));
    }
    absl::StatusOr<AccountId> revenue = wallets_->RevenueAccount(Currency::Usd());
    if (!revenue.ok()) return Fail(revenue.status());
    gift = std::make_pair(*revenue, donation->minor_units());
  }
  absl::StatusOr<Account> wallet = wallets_->FindWallet(lender, Currency::Usd());
  if (!wallet.ok()) {
    return Fail(wallet.status().code() == absl::StatusCode::kNotFound
                    ? absl::FailedPreconditionError("the basket is empty")
                    : wallet.status());
  }
  auto basket = ledger_->store()->ListBasket(lender);
  if (!basket.ok()) return Fail(basket.status());
  std::vector<BasketItem> seen;
  std::vector<std::pair<AccountId, AccountId>> accounts;
  for (const auto& [item, state] : *basket) {
    seen.push_back(item);
    absl::StatusOr<LoanMoney> money = ledger_->store()->GetLoanMoney(item.loan_id);
    if (!money.ok()) return Fail(money.status());
    AccountId funding{0}, settlement{0};
    if (absl::Status ok = EnsureAccounts(*money, &funding, &settlement); !ok.ok()) return Fail(ok);
    accounts.emplace_back(funding, settlement);
  }
  auto m = std::make_unique<CheckoutMutation>(lender, wallet->id, std::move(seen),
                                              std::move(accounts), gift, std::move(encode));
  m->key = std::move(key);
  return ledger_->Submit(std::move(m));
}

LedgerReply LoanDesk::ReportDisbursement(RequestKey key, std::optional<PartnerId> partner,
                                         LoanId loan, absl::CivilDay disbursed_on,
                                         Money local_amount, DeskEncoder encode) {
  if (std::optional<LedgerReply> recorded = ledger_->Recorded(key)) return *std::move(recorded);
  absl::StatusOr<LoanMoney> money = ledger_->store()->GetLoanMoney(loan);
  if (!money.ok()) return Fail(money.status());
  if (partner.has_value() && *partner != money->partner_id) {
    return Fail(absl::NotFoundError(absl::StrCat("loan ", loan.value(), " not found")));
  }
  if (local_amount.currency() != money->local_currency) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "local_amount: must be in the loan's currency ", AsAbsl(money->local_currency.code()))));
  }
  if (disbursed_on > absl::ToCivilDay(clock_->Now(), absl::UTCTimeZone())) {
    return Fail(absl::InvalidArgumentError("disbursed_on: must not be in the future"));
  }
  AccountId funding{0}, settlement{0};
  if (absl::Status ok = EnsureAccounts(*money, &funding, &settlement); !ok.ok()) return Fail(ok);
  auto m = std::make_unique<DisburseMutation>(loan, funding, settlement, disbursed_on,
                                              local_amount.minor_units(), std::move(encode));
  m->key = std::move(key);
  return ledger_->Submit(std::move(m));
}

std::variant<LedgerReply, std::unique_ptr<Mutation>> LoanDesk::PrepareRepayment(
    RequestKey key, const std::optional<PartnerId>& partner, const RepaymentInput& input,
    DeskEncoder encode, const RepaymentTarget* target,
    absl::flat_hash_map<PartnerId, absl::StatusOr<Partner>>& owners) {
  if (target == nullptr || (partner.has_value() && *partner != target->loan.partner_id)) {
    return Fail(absl::NotFoundError(absl::StrCat("loan ", input.loan_id.value(), " not found")));
  }
  const LoanMoney& money = target->loan;
  if (input.local_amount.currency() != money.local_currency) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "local_amount: must be in the loan's currency ", AsAbsl(money.local_currency.code()))));
  }
  if (!input.local_amount.is_positive()) {
    return Fail(absl::InvalidArgumentError("local_amount: must be positive"));
  }
  if (absl::StatusOr<int64_t> rate = ParseFxRate(input.settlement_fx_rate, "settlement_fx_rate");
      !rate.ok()) {
    return Fail(rate.status());
  }
  if (input.repaid_on > absl::ToCivilDay(clock_->Now(), absl::UTCTimeZone())) {
    return Fail(absl::InvalidArgumentError("repaid_on: must not be in the future"));
  }
  if (input.partner_reference.size() > 128 || !IsStorableText(input.partner_reference)) {
    return Fail(absl::InvalidArgumentError("partner_reference: at most 128 characters of text"));
  }
  auto owner = owners.find(money.partner_id);
  if (owner == owners.end()) {
    owner = owners.emplace(money.partner_id, partners_->Get(money.partner_id)).first;
  }
  if (!owner->second.ok()) return Fail(owner->second.status());
  absl::StatusOr<AccountId> loss = LossAccount(wallets_);
  if (!loss.ok()) return Fail(loss.status());
  auto m = std::make_unique<RepaymentMutation>(
      input, *loss, owner->second->currency_loss_coverage_bps, target->schedule,
      static_cast<size_t>(target->funder_count), std::move(encode));
  m->key = std::move(key);
  return std::unique_ptr<Mutation>(std::move(m));
}

LedgerReply LoanDesk::PostRepayment(RequestKey key, std::optional<PartnerId> partner,
                                    const RepaymentInput& input, DeskEncoder encode) {
  std::vector<RepaymentItem> one;
  one.push_back({.key = std::move(key), .input = input, .encode = std::move(encode)});
  return std::move(PostRepayments(std::move(partner), std::move(one)).front());
}

std::vector<LedgerReply> LoanDesk::PostRepayments(std::optional<PartnerId> partner,
                                                  std::vector<RepaymentItem> items) {
  std::vector<LedgerReply> replies(items.size());
  std::vector<bool> answered(items.size(), false);
  // Reads for every item at once (a partner's bulk names up to 300 loans): the remembered
  // answers, then the loans still to check, then their partners as PrepareRepayment meets them.
  // A retry replays what the first call completed before any check that its effects changed.
  std::vector<RequestKey> keys;
  keys.reserve(items.size());
  for (const RepaymentItem& item : items) keys.push_back(item.key);
  std::vector<std::optional<LedgerReply>> recorded = ledger_->RecordedAll(keys);
  std::vector<LoanId> loans;
  for (size_t i = 0; i < items.size(); ++i) {
    if (recorded[i].has_value()) {
      replies[i] = *std::move(recorded[i]);
      answered[i] = true;
    } else {
      loans.push_back(items[i].input.loan_id);
    }
  }
  std::sort(loans.begin(), loans.end());
  loans.erase(std::unique(loans.begin(), loans.end()), loans.end());
  absl::StatusOr<std::vector<RepaymentTarget>> targets =
      ledger_->store()->GetRepaymentTargets(loans);
  absl::flat_hash_map<LoanId, const RepaymentTarget*> target_of;
  if (targets.ok()) {
    for (const RepaymentTarget& t : *targets) target_of.emplace(t.loan.id, &t);
  }
  absl::flat_hash_map<PartnerId, absl::StatusOr<Partner>> owners;
  std::vector<std::unique_ptr<Mutation>> queued;
  std::vector<size_t> queued_index;
  for (size_t i = 0; i < items.size(); ++i) {
    if (answered[i]) continue;
    if (!targets.ok()) {
      replies[i] = Fail(targets.status());
      continue;
    }
    auto found = target_of.find(items[i].input.loan_id);
    std::variant<LedgerReply, std::unique_ptr<Mutation>> prepared = PrepareRepayment(
        std::move(items[i].key), partner, items[i].input, std::move(items[i].encode),
        found == target_of.end() ? nullptr : found->second, owners);
    if (LedgerReply* at_once = std::get_if<LedgerReply>(&prepared)) {
      replies[i] = std::move(*at_once);
      continue;
    }
    queued.push_back(std::get<std::unique_ptr<Mutation>>(std::move(prepared)));
    queued_index.push_back(i);
  }
  std::vector<LedgerReply> committed = ledger_->SubmitAll(std::move(queued));
  for (size_t k = 0; k < committed.size(); ++k) replies[queued_index[k]] = std::move(committed[k]);
  return replies;
}

LedgerReply LoanDesk::RefundLoan(RequestKey key, LoanId loan, std::string detail,
                                 DeskEncoder encode) {
  if (std::optional<LedgerReply> recorded = ledger_->Recorded(key)) return *std::move(recorded);
  if (detail.empty() || detail.size() > 1000 || !IsStorableText(detail)) {
    return Fail(absl::InvalidArgumentError("detail: required, at most 1000 characters"));
  }
  absl::StatusOr<LoanMoney> money = ledger_->store()->GetLoanMoney(loan);
  if (!money.ok()) return Fail(money.status());
  absl::StatusOr<int64_t> funders = ledger_->store()->CountFunders(loan);
  if (!funders.ok()) return Fail(funders.status());
  auto m = std::make_unique<CloseFundraisingMutation>(
      loan, /*refund=*/true, static_cast<size_t>(*funders), std::move(encode));
  m->key = std::move(key);
  return ledger_->Submit(std::move(m));
}

LedgerReply LoanDesk::Expire(LoanId loan) {
  absl::StatusOr<int64_t> funders = ledger_->store()->CountFunders(loan);
  if (!funders.ok()) return Fail(funders.status());
  return ledger_->Submit(std::make_unique<CloseFundraisingMutation>(
      loan, /*refund=*/false, static_cast<size_t>(*funders), DeskEncoder{}));
}

LedgerReply LoanDesk::Default(LoanId loan) {
  absl::StatusOr<AccountId> loss = LossAccount(wallets_);
  if (!loss.ok()) return Fail(loss.status());
  return ledger_->Submit(std::make_unique<DefaultMutation>(loan, *loss));
}

absl::StatusOr<SweepResult> LoanDesk::RunSweep(size_t max_items) {
  absl::MutexLock lock(&sweep_mu_);
  if (max_items == 0) max_items = options_.default_sweep_items;
  SweepResult result;
  result.as_of = clock_->Now();
  const absl::CivilDay today = absl::ToCivilDay(result.as_of, absl::UTCTimeZone());
  size_t budget = max_items;
  ML_ASSIGN_OR_RETURN(size_t holds, ledger_->ExpireHolds(budget));
  result.holds_expired = static_cast<int32_t>(holds);
  budget -= std::min(budget, holds);
  ML_ASSIGN_OR_RETURN(std::vector<LoanId> due, ledger_->store()->ListLoansToExpire(result.as_of, budget + 1));
  if (due.size() > budget) {
    result.more_remaining = true;
    due.erase(due.begin() + static_cast<ptrdiff_t>(budget), due.end());
  }
  for (LoanId loan : due) {
    LedgerReply reply = Expire(loan);
    if (reply.status.ok()) {
      ++result.loans_expired;
    } else if (reply.status.code() != absl::StatusCode::kFailedPrecondition) {
      return reply.status;
    }
  }
  budget -= std::min(budget, due.size());
  // Arrears and default: from the loan where the last pass stopped to the last active loan,
  // then, when that was not the first, from the first one up to where this pass started.
  const LoanId start = sweep_after_;
  bool wrapped = false;
  bool walked_all = false;
  while (budget > 0 && !walked_all) {
    ML_ASSIGN_OR_RETURN(std::vector<ActiveLoan> page,
                        ledger_->store()->ListActiveLoans(sweep_after_,
                                                          std::min<size_t>(budget, 500)));
    if (page.empty()) {
      if (wrapped || start == LoanId(0)) break;
      wrapped = true;
      sweep_after_ = LoanId(0);
      continue;
    }
    for (const ActiveLoan& active : page) {
      if (wrapped && active.loan.id >= start) {  // the last pass had it
        walked_all = true;
        break;
      }
      const LoanMoney& loan = active.loan;
      const std::vector<ScheduleEntry>& schedule = active.schedule;
      sweep_after_ = loan.id;
      --budget;
      Arrears arrears = ComputeArrears(schedule, loan.repaid_local_minor, today);
      const bool delinquent = arrears.days > 0;
      if (delinquent != loan.delinquent || arrears.days != loan.days_in_arrears ||
          arrears.local_minor != loan.arrears_local_minor) {
        ML_ASSIGN_OR_RETURN(bool set, ledger_->store()->SetArrears(loan.id, loan.repaid_local_minor,
                                                                   delinquent, arrears.days,
                                                                   arrears.local_minor));
        if (set && delinquent && !loan.delinquent) ++result.loans_flagged_delinquent;
        if (set && !delinquent && loan.delinquent) ++result.loans_cleared_delinquent;
      }
      if (loan.status == LoanStatus::kPayingBack && delinquent && !schedule.empty() &&
          today > schedule.back().due + options_.default_after_days) {
        LedgerReply reply = Default(loan.id);
        if (reply.status.ok()) {
          ++result.loans_defaulted;
        } else if (reply.status.code() != absl::StatusCode::kFailedPrecondition) {
          return reply.status;
        }
      }
      if (budget == 0) {
        result.more_remaining = true;
        break;
      }
    }
  }
  if (!result.more_remaining) sweep_after_ = LoanId(0);  // every active loan walked: start over
  return result;
}

}  // namespace microlend::lending
