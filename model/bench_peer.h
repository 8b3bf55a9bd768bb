// The PyTorch peer of `zerorl bench model` (CPU and --device cuda): runs the
// peer's command line and reads the `train_tokens_per_s V` and
// `decode_tokens_per_s V` lines it prints.
#pragma once

#include <string>

namespace zerorl::model {

struct PeerRun {
  bool started = false;    // popen succeeded
  int exit_code = -1;      // pclose status
  double train = 0, decode = 0;  // tokens/s; 0 when not printed
  std::string last_line;   // the last line printed (for errors)
};

PeerRun RunBenchPeer(const std::string& command);

}  // namespace zerorl::model
