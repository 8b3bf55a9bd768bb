// Test fixture for zerorlctl against live services: runs the CLI in-process,
// starts real actors (in-process on one port, like `zerorl run`), and crafts
// trajectory groups whose every field is known, so a filter's exact answer
// can be computed here and compared with what the CLI prints.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/ctl_session.h"
#include "common/actor.h"
#include "common/server.h"
#include "zerorl/v1/buffer.grpc.pb.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl::ctl::testing {

struct CtlResult {
  int code = -1;
  std::string out, err;
};

// `zerorlctl ARGS...` in-process.
CtlResult Ctl(std::vector<std::string> args, Runtime* runtime = nullptr);

// JSON lines of a jsonl output -> the trajectory ids they name ("RUN/STEP/GROUP/SAMPLE").
std::vector<std::string> JsonlIds(const std::string& out);

// The crafted trajectory (run, step, group, sample): reward, finish reason,
// policy version and text are functions of the ids (see ctl_fixture.cc).
zerorl::v1::Trajectory Crafted(const std::string& run, int64_t step, int group, int sample);
// Groups of `run` for steps [step_begin, step_end), `groups` x `samples` each.
std::vector<zerorl::v1::Group> CraftedGroups(const std::string& run, int64_t step_begin, int64_t step_end,
                                             int groups, int samples);

// Buffer and reward actors served together on one loopback port, admin token set.
class Deployment {
 public:
  // `tls_cert`/`tls_key` (PEM paths) serve TLS instead of plaintext.
  static std::unique_ptr<Deployment> Start(const std::string& name, const std::string& tls_cert = "",
                                           const std::string& tls_key = "");
  ~Deployment();

  const std::string& addr() const { return addr_; }
  const std::string& token_file() const { return token_file_; }
  const std::string& dir() const { return dir_; }
  // BufferService.Append through a plaintext client; true when the call succeeded.
  bool Append(const std::vector<zerorl::v1::Group>& groups);
  void Stop();

 private:
  std::string dir_, addr_, token_file_;
  std::vector<std::unique_ptr<Actor>> actors_;
  ServerHandle server_;
  bool stopped_ = false;
};

}  // namespace zerorl::ctl::testing
