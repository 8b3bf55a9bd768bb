// Minimal leveled logging to stderr: `ZLOG(INFO) << "step " << k;`
// The level comes from $ZERORL_LOG (debug|info|warning|error; default info).
// Thread-safe: each message is written with one call.
#pragma once

#include <sstream>

namespace zerorl {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

bool LogEnabled(LogLevel level);
void SetLogLevel(LogLevel level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return out_; }

 private:
  LogLevel level_;
  std::ostringstream out_;
};

}  // namespace zerorl

#define ZLOG_LEVEL_DEBUG ::zerorl::LogLevel::kDebug
#define ZLOG_LEVEL_INFO ::zerorl::LogLevel::kInfo
#define ZLOG_LEVEL_WARNING ::zerorl::LogLevel::kWarning
#define ZLOG_LEVEL_ERROR ::zerorl::LogLevel::kError
#define ZLOG(level)                                  \
  if (!::zerorl::LogEnabled(ZLOG_LEVEL_##level)) {   \
  } else                                             \
    ::zerorl::LogMessage(ZLOG_LEVEL_##level, __FILE__, __LINE__).stream()
