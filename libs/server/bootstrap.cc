#include "server/bootstrap.h"
#include "common/strings.h"

#include <malloc.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/log.h"

namespace microlend {

namespace {
constexpr int kMmapThresholdBytes = 32 << 20;  // glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX)
constexpr int kTrimThresholdBytes = 256 << 20;
}  // namespace

void KeepFreedMemoryForReuse() {
  // Setting either fixes both (glibc stops adapting them), so both are set.
  ML_CHECK(mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes) == 1, "mallopt(M_MMAP_THRESHOLD) failed");
  ML_CHECK(mallopt(M_TRIM_THRESHOLD, kTrimThresholdBytes) == 1, "mallopt(M_TRIM_THRESHOLD) failed");
}

std::vector<FlagSpec> CommonServerFlags(std::string_view server, int default_port) {
  std::string upper = absl::AsciiStrToUpper(AsAbsl(server));
  return {
      {"listen", absl::StrCat("MICROLEND_", upper, "_LISTEN"),
       absl::StrCat("127.0.0.1:", default_port), "address to serve gRPC on (port 0: any free port)"},
      {"port_file", absl::StrCat("MICROLEND_", upper, "_PORT_FILE"), "",
       "if set, the bound port is written to this file once listening"},
      {"auth_secret", "MICROLEND_AUTH_SECRET", std::string(kDevAuthSecret),
       "HMAC secret for bearer tokens (>= 16 bytes)"},
      {"max_threads", absl::StrCat("MICROLEND_", upper, "_MAX_THREADS"), "256",
       "cap on request worker threads"},
  };
}

void ParseFlagsOrExit(FlagSet& flags, int argc, char** argv) {
  absl::Status status = flags.Parse(argc, argv);
  if (status.code() == absl::StatusCode::kNotFound) {  // --help
    std::fprintf(stdout, "%s", std::string(status.message()).c_str());
    std::exit(0);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    std::exit(2);
  }
}

absl::StatusOr<TokenSigner> SignerFromFlags(const FlagSet& flags, std::string_view server) {
  const std::string& secret = flags.GetString("auth_secret");
  if (secret == kDevAuthSecret) {
    LogWarning("dev_auth_secret", {{"server", server},
                                   {"hint", "set MICROLEND_AUTH_SECRET outside local runs"}});
  }
  return TokenSigner::Create(secret);
}

void ExitFatal(std::string_view server, const absl::Status& status) {
  LogError("fatal", {{"server", server}, {"error", status.ToString()}});
  std::exit(1);
}

}  // namespace microlend
