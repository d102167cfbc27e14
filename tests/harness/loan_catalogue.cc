#include "harness/loan_catalogue.h"

#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "harness/rpc.h"
#include "microlend/lending/v1/lending.grpc.pb.h"
#include "pg/connect.h"
#include "pg/params.h"

namespace microlend::testing {
namespace {

namespace lv1 = ::microlend::lending::v1;

struct CatalogueCountry {
  const char* code;
  const char* currency;
  const char* fx_rate;  // local units per USD, as a partner posts it
  // usd_minor * fx_num / fx_den = local minor units, exact for multiples of 25.00 USD.
  int64_t fx_num, fx_den;
  const char* regions;  // three, '|'-separated
};

const CatalogueCountry kCountries[] = {
    {"KE", "KES", "129.5", 1295, 10, "Nairobi|Kisumu|Nakuru"},
    {"UG", "UGX", "3700", 37, 1, "Kampala|Gulu|Mbale"},
    {"TZ", "TZS", "2600", 2600, 1, "Arusha|Mwanza|Dodoma"},
    {"PH", "PHP", "58.2", 582, 10, "Cebu|Iloilo|Davao"},
    {"PE", "PEN", "3.75", 375, 100, "Cusco|Puno|Arequipa"},
    {"BO", "BOB", "6.91", 691, 100, "La Paz|Cochabamba|Oruro"},
    {"SN", "XOF", "605", 605, 100, "Dakar|Thies|Kaolack"},
    {"ML", "XOF", "605", 605, 100, "Bamako|Segou|Mopti"},
    {"KH", "KHR", "4100", 4100, 1, "Siem Reap|Battambang|Kampot"},
    {"GT", "GTQ", "7.8", 78, 10, "Quetzaltenango|Solola|Coban"},
    {"HN", "HNL", "24.7", 247, 10, "Tegucigalpa|Choluteca|La Ceiba"},
    {"IN", "INR", "83.2", 832, 10, "Bihar|Odisha|Assam"},
};

struct CataloguePartner {
  const char* name;
  std::vector<const char*> countries;
  int rating_half_stars;
};

const CataloguePartner kPartners[] = {
    {"Juhudi Kilimo (catalogue)", {"KE", "UG"}, 7},
    {"Bayanihan Credit (catalogue)", {"PH"}, 8},
    {"Andes Solidarity Fund (catalogue)", {"PE", "BO"}, 6},
    {"Sahel Microfinance (catalogue)", {"SN", "ML"}, 5},
    {"Mekong Rural Credit (catalogue)", {"KH"}, 9},
    {"Lake Victoria Women's Fund (catalogue)", {"UG", "TZ", "KE"}, 4},
    {"Altiplano Cooperative (catalogue)", {"GT", "HN"}, 6},
    {"Ganges Self-Help Network (catalogue)", {"IN"}, 3},
};

// Every partner's countries are in kCountries.
const CatalogueCountry& CountryByCode(std::string_view code) {
  for (const CatalogueCountry& c : kCountries) {
    if (code == c.code) return c;
  }
  std::abort();
}

// One (partner, country) pair a loan can be posted in; the loader picks one per loan uniformly.
struct Slots {
  std::vector<int64_t> partner_ids, fx_num, fx_den;
  std::vector<std::string> countries, currencies, fx_rates, regions;
};

std::string IntArray(const std::vector<int64_t>& v) {
  return absl::StrCat("{", absl::StrJoin(v, ","), "}");
}

absl::StatusOr<Slots> CreatePartners(LocalStack& stack) {
  auto partners = lv1::PartnerService::NewStub(Channel(stack.Address(Server::kLending)));
  const std::string ops = stack.Token(Role::kOps, "catalogue-ops");
  Slots slots;
  for (size_t i = 0; i < std::size(kPartners); ++i) {
    lv1::CreatePartnerRequest req;
    req.set_request_id(absl::StrCat("catalogue-partner-", i));
    req.set_name(kPartners[i].name);
    for (const char* country : kPartners[i].countries) req.add_countries(country);
    req.set_risk_rating_half_stars(kPartners[i].rating_half_stars);
    *req.mutable_credit_limit() = M("50000000.00");
    req.set_description("Loans for small businesses and farmers");
    req.set_website_url("https://example.org");
    lv1::CreatePartnerResponse out;
    grpc::Status s = partners->CreatePartner(Ctx(ops).get(), req, &out);
    if (!s.ok()) return absl::InternalError("creating a partner: " + s.error_message());
    const int64_t id = std::stoll(out.partner().id().value());
    for (const char* code : kPartners[i].countries) {
      const CatalogueCountry& c = CountryByCode(code);
      slots.partner_ids.push_back(id);
      slots.countries.push_back(c.code);
      slots.currencies.push_back(c.currency);
      slots.fx_rates.push_back(c.fx_rate);
      slots.fx_num.push_back(c.fx_num);
      slots.fx_den.push_back(c.fx_den);
      slots.regions.push_back(c.regions);
    }
  }
  return slots;
}

// Loan g (1..$1) is the g-th posted: the newest $2 are FUNDRAISING. pg_temp.u(g, k) is the k-th
// uniform [0, 1) draw of loan g, so a given size always loads the same catalogue. Sector weights
// are roughly Kiva's (agriculture, food and retail first). Only the columns of 0004_loans.sql are
// named: later migrations add columns with defaults.
constexpr char kInsertLoans[] = R"sql(
INSERT INTO loans (partner_id, status, country, region, town, sector, gender, is_group, tags,
  hashtags, term_months, repayment_interval, local_amount_minor, local_currency, posting_fx_rate,
  usd_amount_minor, funded_minor, held_minor, lender_count, trending_score_milli, details,
  fundraising_deadline, version, created_at, updated_at, submitted_at, published_at)
SELECT ($4::bigint[])[a.slot], b.status, ($5::text[])[a.slot], b.region, b.region, a.sector,
  a.gender, a.gender = 4, b.tags, b.hashtags, a.term, a.rep,
  a.usd * ($8::bigint[])[a.slot] / ($9::bigint[])[a.slot], ($6::text[])[a.slot],
  ($7::text[])[a.slot], a.usd, c.funded, 0, (c.funded + 4999) / 5000,
  CASE WHEN b.status = 3 THEN floor(pg_temp.u(g, 30) ^ 4 * 500000)::bigint ELSE 0 END,
  jsonb_build_object(
    'borrowers', CASE WHEN a.gender = 4 THEN jsonb_build_array(
        jsonb_build_object('id', 2 * g, 'name', b.fname, 'gender', 1, 'primary', true),
        jsonb_build_object('id', 2 * g + 1, 'name', b.mname, 'gender', 2, 'primary', false))
      ELSE jsonb_build_array(jsonb_build_object('id', 2 * g, 'name', b.name, 'gender', a.gender,
                                                'primary', true)) END,
    'name', b.name,
    'story', format('%s lives in %s and has worked in %s for %s years, selling to neighbours and'
      ' at the weekly market. Profits go to school fees and to the family''s savings group.'
      ' %s is asking for a loan %s, which will raise the business''s monthly income and make'
      ' it steadier through the dry season. %s has repaid earlier loans on time and is a'
      ' member of a village group that meets every week to review each member''s progress.'
      ' The field officer visited the business and confirmed its stock, its customers and its'
      ' records before this loan was posted.', b.name, b.region, lower(b.activity),
      2 + floor(pg_temp.u(g, 15) * 20)::int, b.name, b.use, b.name),
    'use', b.use, 'activity', b.activity,
    'image_url', 'https://images.example.org/loans/' || g || '.jpg',
    'fundraising_window_days', 30, 'pre_disbursed', false),
  b.published + interval '30 days', 3 + (c.funded + 4999) / 5000,
  c.created,
  least(from_micros($3::bigint), b.published + CASE WHEN b.status = 3
        THEN pg_temp.u(g, 16) * (from_micros($3::bigint) - b.published)
        ELSE interval '45 days' END),
  c.created + pg_temp.u(g, 14) * (b.published - c.created),
  b.published
FROM generate_series(1, $1::bigint) AS g
CROSS JOIN LATERAL (SELECT
    g > $1::bigint - $2::bigint AS fundraising,
    1 + floor(pg_temp.u(g, 1) * cardinality($4::bigint[]))::int AS slot,
    ('{1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,
       12,12,12,12,12,12,12,12,12,12,12,12,12,12,12,12,12,12,13,13,13,13,13,13,13,3,3,3,3,3,
       9,9,9,9,11,11,11,11,5,5,5,14,14,14,2,2,8,8,4,4,10,10,15,6}'::smallint[])
      [1 + floor(pg_temp.u(g, 2) * 100)::int] AS sector,
    CASE WHEN pg_temp.u(g, 3) < 0.70 THEN 1 WHEN pg_temp.u(g, 3) < 0.92 THEN 2
         WHEN pg_temp.u(g, 3) < 0.93 THEN 3 ELSE 4 END AS gender,
    6 + floor(pg_temp.u(g, 4) * 31)::int AS term,
    CASE WHEN pg_temp.u(g, 5) < 0.85 THEN 1 ELSE 3 END AS rep,
    2500 * (1 + floor(399 * pg_temp.u(g, 6) ^ 3)::bigint) AS usd,
    ($1::bigint - $2::bigint - g)::float8 / greatest($1::bigint - $2::bigint, 1)::float8 AS age
  ) a
CROSS JOIN LATERAL (SELECT
    CASE WHEN a.fundraising THEN 3
         WHEN pg_temp.u(g, 7) < 0.06 THEN 7 WHEN pg_temp.u(g, 7) < 0.065 THEN 8
         WHEN a.age < 0.02 THEN 4
         WHEN a.age < 0.40 THEN CASE WHEN pg_temp.u(g, 8) < 0.03 THEN 9 ELSE 5 END
         ELSE CASE WHEN pg_temp.u(g, 8) < 0.02 THEN 9 ELSE 6 END END AS status,
    CASE WHEN a.fundraising THEN from_micros($3::bigint) - interval '30 days' * least(0.999,
           greatest(0.001, ($1::bigint - g)::float8 / $2::bigint::float8
                           + (pg_temp.u(g, 9) - 0.5) * 0.02))
         ELSE from_micros($3::bigint) - interval '31 days' - a.age * interval '5 years'
              - pg_temp.u(g, 9) * interval '1 day' END AS published,
    split_part(($10::text[])[a.slot], '|', 1 + floor(pg_temp.u(g, 10) * 3)::int) AS region,
    array_remove(ARRAY[
      CASE WHEN a.gender = 1 AND pg_temp.u(g, 20) < 0.5 THEN 'woman_owned_business' END,
      CASE WHEN pg_temp.u(g, 21) < 0.15 THEN 'repeat_borrower' END,
      CASE WHEN pg_temp.u(g, 22) < 0.08 THEN 'eco_friendly' END,
      CASE WHEN pg_temp.u(g, 23) < 0.10 THEN 'single_parent' END,
      CASE WHEN pg_temp.u(g, 24) < 0.05 THEN 'animals' END,
      CASE WHEN pg_temp.u(g, 25) < 0.03 THEN 'refugee' END], NULL) AS tags,
    array_remove(ARRAY[CASE WHEN pg_temp.u(g, 26) < 0.05 THEN 'volunteer_pick' END,
                       CASE WHEN pg_temp.u(g, 27) < 0.02 THEN 'user_favorite' END], NULL)
      AS hashtags,
    ('{Amina,Grace,Maricel,Rosa,Fatou,Sreymom,Wanjiru,Nakato,Priya,Ana,Mariam,Joy}'::text[])
      [1 + floor(pg_temp.u(g, 11) * 12)::int] AS fname,
    ('{Joseph,Rodel,Evo,Moussa,Sokha,Otieno,Okello,Ravi,Juan,Ibrahim,Samuel,Dara}'::text[])
      [1 + floor(pg_temp.u(g, 12) * 12)::int] AS mname,
    ('{Farming,Crafts,Clothing Sales,Construction,School Fees,Music,Food Market,Pharmacy,'
      'Home Energy,Carpentry,Personal Expenses,General Store,Tailoring,Motorcycle Transport,'
      'Wholesale}'::text[])[a.sector] AS activity,
    ('{"to buy seed and fertiliser","to buy paint and brushes","to buy fabric in bulk",'
      '"to buy cement and roofing sheets","to pay school fees","to buy a sound system",'
      '"to buy a vegetable cart","to stock medicines","to install a solar lamp",'
      '"to buy a lathe","to repair the family home","to stock a kiosk",'
      '"to buy a sewing machine","to repair a motorcycle taxi","to buy goods for resale"}'
      ::text[])[a.sector] AS use
  ) b0
CROSS JOIN LATERAL (SELECT b0.*,
    CASE a.gender WHEN 2 THEN b0.mname WHEN 4 THEN b0.fname || ' and ' || b0.mname
                  ELSE b0.fname END AS name) b
CROSS JOIN LATERAL (SELECT
    CASE WHEN b.status IN (3, 7) THEN 2500 * floor(pg_temp.u(g, 13) * (a.usd / 2500))::bigint
         ELSE a.usd END AS funded,
    b.published - (1 + 9 * pg_temp.u(g, 17)) * interval '1 day' AS created) c
)sql";

// The schedule the service would have generated: monthly, the leftover minor units on the
// earliest installments, due on the same day of each month after the day the loan was created
// (no disbursed_on); bullet loans owe everything at the end of the term.
constexpr char kInsertSchedules[] = R"sql(
INSERT INTO loan_schedule_entries (loan_id, seq, due_date, principal_minor)
SELECT l.id, k - 1,
  ((l.created_at AT TIME ZONE 'UTC')::date
     + make_interval(months => CASE WHEN n.cnt = 1 THEN l.term_months ELSE k END))::date,
  l.local_amount_minor / n.cnt + CASE WHEN k <= l.local_amount_minor % n.cnt THEN 1 ELSE 0 END
FROM loans l
CROSS JOIN LATERAL (SELECT CASE WHEN l.repayment_interval = 3 THEN 1 ELSE l.term_months END
                    AS cnt) n
CROSS JOIN LATERAL generate_series(1, n.cnt) AS k
WHERE l.id > $1::bigint AND l.status = 3
)sql";
}  // namespace

absl::StatusOr<std::unique_ptr<pqxx::connection>> ConnectLending(const LocalStack& stack) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = pg::Connect(stack.pg_url());
  if (!conn.ok()) return conn.status();
  (*conn)->set_variable("search_path", "lending");
  return conn;
}

absl::Status LoadLoanCatalogue(LocalStack& stack, const CatalogueOptions& options) {
  if (options.fundraising < 1 || options.fundraising > options.loans) {
    return absl::InvalidArgumentError("need 1 <= fundraising <= loans");
  }
  absl::StatusOr<Slots> slots = CreatePartners(stack);
  if (!slots.ok()) return slots.status();
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = ConnectLending(stack);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    tx.exec(
        "CREATE FUNCTION pg_temp.u(g bigint, k int) RETURNS float8 LANGUAGE sql IMMUTABLE"
        " RETURN (hashint8extended(g, k) & 2147483647)::float8 / 2147483648.0");
    const int64_t before = tx.exec("SELECT coalesce(max(id), 0) FROM loans")[0][0].as<int64_t>();
    tx.exec_params(kInsertLoans, options.loans, options.fundraising,
                   absl::ToUnixMicros(options.now), IntArray(slots->partner_ids),
                   pg::TextArray(slots->countries), pg::TextArray(slots->currencies),
                   pg::TextArray(slots->fx_rates), IntArray(slots->fx_num), IntArray(slots->fx_den),
                   pg::TextArray(slots->regions));
    tx.exec_params(kInsertSchedules, before);
    tx.exec_params(
        "SELECT setval('borrower_id_seq', greatest($1::bigint, last_value))"
        " FROM borrower_id_seq",
        2 * options.loans + 2);
    tx.commit();
    if (!options.setup_sql.empty()) pqxx::nontransaction(**conn).exec(options.setup_sql);
    pqxx::nontransaction(**conn).exec("VACUUM ANALYZE partners, loans, loan_schedule_entries");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("loading the catalogue: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace microlend::testing
