#include "services/lending/core/wallets.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace microlend::lending {
namespace {

constexpr char kSystemCaller[] = "system";

absl::Status RequirePositive(const Money& amount) {
  if (!amount.is_positive()) {
    return absl::InvalidArgumentError(
        absl::StrCat("amount must be positive, got ", amount.ToString()));
  }
  return absl::OkStatus();
}

LedgerReply Fail(absl::Status status) {
  LedgerReply reply;
  reply.status = std::move(status);
  return reply;
}

}  // namespace

absl::StatusOr<AccountId> Wallets::SystemAccount(OwnerType owner_type, const std::string& owner_id,
                                                 AccountKind kind, Currency currency) {
  std::string cache_key = absl::StrCat(static_cast<int>(owner_type), "/", owner_id, "/",
                                       static_cast<int>(kind), "/", AsAbsl(currency.code()));
  {
    absl::MutexLock lock(&mu_);
    if (auto it = system_accounts_.find(cache_key); it != system_accounts_.end()) return it->second;
  }
  LedgerStore* store = ledger_->store();
  ML_ASSIGN_OR_RETURN(std::optional<Account> found,
                      store->FindAccountByOwner(owner_type, owner_id, kind, currency));
  if (!found.has_value()) {
    NewAccount account{.owner_type = owner_type, .owner_id = owner_id, .kind = kind,
                       .currency = currency, .memo = "system account"};
    IdempotencyRecord record{.caller = kSystemCaller,
                             .request_id = absl::StrCat("open-account-", cache_key),
                             .method = "Wallets.SystemAccount"};
    absl::StatusOr<Account> made = store->CreateAccount(account, ledger_->clock()->Now(), record);
    if (made.ok()) {
      found = *made;
    } else if (made.status().code() == absl::StatusCode::kAlreadyExists) {
      // Another thread or process opened it first.
      ML_ASSIGN_OR_RETURN(found, store->FindAccountByOwner(owner_type, owner_id, kind, currency));
    } else {
      return made.status();
    }
  }
  if (!found.has_value()) return absl::InternalError("system account vanished");
  absl::MutexLock lock(&mu_);
  system_accounts_.insert_or_assign(cache_key, found->id);
  return found->id;
}

absl::StatusOr<AccountId> Wallets::SettlementAccount(Currency currency) {
  return SystemAccount(OwnerType::kExternalSettlement, "settlement", AccountKind::kExternalCash,
                       currency);
}

absl::StatusOr<AccountId> Wallets::RevenueAccount(Currency currency) {
  return SystemAccount(OwnerType::kPlatform, "revenue", AccountKind::kPlatformRevenue, currency);
}

absl::StatusOr<Account> Wallets::FindWallet(LenderId lender, Currency currency) {
  ML_ASSIGN_OR_RETURN(std::optional<Account> found,
                      ledger_->store()->FindAccountByOwner(OwnerType::kLender, lender.ToString(),
                                                           AccountKind::kLenderWallet, currency));
  if (!found.has_value()) {
    return absl::NotFoundError(absl::StrCat("lender ", lender.value(), " has no ",
                                            AsAbsl(currency.code()), " wallet"));
  }
  return *found;
}

absl::StatusOr<Account> Wallets::OpenWallet(LenderId lender, Currency currency) {
  absl::StatusOr<Account> existing = FindWallet(lender, currency);
  if (existing.ok() || existing.status().code() != absl::StatusCode::kNotFound) return existing;
  NewAccount wallet{.owner_type = OwnerType::kLender, .owner_id = lender.ToString(),
                    .kind = AccountKind::kLenderWallet, .currency = currency,
                    .flags = {.debits_must_not_exceed_credits = true}, .memo = "wallet"};
  IdempotencyRecord record{.caller = kSystemCaller,
                           .request_id = absl::StrCat("open-wallet-", lender.value(), "-",
                                                      AsAbsl(currency.code())),
                           .method = "Wallets.OpenWallet"};
  absl::StatusOr<Account> made =
      ledger_->store()->CreateAccount(wallet, ledger_->clock()->Now(), record);
  if (made.status().code() == absl::StatusCode::kAlreadyExists) return FindWallet(lender, currency);
  return made;
}

LedgerReply Wallets::Deposit(RequestKey key, LenderId lender, Money amount,
                             std::string external_payment_id, ResultEncoder encoder) {
  if (absl::Status s = RequirePositive(amount); !s.ok()) return Fail(s);
  absl::StatusOr<Account> wallet = OpenWallet(lender, amount.currency());
  if (!wallet.ok()) return Fail(wallet.status());
  absl::StatusOr<AccountId> settlement = SettlementAccount(amount.currency());
  if (!settlement.ok()) return Fail(settlement.status());
  TransferSpec spec;
  spec.debit_account_id = *settlement;
  spec.credit_account_id = wallet->id;
  spec.amount = amount;
  spec.code = TransferCode::kDeposit;
  spec.references.external_payment_id = std::move(external_payment_id);
  return ledger_->SubmitBatch(std::move(key), {spec}, std::move(encoder));
}

LedgerReply Wallets::Donate(RequestKey key, LenderId lender, Money amount, ResultEncoder encoder) {
  if (absl::Status s = RequirePositive(amount); !s.ok()) return Fail(s);
  absl::StatusOr<Account> wallet = FindWallet(lender, amount.currency());
  if (!wallet.ok()) return Fail(wallet.status());
  absl::StatusOr<AccountId> revenue = RevenueAccount(amount.currency());
  if (!revenue.ok()) return Fail(revenue.status());
  TransferSpec spec;
  spec.debit_account_id = wallet->id;
  spec.credit_account_id = *revenue;
  spec.amount = amount;
  spec.code = TransferCode::kDonation;
  return ledger_->SubmitBatch(std::move(key), {spec}, std::move(encoder));
}

LedgerReply Wallets::RequestWithdrawal(RequestKey key, LenderId lender, Money amount,
                                       std::string destination,
                                       Ledger::WithdrawalEncoder encoder) {
  if (absl::Status s = RequirePositive(amount); !s.ok()) return Fail(s);
  absl::StatusOr<Account> wallet = FindWallet(lender, amount.currency());
  if (!wallet.ok()) return Fail(wallet.status());
  absl::StatusOr<AccountId> settlement = SettlementAccount(amount.currency());
  if (!settlement.ok()) return Fail(settlement.status());
  return ledger_->RequestWithdrawal(std::move(key), lender, wallet->id, *settlement, amount,
                                    std::move(destination), std::move(encoder));
}

}  // namespace microlend::lending
