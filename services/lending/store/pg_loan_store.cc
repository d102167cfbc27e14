#include "services/lending/store/pg_loan_store.h"

#include <limits>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "pg/connect.h"
#include "pg/params.h"
#include "pg/pool.h"
#include "services/lending/store/pg_common.h"
#include "services/lending/store/pg_partner_store.h"

namespace microlend::lending {
namespace {


// A loan naming a missing partner trips the foreign key: NotFound, not FailedPrecondition.
absl::Status Translate(const std::exception& e, std::string_view what) {
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&e) != nullptr) {
    return absl::NotFoundError(absl::StrCat(AsAbsl(what), ": the loan's partner does not exist"));
  }
  return pg::TranslateError(e, what);
}

using pg::RunIn;
using pg::TextArray;
using pg::TextParam;
using ReadTxn = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

template <typename T, typename Fn>
std::string IntArray(const std::vector<T>& items, Fn&& to_int) {
  std::string out = "{";
  for (const T& item : items) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, to_int(item));
  }
  return out + "}";
}

std::optional<int64_t> Micros(const std::optional<absl::Time>& t) {
  if (!t) return std::nullopt;
  return absl::ToUnixMicros(*t);
}

std::optional<absl::Time> TimeAt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return absl::FromUnixMicros(f.as<int64_t>());
}

std::vector<std::string> SplitLabels(const std::string& joined) {
  if (joined.empty()) return {};
  return absl::StrSplit(joined, ',');
}

constexpr char kLoanColumns[] =
    "l.id, l.partner_id, l.status, l.country, l.region, l.town, l.sector,"
    " array_to_string(l.tags, ','), array_to_string(l.hashtags, ','), l.term_months,"
    " l.repayment_interval, l.local_amount_minor, l.local_currency, l.posting_fx_rate,"
    " l.usd_amount_minor, l.funded_minor, l.held_minor, l.lender_count, l.trending_score_milli,"
    " l.details::text, l.review_return_reason, to_micros(l.review_returned_at), l.review_reviewer,"
    " to_micros(l.fundraising_deadline), l.version, to_micros(l.created_at),"
    " to_micros(l.updated_at), to_micros(l.submitted_at), to_micros(l.published_at),"
    " p.risk_rating_half_stars, coalesce(l.funding_account_id, 0), to_micros(l.funded_at),"
    " to_micros(l.disbursed_at), to_micros(l.closed_at), l.repaid_usd_minor,"
    " l.repaid_local_minor, l.currency_loss_minor, l.written_off_minor, l.delinquent,"
    " l.days_in_arrears, l.arrears_local_minor, l.ended_with_currency_loss";
constexpr char kLoanFrom[] = " FROM loans l JOIN partners p ON p.id = l.partner_id";

absl::StatusOr<Loan> ReadLoan(const pqxx::row& r) {
  Loan loan;
  ML_ASSIGN_OR_RETURN(loan.details, DetailsFromJson(r[19].as<std::string>()));
  LoanDetails& d = loan.details;
  loan.id = LoanId(r[0].as<int64_t>());
  loan.partner_id = PartnerId(r[1].as<int64_t>());
  loan.status = static_cast<LoanStatus>(r[2].as<int>());
  d.country = r[3].as<std::string>();
  d.region = r[4].as<std::string>();
  d.town = r[5].as<std::string>();
  d.sector = r[6].as<int32_t>();
  d.tags = SplitLabels(r[7].as<std::string>());
  d.hashtags = SplitLabels(r[8].as<std::string>());
  d.term_months = r[9].as<int32_t>();
  if (const int interval = r[10].as<int>(); interval != 0) {
    d.repayment_interval = static_cast<RepaymentInterval>(interval);
  }
  if (!r[11].is_null()) {
    absl::StatusOr<Currency> currency = Currency::FromCode(r[12].as<std::string>());
    if (!currency.ok()) return absl::DataLossError("a stored loan has an unknown currency");
    d.local_amount = Money::FromMinor(*currency, r[11].as<int64_t>());
  }
  d.posting_fx_rate = r[13].as<std::string>();
  if (!r[14].is_null()) loan.usd_amount = Money::FromMinor(Currency::Usd(), r[14].as<int64_t>());
  loan.funded_minor = r[15].as<int64_t>();
  loan.held_minor = r[16].as<int64_t>();
  loan.lender_count = r[17].as<int32_t>();
  loan.trending_score_milli = r[18].as<int64_t>();
  if (!r[20].is_null()) {
    loan.review_return = ReviewReturn{.reason = r[20].as<std::string>(),
                                      .returned_at = *TimeAt(r[21]),
                                      .reviewer = r[22].as<std::string>()};
  }
  loan.fundraising_deadline = TimeAt(r[23]);
  loan.version = r[24].as<int64_t>();
  loan.created_at = *TimeAt(r[25]);
  loan.updated_at = *TimeAt(r[26]);
  loan.submitted_at = TimeAt(r[27]);
  loan.posted_at = TimeAt(r[28]);
  loan.partner_risk_rating_half_stars = r[29].as<int32_t>();
  loan.funding_account_id = AccountId(r[30].as<int64_t>());
  loan.funded_at = TimeAt(r[31]);
  loan.disbursed_at = TimeAt(r[32]);
  loan.closed_at = TimeAt(r[33]);
  loan.repaid_usd_minor = r[34].as<int64_t>();
  loan.repaid_local_minor = r[35].as<int64_t>();
  loan.currency_loss_minor = r[36].as<int64_t>();
  loan.written_off_minor = r[37].as<int64_t>();
  loan.delinquent = r[38].as<bool>();
  loan.days_in_arrears = r[39].as<int32_t>();
  loan.arrears_local_minor = r[40].as<int64_t>();
  loan.ended_with_currency_loss = r[41].as<bool>();
  return loan;
}

// Loads the schedules of `loans` (one query) and checks each against its loan.
absl::Status LoadSchedules(pqxx::transaction_base& tx, std::vector<Loan>& loans) {
  if (loans.empty()) return absl::OkStatus();
  absl::flat_hash_map<int64_t, Loan*> by_id;
  for (Loan& loan : loans) by_id[loan.id.value()] = &loan;
  pqxx::result rows = tx.exec_params(
      "SELECT loan_id, to_char(due_date, 'YYYY-MM-DD'), principal_minor FROM"
      " loan_schedule_entries WHERE loan_id = ANY($1::bigint[]) ORDER BY loan_id, seq",
      IntArray(loans, [](const Loan& l) { return l.id.value(); }));
  for (const pqxx::row& row : rows) {
    Loan* loan = by_id.at(row[0].as<int64_t>());
    absl::CivilDay due;
    if (!absl::ParseCivilTime(row[1].as<std::string>(), &due) || !loan->details.local_amount) {
      return absl::DataLossError(absl::StrCat("loan ", loan->id.value(), " has a bad schedule"));
    }
    loan->details.schedule.push_back(
        {due, Money::FromMinor(loan->details.local_amount->currency(), row[2].as<int64_t>())});
  }
  for (const Loan& loan : loans) {
    if (loan.status == LoanStatus::kDraft) continue;  // drafts may be incomplete
    absl::Status valid = ValidateSchedule(loan.details.schedule, *loan.details.local_amount,
                                          DisbursalAnchor(loan.details, loan.created_at),
                                          loan.details.term_months);
    if (!valid.ok()) {
      return absl::DataLossError(absl::StrCat("loan ", loan.id.value(),
                                              "'s stored schedule is invalid: ", valid.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Loan> SelectLoan(pqxx::transaction_base& tx, LoanId id, bool for_update) {
  pqxx::result r = tx.exec_params(
      absl::StrCat("SELECT ", kLoanColumns, kLoanFrom, " WHERE l.id = $1::bigint",
                   for_update ? " FOR UPDATE OF l" : ""),
      id.value());
  if (r.empty()) return absl::NotFoundError(absl::StrCat("loan ", id.value(), " not found"));
  ML_ASSIGN_OR_RETURN(Loan loan, ReadLoan(r[0]));
  std::vector<Loan> one{std::move(loan)};
  ML_RETURN_IF_ERROR(LoadSchedules(tx, one));
  return std::move(one[0]);
}

void AssignBorrowerIds(pqxx::transaction_base& tx, Loan& loan) {
  int missing = 0;
  for (const Borrower& b : loan.details.borrowers) missing += !b.id.has_value();
  if (missing == 0) return;
  pqxx::result ids = tx.exec_params(
      "SELECT nextval('borrower_id_seq') FROM generate_series(1, $1::int)", missing);
  int next = 0;
  for (Borrower& b : loan.details.borrowers) {
    if (!b.id) b.id = BorrowerId(ids[next++][0].as<int64_t>());
  }
}

// Writes every stored column of `loan` (insert when its id is 0) and its schedule; returns the id.
int64_t WriteLoan(pqxx::transaction_base& tx, Loan& loan) {
  AssignBorrowerIds(tx, loan);
  const LoanDetails& d = loan.details;
  const std::optional<Gender> gender = loan.borrower_gender();
  std::optional<int64_t> local_minor;
  std::optional<std::string> local_currency;
  if (d.local_amount) {
    local_minor = d.local_amount->minor_units();
    local_currency = std::string(d.local_amount->currency().code());
  }
  std::optional<int64_t> usd;
  if (loan.usd_amount) usd = loan.usd_amount->minor_units();
  std::optional<std::string> reason, reviewer;
  std::optional<int64_t> returned_at;
  if (loan.review_return) {
    reason = TextParam(loan.review_return->reason);
    reviewer = TextParam(loan.review_return->reviewer);
    returned_at = absl::ToUnixMicros(loan.review_return->returned_at);
  }
  constexpr char kValues[] =
      "$2::bigint, $3::smallint, $4, $5, $6, $7::smallint, $8::smallint, $9::bool,"
      " $10::text[], $11::text[], $12::int, $13::smallint, $14::bigint, $15::bpchar, $16,"
      " $17::bigint, $18::jsonb, $19, from_micros($20::bigint), $21, from_micros($22::bigint),"
      " $23::bigint, from_micros($24::bigint), from_micros($25::bigint),"
      " from_micros($26::bigint), from_micros($27::bigint)";
  const std::string sql =
      loan.id.value() == 0
          ? absl::StrCat(
                "INSERT INTO loans (partner_id, status, country, region, town, sector, gender,"
                " is_group, tags, hashtags, term_months, repayment_interval, local_amount_minor,"
                " local_currency, posting_fx_rate, usd_amount_minor, details,"
                " review_return_reason, review_returned_at, review_reviewer,"
                " fundraising_deadline, version, created_at, updated_at, submitted_at,"
                " published_at) SELECT ",
                kValues, " WHERE $1::bigint = 0 RETURNING id")
          : absl::StrCat(
                "UPDATE loans SET (partner_id, status, country, region, town, sector, gender,"
                " is_group, tags, hashtags, term_months, repayment_interval, local_amount_minor,"
                " local_currency, posting_fx_rate, usd_amount_minor, details,"
                " review_return_reason, review_returned_at, review_reviewer,"
                " fundraising_deadline, version, created_at, updated_at, submitted_at,"
                " published_at) = (",
                kValues, ") WHERE id = $1::bigint RETURNING id");
  pqxx::result r = tx.exec_params(
      sql, loan.id.value(), loan.partner_id.value(), static_cast<int>(loan.status),
      TextParam(d.country), TextParam(d.region), TextParam(d.town), d.sector,
      gender ? static_cast<int>(*gender) : 0, loan.is_group(), TextArray(d.tags),
      TextArray(d.hashtags), d.term_months,
      d.repayment_interval ? static_cast<int>(*d.repayment_interval) : 0, local_minor,
      local_currency, TextParam(d.posting_fx_rate), usd, TextParam(DetailsToJson(d)), reason,
      returned_at, reviewer, Micros(loan.fundraising_deadline), loan.version,
      absl::ToUnixMicros(loan.created_at), absl::ToUnixMicros(loan.updated_at),
      Micros(loan.submitted_at), Micros(loan.posted_at));
  const int64_t id = r[0][0].as<int64_t>();
  tx.exec_params("DELETE FROM loan_schedule_entries WHERE loan_id = $1::bigint", id);
  for (size_t i = 0; i < d.schedule.size(); ++i) {
    tx.exec_params(
        "INSERT INTO loan_schedule_entries (loan_id, seq, due_date, principal_minor)"
        " VALUES ($1::bigint, $2::int, $3::date, $4::bigint)",
        id, static_cast<int>(i), absl::FormatCivilTime(d.schedule[i].due),
        d.schedule[i].principal.minor_units());
  }
  return id;
}

constexpr char kRemaining[] = "(coalesce(l.usd_amount_minor, 0) - l.funded_minor - l.held_minor)";

std::string OrderBy(const LoanQuery& q) {
  switch (q.sort) {
    case LoanSort::kNewest:
      return " ORDER BY coalesce(l.published_at, l.created_at) DESC, l.id";
    case LoanSort::kExpiringSoonest:
      return " ORDER BY l.fundraising_deadline ASC NULLS LAST, l.id";
    case LoanSort::kAmountLeftAsc:
      return absl::StrCat(" ORDER BY ", kRemaining, " ASC, l.id");
    case LoanSort::kAmountLeftDesc:
      return absl::StrCat(" ORDER BY ", kRemaining, " DESC, l.id");
    case LoanSort::kLoanAmountAsc:
      return " ORDER BY coalesce(l.usd_amount_minor, 0) ASC, l.id";
    case LoanSort::kLoanAmountDesc:
      return " ORDER BY coalesce(l.usd_amount_minor, 0) DESC, l.id";
    case LoanSort::kTrending:
      return " ORDER BY l.trending_score_milli DESC, l.id";
    case LoanSort::kRandom:
      // The seed is an integer formatted here, never client text.
      return absl::StrCat(" ORDER BY md5('", q.random_seed, ":' || l.id::text), l.id");
  }
  return " ORDER BY l.id";
}

// One status (the catalogue's FUNDRAISING) is compared with `=`: PostgreSQL 15 does not walk an
// index in order under `= ANY(...)`, so every sort would read and sort all the matching loans.
constexpr char kOneStatus[] = " WHERE l.status = ($1::smallint[])[1]";
constexpr char kAnyStatus[] = " WHERE l.status = ANY($1::smallint[])";
constexpr char kWhere[] =
    " AND ($2::bool OR l.status >= 3 OR l.partner_id = $3::bigint)"
    " AND (cardinality($4::text[]) = 0 OR l.country = ANY($4::text[]))"
    " AND (cardinality($5::text[]) = 0 OR lower(l.region) = ANY($5::text[]))"
    " AND (cardinality($6::smallint[]) = 0 OR l.sector = ANY($6::smallint[]))"
    " AND (cardinality($7::smallint[]) = 0 OR l.gender = ANY($7::smallint[]))"
    " AND ($8::int < 0 OR l.is_group = ($8::int = 1))"
    " AND (cardinality($9::bigint[]) = 0 OR l.partner_id = ANY($9::bigint[]))"
    " AND p.risk_rating_half_stars >= $10::int"
    // NULL when unbounded, so that the planner drops the test: a BETWEEN over the whole int64
    // range is estimated to keep 0.5% of the rows, which turns LIMIT-ordered index scans into
    // full sorts.
    " AND ($11::bigint IS NULL OR"
    "      coalesce(l.usd_amount_minor, 0) - l.funded_minor - l.held_minor >= $11::bigint)"
    " AND ($12::bigint IS NULL OR"
    "      coalesce(l.usd_amount_minor, 0) - l.funded_minor - l.held_minor <= $12::bigint)"
    " AND ($13::int = 0 OR l.term_months <= $13::int)"
    " AND (cardinality($14::text[]) = 0 OR l.tags && $14::text[])"
    " AND (cardinality($15::text[]) = 0 OR l.hashtags && $15::text[])"
    " AND ($16::bigint = 0 OR (l.fundraising_deadline >= from_micros($17::bigint)"
    "      AND l.fundraising_deadline <= from_micros($16::bigint)))"
    " AND (cardinality($18::smallint[]) = 0 OR l.repayment_interval = ANY($18::smallint[]))"
    " AND NOT $19::bool";

}  // namespace

PgLoanStore::PgLoanStore(std::unique_ptr<pg::ConnectionPool> pool) : pool_(std::move(pool)) {}
PgLoanStore::~PgLoanStore() = default;

absl::StatusOr<std::unique_ptr<PgLoanStore>> PgLoanStore::Create(std::string url, int pool_size) {
  if (pool_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("pool size ", pool_size, " is below 1"));
  }
  absl::StatusOr<std::unique_ptr<pg::ConnectionPool>> pool =
      OpenLendingPool(std::move(url), pool_size, "loan-store", kBorrowTimeout, "loans",
                      /*setup=*/nullptr, Translate);
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<PgLoanStore>(new PgLoanStore(*std::move(pool)));
}

absl::StatusOr<std::optional<IdempotencyRecord>> PgLoanStore::FindIdempotency(
    const std::string& caller, const std::string& request_id) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading an idempotency record",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::optional<IdempotencyRecord>> {
        return FindIdempotencyRecord(tx, caller, request_id);
      });
}

absl::StatusOr<Loan> PgLoanStore::Create(const Loan& loan, absl::Time now,
                                         const IdempotencyRecord& record,
                                         const LoanEncoder& encode) {
  return RunIn<pqxx::work>(*pool_, "creating a loan", [&](pqxx::work& tx) -> absl::StatusOr<Loan> {
    Loan draft = loan;
    draft.id = LoanId(0);
    draft.version = 1;
    draft.created_at = draft.updated_at = now;
    const int64_t id = WriteLoan(tx, draft);
    ML_ASSIGN_OR_RETURN(Loan created, SelectLoan(tx, LoanId(id), /*for_update=*/false));
    ML_RETURN_IF_ERROR(InsertIdempotencyRecord(tx, record, encode(created)));
    return created;
  });
}

absl::StatusOr<Loan> PgLoanStore::Get(LoanId id) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading a loan", [&](pqxx::read_transaction& tx) -> absl::StatusOr<Loan> {
        return SelectLoan(tx, id, /*for_update=*/false);
      });
}

absl::StatusOr<Loan> PgLoanStore::Update(LoanId id, int64_t expected_version, absl::Time now,
                                         const LoanMutator& mutate,
                                         const IdempotencyRecord& record,
                                         const LoanEncoder& encode) {
  return UpdateImpl(
      id, expected_version, now,
      [&](pqxx::transaction_base&, Loan& loan) { return mutate(loan); }, record, encode);
}

absl::StatusOr<Loan> PgLoanStore::UpdateWithPartner(LoanId id, int64_t expected_version,
                                                    absl::Time now,
                                                    const LoanPartnerMutator& mutate,
                                                    const IdempotencyRecord& record,
                                                    const LoanEncoder& encode) {
  // The loan row is already locked: loan first, then partner.
  auto with_partner = [&](pqxx::transaction_base& tx, Loan& loan) -> absl::Status {
    ML_ASSIGN_OR_RETURN(Partner partner,
                        LockPartnerRow(tx, loan.partner_id, PartnerRowLock::kLoanTransition));
    return mutate(loan, partner, ReadPartnerExposure(tx, loan.partner_id));
  };
  return UpdateImpl(id, expected_version, now, with_partner, record, encode);
}

absl::StatusOr<Loan> PgLoanStore::UpdateImpl(LoanId id, int64_t expected_version, absl::Time now,
                                             const TxnMutator& mutate,
                                             const IdempotencyRecord& record,
                                             const LoanEncoder& encode) {
  return RunIn<pqxx::work>(*pool_, "updating a loan", [&](pqxx::work& tx) -> absl::StatusOr<Loan> {
    ML_ASSIGN_OR_RETURN(Loan loan, SelectLoan(tx, id, /*for_update=*/true));
    ML_RETURN_IF_ERROR(RefuseIfRecorded(tx, record));
    if (expected_version != 0 && expected_version != loan.version) {
      return absl::AbortedError(absl::StrCat("loan ", id.value(), " is at version ", loan.version,
                                             ", not ", expected_version, ": re-read it and retry"));
    }
    ML_RETURN_IF_ERROR(mutate(tx, loan));
    loan.id = id;
    loan.version += 1;
    loan.updated_at = now;
    WriteLoan(tx, loan);
    ML_ASSIGN_OR_RETURN(Loan updated, SelectLoan(tx, id, /*for_update=*/false));
    ML_RETURN_IF_ERROR(InsertIdempotencyRecord(tx, record, encode(updated)));
    return updated;
  });
}

absl::StatusOr<Page<Loan>> PgLoanStore::List(const LoanQuery& q) {
  if (q.limit < 1) return absl::InvalidArgumentError(absl::StrCat("page limit ", q.limit, " is below 1"));
  if (q.offset < 0) return absl::InvalidArgumentError("page offset is negative");
  std::vector<LoanStatus> statuses = q.statuses;
  if (statuses.empty()) statuses.push_back(LoanStatus::kFundraising);
  std::vector<std::string> regions;
  for (const std::string& r : q.regions) regions.push_back(absl::AsciiStrToLower(r));
  const int64_t now_us = absl::ToUnixMicros(q.now);
  int64_t deadline_bound = 0;
  if (q.expiring_within_hours > 0) {
    const int64_t max_hours = (std::numeric_limits<int64_t>::max() - now_us) / 3'600'000'000LL;
    deadline_bound = now_us + std::min(q.expiring_within_hours, max_hours) * 3'600'000'000LL;
  }
  const bool nothing = (q.matchable && *q.matchable) || (q.delinquent && *q.delinquent) ||
                       q.min_days_in_arrears > 0;
  auto as_int = [](auto v) { return static_cast<int64_t>(v); };
  return RunIn<ReadTxn>(*pool_, "listing loans", [&](ReadTxn& tx) -> absl::StatusOr<Page<Loan>> {
    auto run = [&](const std::string& sql) {
      return tx.exec_params(
          sql, IntArray(statuses, as_int), q.viewer.ops,
          q.viewer.partner ? q.viewer.partner->value() : 0, TextArray(q.countries),
          TextArray(regions), IntArray(q.sectors, as_int), IntArray(q.genders, as_int),
          q.is_group ? static_cast<int>(*q.is_group) : -1,
          IntArray(q.partner_ids, [](PartnerId p) { return p.value(); }),
          q.min_partner_risk_rating_half_stars, q.min_amount_left_minor, q.max_amount_left_minor,
          q.max_term_months,
          TextArray(q.tags), TextArray(q.hashtags), deadline_bound, now_us,
          IntArray(q.repayment_intervals, as_int), nothing);
    };
    Page<Loan> out;
    const char* status = statuses.size() == 1 ? kOneStatus : kAnyStatus;
    pqxx::result rows = run(absl::StrCat("SELECT ", kLoanColumns, kLoanFrom, status, kWhere,
                                         OrderBy(q), " LIMIT ", q.limit + 1, " OFFSET ", q.offset));
    for (const pqxx::row& row : rows) {
      if (out.items.size() == static_cast<size_t>(q.limit)) {
        out.next_after_id = q.offset + q.limit;
        break;
      }
      ML_ASSIGN_OR_RETURN(Loan loan, ReadLoan(row));
      out.items.push_back(std::move(loan));
    }
    ML_RETURN_IF_ERROR(LoadSchedules(tx, out.items));
    out.total_count = run(absl::StrCat("SELECT count(*) FROM (SELECT 1", kLoanFrom, status,
                                       kWhere, " LIMIT ", q.count_cap + 1, ") matches"))[0][0]
                          .as<int64_t>();
    return out;
  });
}

}  // namespace microlend::lending
