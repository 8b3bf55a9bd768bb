// Sandbox: runs an untrusted program (a Python solution, a user reward term)
// with no network, a private writable work directory, a read-only view of the
// rest of the file system, resource limits and a wall-clock kill.
//
// Isolation layers (Sandbox::isolation(), chosen once at Create by probing):
//   kNamespaces (default when running as root and the kernel allows it) — a
//     child cloned into new PID, network, mount, IPC and UTS namespaces; every
//     mount remounted read-only (mount_setattr, recursive); fresh tmpfs on /tmp
//     (holding the work dir /tmp/work, which the child fills with the input
//     files, so nothing touches the host disk; its size is the inputs plus
//     max(16 MiB, 2 x max_file_bytes)), /var/tmp and /dev/shm; a fresh
//     /proc (the host's processes are invisible); privileges dropped to a per-slot uid
//     (uid_base() + slot, a block of 64 per process, so RLIMIT_NPROC is per
//     execution and kill(-1) reaches only the execution itself); rlimits;
//     no_new_privs + seccomp; scrubbed env.
//     The PID namespace dies with its first process, taking every descendant.
//   kBwrap — bubblewrap (--unshare-all --die-with-parent --ro-bind / / --tmpfs
//     /tmp --proc /proc --bind WORKDIR) with the same rlimits and seccomp filter
//     (--seccomp FD); for non-root hosts where bwrap works. As root bwrap maps
//     the sandbox to uid 0 outside, so RLIMIT_NPROC is weaker than kNamespaces.
//     It shows the program every file the server's uid can read.
//   kLandlock — no privileges needed (a Kubernetes Restricted pod: no
//     capabilities, the runtime's default seccomp profile, so no user
//     namespaces): own session, rlimits, privilege drop when root, and a
//     Landlock domain (reward/landlock.h): the file system is the read-only
//     system paths plus the program's own work dir (not the server's files, not
//     other executions' work dirs, not /tmp, not other processes' /proc); with
//     Landlock ABI >= 6 the program cannot signal the server or other
//     executions nor reach abstract unix sockets outside; with ABI >= 4 no TCP.
//     The strict seccomp filter (below) refuses socket() altogether.
//   kRlimits (last resort) — setsid, own process group, rlimits, privilege drop
//     when root, the strict seccomp filter; no namespaces: files, /tmp and
//     signals are shared with the server's uid when not root.
// Common to all: seccomp denies ptrace, mount, umount2, reboot, kexec_*,
// *_module, unshare, setns, chroot, pivot_root, bpf, perf_event_open, keyctl,
// swapon/off, process_vm_*, and socket() for every family but AF_UNIX (the
// strict filter of kLandlock and kRlimits: every family, plus kill(-1), tkill,
// pidfd_send_signal and signals aimed at the server's own pid or process group;
// and, when not root, no new processes (threads only) and no setsid/setpgid,
// since RLIMIT_NPROC of a shared uid cannot bound them);
// rlimits on CPU seconds, address space, file size, open files, processes,
// core dumps (0); stdout/stderr capped; the wall timeout SIGKILLs the whole group.
// kLandlock and kRlimits give the program HOME=TMPDIR=its work dir; when they run
// programs under the server's own uid (not root), Create also marks the server
// non-dumpable, so its /proc/PID/{mem,environ,fd} are not open to that uid.
//
// "auto" picks the strongest layer that works here, in the order namespaces,
// then Landlock when its ABI scopes signals (>= 6) and else bwrap first, then
// rlimits; Create logs the choice and why the stronger layers were passed over.
//
// Cost: the child is cloned with CLONE_VM | CLONE_VFORK (as posix_spawn does),
// so no copy of the caller's address space is made however large it is; the
// seccomp program is compiled once at Create.
//
// Thread-safe: Run may be called from many threads; at most `max_parallel`
// executions run at once (each holds one uid slot), others wait.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "reward/landlock.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl::reward {

enum class Isolation { kNamespaces, kBwrap, kLandlock, kRlimits };
const char* IsolationName(Isolation i);  // "namespaces", "bwrap", "landlock", "rlimits"

struct SandboxLimits {
  double cpu_seconds = 2;                // RLIMIT_CPU (rounded up to whole seconds)
  int64_t memory_bytes = 512ll << 20;    // RLIMIT_AS
  int64_t wall_ms = 4000;                // wall clock; the whole group is SIGKILLed after it
  int64_t max_output_bytes = 1 << 20;    // per stream; more kills the run (verdict kOutputLimit)
  int max_processes = 16;                // RLIMIT_NPROC for the execution's uid
  int64_t max_file_bytes = 16ll << 20;   // RLIMIT_FSIZE
  int max_open_files = 64;               // RLIMIT_NOFILE

  static SandboxLimits FromConfig(const zerorl::v1::SandboxConfig& c);
};

enum class SandboxVerdict {
  kOk,            // exited with status 0
  kRuntimeError,  // non-zero exit or a crash signal
  kTimeout,       // wall clock or CPU limit
  kOutputLimit,   // stdout or stderr exceeded max_output_bytes
  kKilledByLimit  // memory (MemoryError / SIGSEGV on allocation), file size or process limit
};
const char* SandboxVerdictName(SandboxVerdict v);  // "ok", "runtime_error", "timeout", "output_limit", "killed_by_limit"

struct SandboxResult {
  int exit_code = -1;   // valid when signal == 0
  int signal = 0;       // the signal that ended it, 0 if it exited
  std::string stdout_data;
  std::string stderr_data;
  SandboxVerdict verdict = SandboxVerdict::kRuntimeError;
  double wall_ms = 0;
};

struct SandboxFile {
  std::string name;  // relative to the work dir, no '/'
  std::string content;
};

// A long-lived sandboxed process with pipes (for persistent workers).
struct SandboxProcess {
  pid_t pid = -1;       // in our PID namespace; killing it kills the whole sandbox
  int stdin_fd = -1;    // we write
  int stdout_fd = -1;   // we read
  int stderr_fd = -1;   // we read
  std::string workdir;  // host work dir (bwrap, landlock, rlimits); empty for namespaces (in the private /tmp)
  int slot = -1;
};

class Sandbox {
 public:
  struct Options {
    std::string isolation = "auto";  // "auto", "namespaces", "bwrap", "landlock", "rlimits"
    std::string python = "/usr/bin/python3";
    std::string base_dir;            // where work dirs live; default: $TMPDIR or /tmp
    int max_parallel = 32;           // uid slots, at most 64
  };

  // Probes the requested isolation (once; "auto" tries the layers in the order
  // above) by running `true` in it. FAILED_PRECONDITION when an explicitly
  // requested layer does not work here.
  static absl::StatusOr<std::unique_ptr<Sandbox>> Create(const Options& options);
  ~Sandbox();

  Isolation isolation() const { return isolation_; }
  std::string Describe() const;  // e.g. "namespaces (pid,net,mnt,ipc,uts; ro root; uid drop; seccomp)"
  // Why "auto" passed over the stronger layers ("" when the first one worked or one was asked for).
  const std::string& why_not_stronger() const { return why_not_stronger_; }
  const std::string& python() const { return options_.python; }
  uid_t uid_base() const { return uid_base_; }
  const std::string& base_dir() const { return base_dir_; }  // holds the work dirs of running executions  // executions run as uid_base() + slot (when root)

  // Runs argv[0] (absolute path) in a fresh work dir holding `files`, feeding
  // `stdin_data`. Errors only when the sandbox itself fails (INTERNAL); what the
  // program does is reported in the result.
  absl::StatusOr<SandboxResult> Run(const std::vector<std::string>& argv, const std::string& stdin_data,
                                    const SandboxLimits& limits, const std::vector<SandboxFile>& files = {});

  // Starts a long-lived process (no wall limit; the caller enforces timeouts and
  // calls Kill). Limits other than wall_ms and output apply.
  absl::StatusOr<SandboxProcess> Spawn(const std::vector<std::string>& argv, const SandboxLimits& limits,
                                       const std::vector<SandboxFile>& files = {});
  // SIGKILLs the process group, reaps it, closes fds, removes the work dir, frees the slot.
  void Kill(SandboxProcess* p);

 private:
  explicit Sandbox(Options o) : options_(std::move(o)) {}
  absl::Status Probe(Isolation iso);
  absl::StatusOr<SandboxProcess> Start(Isolation iso, const std::vector<std::string>& argv,
                                       const SandboxLimits& limits, const std::vector<SandboxFile>& files);
  int AcquireSlot();
  void ReleaseSlot(int slot);

  Options options_;
  Isolation isolation_ = Isolation::kRlimits;
  std::string why_not_stronger_;
  std::string base_dir_;
  uid_t uid_base_ = 0;
  std::vector<struct sock_filter> seccomp_;         // compiled once, installed in each child
  std::vector<struct sock_filter> seccomp_strict_;  // kLandlock, kRlimits: no sockets, no signals to the server
  std::unique_ptr<LandlockPolicy> landlock_;        // kLandlock (made when it is probed)
  absl::Mutex mu_;
  absl::CondVar slot_free_;
  std::vector<bool> slot_busy_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerorl::reward
