// What every microlend server's main() does the same way: the common flags, parsing them with
// a clear exit on error, the token signer from the configured secret, and a loud fatal exit
// naming what is wrong (e.g. an unreachable dependency).
#ifndef MICROLEND_SERVER_BOOTSTRAP_H_
#define MICROLEND_SERVER_BOOTSTRAP_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/auth.h"
#include "common/config.h"

namespace microlend {

// The default secret lets a fresh checkout run with no setup; servers log a warning when it is
// in use. Real deployments set MICROLEND_AUTH_SECRET.
inline constexpr std::string_view kDevAuthSecret = "microlend-local-dev-secret-do-not-deploy";
inline constexpr std::string_view kDefaultPgUrl =
    "host=127.0.0.1 port=54329 dbname=microlend user=microlend";
inline constexpr std::string_view kDefaultRedis = "127.0.0.1:63799";

// --listen, --port_file, --auth_secret, --max_threads; plus the server's own flags appended by the caller.
std::vector<FlagSpec> CommonServerFlags(std::string_view server, int default_port);

// Exits 0 after printing usage on --help, 2 with the message on a bad command line.
void ParseFlagsOrExit(FlagSet& flags, int argc, char** argv);

absl::StatusOr<TokenSigner> SignerFromFlags(const FlagSet& flags, std::string_view server);

[[noreturn]] void ExitFatal(std::string_view server, const absl::Status& status);

}  // namespace microlend

#endif  // MICROLEND_SERVER_BOOTSTRAP_H_
