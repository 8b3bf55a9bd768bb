#include "weights/weight_group.h"

#include <cstdint>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace zerorl::weights {

std::string ModelConfigFingerprint(const model::ModelConfig& config) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : config.ToJson()) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return absl::StrCat("fnv1a64:", hex);
}

bool NcclWeightTransportBuilt() {
#ifdef ZERORL_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

}  // namespace zerorl::weights
