-- Loans once money moves (ADR 0005): the money side of a loan row, written only by the ledger's
-- committer in the transaction of the transfers that change it; each loan's funders; basket
-- items; and repayments. Money is BIGINT minor units: USD unless a column says local.
CREATE SEQUENCE repayment_id_seq AS BIGINT;

ALTER TABLE loans
  -- The loan's ledger accounts (owner LOAN kind LOAN_FUNDING, owner PARTNER kind
  -- PARTNER_SETTLEMENT, both USD); set by the first money movement.
  ADD COLUMN funding_account_id        BIGINT,
  ADD COLUMN settlement_account_id     BIGINT,
  ADD COLUMN funded_at                 TIMESTAMPTZ,
  ADD COLUMN disbursed_at              TIMESTAMPTZ,
  ADD COLUMN disbursed_on_date         DATE,
  ADD COLUMN closed_at                 TIMESTAMPTZ,
  -- Local principal repaid so far (never above local_amount_minor).
  ADD COLUMN repaid_local_minor        BIGINT  NOT NULL DEFAULT 0 CHECK (repaid_local_minor >= 0),
  -- Cumulative USD at the posting rate of what was repaid (reaches usd_amount when repaid).
  ADD COLUMN expected_usd_minor        BIGINT  NOT NULL DEFAULT 0 CHECK (expected_usd_minor >= 0),
  -- Cumulative USD at each repayment's settlement rate.
  ADD COLUMN received_usd_minor        BIGINT  NOT NULL DEFAULT 0 CHECK (received_usd_minor >= 0),
  -- Cumulative partner currency-loss coverage.
  ADD COLUMN coverage_usd_minor        BIGINT  NOT NULL DEFAULT 0 CHECK (coverage_usd_minor >= 0),
  -- Cumulative currency loss borne by funders.
  ADD COLUMN currency_loss_minor       BIGINT  NOT NULL DEFAULT 0 CHECK (currency_loss_minor >= 0),
  -- USD credited to funders by repayments.
  ADD COLUMN repaid_usd_minor          BIGINT  NOT NULL DEFAULT 0 CHECK (repaid_usd_minor >= 0),
  ADD COLUMN written_off_minor         BIGINT  NOT NULL DEFAULT 0 CHECK (written_off_minor >= 0),
  ADD COLUMN repayment_count           INTEGER NOT NULL DEFAULT 0 CHECK (repayment_count >= 0),
  ADD COLUMN delinquent                BOOLEAN NOT NULL DEFAULT false,
  ADD COLUMN days_in_arrears           INTEGER NOT NULL DEFAULT 0 CHECK (days_in_arrears >= 0),
  ADD COLUMN arrears_local_minor       BIGINT  NOT NULL DEFAULT 0 CHECK (arrears_local_minor >= 0),
  ADD COLUMN ended_with_currency_loss  BOOLEAN NOT NULL DEFAULT false,
  ADD CONSTRAINT loans_repaid_within_amount
    CHECK (local_amount_minor IS NULL OR repaid_local_minor <= local_amount_minor),
  ADD CONSTRAINT loans_credited_within_amount
    CHECK (usd_amount_minor IS NULL OR repaid_usd_minor <= usd_amount_minor);

CREATE INDEX loans_active_idx ON loans (status, id) WHERE status IN (5, 9);

-- Who funded a loan: one row per funding account (a lender's wallet or a sponsor's budget),
-- with its total share and what repayments credited it. Shares are fixed once the loan is funded.
CREATE TABLE loan_funders (
  loan_id        BIGINT      NOT NULL REFERENCES loans (id),
  account_id     BIGINT      NOT NULL REFERENCES accounts (id),
  owner_type     SMALLINT    NOT NULL,
  owner_id       TEXT        NOT NULL,
  amount_minor   BIGINT      NOT NULL CHECK (amount_minor > 0),
  share_count    INTEGER     NOT NULL CHECK (share_count > 0),
  repaid_minor   BIGINT      NOT NULL DEFAULT 0 CHECK (repaid_minor >= 0),
  refunded_minor BIGINT      NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
  first_lent_at  TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (loan_id, account_id),
  CHECK (repaid_minor + refunded_minor <= amount_minor)
);
CREATE INDEX loan_funders_account_idx ON loan_funders (account_id, loan_id);

-- A lender's basket: one item per loan, usually with a hold on the wallet (none when the loan
-- had under six hours of fundraising left).
CREATE TABLE basket_items (
  lender_id     BIGINT      NOT NULL,
  loan_id       BIGINT      NOT NULL REFERENCES loans (id),
  hold_id       BIGINT,
  amount_minor  BIGINT      NOT NULL CHECK (amount_minor > 0),
  added_at      TIMESTAMPTZ NOT NULL,
  expires_at    TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (lender_id, loan_id)
);

CREATE TABLE repayments (
  id                     BIGINT      PRIMARY KEY,
  loan_id                BIGINT      NOT NULL REFERENCES loans (id),
  partner_id             BIGINT      NOT NULL,
  local_amount_minor     BIGINT      NOT NULL CHECK (local_amount_minor > 0),
  local_currency         CHAR(3)     NOT NULL,
  settlement_fx_rate     TEXT        NOT NULL,
  repaid_on              DATE        NOT NULL,
  partner_reference      TEXT        NOT NULL DEFAULT '',
  expected_usd_minor     BIGINT      NOT NULL,
  credited_usd_minor     BIGINT      NOT NULL CHECK (credited_usd_minor >= 0),
  coverage_usd_minor     BIGINT      NOT NULL,
  currency_loss_minor    BIGINT      NOT NULL,
  credited_account_count INTEGER     NOT NULL,
  posted_at              TIMESTAMPTZ NOT NULL
);
ALTER SEQUENCE repayment_id_seq OWNED BY repayments.id;
CREATE INDEX repayments_loan_idx ON repayments (loan_id, id);
