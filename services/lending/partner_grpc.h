// PartnerGrpc: the gRPC adapter of microlend.lending.v1.PartnerService. Thin: each handler
// authorizes the caller, parses the whole request into a domain command (bad input is
// INVALID_ARGUMENT naming the field, and nothing reaches the core), calls the PartnerDirectory
// (mutations) or the PartnerStore (reads), and maps the result. The rules live in
// core/partners.h.
//
// Roles (UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a role not listed):
//   CreatePartner, SetPartnerStatus      ops
//   GetPartner, ListPartners             any authenticated role (partners are public)
//   UpdatePartner                        ops, any mutable field; partner only its own partner
//                                        (subject == id) and only description / website_url,
//                                        anything else PERMISSION_DENIED
//   GetPartnerStats                      any authenticated role (the figures are public, as
//                                        the proto says); NOT_FOUND for no such partner
//
// Idempotency: every mutation runs under RequestKey{role:subject, request_id,
// "PartnerService.<Rpc>", BodyHash(request)}; the remembered success is the full response proto,
// so a retry gets it back with mutation.replayed = true, and the same request_id with a different
// body is ALREADY_EXISTS. Failures are not remembered (nothing was written).
//
// ListPartners pages by ascending partner id (page_token: the last id of the previous page).
//
// GetPartnerStats reads the sums over the partner's loans in one aggregate query
// (PartnerStore::LoanTotals) and computes the rates with core/loan_stats.h (basis points,
// rounded down, 0 over a zero denominator); computed_at is the service clock's now.
//
// Thread-safe: the handlers share only the collaborators, which are thread-safe. All four
// pointers must outlive the service.
#ifndef MICROLEND_SERVICES_LENDING_PARTNER_GRPC_H_
#define MICROLEND_SERVICES_LENDING_PARTNER_GRPC_H_

#include <grpcpp/grpcpp.h>

#include "common/clock.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "server/auth_grpc.h"
#include "services/lending/core/partners.h"

namespace microlend::lending {

class PartnerGrpc final : public v1::PartnerService::Service {
 public:
  PartnerGrpc(PartnerDirectory* directory, PartnerStore* store, const GrpcAuthenticator* auth,
              const Clock* clock);

  grpc::Status CreatePartner(grpc::ServerContext* context, const v1::CreatePartnerRequest* request,
                             v1::CreatePartnerResponse* response) override;
  grpc::Status GetPartner(grpc::ServerContext* context, const v1::GetPartnerRequest* request,
                          v1::GetPartnerResponse* response) override;
  grpc::Status ListPartners(grpc::ServerContext* context, const v1::ListPartnersRequest* request,
                            v1::ListPartnersResponse* response) override;
  grpc::Status UpdatePartner(grpc::ServerContext* context, const v1::UpdatePartnerRequest* request,
                             v1::UpdatePartnerResponse* response) override;
  grpc::Status SetPartnerStatus(grpc::ServerContext* context,
                                const v1::SetPartnerStatusRequest* request,
                                v1::SetPartnerStatusResponse* response) override;
  grpc::Status GetPartnerStats(grpc::ServerContext* context,
                               const v1::GetPartnerStatsRequest* request,
                               v1::GetPartnerStatsResponse* response) override;

 private:
  PartnerDirectory* directory_;
  PartnerStore* store_;
  const GrpcAuthenticator* auth_;
  const Clock* clock_;
};

// The wire form of a partner (replaces *out).
void ToProto(const Partner& partner, v1::Partner* out);

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_PARTNER_GRPC_H_
