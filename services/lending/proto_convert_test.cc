#include "services/lending/proto_convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"

namespace microlend::lending {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

common::v1::Money WireMoney(std::string amount, std::string currency) {
  common::v1::Money out;
  out.set_amount(std::move(amount));
  out.set_currency(std::move(currency));
  return out;
}

v1::TransferSpec PostedSpec() {
  v1::TransferSpec spec;
  spec.mutable_debit_account_id()->set_value("11");
  spec.mutable_credit_account_id()->set_value("12");
  *spec.mutable_amount() = WireMoney("25.00", "USD");
  spec.set_code(v1::TRANSFER_CODE_DEPOSIT);
  return spec;
}

// The FieldViolations detail attached to an error, decoded the way a client would.
common::v1::FieldViolations Violations(const absl::Status& status) {
  common::v1::FieldViolations out;
  const common::v1::RpcStatus rpc = ToRpcStatus(status);
  for (const auto& any : rpc.details()) {
    if (any.Is<common::v1::FieldViolations>()) any.UnpackTo(&out);
  }
  return out;
}

TEST(ParseMoney, TooManyDecimalsNamesTheFieldAndTheItem) {
  v1::TransferSpec spec = PostedSpec();
  *spec.mutable_amount() = WireMoney("1.234", "USD");
  absl::StatusOr<TransferSpec> parsed = ParseTransferSpec(spec, 3);
  ASSERT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(),
            "transfers[3].amount: amount \"1.234\" has 3 decimals but USD allows at most 2");
  ASSERT_EQ(Violations(parsed.status()).violations_size(), 1);
  EXPECT_EQ(Violations(parsed.status()).violations(0).field(), "transfers[3].amount");
  std::optional<v1::TransferBatchRejection> rejection = RejectionDetail(parsed.status());
  ASSERT_TRUE(rejection.has_value());
  EXPECT_EQ(rejection->item_index(), 3);
  EXPECT_EQ(rejection->reason(), v1::TRANSFER_REJECT_REASON_AMOUNT_INVALID);
}

TEST(ParseMoney, RejectsEveryNonCanonicalSpellingNamingTheField) {
  for (const char* amount : {"1e3", "+5", "-5", "1,000", " 5", "5.", ".5", "007", "", "NaN"}) {
    absl::StatusOr<Money> parsed = ParseMoney(WireMoney(amount, "USD"), "deposit.amount");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << amount;
    EXPECT_THAT(std::string(parsed.status().message()), StartsWith("deposit.amount: ")) << amount;
  }
}

TEST(ParseMoney, RejectsUnknownAndLowerCaseCurrencies) {
  for (const char* currency : {"usd", "XXX", "", "US"}) {
    absl::StatusOr<Money> parsed = ParseMoney(WireMoney("1.00", currency), "amount");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << currency;
    EXPECT_THAT(std::string(parsed.status().message()), StartsWith("amount: ")) << currency;
  }
}

TEST(ParseMoney, AcceptsExactAmountsWithoutRounding) {
  EXPECT_EQ(*ParseMoney(WireMoney("0.5", "USD"), "a"), Money::FromMinor(Currency::Usd(), 50));
  absl::StatusOr<Money> kwd = ParseMoney(WireMoney("1.001", "KWD"), "a");
  ASSERT_TRUE(kwd.ok());
  EXPECT_EQ(kwd->minor_units(), 1001);
  EXPECT_EQ(ParseMoney(WireMoney("1.5", "JPY"), "a").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParsePositiveMoney, RejectsZeroButOptionalEmptyIsUnset) {
  absl::StatusOr<Money> zero = ParsePositiveMoney(WireMoney("0.00", "USD"), "amount");
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("positive"));
  absl::StatusOr<std::optional<Money>> unset =
      ParseOptionalPositiveMoney(common::v1::Money(), "amount");
  ASSERT_TRUE(unset.ok());
  EXPECT_FALSE(unset->has_value());
  EXPECT_EQ(ParseOptionalPositiveMoney(WireMoney("", "USD"), "amount").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseTransferSpec, UnknownEnumValuesAreRejected) {
  v1::TransferSpec code = PostedSpec();
  code.set_code(static_cast<v1::TransferCode>(99));
  absl::StatusOr<TransferSpec> parsed = ParseTransferSpec(code, 0);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "transfers[0].code: unknown TransferCode value 99");

  v1::TransferSpec action = PostedSpec();
  action.set_pending_action(static_cast<v1::PendingAction>(7));
  EXPECT_THAT(std::string(ParseTransferSpec(action, 1).status().message()),
              StartsWith("transfers[1].pending_action: unknown PendingAction value 7"));

  EXPECT_EQ(ParseOwnerType(42, "owner_type").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseAccountKind(-1, "kind").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseWithdrawalStatus(6, "statuses[0]").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTransferType(5, "types[0]").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseTransferSpec, UnspecifiedCodeOnlyForResolutions) {
  v1::TransferSpec posted = PostedSpec();
  posted.set_code(v1::TRANSFER_CODE_UNSPECIFIED);
  absl::StatusOr<TransferSpec> rejected = ParseTransferSpec(posted, 2);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(RejectionDetail(rejected.status()).has_value());
  EXPECT_EQ(RejectionDetail(rejected.status())->reason(),
            v1::TRANSFER_REJECT_REASON_CODE_MISSING);

  v1::TransferSpec resolution;
  resolution.mutable_pending_id()->set_value("77");
  resolution.set_pending_action(v1::PENDING_ACTION_VOID);
  absl::StatusOr<TransferSpec> parsed = ParseTransferSpec(resolution, 0);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->pending_id, TransferId(77));
  EXPECT_EQ(parsed->pending_action, PendingAction::kVoid);
  EXPECT_FALSE(parsed->code.has_value());
  EXPECT_FALSE(parsed->amount.has_value());
  EXPECT_FALSE(parsed->debit_account_id.has_value());
}

TEST(ParseTransferSpec, ParsesEveryFieldOfAHold) {
  v1::TransferSpec spec = PostedSpec();
  spec.mutable_id()->set_value("900");
  spec.set_code(v1::TRANSFER_CODE_LOAN_SHARE);
  spec.mutable_references()->mutable_loan_id()->set_value("5");
  spec.mutable_references()->set_external_payment_id("pay-1");
  spec.set_pending(true);
  spec.set_timeout_ms(60'000);
  spec.set_memo("basket");
  absl::StatusOr<TransferSpec> parsed = ParseTransferSpec(spec, 0);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->id, TransferId(900));
  EXPECT_EQ(parsed->debit_account_id, AccountId(11));
  EXPECT_EQ(parsed->credit_account_id, AccountId(12));
  EXPECT_EQ(parsed->amount, Money::FromMinor(Currency::Usd(), 2500));
  EXPECT_EQ(parsed->code, TransferCode::kLoanShare);
  EXPECT_EQ(parsed->references.loan_id, LoanId(5));
  EXPECT_EQ(parsed->references.external_payment_id, "pay-1");
  EXPECT_TRUE(parsed->pending);
  EXPECT_EQ(parsed->timeout_ms, 60'000);
  EXPECT_EQ(parsed->memo, "basket");
}

TEST(ParseTransferSpec, MalformedIdsNameTheirField) {
  for (const char* id : {"abc", "0", "-1", "007", "1.5", "99999999999999999999"}) {
    v1::TransferSpec spec = PostedSpec();
    spec.mutable_references()->mutable_loan_id()->set_value(id);
    absl::StatusOr<TransferSpec> parsed = ParseTransferSpec(spec, 4);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_THAT(std::string(parsed.status().message()),
                StartsWith("transfers[4].references.loan_id: "))
        << id;
  }
}

TEST(ParseTransferCodes, RejectsUnspecifiedAndUnknown) {
  google::protobuf::RepeatedField<int> codes;
  codes.Add(v1::TRANSFER_CODE_DEPOSIT);
  codes.Add(v1::TRANSFER_CODE_UNSPECIFIED);
  EXPECT_THAT(std::string(ParseTransferCodes(codes, "codes").status().message()),
              StartsWith("codes[1]: "));
  codes.Set(1, 17);
  EXPECT_EQ(ParseTransferCodes(codes, "codes").status().code(),
            absl::StatusCode::kInvalidArgument);
  codes.Set(1, v1::TRANSFER_CODE_DONATION);
  absl::StatusOr<std::vector<TransferCode>> parsed = ParseTransferCodes(codes, "codes");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, (std::vector{TransferCode::kDeposit, TransferCode::kDonation}));
}

TEST(ParsePage, DefaultsAndCaps) {
  common::v1::PageRequest page;
  EXPECT_EQ(ParsePage(page, PageKind::kList)->limit, 50);
  page.set_page_size(1000);
  EXPECT_EQ(ParsePage(page, PageKind::kList)->limit, 100);
  EXPECT_EQ(ParsePage(page, PageKind::kExport)->limit, 500);
  page.set_page_size(7);
  EXPECT_EQ(ParsePage(page, PageKind::kExport)->limit, 7);
  page.set_page_size(-1);
  EXPECT_EQ(ParsePage(page, PageKind::kList).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParsePage, GarbagePageTokensAreRejected) {
  for (const char* token : {"abc", "-5", "0", "012", "12x", " 12", "1e3", "99999999999999999999"}) {
    common::v1::PageRequest page;
    page.set_page_token(token);
    absl::StatusOr<PageSpec> parsed = ParsePage(page, PageKind::kList);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("bad page_token")) << token;
  }
  common::v1::PageRequest page;
  page.set_page_token("42");
  absl::StatusOr<PageSpec> parsed = ParsePage(page, PageKind::kList, /*newest_first=*/true);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->after_id, 42);
  EXPECT_TRUE(parsed->newest_first);
}

TEST(ToPageResponse, LastPageHasEmptyToken) {
  common::v1::PageResponse out;
  ToPageResponse(0, 3, &out);
  EXPECT_EQ(out.next_page_token(), "");
  EXPECT_EQ(out.total_count(), 3);
  ToPageResponse(120, 300, &out);
  EXPECT_EQ(out.next_page_token(), "120");
}

TEST(BodyHash, IgnoresRequestIdAndChangesWithAnyOtherField) {
  v1::CreateTransfersRequest a;
  a.set_request_id("r-1");
  *a.add_transfers() = PostedSpec();
  v1::CreateTransfersRequest b = a;
  b.set_request_id("r-2");
  EXPECT_EQ(BodyHash(a), BodyHash(b));
  EXPECT_EQ(BodyHash(a).size(), 32u);
  EXPECT_EQ(a.request_id(), "r-1");  // the request itself is untouched

  v1::CreateTransfersRequest amount = a;
  amount.mutable_transfers(0)->mutable_amount()->set_amount("25.01");
  v1::CreateTransfersRequest memo = a;
  memo.mutable_transfers(0)->set_memo("x");
  v1::CreateTransfersRequest more = a;
  *more.add_transfers() = PostedSpec();
  for (const v1::CreateTransfersRequest* other : {&amount, &memo, &more}) {
    EXPECT_NE(BodyHash(a), BodyHash(*other));
  }
}

TEST(BodyHash, SameForABatchAndTheEquivalentCreateTransfers) {
  v1::CreateTransfersRequest unary;
  unary.set_request_id("r-1");
  *unary.add_transfers() = PostedSpec();
  v1::TransferBatch streamed;
  streamed.set_request_id("r-9");
  *streamed.add_transfers() = PostedSpec();
  EXPECT_EQ(BodyHash(unary), BodyHash(streamed));
}

TEST(BodyHash, SameWhateverTheRequestIdsLengthOrAbsence) {
  // Ids under 128 bytes are cut off the serialized request; longer ones (and none) take the
  // copy-and-clear path. Both must hash the same body alike.
  v1::CreateTransfersRequest short_id, long_id, no_id;
  short_id.set_request_id("r");
  long_id.set_request_id(std::string(200, 'x'));
  for (v1::CreateTransfersRequest* r : {&short_id, &long_id, &no_id}) {
    *r->add_transfers() = PostedSpec();
    r->mutable_transfers(0)->set_memo("same body");
  }
  EXPECT_EQ(BodyHash(short_id), BodyHash(no_id));
  EXPECT_EQ(BodyHash(long_id), BodyHash(no_id));
}

TEST(BodyHash, IdsOnlyIsNotPartOfABatchsIdentity) {
  v1::CreateTransfersRequest unary;
  unary.set_request_id("r-1");
  *unary.add_transfers() = PostedSpec();
  v1::TransferBatch streamed, streamed_long_id;
  streamed.set_request_id("r-2");
  *streamed.add_transfers() = PostedSpec();
  streamed.set_ids_only(true);
  streamed_long_id = streamed;
  streamed_long_id.set_request_id(std::string(130, 'r'));  // takes the copy-and-clear path
  EXPECT_EQ(BodyHash(streamed), BodyHash(unary));
  EXPECT_EQ(BodyHash(streamed_long_id), BodyHash(unary));
  streamed.mutable_transfers(0)->set_memo("other");
  EXPECT_NE(BodyHash(streamed), BodyHash(unary));
}

TEST(BodyHash, WorksForMessagesWithoutRequestId) {
  v1::GetAccountRequest a;
  a.mutable_account_id()->set_value("1");
  v1::GetAccountRequest b;
  b.mutable_account_id()->set_value("2");
  EXPECT_NE(BodyHash(a), BodyHash(b));
}

Account SampleAccount() {
  Account account;
  account.id = AccountId(31);
  account.owner_type = OwnerType::kLender;
  account.owner_id = "8";
  account.kind = AccountKind::kLenderWallet;
  account.currency = Currency::Usd();
  account.flags.debits_must_not_exceed_credits = true;
  account.debits_posted = 1'000;
  account.credits_posted = 12'345;
  account.debits_pending = 2'500;
  account.credits_pending = 0;
  account.memo = "wallet";
  account.created_at = absl::FromUnixNanos(1'763'000'000'123'456'789);
  return account;
}

TEST(Account, RoundTripsThroughProto) {
  const Account account = SampleAccount();
  v1::Account wire;
  ToProto(account, &wire);
  EXPECT_EQ(wire.id().value(), "31");
  EXPECT_EQ(wire.owner_type(), v1::ACCOUNT_OWNER_TYPE_LENDER);
  EXPECT_EQ(wire.kind(), v1::ACCOUNT_KIND_LENDER_WALLET);
  EXPECT_EQ(wire.balance().amount(), "113.45");
  EXPECT_EQ(wire.available().amount(), "88.45");
  EXPECT_EQ(wire.debits_pending().amount(), "25.00");
  absl::StatusOr<Account> back = FromProto(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, account);
}

TEST(Account, NegativeBalanceIsSigned) {
  Account account = SampleAccount();
  account.owner_type = OwnerType::kExternalSettlement;
  account.debits_posted = 50'000;
  account.credits_posted = 0;
  account.debits_pending = 0;
  v1::Account wire;
  ToProto(account, &wire);
  EXPECT_EQ(wire.balance().amount(), "-500.00");
  EXPECT_EQ(*FromProto(wire), account);
}

Transfer SampleHoldTransfer() {
  Transfer transfer;
  transfer.id = TransferId(501);
  transfer.debit_account_id = AccountId(31);
  transfer.credit_account_id = AccountId(40);
  transfer.amount = Money::FromMinor(Currency::Usd(), 2'500);
  transfer.code = TransferCode::kLoanShare;
  transfer.references.loan_id = LoanId(9);
  transfer.references.order_id = OrderId(3);
  transfer.type = TransferType::kPending;
  transfer.timeout_ms = 3'600'000;
  transfer.created_at = absl::FromUnixNanos(-1);  // before 1970: nanos stay non-negative
  transfer.expires_at = transfer.created_at + absl::Hours(1);
  transfer.memo = "hold, \"quoted\"";
  transfer.batch_request_id = "batch-7";
  transfer.batch_index = 2;
  return transfer;
}

TEST(Transfer, RoundTripsThroughProto) {
  const Transfer transfer = SampleHoldTransfer();
  v1::Transfer wire;
  ToProto(transfer, &wire);
  EXPECT_EQ(wire.created_at().seconds(), -1);
  EXPECT_EQ(wire.created_at().nanos(), 999'999'999);
  EXPECT_EQ(wire.hold_state(), v1::HOLD_STATE_UNSPECIFIED);
  absl::StatusOr<Transfer> back = FromProto(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, transfer);

  Transfer post = transfer;
  post.id = TransferId(502);
  post.type = TransferType::kPostPending;
  post.pending_id = TransferId(501);
  post.expires_at.reset();
  post.timeout_ms = 0;
  ToProto(post, &wire);
  EXPECT_EQ(*FromProto(wire), post);
}

TEST(Hold, CarriesStateAndPostedAmount) {
  Hold hold;
  hold.transfer = SampleHoldTransfer();
  hold.state = HoldState::kPosted;
  hold.posted_amount = 1'000;
  v1::Transfer wire;
  ToProto(hold, &wire);
  EXPECT_EQ(wire.hold_state(), v1::HOLD_STATE_POSTED);
  EXPECT_EQ(wire.posted_amount().amount(), "10.00");
  hold.state = HoldState::kPending;
  v1::Transfer pending;
  ToProto(hold, &pending);
  EXPECT_EQ(pending.hold_state(), v1::HOLD_STATE_PENDING);
  EXPECT_FALSE(pending.has_posted_amount());
}

TEST(Withdrawal, StatusesMapByNameNotNumber) {
  EXPECT_EQ(ToProto(WithdrawalState::kPaid), v1::WITHDRAWAL_STATUS_PAID);
  EXPECT_EQ(ToProto(WithdrawalState::kRejected), v1::WITHDRAWAL_STATUS_REJECTED);
  EXPECT_EQ(*ParseWithdrawalStatus(v1::WITHDRAWAL_STATUS_PAID, "s"), WithdrawalState::kPaid);
  Withdrawal withdrawal;
  withdrawal.id = WithdrawalId(4);
  withdrawal.lender_id = LenderId(8);
  withdrawal.amount = Money::FromMinor(Currency::Usd(), 700);
  withdrawal.state = WithdrawalState::kRejected;
  withdrawal.hold_id = TransferId(90);
  withdrawal.reason = "fraud check";
  withdrawal.updated_at = absl::FromUnixSeconds(100);
  v1::Withdrawal wire;
  ToProto(withdrawal, &wire);
  EXPECT_EQ(wire.status(), v1::WITHDRAWAL_STATUS_REJECTED);
  EXPECT_EQ(wire.amount().amount(), "7.00");
  EXPECT_EQ(wire.decided_at().seconds(), 100);
  EXPECT_FALSE(wire.has_paid_at());
}

TEST(ParseTime, RejectsOutOfRangeTimestamps) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_nanos(1'000'000'000);
  EXPECT_THAT(std::string(ParseTime(timestamp, "from_time").status().message()),
              StartsWith("from_time: "));
  timestamp.set_nanos(-1);
  EXPECT_EQ(ParseTime(timestamp, "t").status().code(), absl::StatusCode::kInvalidArgument);
  timestamp.set_nanos(0);
  timestamp.set_seconds(253402300800);
  EXPECT_EQ(ParseTime(timestamp, "t").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseTimeRange, FromAfterToIsRejected) {
  google::protobuf::Timestamp from;
  from.set_seconds(200);
  google::protobuf::Timestamp to;
  to.set_seconds(100);
  TransferFilter filter;
  absl::Status status = ParseTimeRange(&from, &to, "filter", &filter);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), StartsWith("filter.from_time: is after to_time"));
  EXPECT_TRUE(ParseTimeRange(&to, &from, "filter", &filter).ok());
  EXPECT_EQ(filter.from_time, absl::FromUnixSeconds(100));
}

TEST(Details, FieldErrorTravelsInGrpcStatusDetails) {
  grpc::Status status = ToGrpcStatusWithDetails(FieldError("amount", "must be positive"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "amount: must be positive");
  common::v1::RpcStatus details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  EXPECT_EQ(details.code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(details.details_size(), 1);
  common::v1::FieldViolations violations;
  ASSERT_TRUE(details.details(0).UnpackTo(&violations));
  EXPECT_EQ(violations.violations(0).field(), "amount");
  EXPECT_TRUE(ToGrpcStatusWithDetails(absl::NotFoundError("x")).error_details().empty());
}

TEST(ReplyStatus, AttachesFreshAndRememberedRejections) {
  const Rejection rejection{
      .item_index = 1, .reason = RejectReason::kExceedsCredits, .detail = "too poor"};
  LedgerReply fresh;
  fresh.status = absl::FailedPreconditionError("item 1: too poor");
  fresh.rejection = rejection;
  fresh.payload = EncodeRejection(rejection);
  std::optional<v1::TransferBatchRejection> detail = RejectionDetail(ReplyStatus(fresh));
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->reason(), v1::TRANSFER_REJECT_REASON_EXCEEDS_CREDITS);

  LedgerReply replayed;
  replayed.status = fresh.status;
  replayed.replayed = true;
  replayed.payload = fresh.payload;
  absl::Status status = ReplyStatus(replayed);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "item 1: too poor");
  ASSERT_TRUE(RejectionDetail(status).has_value());
  EXPECT_EQ(RejectionDetail(status)->item_index(), 1);
  EXPECT_EQ(RejectionDetail(status)->detail(), "too poor");
}

TEST(DecodeReply, ReplayReturnsTheRememberedResponseMarkedReplayed) {
  v1::CreateTransfersResponse original;
  ToProto(SampleHoldTransfer(), original.add_transfers());
  original.mutable_mutation()->set_request_id("r-1");
  LedgerReply reply;
  reply.payload = original.SerializeAsString();
  v1::CreateTransfersResponse fresh;
  ASSERT_TRUE(DecodeReply(reply, &fresh).ok());
  EXPECT_EQ(fresh.SerializeAsString(), original.SerializeAsString());
  reply.replayed = true;
  v1::CreateTransfersResponse again;
  ASSERT_TRUE(DecodeReply(reply, &again).ok());
  EXPECT_TRUE(again.mutation().replayed());
  EXPECT_EQ(again.mutation().request_id(), "r-1");
  EXPECT_EQ(again.transfers(0).id().value(), "501");
}

TEST(TransferCodeName, IsTheLowerCaseNameWithoutPrefix) {
  EXPECT_EQ(TransferCodeName(TransferCode::kLoanShare), "loan_share");
  EXPECT_EQ(TransferCodeName(TransferCode::kCurrencyLossCoverage), "currency_loss_coverage");
}

}  // namespace
}  // namespace microlend::lending
