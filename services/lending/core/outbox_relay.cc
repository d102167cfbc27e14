#include "services/lending/core/outbox_relay.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/status_macros.h"

namespace microlend::lending {

absl::StatusOr<size_t> OutboxRelay::RelayOnce() {
  absl::MutexLock lock(&run_mu_);
  ML_ASSIGN_OR_RETURN(int64_t cursor, source_->PublishedThrough());
  ML_ASSIGN_OR_RETURN(std::vector<OutboxEvent> events,
                      source_->FetchUnpublished(options_.batch_size));
  // Keep the contiguous run after the cursor; step over a gap only once it has settled.
  const absl::Time settled = clock_->Now() - options_.gap_settle;
  int64_t expected = cursor + 1;
  size_t keep = 0;
  for (; keep < events.size(); ++keep) {
    const OutboxEvent& e = events[keep];
    if (keep > 0 && e.sequence == events[keep - 1].sequence) continue;  // same row
    if (e.sequence != expected && e.created_at > settled) break;
    if (e.sequence != expected) {
      LogWarning("outbox_gap_skipped", {{"from", absl::StrCat(expected)},
                                        {"to", absl::StrCat(e.sequence - 1)}});
    }
    expected = e.sequence + 1;
  }
  events.resize(keep);
  if (events.empty()) return 0;
  ML_RETURN_IF_ERROR(publisher_->Publish(events));
  std::vector<int64_t> sequences;
  sequences.reserve(events.size());
  for (const OutboxEvent& e : events) sequences.push_back(e.sequence);
  ML_RETURN_IF_ERROR(source_->MarkPublished(sequences, clock_->Now()));
  if (options_.backlog != nullptr) options_.backlog->Published(events.size());
  return events.size();
}

void OutboxRelay::Start() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void OutboxRelay::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void OutboxRelay::Loop() {
  absl::Duration backoff = options_.idle_poll;
  while (true) {
    absl::StatusOr<size_t> n = RelayOnce();
    absl::Duration wait;
    if (!n.ok()) {
      LogWarning("outbox_relay_failed", {{"error", AsStd(n.status().message())}});
      backoff = std::min(backoff * 2, options_.max_backoff);
      wait = backoff;
    } else {
      backoff = options_.idle_poll;
      wait = *n == 0 ? options_.idle_poll : absl::ZeroDuration();
    }
    absl::MutexLock lock(&stop_mu_);
    if (stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait)) return;
  }
}

}  // namespace microlend::lending
