// Landlock: the sandbox layer that needs no privileges (reward/sandbox.h,
// Isolation::kLandlock). It is what a reward pod gets under Kubernetes'
// Restricted profile: no capabilities, the runtime's default seccomp profile
// (so no unprivileged user namespaces, hence no bwrap), a non-root uid shared
// with the reward server.
//
// A LandlockPolicy is prepared once (Create) and then, per execution, makes a
// ruleset (MakeRuleset) that the child applies to itself just before exec
// (RestrictSelfInChild). The executed program and all its descendants then:
//   - may read and execute only the read-only system paths the interpreter
//     needs (/usr, /lib*, /bin, /sbin, the interpreter's own prefix, and the
//     files /etc/ld.so.cache, /etc/localtime, /etc/python3*, /etc/passwd,
//     /etc/group, /etc/nsswitch.conf), read its own /proc/PID directory, use
//     /dev/null, /dev/zero, /dev/full and /dev/(u)random;
//   - may do anything inside its own work dir — and nothing else on the file
//     system: not the reward server's files (mounted token, spec, config),
//     not another execution's work dir, not /tmp, not the rest of /proc;
//   - with ABI >= 4, may not bind or connect TCP sockets;
//   - with ABI >= 6, may not signal processes outside the sandbox (the reward
//     server, other executions) nor connect to abstract unix sockets made
//     outside it.
// Landlock only takes rights away and stacks with rlimits, no_new_privs and
// the seccomp filter, which the sandbox installs as well.
//
// Not covered by Landlock: opening paths does not need a rule for the
// directories on the way (so names are visible with stat, contents are not);
// connecting to a pathname unix socket (the sandbox's seccomp filter refuses
// socket() in this layer instead); the amount written to the work dir (bounded
// per file by RLIMIT_FSIZE and in time by the wall limit, removed afterwards).
//
// Thread-safe after Create: MakeRuleset may be called from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorl::reward {

// The kernel's Landlock ABI version (>= 1), or an error saying why there is
// none (not built in, disabled at boot, or blocked by a seccomp profile).
absl::StatusOr<int> LandlockAbi();

class LandlockPolicy {
 public:
  // Opens the read-only system paths (and `extra_read_only`, e.g. the
  // interpreter's prefix when it is not under /usr). Paths that do not exist
  // are skipped. FAILED_PRECONDITION when the kernel has no Landlock.
  static absl::StatusOr<std::unique_ptr<LandlockPolicy>> Create(const std::vector<std::string>& extra_read_only = {});
  ~LandlockPolicy();
  LandlockPolicy(const LandlockPolicy&) = delete;
  LandlockPolicy& operator=(const LandlockPolicy&) = delete;

  int abi() const { return abi_; }
  bool scopes_signals() const { return abi_ >= 6; }  // signal and abstract unix socket scoping
  bool restricts_tcp() const { return abi_ >= 4; }
  // One line for logs, e.g. "Landlock ABI 7: fs (ro system, rw work dir), tcp denied, signals+abstract sockets scoped".
  std::string Describe() const;

  // A new ruleset fd (O_CLOEXEC) holding every static rule plus full access to
  // `workdir`. The caller passes it to RestrictSelfInChild and closes it.
  absl::StatusOr<int> MakeRuleset(const std::string& workdir) const;

  // In the child, after no_new_privs and before exec: adds read access to the
  // child's own /proc/PID and restricts the calling task. Only raw system
  // calls (safe in a clone(CLONE_VM) child). Returns 0, or -1 with errno set.
  static int RestrictSelfInChild(int ruleset_fd);

 private:
  LandlockPolicy() = default;

  struct PathRule {
    std::string path;
    int fd;           // O_PATH
    uint64_t access;  // allowed rights (file rights only for a non-directory)
  };
  int abi_ = 0;
  uint64_t handled_fs_ = 0;
  uint64_t handled_net_ = 0;
  uint64_t scoped_ = 0;
  std::vector<PathRule> rules_;
};

}  // namespace zerorl::reward
