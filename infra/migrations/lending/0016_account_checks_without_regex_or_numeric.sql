-- Cheaper checks on every update of `accounts` (ADR 0020).
--
-- PostgreSQL evaluates every CHECK of a table on every update of a row, whatever columns the
-- update sets. A repayment to 10,000 lenders updates 10,000 wallets' credits_posted, so each of
-- them ran a regular expression over a currency that cannot change (accounts_keep_key refuses it)
-- and cast three totals to NUMERIC twice. Replayed in psql on 30,000 accounts (the store's
-- increment of 10,000 of them, VACUUM before each, 12 rounds, medians): 88 ms as migration 0002
-- left the table, 74 ms with the checks below, 63 ms with no CHECK at all.
--
-- 1. The currency's shape is a domain's check: PostgreSQL checks a domain when a value is
--    assigned to the column (an insert, or an update that sets it), not when an update leaves it
--    as it was.
-- 2. The two balance limits compare in BIGINT, without overflow and exactly as before: every
--    total is >= 0 (their own CHECKs), so `credits_posted - debits_posted` lies within BIGINT,
--    and `debits_posted + debits_pending <= credits_posted` holds exactly when
--    `debits_pending <= credits_posted - debits_posted` does.
CREATE DOMAIN currency_code AS CHAR(3) CHECK (VALUE ~ '^[A-Z]{3}$');

-- A trigger's column list pins its columns' types: dropped, and created again as migration 0011
-- made it.
DROP TRIGGER accounts_keep_key ON accounts;
ALTER TABLE accounts DROP CONSTRAINT accounts_currency_check;
ALTER TABLE accounts ALTER COLUMN currency TYPE currency_code;
CREATE TRIGGER accounts_keep_key AFTER UPDATE OF id, currency ON accounts
  FOR EACH ROW EXECUTE FUNCTION accounts_refuse_change();

ALTER TABLE accounts DROP CONSTRAINT accounts_debits_within_credits;
ALTER TABLE accounts ADD CONSTRAINT accounts_debits_within_credits
  CHECK (NOT debits_must_not_exceed_credits OR debits_pending <= credits_posted - debits_posted);
ALTER TABLE accounts DROP CONSTRAINT accounts_credits_within_debits;
ALTER TABLE accounts ADD CONSTRAINT accounts_credits_within_debits
  CHECK (NOT credits_must_not_exceed_debits OR credits_pending <= debits_posted - credits_posted);
