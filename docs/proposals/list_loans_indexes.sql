CREATE INDEX loans_status_amount_left_idx
  ON loans (status, (coalesce(usd_amount_minor, 0) - funded_minor - held_minor), id);
CREATE INDEX loans_fundraising_facets_idx ON loans (country, sector, gender)
  INCLUDE (partner_id, term_months, is_group, repayment_interval, fundraising_deadline,
           usd_amount_minor, funded_minor, held_minor)
  WHERE status = 3;
