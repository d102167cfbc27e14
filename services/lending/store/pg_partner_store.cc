#include "services/lending/store/pg_partner_store.h"

#include <pqxx/pqxx>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "pg/connect.h"
#include "pg/params.h"
#include "pg/pool.h"
#include "services/lending/store/pg_common.h"

namespace microlend::lending {
namespace {


using pg::InvalidText;

}  // namespace

namespace {

using Lease = pg::ConnectionPool::Lease;
using pg::ReadTxn;

using pg::RunIn;
using pg::TextArray;
using pg::TextParam;

// Countries come back as one text joined by ',' (codes are two letters, so never hold one).
constexpr char kPartnerColumns[] =
    "id, name, array_to_string(countries, ','), risk_rating_half_stars, "
    "currency_loss_coverage_bps, credit_limit_minor, credit_limit_currency, status, "
    "status_reason, description, website_url, settlement_account_id, to_micros(created_at), "
    "to_micros(updated_at), version";

Partner ReadPartner(const pqxx::row& r) {
  Partner p;
  p.id = PartnerId(r[0].as<int64_t>());
  p.name = r[1].as<std::string>();
  const std::string countries = r[2].as<std::string>();
  if (!countries.empty()) p.countries = absl::StrSplit(countries, ',');
  p.risk_rating_half_stars = r[3].as<int32_t>();
  p.currency_loss_coverage_bps = r[4].as<int32_t>();
  absl::StatusOr<Currency> currency = Currency::FromCode(r[6].as<std::string>());
  // The table's CHECK allows only USD.
  p.credit_limit = Money::FromMinor(currency.ok() ? *currency : Currency::Usd(), r[5].as<int64_t>());
  p.status = static_cast<PartnerStatus>(r[7].as<int>());
  p.status_reason = r[8].as<std::string>();
  p.description = r[9].as<std::string>();
  p.website_url = r[10].as<std::string>();
  if (!r[11].is_null()) p.settlement_account_id = AccountId(r[11].as<int64_t>());
  p.created_at = absl::FromUnixMicros(r[12].as<int64_t>());
  p.updated_at = absl::FromUnixMicros(r[13].as<int64_t>());
  p.version = r[14].as<int64_t>();
  return p;
}

absl::Status NotFound(PartnerId id) {
  return absl::NotFoundError(absl::StrCat("partner ", id.value(), " not found"));
}

// AlreadyExists naming the partner (other than `self`) that holds `name`, if any.
absl::Status CheckNameFree(pqxx::transaction_base& tx, const std::string& name, int64_t self) {
  pqxx::result r = tx.exec_params(
      "SELECT id, name FROM partners WHERE lower(name) = lower($1) AND id <> $2::bigint",
      TextParam(name), self);
  if (r.empty()) return absl::OkStatus();
  return absl::AlreadyExistsError(absl::StrCat("a partner named \"", r[0][1].as<std::string>(),
                                               "\" exists (id ", r[0][0].as<int64_t>(), ")"));
}

std::string StatusList(const std::vector<PartnerStatus>& statuses) {
  std::string out = "{";
  for (PartnerStatus s : statuses) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, static_cast<int>(s));
  }
  out += '}';
  return out;
}

}  // namespace

PgPartnerStore::PgPartnerStore(std::unique_ptr<pg::ConnectionPool> pool) : pool_(std::move(pool)) {}
PgPartnerStore::~PgPartnerStore() = default;

absl::StatusOr<std::unique_ptr<PgPartnerStore>> PgPartnerStore::Create(std::string url,
                                                                       int pool_size) {
  if (pool_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("pool size ", pool_size, " is below 1"));
  }
  absl::StatusOr<std::unique_ptr<pg::ConnectionPool>> pool =
      OpenLendingPool(std::move(url), pool_size, "partner-store", kBorrowTimeout, "partners");
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<PgPartnerStore>(new PgPartnerStore(*std::move(pool)));
}

absl::StatusOr<std::optional<IdempotencyRecord>> PgPartnerStore::FindIdempotency(
    const std::string& caller, const std::string& request_id) {
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading an idempotency record",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<std::optional<IdempotencyRecord>> {
        return FindIdempotencyRecord(tx, caller, request_id);
      });
}

absl::StatusOr<Partner> PgPartnerStore::Create(const NewPartner& partner, absl::Time now,
                                               const IdempotencyRecord& record,
                                               const PartnerEncoder& encode) {
  return RunIn<pqxx::work>(
      *pool_, "creating a partner", [&](pqxx::work& tx) -> absl::StatusOr<Partner> {
        // ON CONFLICT DO NOTHING waits for a concurrent insert of the same name to finish, so
        // the look-up below sees the partner that holds it.
        pqxx::result inserted = tx.exec_params(
            absl::StrCat(
                "INSERT INTO partners (name, countries, risk_rating_half_stars,"
                " currency_loss_coverage_bps, credit_limit_minor, credit_limit_currency,"
                " description, website_url, created_at, updated_at) VALUES ($1, $2::text[],"
                " $3::smallint, $4::int, $5::bigint, $6::bpchar, $7, $8, from_micros($9::bigint),"
                " from_micros($9::bigint)) ON CONFLICT DO NOTHING RETURNING ",
                kPartnerColumns),
            TextParam(partner.name), TextArray(partner.countries), partner.risk_rating_half_stars,
            partner.currency_loss_coverage_bps, partner.credit_limit.minor_units(),
            std::string(partner.credit_limit.currency().code()), TextParam(partner.description),
            TextParam(partner.website_url), absl::ToUnixMicros(now));
        if (inserted.empty()) {
          ML_RETURN_IF_ERROR(CheckNameFree(tx, partner.name, 0));
          return absl::AbortedError("a partner with that name was created and removed meanwhile");
        }
        Partner created = ReadPartner(inserted[0]);
        ML_RETURN_IF_ERROR(InsertIdempotencyRecord(tx, record, encode(created)));
        return created;
      });
}

absl::StatusOr<Partner> PgPartnerStore::Get(PartnerId id) {
  return RunIn<pg::OneStatementRead>(
      *pool_, "reading a partner", [&](pg::OneStatementRead& tx) -> absl::StatusOr<Partner> {
        pqxx::result r = tx.exec_params(
            absl::StrCat("SELECT ", kPartnerColumns, " FROM partners WHERE id = $1::bigint"),
            id.value());
        if (r.empty()) return NotFound(id);
        return ReadPartner(r[0]);
      });
}

absl::StatusOr<Page<Partner>> PgPartnerStore::List(const PartnerFilter& filter,
                                                   const PageSpec& page) {
  if (page.limit < 1) {
    return absl::InvalidArgumentError(absl::StrCat("page limit ", page.limit, " is below 1"));
  }
  return RunIn<ReadTxn>(
      *pool_, "listing partners", [&](ReadTxn& tx) -> absl::StatusOr<Page<Partner>> {
        // $1 statuses (empty = any), $2 country ('' = any).
        constexpr char kWhere[] =
            " WHERE (cardinality($1::smallint[]) = 0 OR status = ANY($1::smallint[]))"
            " AND ($2 = '' OR countries @> ARRAY[$2::text])";
        const std::string statuses = StatusList(filter.statuses);
        const std::string country = TextParam(filter.country);
        Page<Partner> out;
        pqxx::result rows = tx.exec_params(
            absl::StrCat("SELECT ", kPartnerColumns, " FROM partners", kWhere,
                         " AND id > $3::bigint ORDER BY id LIMIT $4::int"),
            statuses, country, page.after_id, page.limit + 1);
        for (const pqxx::row& row : rows) {
          if (out.items.size() == static_cast<size_t>(page.limit)) {
            out.next_after_id = out.items.back().id.value();
            break;
          }
          out.items.push_back(ReadPartner(row));
        }
        out.total_count = tx.exec_params(absl::StrCat("SELECT count(*) FROM partners", kWhere),
                                         statuses, country)[0][0]
                              .as<int64_t>();
        return out;
      });
}

absl::StatusOr<Partner> LockPartnerRow(pqxx::transaction_base& tx, PartnerId id,
                                       PartnerRowLock lock) {
  pqxx::result r = tx.exec_params(
      absl::StrCat("SELECT ", kPartnerColumns, " FROM partners WHERE id = $1::bigint",
                   lock == PartnerRowLock::kUpdate ? " FOR UPDATE" : " FOR NO KEY UPDATE"),
      id.value());
  if (r.empty()) return NotFound(id);
  return ReadPartner(r[0]);
}

PartnerExposure ReadPartnerExposure(pqxx::transaction_base& tx, PartnerId id) {
  // Statuses: 2 REVIEW, 3 FUNDRAISING, 4 FUNDED, 5 PAYING_BACK, 9 DEFAULTED. Outstanding is the
  // unpaid principal of PgPartnerStore::LoanTotals: usd - repaid - currency loss.
  constexpr char kExposure[] =
      "SELECT count(*) FILTER (WHERE status = 2), count(*) FILTER (WHERE status = 3),"
      " count(*) FILTER (WHERE status = 4),"
      " coalesce(sum(usd_amount_minor) FILTER (WHERE status = 2), 0)::bigint,"
      " coalesce(sum(usd_amount_minor) FILTER (WHERE status = 3), 0)::bigint,"
      " coalesce(sum(usd_amount_minor) FILTER (WHERE status = 4), 0)::bigint,"
      " coalesce(sum(usd_amount_minor - repaid_usd_minor - currency_loss_minor)"
      "   FILTER (WHERE status IN (5, 9)), 0)::bigint"
      " FROM loans WHERE partner_id = $1::bigint AND status IN (2, 3, 4, 5, 9)";
  const pqxx::row r = tx.exec_params1(kExposure, id.value());
  return PartnerExposure{.review_loans = r[0].as<int64_t>(),
                         .fundraising_loans = r[1].as<int64_t>(),
                         .funded_loans = r[2].as<int64_t>(),
                         .review_minor = r[3].as<int64_t>(),
                         .fundraising_minor = r[4].as<int64_t>(),
                         .funded_minor = r[5].as<int64_t>(),
                         .outstanding_minor = r[6].as<int64_t>()};
}

absl::StatusOr<Partner> PgPartnerStore::Update(PartnerId id, int64_t expected_version,
                                               absl::Time now, const PartnerMutator& mutate,
                                               const IdempotencyRecord& record,
                                               const PartnerEncoder& encode) {
  return UpdateImpl(
      id, expected_version, now, /*read_exposure=*/false,
      [&](Partner& partner, const PartnerExposure&) { return mutate(partner); }, record, encode);
}

absl::StatusOr<Partner> PgPartnerStore::UpdateWithExposure(PartnerId id, int64_t expected_version,
                                                           absl::Time now,
                                                           const PartnerExposureMutator& mutate,
                                                           const IdempotencyRecord& record,
                                                           const PartnerEncoder& encode) {
  return UpdateImpl(id, expected_version, now, /*read_exposure=*/true, mutate, record, encode);
}

absl::StatusOr<Partner> PgPartnerStore::UpdateImpl(PartnerId id, int64_t expected_version,
                                                   absl::Time now, bool read_exposure,
                                                   const PartnerExposureMutator& mutate,
                                                   const IdempotencyRecord& record,
                                                   const PartnerEncoder& encode) {
  return RunIn<pqxx::work>(
      *pool_, "updating a partner", [&](pqxx::work& tx) -> absl::StatusOr<Partner> {
        ML_ASSIGN_OR_RETURN(Partner partner, LockPartnerRow(tx, id, PartnerRowLock::kUpdate));
        ML_RETURN_IF_ERROR(RefuseIfRecorded(tx, record));
        if (expected_version != 0 && expected_version != partner.version) {
          return absl::AbortedError(absl::StrCat("partner ", id.value(), " is at version ",
                                                 partner.version, ", not ", expected_version,
                                                 ": re-read it and retry"));
        }
        const PartnerExposure exposure =
            read_exposure ? ReadPartnerExposure(tx, id) : PartnerExposure{};
        const std::string old_name = partner.name;
        ML_RETURN_IF_ERROR(mutate(partner, exposure));
        if (partner.name != old_name) ML_RETURN_IF_ERROR(CheckNameFree(tx, partner.name, id.value()));
        pqxx::result updated = tx.exec_params(
            absl::StrCat("UPDATE partners SET name = $2, countries = $3::text[],"
                         " risk_rating_half_stars = $4::smallint,"
                         " currency_loss_coverage_bps = $5::int, credit_limit_minor = $6::bigint,"
                         " credit_limit_currency = $7::bpchar, status = $8::smallint,"
                         " status_reason = $9, description = $10, website_url = $11,"
                         " updated_at = from_micros($12::bigint), version = version + 1"
                         " WHERE id = $1::bigint RETURNING ",
                         kPartnerColumns),
            id.value(), TextParam(partner.name), TextArray(partner.countries),
            partner.risk_rating_half_stars, partner.currency_loss_coverage_bps,
            partner.credit_limit.minor_units(),
            std::string(partner.credit_limit.currency().code()), static_cast<int>(partner.status),
            TextParam(partner.status_reason), TextParam(partner.description),
            TextParam(partner.website_url), absl::ToUnixMicros(now));
        Partner result = ReadPartner(updated[0]);
        ML_RETURN_IF_ERROR(InsertIdempotencyRecord(tx, record, encode(result)));
        return result;
      });
}

absl::StatusOr<PartnerLoanTotals> PgPartnerStore::LoanTotals(PartnerId id) {
  // One statement, so one snapshot. Statuses: 3 FUNDRAISING .. 5 PAYING_BACK, 6 ENDED, 7 EXPIRED,
  // 8 REFUNDED, 9 DEFAULTED. `unpaid` is a loan's principal at the posting rate not yet repaid;
  // arrears convert at the loan's own posting ratio (usd / local), rounded down.
  constexpr char kTotals[] =
      "WITH l AS (SELECT status, funded_minor, days_in_arrears, currency_loss_minor,"
      "   repaid_usd_minor, coalesce(usd_amount_minor, 0) AS usd,"
      "   coalesce(usd_amount_minor, 0) - repaid_usd_minor - currency_loss_minor AS unpaid,"
      "   CASE WHEN coalesce(local_amount_minor, 0) > 0 THEN div(arrears_local_minor::numeric"
      "     * coalesce(usd_amount_minor, 0), local_amount_minor) ELSE 0 END AS arrears_usd"
      " FROM loans WHERE partner_id = $1::bigint AND status >= 3)"
      " SELECT EXISTS (SELECT 1 FROM partners WHERE id = $1::bigint), count(*),"
      " count(*) FILTER (WHERE status IN (5, 9)),"
      " coalesce(sum(funded_minor) FILTER (WHERE status NOT IN (7, 8)), 0)::bigint,"
      " coalesce(sum(unpaid) FILTER (WHERE status IN (5, 9)), 0)::bigint,"
      " coalesce(sum(least(arrears_usd, unpaid)) FILTER (WHERE status IN (5, 9)), 0)::bigint,"
      " coalesce(sum(unpaid) FILTER (WHERE status IN (5, 9) AND days_in_arrears > 30), 0)::bigint,"
      " coalesce(sum(usd) FILTER (WHERE status IN (5, 6, 9)), 0)::bigint,"
      " coalesce(sum(unpaid) FILTER (WHERE status = 9), 0)::bigint,"
      " coalesce(sum(currency_loss_minor), 0)::bigint, coalesce(sum(repaid_usd_minor), 0)::bigint"
      " FROM l";
  return RunIn<pqxx::read_transaction>(
      *pool_, "reading a partner's loan totals",
      [&](pqxx::read_transaction& tx) -> absl::StatusOr<PartnerLoanTotals> {
        pqxx::row r = tx.exec_params1(kTotals, id.value());
        if (!r[0].as<bool>()) return NotFound(id);
        return PartnerLoanTotals{.loans_posted = r[1].as<int64_t>(),
                                 .loans_active = r[2].as<int64_t>(),
                                 .raised_minor = r[3].as<int64_t>(),
                                 .outstanding_minor = r[4].as<int64_t>(),
                                 .arrears_minor = r[5].as<int64_t>(),
                                 .par30_outstanding_minor = r[6].as<int64_t>(),
                                 .disbursed_principal_minor = r[7].as<int64_t>(),
                                 .defaulted_outstanding_minor = r[8].as<int64_t>(),
                                 .currency_loss_minor = r[9].as<int64_t>(),
                                 .repaid_minor = r[10].as<int64_t>()};
      });
}

}  // namespace microlend::lending
