-- The catalogue (LoanService.ListLoans) over a large table: measured in docs/benchmarks.md
-- ("Loan catalogue", 1,000,000 loans of which 100,000 FUNDRAISING). Lenders browse FUNDRAISING
-- loans, a tenth of the table at most, so these indexes hold those rows only (WHERE status = 3);
-- PgLoanStore writes the status as a literal so that the planner can match them.
--
-- loans_fundraising_facets_idx: keyed by the filters lenders use most (sector, country, the
-- borrowers' gender), with every other column the catalogue filters on included, so that
-- counting the matches (up to the count cap) is an index-only scan that stops early and never
-- visits the table. Sector first: a search naming a sector and a gender (query B of the
-- benchmark) or a sector and countries (query A) reads little more than its matches.
-- loans_fundraising_amount_left_idx, loans_fundraising_trending_idx: the "amount left" and
-- "trending" sorts walk their order and stop after a page instead of sorting every match
-- ("expiring soonest" and "newest" have loans_status_deadline_idx and loans_status_published_idx
-- of 0004_loans.sql). The other sorts (amount left descending, loan amount, random) still sort
-- all the matches; see docs/benchmarks.md.
--
-- Cost: funded_minor and held_minor are indexed, so lending on or holding a FUNDRAISING loan is
-- never a HOT update and adds an entry to each index of `loans`; the index-only scans rely on the
-- visibility map, so `loans` wants autovacuum to keep up with fundraising loans that change all
-- day. Each index is about 3-8 MB per 100,000 FUNDRAISING loans.
CREATE INDEX loans_fundraising_facets_idx ON loans (sector, country, gender)
  INCLUDE (partner_id, term_months, is_group, repayment_interval, fundraising_deadline,
           usd_amount_minor, funded_minor, held_minor)
  WHERE status = 3;
CREATE INDEX loans_fundraising_amount_left_idx
  ON loans ((coalesce(usd_amount_minor, 0) - funded_minor - held_minor), id)
  WHERE status = 3;
CREATE INDEX loans_fundraising_trending_idx ON loans (trending_score_milli DESC, id)
  WHERE status = 3;
