// RunBenchPeer (see bench_peer.h).
#include "model/bench_peer.h"

#include <cstdio>
#include <sstream>

namespace zerorl::model {

PeerRun RunBenchPeer(const std::string& command) {
  PeerRun r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  r.started = true;
  char line[1024];
  while (std::fgets(line, sizeof line, p)) {
    r.last_line = line;
    std::istringstream in(line);
    std::string key;
    double v;
    if (!(in >> key >> v)) continue;
    if (key == "train_tokens_per_s") r.train = v;
    if (key == "decode_tokens_per_s") r.decode = v;
  }
  r.exit_code = pclose(p);
  return r;
}

}  // namespace zerorl::model
