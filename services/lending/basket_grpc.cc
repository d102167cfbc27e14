#include "services/lending/basket_grpc.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/lending/proto_convert.h"

namespace microlend::lending {
namespace {

constexpr char kAddToBasket[] = "BasketService.AddToBasket";
constexpr char kRemoveFromBasket[] = "BasketService.RemoveFromBasket";
constexpr char kCheckout[] = "BasketService.Checkout";
constexpr char kLendNow[] = "BasketService.LendNow";

Money Usd(int64_t minor) { return Money::FromMinor(Currency::Usd(), minor); }

// The lender whose basket a request acts on (see the header's roles).
absl::StatusOr<LenderId> BasketLender(const Principal& caller,
                                      const common::v1::LenderId& lender_id) {
  ML_ASSIGN_OR_RETURN(std::optional<LenderId> named,
                      ParseOptionalId<LenderId>(lender_id, "lender_id"));
  if (caller.role != Role::kLender) {
    if (!named) return FieldError("lender_id", "is required");
    return *named;
  }
  absl::StatusOr<LenderId> self = LenderId::Parse(caller.subject, "subject");
  if (!self.ok()) return absl::PermissionDeniedError("the token's subject is not a lender id");
  if (named && *named != *self) {
    return absl::NotFoundError(absl::StrCat("lender ", named->value(), " not found"));
  }
  return *self;
}

void ItemToProto(const BasketItem& item, bool expired, v1::BasketItem* out) {
  if (item.hold_id) IdToProto(*item.hold_id, out->mutable_hold_id());
  IdToProto(item.loan_id, out->mutable_loan_id());
  ToProto(Usd(item.amount_minor), out->mutable_amount());
  ToProto(item.added_at, out->mutable_added_at());
  ToProto(item.expires_at, out->mutable_expires_at());
  out->set_expired(expired);
}

void BasketToProto(LenderId lender, const std::vector<LoanDesk::BasketLine>& lines,
                   v1::Basket* out) {
  IdToProto(lender, out->mutable_lender_id());
  int64_t total = 0;
  std::optional<absl::Time> earliest;
  for (const LoanDesk::BasketLine& line : lines) {
    ItemToProto(line.item, line.expired, out->add_items());
    if (line.expired) continue;
    total += line.item.amount_minor;
    if (!earliest || line.item.expires_at < *earliest) earliest = line.item.expires_at;
  }
  ToProto(Usd(total), out->mutable_total());
  if (earliest) ToProto(*earliest, out->mutable_expires_at());
}

std::vector<LoanDesk::BasketLine> Fresh(const std::vector<BasketItem>& items) {
  std::vector<LoanDesk::BasketLine> out;
  for (const BasketItem& item : items) out.push_back({item, false});
  return out;
}

void ShareToProto(const Transfer& share, LenderId lender, v1::LoanShare* out) {
  IdToProto(share.id, out->mutable_transfer_id());
  if (share.references.loan_id) IdToProto(*share.references.loan_id, out->mutable_loan_id());
  IdToProto(lender, out->mutable_lender_id());
  ToProto(share.amount, out->mutable_amount());
  ToProto(share.created_at, out->mutable_lent_at());
}

}  // namespace

grpc::Status BasketGrpc::AddToBasket(grpc::ServerContext* context,
                                     const v1::AddToBasketRequest* request,
                                     v1::AddToBasketResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kLender, Role::kService}));
    ML_ASSIGN_OR_RETURN(LenderId lender, BasketLender(caller, request->lender_id()));
    ML_ASSIGN_OR_RETURN(LoanId loan, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    ML_ASSIGN_OR_RETURN(Money amount, ParseMoney(request->amount(), "amount"));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kAddToBasket, *request));
    LedgerReply reply = desk_->AddToBasket(
        std::move(key), lender, loan, amount, [&](const DeskOutcome& outcome) {
          v1::AddToBasketResponse out;
          if (outcome.item) ItemToProto(*outcome.item, false, out.mutable_item());
          BasketToProto(lender, Fresh(outcome.basket), out.mutable_basket());
          out.mutable_mutation()->set_request_id(request->request_id());
          return out.SerializeAsString();
        });
    return DecodeReply(reply, response);
  }());
}

grpc::Status BasketGrpc::RemoveFromBasket(grpc::ServerContext* context,
                                          const v1::RemoveFromBasketRequest* request,
                                          v1::RemoveFromBasketResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kLender, Role::kService}));
    ML_ASSIGN_OR_RETURN(LenderId lender, BasketLender(caller, request->lender_id()));
    ML_ASSIGN_OR_RETURN(LoanId loan, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    ML_ASSIGN_OR_RETURN(RequestKey key, MakeRequestKey(caller, request->request_id(),
                                                       kRemoveFromBasket, *request));
    LedgerReply reply =
        desk_->RemoveFromBasket(std::move(key), lender, loan, [&](const DeskOutcome& outcome) {
          v1::RemoveFromBasketResponse out;
          BasketToProto(lender, Fresh(outcome.basket), out.mutable_basket());
          out.mutable_mutation()->set_request_id(request->request_id());
          return out.SerializeAsString();
        });
    return DecodeReply(reply, response);
  }());
}

grpc::Status BasketGrpc::GetBasket(grpc::ServerContext* context, const v1::GetBasketRequest* request,
                                   v1::GetBasketResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller,
                        auth_->Authorize(*context, {Role::kLender, Role::kService, Role::kOps}));
    ML_ASSIGN_OR_RETURN(LenderId lender, BasketLender(caller, request->lender_id()));
    ML_ASSIGN_OR_RETURN(std::vector<LoanDesk::BasketLine> lines, desk_->GetBasket(lender));
    BasketToProto(lender, lines, response->mutable_basket());
    return absl::OkStatus();
  }());
}

grpc::Status BasketGrpc::Checkout(grpc::ServerContext* context, const v1::CheckoutRequest* request,
                                  v1::CheckoutResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kLender, Role::kService}));
    ML_ASSIGN_OR_RETURN(LenderId lender, BasketLender(caller, request->lender_id()));
    std::optional<Money> donation;
    if (request->has_donation()) {
      ML_ASSIGN_OR_RETURN(donation, ParseMoney(request->donation(), "donation"));
      if (donation->currency() != Currency::Usd() || donation->is_negative()) {
        return FieldError("donation", "must be a non-negative USD amount");
      }
    }
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kCheckout, *request));
    LedgerReply reply =
        desk_->Checkout(std::move(key), lender, donation, [&](const DeskOutcome& outcome) {
          v1::CheckoutResponse out;
          int64_t total = 0;
          for (const Transfer& share : outcome.shares) {
            ShareToProto(share, lender, out.add_shares());
            total += share.amount.minor_units();
          }
          if (outcome.donation) {
            IdToProto(outcome.donation->id, out.mutable_donation_transfer_id());
            total += outcome.donation->amount.minor_units();
          }
          ToProto(Usd(total), out.mutable_total());
          out.mutable_mutation()->set_request_id(request->request_id());
          return out.SerializeAsString();
        });
    return DecodeReply(reply, response);
  }());
}

grpc::Status BasketGrpc::LendNow(grpc::ServerContext* context, const v1::LendNowRequest* request,
                                 v1::LendNowResponse* response) {
  return ToGrpcStatusWithDetails([&]() -> absl::Status {
    ML_ASSIGN_OR_RETURN(Principal caller, auth_->Authorize(*context, {Role::kLender, Role::kService}));
    ML_ASSIGN_OR_RETURN(LenderId lender, BasketLender(caller, request->lender_id()));
    ML_ASSIGN_OR_RETURN(LoanId loan, ParseRequiredId<LoanId>(request->loan_id(), "loan_id"));
    ML_ASSIGN_OR_RETURN(Money amount, ParseMoney(request->amount(), "amount"));
    ML_ASSIGN_OR_RETURN(RequestKey key,
                        MakeRequestKey(caller, request->request_id(), kLendNow, *request));
    LedgerReply reply =
        desk_->LendNow(std::move(key), lender, loan, amount, [&](const DeskOutcome& outcome) {
          v1::LendNowResponse out;
          if (!outcome.shares.empty()) ShareToProto(outcome.shares.front(), lender, out.mutable_share());
          out.mutable_mutation()->set_request_id(request->request_id());
          return out.SerializeAsString();
        });
    return DecodeReply(reply, response);
  }());
}

}  // namespace microlend::lending
