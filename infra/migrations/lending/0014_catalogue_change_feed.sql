-- The catalogue's change feed (ADR 0017). The lending server keeps every FUNDRAISING loan, as a
-- card, in memory (core/catalogue.h) and answers catalogue searches from there. Before each
-- search it reads what changed since its last read, so it needs to find "the loans that changed
-- since then" without missing a transaction that took its id early and committed late.
--
-- Each row a change can matter to carries the id of the transaction that last wrote it
-- (pg_current_xact_id(), an xid8). A read takes, in the same statement and snapshot, the rows
-- with change_xid >= H and the snapshot's xmin as the next H: every transaction below xmin had
-- ended when the snapshot was taken, so every later write carries an id >= xmin and the next
-- read finds it (PgLoanStore::CatalogueChangesSince).
--
-- Stamped: loans inserted as FUNDRAISING, and every update of a loan that is or was FUNDRAISING
-- (so a loan that leaves FUNDRAISING, funded or expired, is seen leaving); every partner insert
-- and update (the catalogue filters on the partner's rating). Updates of loans that are not
-- fundraising keep their stamp, so repayments and the lifecycle sweep stay HOT where they were.
-- Rows written before this migration have no stamp: the catalogue's first read takes every
-- FUNDRAISING loan whatever its stamp.
ALTER TABLE loans ADD COLUMN change_xid xid8;
ALTER TABLE partners ADD COLUMN change_xid xid8;

CREATE FUNCTION stamp_change_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.change_xid := pg_current_xact_id();
  RETURN NEW;
END
$$;

CREATE TRIGGER loans_stamp_insert BEFORE INSERT ON loans
  FOR EACH ROW WHEN (NEW.status = 3) EXECUTE FUNCTION stamp_change_xid();
CREATE TRIGGER loans_stamp_update BEFORE UPDATE ON loans
  FOR EACH ROW WHEN (OLD.status = 3 OR NEW.status = 3) EXECUTE FUNCTION stamp_change_xid();
CREATE TRIGGER partners_stamp BEFORE INSERT OR UPDATE ON partners
  FOR EACH ROW EXECUTE FUNCTION stamp_change_xid();

CREATE INDEX loans_change_xid_idx ON loans (change_xid) WHERE change_xid IS NOT NULL;
CREATE INDEX partners_change_xid_idx ON partners (change_xid) WHERE change_xid IS NOT NULL;

-- A deleted row leaves no stamp, so the catalogue could not see a FUNDRAISING loan go. Loans are
-- never deleted by the services (they end, expire or are refunded): deleting a FUNDRAISING loan,
-- or truncating the table, is refused (restrict_violation, FAILED_PRECONDITION).
CREATE FUNCTION loans_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'loans are never truncated: the catalogue would not see them go'
      USING ERRCODE = 'restrict_violation';
  END IF;
  RAISE EXCEPTION 'loan % is FUNDRAISING and is never deleted: it expires or is refunded', OLD.id
    USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER loans_keep_fundraising BEFORE DELETE ON loans
  FOR EACH ROW WHEN (OLD.status = 3) EXECUTE FUNCTION loans_refuse_delete();
CREATE TRIGGER loans_no_truncate BEFORE TRUNCATE ON loans
  FOR EACH STATEMENT EXECUTE FUNCTION loans_refuse_delete();
