// Field partners: the microfinance institutions that post loans. The domain types, their
// validation and status rules, the PartnerStore seam (PgPartnerStore in store/, FakePartnerStore
// in testing/) and PartnerDirectory, the core service the gRPC adapter calls.
//
// Rules:
//   - name: 1..200 characters of storable text (UTF-8, no NUL), unique ignoring case.
//   - countries: at least one, each an ISO 3166-1 alpha-2 code in upper case, no duplicates.
//   - risk_rating_half_stars 0..10 (0 = not rated); currency_loss_coverage_bps 0..10000.
//   - credit_limit: USD, zero or more.
//   - description up to kMaxDescriptionChars, website_url empty or an http(s) URL up to
//     kMaxWebsiteUrlChars, both storable text.
//   - status: ACTIVE <-> PAUSED, ACTIVE or PAUSED -> CLOSED; CLOSED is final, and a CLOSED partner
//     takes no update either (FailedPrecondition naming the current status).
//
//   - closing: refused while any of the partner's loans is in REVIEW, FUNDRAISING or FUNDED
//     (FailedPrecondition naming how many, in which states): lenders' money or a pending review
//     depends on the partner. Ops returns the loans in review, and fundraising loans end as
//     funded (then disbursed), expired or refunded. DRAFTs do not block it (they hold no money,
//     nobody else sees them, and a closed partner cannot submit them). Loans PAYING_BACK or
//     DEFAULTED do not block it either: their repayments are still accepted after the close.
//     Pausing is always allowed: no new drafts, submissions or approvals, and loans already
//     fundraising continue.
//   - credit limit (the cap on the partner's exposure, USD): see PartnerExposure and
//     CheckCreditLimit. Lowering it below the current exposure is allowed: it stops new
//     submissions and approvals until the exposure comes down.
//
// Idempotency: every mutation carries a RequestKey. The store writes the IdempotencyRecord (with
// the adapter's encoded response as payload) in the same transaction as the effect; a retry with
// the same key gets the stored payload back marked `replayed`, the same request id with another
// method or body is AlreadyExists. Failures are not remembered: a failed mutation wrote nothing,
// so a retry is evaluated afresh.
//
// Statuses from the store (PartnerStore implementations):
//   NotFound       no partner with that id
//   AlreadyExists  another partner has the name ("a partner named X exists (id N)"), or the
//                  (caller, request_id) is already recorded
//   Aborted        expected_version is set and differs from the current version, or a
//                  transaction conflict: re-read and retry
//   Unavailable    the database is unreachable or the outcome unknown: retry with the same key
//   InvalidArgument a page limit below 1
// Implementations are thread-safe.
#ifndef MICROLEND_SERVICES_LENDING_CORE_PARTNERS_H_
#define MICROLEND_SERVICES_LENDING_CORE_PARTNERS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/money.h"
#include "services/lending/core/ledger.h"
#include "services/lending/core/ledger_store.h"
#include "services/lending/core/loan_stats.h"

namespace microlend::lending {

inline constexpr size_t kMaxPartnerNameChars = 200;
inline constexpr size_t kMaxDescriptionChars = 4000;
inline constexpr size_t kMaxWebsiteUrlChars = 2048;
inline constexpr int32_t kMaxRiskRatingHalfStars = 10;
inline constexpr int32_t kMaxCoverageBps = 10'000;
inline constexpr int32_t kDefaultCoverageBps = 1'000;

// lending.v1.PartnerStatus numbering.
enum class PartnerStatus { kActive = 1, kPaused = 2, kClosed = 3 };

// "ACTIVE", "PAUSED", "CLOSED": for messages.
std::string_view PartnerStatusName(PartnerStatus status);

struct Partner {
  PartnerId id{0};
  std::string name;
  std::vector<std::string> countries;
  int32_t risk_rating_half_stars = 0;
  int32_t currency_loss_coverage_bps = kDefaultCoverageBps;
  Money credit_limit = Money::Zero(Currency::Usd());
  PartnerStatus status = PartnerStatus::kActive;
  std::string status_reason;
  std::string description;
  std::string website_url;
  std::optional<AccountId> settlement_account_id;
  absl::Time created_at;
  absl::Time updated_at;
  int64_t version = 1;
  friend bool operator==(const Partner&, const Partner&) = default;
};

// What CreatePartner asks for; the partner starts ACTIVE at version 1.
struct NewPartner {
  std::string name;
  std::vector<std::string> countries;
  int32_t risk_rating_half_stars = 0;
  int32_t currency_loss_coverage_bps = kDefaultCoverageBps;
  Money credit_limit = Money::Zero(Currency::Usd());
  std::string description;
  std::string website_url;
};

// The fields an update changes; unset fields keep their value.
struct PartnerPatch {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> countries;
  std::optional<int32_t> risk_rating_half_stars;
  std::optional<int32_t> currency_loss_coverage_bps;
  std::optional<Money> credit_limit;
  std::optional<std::string> description;
  std::optional<std::string> website_url;
  bool empty() const {
    return !name && !countries && !risk_rating_half_stars && !currency_loss_coverage_bps &&
           !credit_limit && !description && !website_url;
  }
  // True when only description and website_url change: what a partner may do to itself.
  bool OnlyProfileText() const {
    return !name && !countries && !risk_rating_half_stars && !currency_loss_coverage_bps &&
           !credit_limit;
  }
};

struct PartnerFilter {
  std::vector<PartnerStatus> statuses;  // empty = any
  std::string country;                  // alpha-2; empty = any
};

// Each returns InvalidArgument "<field>: <what is wrong>" (field names as in the proto).
bool IsIsoCountryCode(std::string_view code);
absl::Status ValidateCountries(const std::vector<std::string>& countries,
                               std::string_view field = "countries");
absl::Status ValidateNewPartner(const NewPartner& partner);
absl::Status ValidatePatch(const PartnerPatch& patch);
// FailedPrecondition "partner N is CLOSED, ..." for a transition the rules above forbid; setting
// the current status again (ACTIVE -> ACTIVE) is allowed and changes only the reason.
absl::Status CheckTransition(const Partner& partner, PartnerStatus to);

// A partner's loans as its credit limit and the close rule see them; amounts are USD minor
// units. A store reads it in the transaction that holds the partner row locked, so it cannot
// grow before that transaction ends (every transition that raises it, submission and approval,
// takes the same lock: LoanStore::UpdateWithPartner).
struct PartnerExposure {
  int64_t review_loans = 0;       // loans in REVIEW
  int64_t fundraising_loans = 0;  // loans FUNDRAISING
  int64_t funded_loans = 0;       // loans FUNDED, not yet disbursed
  int64_t review_minor = 0;       // the full USD amounts of the loans in REVIEW
  int64_t fundraising_minor = 0;  // ... FUNDRAISING (funded or not: they may fill up)
  int64_t funded_minor = 0;       // ... FUNDED
  // The USD principal still owed to lenders on loans PAYING_BACK or DEFAULTED: usd_amount minus
  // what repayments credited minus the funders' currency loss (as amount_outstanding in the
  // partner's stats). A write-off does not reduce it: a defaulted loan may still be repaid.
  int64_t outstanding_minor = 0;

  // What the partner owes or is raising now: FUNDRAISING + FUNDED + outstanding.
  int64_t committed_minor() const { return fundraising_minor + funded_minor + outstanding_minor; }
  friend bool operator==(const PartnerExposure&, const PartnerExposure&) = default;
};

// When the credit limit is checked. At submission the loans already in REVIEW count in full
// (a partner cannot queue more for review than its limit allows); at approval only what is
// committed counts, so the order in which ops approves decides among loans in review.
enum class CreditCheck { kSubmission = 1, kApproval = 2 };

// OK when the exposure of `check` plus `loan_usd` is at most partner.credit_limit. Otherwise
// FailedPrecondition naming the limit, the exposure (and its parts) and the loan, e.g.
// "loan of 500.00 USD would exceed partner 3's credit limit of 1000.00 USD: exposure 700.00 USD
// (fundraising 700.00, funded 0.00, outstanding 0.00, in review 0.00) + 500.00 = 1200.00 USD".
// Internal when an exposure figure is negative (the loan rows break their invariants), or when
// the sum overflows.
absl::Status CheckCreditLimit(const Partner& partner, const PartnerExposure& exposure,
                              const Money& loan_usd, CreditCheck check);
// OK unless a loan is in REVIEW, FUNDRAISING or FUNDED: then FailedPrecondition "partner N cannot
// be CLOSED while 3 of its loans are open (1 in REVIEW, 2 FUNDRAISING, 0 FUNDED); ...".
absl::Status CheckClosable(const Partner& partner, const PartnerExposure& exposure);

// Encodes a mutation's result as the payload remembered for replays (the adapter's response).
using PartnerEncoder = std::function<std::string(const Partner&)>;
// Applied by the store to the locked current row inside the transaction; a non-OK status rolls
// back and is returned. The store then bumps version and updated_at.
using PartnerMutator = std::function<absl::Status(Partner&)>;
// Like PartnerMutator, also given the partner's exposure read under the same lock.
using PartnerExposureMutator = std::function<absl::Status(Partner&, const PartnerExposure&)>;

class PartnerStore {
 public:
  virtual ~PartnerStore() = default;

  virtual absl::StatusOr<std::optional<IdempotencyRecord>> FindIdempotency(
      const std::string& caller, const std::string& request_id) = 0;

  // Inserts the partner (ACTIVE, version 1, created_at = updated_at = now) and `record` with
  // payload = encode(created), in one transaction.
  virtual absl::StatusOr<Partner> Create(const NewPartner& partner, absl::Time now,
                                         const IdempotencyRecord& record,
                                         const PartnerEncoder& encode) = 0;
  virtual absl::StatusOr<Partner> Get(PartnerId id) = 0;
  // Ascending id; `page.after_id` is the cursor; total_count counts every match.
  virtual absl::StatusOr<Page<Partner>> List(const PartnerFilter& filter, const PageSpec& page) = 0;
  // Locks the partner, checks `expected_version` (0 = no check; otherwise Aborted when it
  // differs), applies `mutate`, bumps version, sets updated_at = now, and writes the row and
  // `record` (payload = encode(updated)) in one transaction.
  virtual absl::StatusOr<Partner> Update(PartnerId id, int64_t expected_version, absl::Time now,
                                         const PartnerMutator& mutate,
                                         const IdempotencyRecord& record,
                                         const PartnerEncoder& encode) = 0;
  // Update, with `mutate` also given the partner's exposure, read in the same transaction after
  // the partner row is locked (so no submission or approval of its loans runs meanwhile).
  virtual absl::StatusOr<Partner> UpdateWithExposure(PartnerId id, int64_t expected_version,
                                                     absl::Time now,
                                                     const PartnerExposureMutator& mutate,
                                                     const IdempotencyRecord& record,
                                                     const PartnerEncoder& encode) = 0;
  // The sums over the partner's loans that its stats are computed from (core/loan_stats.h), in
  // one consistent read. NotFound when there is no such partner.
  virtual absl::StatusOr<PartnerLoanTotals> LoanTotals(PartnerId id) = 0;
};

// The outcome of a partner mutation: the partner (fresh results only), or on a replay the stored
// payload with replayed = true. `payload` is set for fresh and replayed successes alike.
struct PartnerReply {
  absl::Status status;
  bool replayed = false;
  std::string payload;
  std::optional<Partner> partner;
};

// The partner service of the core: validates, applies the rules, and calls the store. Reads go
// to the store directly. Thread-safe; `store` and `clock` must outlive it.
class PartnerDirectory {
 public:
  PartnerDirectory(PartnerStore* store, const Clock* clock) : store_(store), clock_(clock) {}

  PartnerReply Create(const RequestKey& key, const NewPartner& partner,
                      const PartnerEncoder& encode);
  // FailedPrecondition when the partner is CLOSED; InvalidArgument for an empty or invalid patch.
  PartnerReply Update(const RequestKey& key, PartnerId id, const PartnerPatch& patch,
                      int64_t expected_version, const PartnerEncoder& encode);
  // `reason` is required (InvalidArgument "reason: is required" when empty). Closing is
  // FailedPrecondition while loans are open (CheckClosable), judged under the partner's lock.
  PartnerReply SetStatus(const RequestKey& key, PartnerId id, PartnerStatus to,
                         const std::string& reason, const PartnerEncoder& encode);

  PartnerStore* store() const { return store_; }

 private:
  // Fills `reply` from a stored record when the key was used before; true when it did.
  bool ReplayIfRecorded(const RequestKey& key, PartnerReply& reply);
  // After a store failure: a concurrent retry may have recorded the key meanwhile.
  PartnerReply Finish(const RequestKey& key, absl::StatusOr<Partner> result,
                      const PartnerEncoder& encode);

  PartnerStore* store_;
  const Clock* clock_;
};

}  // namespace microlend::lending

#endif  // MICROLEND_SERVICES_LENDING_CORE_PARTNERS_H_
