// TrajectoryFilter validation and matching (see trajectory_filter.h).
#include "buffer/trajectory_filter.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "buffer/keys.h"

namespace zerorl::buffer {

absl::Status ValidateFilter(const zerorl::v1::TrajectoryFilter& f) {
  auto bad = [](absl::string_view what) { return absl::InvalidArgumentError(absl::StrCat("filter: ", what)); };
  if (!f.run_id().empty()) {
    if (auto s = ValidateRunId(f.run_id()); !s.ok()) return bad(s.message());
  }
  if (f.step_min() < 0) return bad(absl::StrCat("step_min ", f.step_min(), " is negative"));
  if (f.has_step_max() && f.step_max() < f.step_min())
    return bad(absl::StrCat("step_max ", f.step_max(), " is below step_min ", f.step_min()));
  if (f.has_min_reward() && std::isnan(f.min_reward())) return bad("min_reward is NaN");
  if (f.has_max_reward() && std::isnan(f.max_reward())) return bad("max_reward is NaN");
  if (f.has_min_reward() && f.has_max_reward() && f.min_reward() > f.max_reward())
    return bad(absl::StrCat("min_reward ", f.min_reward(), " is above max_reward ", f.max_reward()));
  if (f.has_policy_version() && f.policy_version() < 0)
    return bad(absl::StrCat("policy_version ", f.policy_version(), " is negative"));
  if (!zerorl::v1::FinishReason_IsValid(f.finish_reason()))
    return bad(absl::StrCat("finish_reason ", static_cast<int>(f.finish_reason()), " is not a FinishReason"));
  if (f.prompt_id().find('\0') != std::string::npos) return bad("prompt_id contains a NUL byte");
  return absl::OkStatus();
}

bool Matches(const zerorl::v1::TrajectoryFilter& f, const zerorl::v1::Trajectory& t) {
  if (!f.run_id().empty() && t.id().run_id() != f.run_id()) return false;
  if (t.id().step() < f.step_min()) return false;
  if (f.has_step_max() && t.id().step() > f.step_max()) return false;
  const double r = t.reward().reward();
  if (f.has_min_reward() && r < f.min_reward()) return false;
  if (f.has_max_reward() && r > f.max_reward()) return false;
  if (f.has_policy_version() && t.sample().policy_version() != f.policy_version()) return false;
  if (f.finish_reason() != zerorl::v1::FINISH_REASON_UNSPECIFIED &&
      t.sample().finish_reason() != f.finish_reason())
    return false;
  if (!f.prompt_id().empty() && t.prompt().id() != f.prompt_id()) return false;
  if (!f.contains().empty() && !absl::StrContains(t.prompt().text(), f.contains()) &&
      !absl::StrContains(t.sample().text(), f.contains()))
    return false;
  return true;
}

}  // namespace zerorl::buffer
