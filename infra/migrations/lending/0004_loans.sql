-- Loans before money moves (lending.v1.Loan): drafts, review and the catalogue. Written by
-- PgLoanStore; every mutation also writes its idempotency_records row in the same transaction.
-- The columns the catalogue filters and sorts on are real columns; the rest of the
-- partner-editable details (borrowers, story, ...) are JSONB. Money is BIGINT minor units.
CREATE SEQUENCE loan_id_seq AS BIGINT;
CREATE SEQUENCE borrower_id_seq AS BIGINT;

CREATE TABLE loans (
  id                        BIGINT      PRIMARY KEY DEFAULT nextval('loan_id_seq'),
  partner_id                BIGINT      NOT NULL REFERENCES partners (id),
  -- lending.v1.LoanStatus numbering: 1 draft .. 9 defaulted; 3 and later are public.
  status                    SMALLINT    NOT NULL CHECK (status BETWEEN 1 AND 9),
  country                   TEXT        NOT NULL DEFAULT '',
  region                    TEXT        NOT NULL DEFAULT '',
  town                      TEXT        NOT NULL DEFAULT '',
  sector                    SMALLINT    NOT NULL DEFAULT 0 CHECK (sector BETWEEN 0 AND 15),
  -- The borrowers' common common.v1.Gender (4 = mixed), 0 without borrowers.
  gender                    SMALLINT    NOT NULL DEFAULT 0 CHECK (gender BETWEEN 0 AND 4),
  is_group                  BOOLEAN     NOT NULL DEFAULT false,
  tags                      TEXT[]      NOT NULL DEFAULT '{}',
  hashtags                  TEXT[]      NOT NULL DEFAULT '{}',
  term_months               INTEGER     NOT NULL DEFAULT 0 CHECK (term_months BETWEEN 0 AND 240),
  -- lending.v1.RepaymentInterval numbering; 0 = not set yet.
  repayment_interval        SMALLINT    NOT NULL DEFAULT 0 CHECK (repayment_interval BETWEEN 0 AND 4),
  -- NULL until the draft names its amount.
  local_amount_minor        BIGINT      CHECK (local_amount_minor > 0),
  local_currency            CHAR(3),
  -- local units per 1 USD as the partner sent it (exact decimal text).
  posting_fx_rate           TEXT        NOT NULL DEFAULT '',
  -- local / rate half-even to the cent; NULL until amount and rate are known.
  usd_amount_minor          BIGINT      CHECK (usd_amount_minor >= 2500),
  funded_minor              BIGINT      NOT NULL DEFAULT 0 CHECK (funded_minor >= 0),
  held_minor                BIGINT      NOT NULL DEFAULT 0 CHECK (held_minor >= 0),
  lender_count              INTEGER     NOT NULL DEFAULT 0 CHECK (lender_count >= 0),
  -- Time-decayed score x 1000, pushed by notify later; a score, not money.
  trending_score_milli      BIGINT      NOT NULL DEFAULT 0,
  details                   JSONB       NOT NULL,
  review_return_reason      TEXT,
  review_returned_at        TIMESTAMPTZ,
  review_reviewer           TEXT,
  fundraising_deadline      TIMESTAMPTZ,
  version                   BIGINT      NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at                TIMESTAMPTZ NOT NULL,
  updated_at                TIMESTAMPTZ NOT NULL,
  submitted_at              TIMESTAMPTZ,
  published_at              TIMESTAMPTZ,
  CHECK ((local_amount_minor IS NULL) = (local_currency IS NULL)),
  CHECK (usd_amount_minor IS NULL OR funded_minor + held_minor <= usd_amount_minor)
);
ALTER SEQUENCE loan_id_seq OWNED BY loans.id;

CREATE TABLE loan_schedule_entries (
  loan_id          BIGINT  NOT NULL REFERENCES loans (id),
  seq              INTEGER NOT NULL CHECK (seq >= 0),
  due_date         DATE    NOT NULL,
  principal_minor  BIGINT  NOT NULL CHECK (principal_minor > 0),
  PRIMARY KEY (loan_id, seq)
);

-- The catalogue: expiring soonest, newest, a partner's loans, tags and hashtags.
CREATE INDEX loans_status_deadline_idx ON loans (status, fundraising_deadline, id);
CREATE INDEX loans_status_published_idx ON loans (status, (coalesce(published_at, created_at)) DESC, id);
CREATE INDEX loans_partner_idx ON loans (partner_id, id);
CREATE INDEX loans_tags_idx ON loans USING gin (tags);
CREATE INDEX loans_hashtags_idx ON loans USING gin (hashtags);
