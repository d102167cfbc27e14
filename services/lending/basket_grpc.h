// BasketGrpc: the gRPC adapter of microlend.lending.v1.BasketService — a lender lending from its
// wallet through a basket (holds) or at once (LendNow). Thin: authorize, parse, call LoanDesk
// (core/loan_desk.h, where the rules live), map.
//
// Roles: lender (its own basket; lender_id empty or its own — another lender's is NOT_FOUND, as
// the proto says), service (must name the lender); GetBasket also ops. UNAUTHENTICATED without
// a valid token, PERMISSION_DENIED for another role.
// Idempotency: every mutation is remembered as its full response under
// RequestKey{role:subject, request_id, "BasketService.<Rpc>", BodyHash(request)}.
// Thread-safe; the collaborators must outlive the service.
#ifndef MICROLEND_SERVICES_LENDING_BASKET_GRPC_H_
#define MICROLEND_SERVICES_LENDING_BASKET_GRPC_H_

#include <grpcpp/grpcpp.h>

#include "microlend/lending/v1/lending.grpc.pb.h"
#include "server/auth_grpc.h"
#include "services/lending/core/loan_desk.h"

namespace microlend::lending {

class BasketGrpc final : public v1::BasketService::Service {
 public:
  BasketGrpc(LoanDesk* desk, const GrpcAuthenticator* auth) : desk_(desk), auth_(auth) {}

  grpc::Status AddToBasket(grpc::ServerContext* context, const v1::AddToBasketRequest* request,
                           v1::AddToBasketResponse* response) override;
  grpc::Status RemoveFromBasket(grpc::ServerContext* context,
                                const v1::RemoveFromBasketRequest* request,
                                v1::RemoveFromBasketResponse* response) override;
  grpc::Status GetBasket(grpc::ServerContext* context, const v1::GetBasketRequest* request,
                         v1::GetBasketResponse* response) override;
  grpc::Status Checkout(grpc::ServerContext* context, const v1::CheckoutRequest* request,
                        v1::CheckoutResponse* response) override;
  grpc::Status LendNow(grpc::ServerContext* context, const v1::LendNowRequest* request,
                       v1::LendNowResponse* response) override;

 private:
  LoanDesk* desk_;
  const GrpcAuthenticator* auth_;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_BASKET_GRPC_H_
