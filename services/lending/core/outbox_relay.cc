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

bool OutboxRelay::StoppingOrWoken() const { return stopping_ || (wakeable_ && woken_); }

void OutboxRelay::Wake() {
  absl::MutexLock lock(&stop_mu_);
  woken_ = true;
}

void OutboxRelay::Loop() {
  absl::Duration backoff = options_.idle_poll;
  absl::Duration idle = options_.idle_poll;
  while (true) {
    {
      absl::MutexLock lock(&stop_mu_);
      woken_ = false;  // this round sees every commit made before it
    }
    absl::StatusOr<size_t> n = RelayOnce();
    absl::Duration wait;
    if (!n.ok()) {
      LogWarning("outbox_relay_failed", {{"error", AsStd(n.status().message())}});
      backoff = std::min(backoff * 2, options_.max_backoff);
      wait = backoff;
    } else if (*n == 0) {
      backoff = options_.idle_poll;
      wait = idle;
      idle = std::min(idle * 2, std::max(options_.idle_poll, options_.max_idle_poll));
    } else {
      backoff = idle = options_.idle_poll;
      wait = absl::ZeroDuration();
    }
    absl::MutexLock lock(&stop_mu_);
    // A failing round waits out its backoff even when woken: a commit does not fix Redis.
    wakeable_ = n.ok();
    stop_mu_.AwaitWithTimeout(absl::Condition(this, &OutboxRelay::StoppingOrWoken), wait);
    if (stopping_) return;
  }
}

}  // namespace microlend::lending
