#pragma once

namespace zerorl {
inline constexpr const char* kVersion = "0.1.0";
}  // namespace zerorl
