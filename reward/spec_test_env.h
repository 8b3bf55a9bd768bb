// Test helper: the SpecEnvironment reward-spec tests compile against (the
// default sandbox settings; one provider shared by every test of the binary).
#pragma once

#include "reward/reward_spec.h"

namespace zerorl::reward {

inline SpecEnvironment TestSpecEnvironment() {
  static auto provider = MakeSandboxProvider(zerorl::v1::SandboxConfig());
  SpecEnvironment env;
  env.sandbox = provider;
  return env;
}

}  // namespace zerorl::reward
