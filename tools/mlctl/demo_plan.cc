#include "mlctl/demo_plan.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/currency.h"
#include "common/money.h"

namespace microlend::demo {
namespace {

namespace cv1 = ::microlend::common::v1;
namespace lv1 = ::microlend::lending::v1;

// splitmix64: a small, fixed generator, so the plan never depends on the standard library's.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  int Below(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t state_;
};

const Country kKenya{"KE", "Kenya", "KES", "129.5"};
const Country kTanzania{"TZ", "Tanzania", "TZS", "2580"};
const Country kUganda{"UG", "Uganda", "UGX", "3700"};
const Country kRwanda{"RW", "Rwanda", "RWF", "1300"};
const Country kPhilippines{"PH", "the Philippines", "PHP", "58.2"};
const Country kPeru{"PE", "Peru", "PEN", "3.75"};
const Country kBolivia{"BO", "Bolivia", "BOB", "6.91"};
const Country kSenegal{"SN", "Senegal", "XOF", "600"};
const Country kMali{"ML", "Mali", "XOF", "600"};
const Country kCambodia{"KH", "Cambodia", "KHR", "4100"};
const Country kVietnam{"VN", "Vietnam", "VND", "25000"};
const Country kHonduras{"HN", "Honduras", "HNL", "24.7"};
const Country kGuatemala{"GT", "Guatemala", "GTQ", "7.75"};

// The sol fell 15% between posting and the repayment: 3.75 / 0.85 PEN per USD.
constexpr char kCurrencyLossRate[] = "4.41176471";

std::vector<PlanPartner> Partners() {
  return {
      {"umoja", "Umoja Microfinance (demo)", {kKenya, kTanzania}, 8, 0},
      {"pearl", "Pearl Women's Savings (demo)", {kUganda, kRwanda}, 7, 0},
      {"bayani", "Bayani Rural Bank (demo)", {kPhilippines}, 8, 0},
      {"inti", "Inti Microcredit (demo)", {kPeru, kBolivia}, 6, 1'000},
      {"sahel", "Sahel Enterprise Fund (demo)", {kSenegal, kMali}, 6, 0},
      {"mekong", "Mekong Growth Partners (demo)", {kCambodia, kVietnam}, 9, 0},
      {"lempira", "Lempira Credit Union (demo)", {kHonduras, kGuatemala}, 7, 0},
  };
}

constexpr int kInti = 3;  // the partner with currency-loss coverage

struct Name {
  const char* name;
  cv1::Gender gender;
};
constexpr cv1::Gender kF = cv1::GENDER_FEMALE;
constexpr cv1::Gender kM = cv1::GENDER_MALE;

// First names by partner (its region), women first as in most microfinance portfolios.
const std::vector<Name>& NamesOf(int partner) {
  static const std::array<std::vector<Name>, 7> kNames = {{
      {{"Amina", kF},
       {"Wanjiru", kF},
       {"Achieng", kF},
       {"Neema", kF},
       {"Halima", kF},
       {"Mercy", kF},
       {"Faith", kF},
       {"Zawadi", kF},
       {"Baraka", kM},
       {"Juma", kM},
       {"Otieno", kM}},
      {{"Grace", kF},
       {"Esther", kF},
       {"Aisha", kF},
       {"Immaculate", kF},
       {"Uwase", kF},
       {"Mukamana", kF},
       {"Sarah", kF},
       {"Brian", kM},
       {"Joseph", kM},
       {"Emmanuel", kM}},
      {{"Maricel", kF},
       {"Jocelyn", kF},
       {"Liza", kF},
       {"Analyn", kF},
       {"Rowena", kF},
       {"Joy", kF},
       {"Marites", kF},
       {"Rodel", kM},
       {"Arnel", kM},
       {"Edgar", kM}},
      {{"Rosa", kF},
       {"Carmen", kF},
       {"Luz", kF},
       {"Juana", kF},
       {"Marisol", kF},
       {"Yolanda", kF},
       {"Nilda", kF},
       {"Wilber", kM},
       {"Fredy", kM},
       {"Evo", kM}},
      {{"Fatou", kF},
       {"Awa", kF},
       {"Aminata", kF},
       {"Coumba", kF},
       {"Mariama", kF},
       {"Adama", kF},
       {"Rokia", kF},
       {"Moussa", kM},
       {"Ousmane", kM},
       {"Seydou", kM}},
      {{"Sokha", kF},
       {"Srey", kF},
       {"Chenda", kF},
       {"Linh", kF},
       {"Hoa", kF},
       {"Mai", kF},
       {"Sophal", kF},
       {"Dara", kM},
       {"Thanh", kM},
       {"Vuthy", kM}},
      {{"Maria", kF},
       {"Ana", kF},
       {"Reina", kF},
       {"Dilcia", kF},
       {"Sonia", kF},
       {"Gladys", kF},
       {"Marta", kF},
       {"Juan", kM},
       {"Wilmer", kM},
       {"Elvin", kM}},
  }};
  return kNames[static_cast<size_t>(partner)];
}

struct SectorUses {
  cv1::Sector sector;
  int weight;
  std::vector<const char*> uses;
};

const std::vector<SectorUses>& Sectors() {
  static const std::vector<SectorUses> kSectors = {
      {cv1::SECTOR_AGRICULTURE,
       24,
       {"to buy seed and fertiliser", "to buy a dairy cow", "to rent land for maize",
        "to buy a water pump", "to buy piglets and feed"}},
      {cv1::SECTOR_FOOD,
       18,
       {"to buy a vegetable cart", "to stock rice and cooking oil", "to buy a bigger oven",
        "to buy fish to resell at the market"}},
      {cv1::SECTOR_RETAIL,
       16,
       {"to stock a kiosk", "to buy phone credit to resell", "to add shelves and stock"}},
      {cv1::SECTOR_CLOTHING, 7, {"to buy a sewing machine", "to buy fabric for school uniforms"}},
      {cv1::SECTOR_SERVICES, 7, {"to buy a hair dryer for a salon", "to equip a repair stall"}},
      {cv1::SECTOR_TRANSPORTATION,
       5,
       {"to repair a motorcycle taxi", "to buy tyres for a tricycle"}},
      {cv1::SECTOR_ARTS, 4, {"to buy yarn and dyes for weaving", "to buy clay and a kiln"}},
      {cv1::SECTOR_HOUSING, 4, {"to repair a roof", "to connect the house to water"}},
      {cv1::SECTOR_EDUCATION, 3, {"to pay secondary school fees"}},
      {cv1::SECTOR_HEALTH, 3, {"to stock a village pharmacy"}},
      {cv1::SECTOR_MANUFACTURING, 3, {"to buy a welding machine"}},
      {cv1::SECTOR_CONSTRUCTION, 2, {"to buy bricks and cement for a workshop"}},
      {cv1::SECTOR_WHOLESALE, 2, {"to buy soap and sugar in bulk"}},
      {cv1::SECTOR_PERSONAL_USE, 1, {"to install a solar home system"}},
      {cv1::SECTOR_ENTERTAINMENT, 1, {"to buy sound equipment for weddings"}},
  };
  return kSectors;
}

const SectorUses& PickSector(Rng& rng) {
  int total = 0;
  for (const SectorUses& s : Sectors()) total += s.weight;
  int pick = rng.Below(total);
  for (const SectorUses& s : Sectors()) {
    if (pick < s.weight) return s;
    pick -= s.weight;
  }
  return Sectors().front();
}

// usd_cents x rate in the currency's minor units; exact by construction (see the header).
std::string LocalAmount(int64_t usd_cents, const Country& country) {
  absl::StatusOr<Currency> currency = Currency::FromCode(country.currency);
  ML_CHECK(currency.ok(), country.currency);
  const std::string rate(country.fx_rate);
  const size_t dot = rate.find('.');
  const std::string digits =
      dot == std::string::npos ? rate : rate.substr(0, dot) + rate.substr(dot + 1);
  const int rate_decimals = dot == std::string::npos ? 0 : static_cast<int>(rate.size() - dot - 1);
  int64_t rate_scaled = 0;
  ML_CHECK(absl::SimpleAtoi(digits, &rate_scaled), country.fx_rate);
  // local_minor = usd_cents / 100 * rate_scaled / 10^rate_decimals * 10^exponent
  __int128 numerator = static_cast<__int128>(usd_cents) * rate_scaled * currency->minor_per_major();
  __int128 denominator = 100;
  for (int i = 0; i < rate_decimals; ++i) denominator *= 10;
  ML_CHECK(numerator % denominator == 0, absl::StrCat("local amount of ", usd_cents, " cents in ",
                                                      country.currency, " is inexact"));
  return Money::FromMinor(*currency, static_cast<int64_t>(numerator / denominator)).ToString();
}

// Splits `units` shares of 25.00 among `count` distinct lenders, each at least one unit.
std::vector<PlanShare> SplitShares(Rng& rng, int units, int count) {
  std::vector<PlanShare> shares;
  while (static_cast<int>(shares.size()) < count) {
    const int lender = rng.Below(kMarketplaceLenders);
    const bool taken = std::any_of(shares.begin(), shares.end(),
                                   [&](const PlanShare& s) { return s.lender == lender; });
    if (!taken) shares.push_back({lender, kShareUnitCents});
  }
  for (int left = units - count; left > 0; --left) {
    shares[static_cast<size_t>(rng.Below(count))].cents += kShareUnitCents;
  }
  return shares;
}

PlanLoan RegularLoan(Rng& rng, int index, const std::vector<PlanPartner>& partners) {
  PlanLoan loan;
  loan.index = index;
  loan.partner = index % static_cast<int>(partners.size());
  const PlanPartner& partner = partners[static_cast<size_t>(loan.partner)];
  loan.country =
      partner.countries[static_cast<size_t>(rng.Below(static_cast<int>(partner.countries.size())))];
  const std::vector<Name>& names = NamesOf(loan.partner);
  const bool group = rng.Below(10) == 0;
  const int borrowers = group ? 3 + rng.Below(3) : 1;
  for (int b = 0; b < borrowers; ++b) {
    const Name& n = names[static_cast<size_t>(rng.Below(static_cast<int>(names.size())))];
    loan.borrowers.push_back({n.name, n.gender});
  }
  loan.name = group ? absl::StrCat(loan.borrowers[0].name, "'s group") : loan.borrowers[0].name;
  const SectorUses& sector = PickSector(rng);
  loan.sector = sector.sector;
  loan.use = sector.uses[static_cast<size_t>(rng.Below(static_cast<int>(sector.uses.size())))];
  // 4..40 shares of 25.00 (100.00 to 1,000.00 USD), most between 400 and 700; groups borrow more.
  const int units =
      std::min(40, 4 + rng.Below(13) + rng.Below(13) + rng.Below(12) + (group ? 8 : 0));
  loan.usd_cents = units * kShareUnitCents;
  loan.local_amount = LocalAmount(loan.usd_cents, loan.country);
  static constexpr std::array<int32_t, 11> kTerms = {3, 4, 5, 6, 6, 8, 9, 10, 12, 12, 14};
  loan.term_months = kTerms[static_cast<size_t>(rng.Below(static_cast<int>(kTerms.size())))];
  const int interval = rng.Below(20);
  loan.interval = interval < 15   ? lv1::REPAYMENT_INTERVAL_MONTHLY
                  : interval < 18 ? lv1::REPAYMENT_INTERVAL_WEEKLY
                                  : lv1::REPAYMENT_INTERVAL_BULLET;
  loan.settlement_fx_rate = loan.country.fx_rate;
  loan.shares = SplitShares(rng, units, std::min(units, 2 + rng.Below(7)));
  return loan;
}

// The three loans with a part to play, at fixed places at the front of the plan.
std::vector<PlanLoan> SpecialLoans(Rng& rng, MarketplacePlan& plan) {
  PlanLoan loss;
  loss.index = 0;
  loss.partner = kInti;
  loss.role = LoanRole::kCurrencyLoss;
  loss.borrowers = {{"Rosa", kF}};
  loss.name = "Rosa";
  loss.sector = cv1::SECTOR_ARTS;
  loss.use = "to buy alpaca wool for her knitting cooperative";
  loss.country = kPeru;
  loss.usd_cents = 20 * kShareUnitCents;
  loss.local_amount = LocalAmount(loss.usd_cents, loss.country);
  loss.term_months = 3;
  loss.interval = lv1::REPAYMENT_INTERVAL_BULLET;
  loss.settlement_fx_rate = kCurrencyLossRate;
  loss.shares = SplitShares(rng, 20, 5);
  plan.currency_loss_loan = 0;

  PlanLoan fails;
  fails.index = 1;
  fails.partner = 0;
  fails.role = LoanRole::kDefault;
  fails.borrowers = {{"Otieno", kM}};
  fails.name = "Otieno";
  fails.sector = cv1::SECTOR_TRANSPORTATION;
  fails.use = "to repair a motorcycle taxi";
  fails.country = kKenya;
  fails.usd_cents = 12 * kShareUnitCents;
  fails.local_amount = LocalAmount(fails.usd_cents, fails.country);
  fails.term_months = 2;
  fails.interval = lv1::REPAYMENT_INTERVAL_MONTHLY;
  fails.settlement_fx_rate = kKenya.fx_rate;
  fails.shares = SplitShares(rng, 12, 4);
  plan.default_loan = 1;

  PlanLoan unfunded;
  unfunded.index = 2;
  unfunded.partner = 4;
  unfunded.role = LoanRole::kExpiry;
  unfunded.borrowers = {{"Mariama", kF}};
  unfunded.name = "Mariama";
  unfunded.sector = cv1::SECTOR_FOOD;
  unfunded.use = "to open a second fish stall";
  unfunded.country = kSenegal;
  unfunded.usd_cents = 40 * kShareUnitCents;
  unfunded.local_amount = LocalAmount(unfunded.usd_cents, unfunded.country);
  unfunded.term_months = 12;
  unfunded.interval = lv1::REPAYMENT_INTERVAL_MONTHLY;
  unfunded.settlement_fx_rate = kSenegal.fx_rate;
  // 325.00 of 1,000.00 from three lenders: too little, so it expires and they are refunded.
  unfunded.shares = SplitShares(rng, 3, 3);
  unfunded.shares[0].cents = 6 * kShareUnitCents;
  unfunded.shares[1].cents = 4 * kShareUnitCents;
  unfunded.shares[2].cents = 3 * kShareUnitCents;
  plan.expiry_loan = 2;
  return {loss, fails, unfunded};
}

// Every sixth lender lends through a basket, ten items a checkout, with a donation the first
// time; deposits cover what each lends and gives, plus a little left in the wallet.
void PlanLenders(Rng& rng, MarketplacePlan& plan) {
  plan.lenders.resize(kMarketplaceLenders);
  for (int i = 0; i < kMarketplaceLenders; ++i) {
    plan.lenders[static_cast<size_t>(i)].id = kFirstLenderId + i;
    plan.lenders[static_cast<size_t>(i)].uses_basket = i % 6 == 5;
  }
  for (const PlanLoan& loan : plan.loans) {
    for (const PlanShare& share : loan.shares) {
      PlanLender& lender = plan.lenders[static_cast<size_t>(share.lender)];
      lender.deposit_cents += share.cents;
      if (!lender.uses_basket) continue;
      if (lender.basket_chunks.empty() ||
          static_cast<int>(lender.basket_chunks.back().items.size()) == kBasketChunkItems) {
        lender.basket_chunks.push_back({});
        if (lender.basket_chunks.size() == 1) lender.basket_chunks.back().donation_cents = 500;
      }
      lender.basket_chunks.back().items.emplace_back(loan.index, share.cents);
    }
  }
  for (PlanLender& lender : plan.lenders) {
    for (const BasketChunk& chunk : lender.basket_chunks)
      lender.deposit_cents += chunk.donation_cents;
    lender.deposit_cents += kShareUnitCents * rng.Below(9);
  }
}

}  // namespace

MarketplacePlan BuildMarketplacePlan() {
  Rng rng(20'261'121);
  MarketplacePlan plan;
  plan.partners = Partners();
  plan.loans = SpecialLoans(rng, plan);
  for (int i = static_cast<int>(plan.loans.size()); i < kMarketplaceLoans; ++i) {
    plan.loans.push_back(RegularLoan(rng, i, plan.partners));
  }
  PlanLenders(rng, plan);
  return plan;
}

std::string UsdAmount(int64_t cents) { return Money::FromMinor(Currency::Usd(), cents).ToString(); }

absl::CivilDay AddMonthsClamped(absl::CivilDay day, int months) {
  const absl::CivilMonth month = absl::CivilMonth(day) + months;
  const absl::CivilDay last = absl::CivilDay(month + 1) - 1;
  return absl::CivilDay(month.year(), month.month(), std::min(day.day(), last.day()));
}

int64_t RepaymentLocalMinor(const PlanLoan& loan, const std::vector<Installment>& schedule,
                            absl::CivilDay first_day, int month) {
  if (loan.role == LoanRole::kExpiry || month < 1) return 0;
  if (loan.role == LoanRole::kDefault && month > 1) return 0;
  const absl::CivilDay through = AddMonthsClamped(first_day, month);
  const absl::CivilDay after =
      month == 1 ? absl::CivilDay::min() : AddMonthsClamped(first_day, month - 1);
  int64_t minor = 0;
  for (const Installment& i : schedule) {
    if (i.due <= through && i.due > after) minor += i.local_minor;
  }
  return minor;
}

}  // namespace microlend::demo
