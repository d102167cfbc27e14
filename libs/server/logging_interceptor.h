// A server interceptor that writes one structured log line per RPC:
//   event=rpc method=/pkg.Service/Method code=OK duration_us=123 request_id=... peer=...
// The request id is the request message's `request_id` field when it has one, else the
// `x-request-id` metadata, else a fresh random id, so every line can be correlated.
#ifndef MICROLEND_SERVER_LOGGING_INTERCEPTOR_H_
#define MICROLEND_SERVER_LOGGING_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

namespace microlend {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeLoggingInterceptorFactory();

}  // namespace microlend

#endif  // MICROLEND_SERVER_LOGGING_INTERCEPTOR_H_
