-- Field partners: the microfinance institutions that post loans (lending.v1.Partner).
-- Written by PgPartnerStore; every mutation also writes its idempotency_records row in the same
-- transaction. `version` counts changes (optimistic locking: UpdatePartner.expected_version).
CREATE SEQUENCE partner_id_seq AS BIGINT;

CREATE TABLE partners (
  id                          BIGINT      PRIMARY KEY DEFAULT nextval('partner_id_seq'),
  name                        TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  -- ISO 3166-1 alpha-2, upper case, at least one, no duplicates (checked by the core).
  countries                   TEXT[]      NOT NULL CHECK (cardinality(countries) >= 1),
  risk_rating_half_stars      SMALLINT    NOT NULL DEFAULT 0
                                          CHECK (risk_rating_half_stars BETWEEN 0 AND 10),
  currency_loss_coverage_bps  INTEGER     NOT NULL DEFAULT 1000
                                          CHECK (currency_loss_coverage_bps BETWEEN 0 AND 10000),
  -- The USD cap on the partner's exposure (Partner.credit_limit), in minor units.
  credit_limit_minor          BIGINT      NOT NULL CHECK (credit_limit_minor >= 0),
  credit_limit_currency       CHAR(3)     NOT NULL DEFAULT 'USD' CHECK (credit_limit_currency = 'USD'),
  -- lending.v1.PartnerStatus numbering: 1 active, 2 paused, 3 closed (final).
  status                      SMALLINT    NOT NULL DEFAULT 1 CHECK (status BETWEEN 1 AND 3),
  status_reason               TEXT        NOT NULL DEFAULT '',
  description                 TEXT        NOT NULL DEFAULT '',
  website_url                 TEXT        NOT NULL DEFAULT '',
  -- The PARTNER_SETTLEMENT ledger account; NULL until it is opened.
  settlement_account_id       BIGINT,
  version                     BIGINT      NOT NULL DEFAULT 1 CHECK (version >= 1),
  created_at                  TIMESTAMPTZ NOT NULL,
  updated_at                  TIMESTAMPTZ NOT NULL
);
ALTER SEQUENCE partner_id_seq OWNED BY partners.id;

-- Names are unique whatever their case ("Kiva Uganda" and "KIVA UGANDA" are one partner).
CREATE UNIQUE INDEX partners_name_lower_key ON partners (lower(name));
-- ListPartners by country: countries @> ARRAY['KE'].
CREATE INDEX partners_countries_idx ON partners USING gin (countries);
