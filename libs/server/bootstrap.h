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

// Keeps memory the process frees for its next allocations instead of handing it back to the
// kernel each time. glibc serves a block over its (adaptive) mmap threshold with a fresh mapping
// and returns the top of the heap once more than 128 KiB of it is free, so every commit of a
// 10,000-credit repayment (a few MB of transfers, events and statement text) faulted and zeroed
// its pages anew: applying those credits took 10 ms, 4 ms with blocks up to 32 MiB kept in the
// heap and up to 256 MiB of free heap kept (docs/benchmarks.md, session 15). The cost is that
// much resident memory held after a burst. Call first thing in main(), before any thread starts.
void KeepFreedMemoryForReuse();

// --listen, --port_file, --auth_secret, --max_threads; plus the server's own flags appended by the caller.
std::vector<FlagSpec> CommonServerFlags(std::string_view server, int default_port);

// Exits 0 after printing usage on --help, 2 with the message on a bad command line.
void ParseFlagsOrExit(FlagSet& flags, int argc, char** argv);

absl::StatusOr<TokenSigner> SignerFromFlags(const FlagSet& flags, std::string_view server);

[[noreturn]] void ExitFatal(std::string_view server, const absl::Status& status);

}  // namespace microlend

#endif  // MICROLEND_SERVER_BOOTSTRAP_H_
