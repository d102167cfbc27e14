-- The catalogue (LoanService.ListLoans) over a large table: measured in docs/benchmarks.md
-- ("Loan catalogue", 1,000,000 loans of which 100,000 FUNDRAISING).
--
-- loans_status_amount_left_idx: the "amount left" sorts walk the FUNDRAISING loans in order and
-- stop after a page instead of sorting every match.
-- loans_fundraising_facets_idx: the FUNDRAISING loans only, keyed by the facets a lender filters
-- on first, with every other filtered column included, so that a filtered page or count is an
-- index-only scan that never visits the table.
--
-- Cost: funded_minor and held_minor are indexed, so lending on or holding a FUNDRAISING loan
-- updates both indexes (no HOT update), and the index-only scans rely on the visibility map, so
-- `loans` wants autovacuum to keep up with fundraising loans that change all day.
CREATE INDEX loans_status_amount_left_idx
  ON loans (status, (coalesce(usd_amount_minor, 0) - funded_minor - held_minor), id);
CREATE INDEX loans_fundraising_facets_idx ON loans (country, sector, gender)
  INCLUDE (partner_id, term_months, is_group, repayment_interval, fundraising_deadline,
           usd_amount_minor, funded_minor, held_minor)
  WHERE status = 3;
