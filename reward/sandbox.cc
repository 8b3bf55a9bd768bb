// Sandbox implementation: start the child with clone(CLONE_VM | CLONE_VFORK)
// (into new namespaces for kNamespaces), harden it, exec, and supervise pipes
// with a wall deadline. The child runs between clone and exec on memory shared
// with a multi-threaded parent, so it only makes raw system calls on data the
// parent prepared.
#include "reward/sandbox.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"

namespace zerorl::reward {
namespace {

constexpr int kMaxSlots = 64;
constexpr uid_t kUidFirst = 100000;

constexpr size_t kChildStackBytes = 256 << 10;  // the clone child's own stack (it shares our memory)

// A file the child creates in its private work dir; name and bytes point into the parent's memory.
struct ChildFile {
  const char* name;
  const char* data;
  size_t size;
};

// Everything the child needs, prepared before clone (no allocation after it).
struct ChildPlan {
  Isolation iso;
  int stdin_fd, stdout_fd, stderr_fd, ctl_fd;
  const char* workdir;       // kBwrap / kLandlock / kRlimits: the host work dir; kNamespaces: unused
  const char* tmpfs_opts;    // kNamespaces: mount options of the private /tmp
  const ChildFile* files;    // kNamespaces: written into /tmp/work before the uid drop
  size_t num_files;
  char* const* argv;
  char* const* envp;
  const char* exe;
  bool drop_uid;
  uid_t uid;
  struct rlimit cpu, as, fsize, nofile, nproc, core;
  const struct sock_fprog* seccomp;
  int keep_fd;  // stays open across exec (bwrap's --seccomp FD), -1 for none
  int landlock_fd;  // kLandlock: the ruleset to restrict the child with, -1 for none
};

[[noreturn]] void ChildFail(int ctl_fd, const char* what) {
  int e = errno;
  ssize_t ignored = write(ctl_fd, &e, sizeof e);
  ignored = write(ctl_fd, what, std::strlen(what));
  (void)ignored;
  _exit(127);
}

// Creates `f` in the current directory as root (before RLIMIT_FSIZE), owned by uid.
void ChildWriteFile(const ChildPlan& p, const ChildFile& f) {
  int fd = open(f.name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) ChildFail(p.ctl_fd, "create input file");
  for (size_t off = 0; off < f.size;) {
    ssize_t w = write(fd, f.data + off, f.size - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) ChildFail(p.ctl_fd, "write input file");
    off += static_cast<size_t>(w);
  }
  if (p.drop_uid && fchown(fd, p.uid, p.uid) < 0) ChildFail(p.ctl_fd, "chown input file");
  close(fd);
}

// kNamespaces: private mounts. Everything read-only; fresh tmpfs on /tmp (holding
// the work dir /tmp/work and its input files), /var/tmp and /dev/shm; fresh /proc.
void ChildMounts(const ChildPlan& p) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) ChildFail(p.ctl_fd, "mount private");
  struct mount_attr ro = {};
  ro.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;
  if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro) < 0) ChildFail(p.ctl_fd, "ro root");
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, p.tmpfs_opts) < 0) ChildFail(p.ctl_fd, "tmpfs");
  if (mkdir("/tmp/work", 0755) < 0) ChildFail(p.ctl_fd, "mkdir /tmp/work");
  if (p.drop_uid && chown("/tmp/work", p.uid, p.uid) < 0) ChildFail(p.ctl_fd, "chown /tmp/work");
  if (chdir("/tmp/work") < 0) ChildFail(p.ctl_fd, "chdir");
  for (size_t i = 0; i < p.num_files; ++i) ChildWriteFile(p, p.files[i]);
  mount("tmpfs", "/var/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777");  // may not exist
  mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) ChildFail(p.ctl_fd, "proc");
}

// Runs on its own stack in a clone(CLONE_VM | CLONE_VFORK) child: it shares our
// memory (nothing is copied, which is what makes it cheap in a large process)
// while the calling thread waits for execve. So it writes no shared state and
// only makes raw system calls; glibc's set*id wrappers are avoided because they
// signal the parent's other threads (and can deadlock in a child).
int ChildMain(void* arg) {
  const ChildPlan& p = *static_cast<const ChildPlan*>(arg);
  // Signals stay blocked (the parent blocked them all around clone) until exec;
  // the parent's handlers must never run here, so reset them to the default.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa;
    if (sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN) {
      sa.sa_handler = SIG_DFL;
      sa.sa_flags = 0;
      sigaction(sig, &sa, nullptr);
    }
  }
  if (dup2(p.stdin_fd, 0) < 0 || dup2(p.stdout_fd, 1) < 0 || dup2(p.stderr_fd, 2) < 0) ChildFail(p.ctl_fd, "dup2");
  if (setsid() < 0) ChildFail(p.ctl_fd, "setsid");
  if (p.iso == Isolation::kNamespaces) {
    ChildMounts(p);
  } else if (p.iso == Isolation::kRlimits || p.iso == Isolation::kLandlock) {
    if (chdir(p.workdir) < 0) ChildFail(p.ctl_fd, "chdir");
  }
  if (setrlimit(RLIMIT_CPU, &p.cpu) < 0 || setrlimit(RLIMIT_AS, &p.as) < 0 || setrlimit(RLIMIT_FSIZE, &p.fsize) < 0 ||
      setrlimit(RLIMIT_NOFILE, &p.nofile) < 0 || setrlimit(RLIMIT_NPROC, &p.nproc) < 0 ||
      setrlimit(RLIMIT_CORE, &p.core) < 0) {
    ChildFail(p.ctl_fd, "setrlimit");
  }
  if (p.drop_uid) {
    if (syscall(SYS_setgroups, 0, nullptr) < 0) ChildFail(p.ctl_fd, "setgroups");
    if (syscall(SYS_setresgid, p.uid, p.uid, p.uid) < 0) ChildFail(p.ctl_fd, "setgid");
    if (syscall(SYS_setresuid, p.uid, p.uid, p.uid) < 0) ChildFail(p.ctl_fd, "setuid");
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (p.iso != Isolation::kBwrap) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) ChildFail(p.ctl_fd, "no_new_privs");
    if (p.landlock_fd >= 0 && LandlockPolicy::RestrictSelfInChild(p.landlock_fd) < 0) ChildFail(p.ctl_fd, "landlock");
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, p.seccomp) < 0) ChildFail(p.ctl_fd, "seccomp");
  }
  // Everything else (our sockets, files) closes at exec; the control pipe tells the parent exec happened.
  syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  if (p.keep_fd >= 0 && fcntl(p.keep_fd, F_SETFD, 0) < 0) ChildFail(p.ctl_fd, "keep bpf fd");
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);  // the program starts with no signal blocked
  execve(p.exe, p.argv, p.envp);
  ChildFail(p.ctl_fd, "execve");
}

// The seccomp filter as raw BPF (built with libseccomp in the parent). `strict`
// (kLandlock, kRlimits: no namespace between the program and the server) also
// refuses every socket and the signals that could reach the server: kill(-1),
// kill/tgkill/sigqueue/pidfd_open at `server` or its process group, tkill (any
// thread id) and pidfd_send_signal. `no_fork` (those layers without root: the
// program keeps the server's uid, whose RLIMIT_NPROC counts every process of
// that uid on the node, so it cannot bound the program) refuses new processes:
// clone without CLONE_THREAD, fork, vfork, and clone3 (ENOSYS, so libc falls
// back to clone for threads); and setsid/setpgid, so the group kill reaches all.
absl::StatusOr<std::vector<struct sock_filter>> BuildSeccomp(bool strict, bool no_fork, pid_t server) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  auto deny = [&](int nr) { return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0); };
  int rc = 0;
  for (int nr : {SCMP_SYS(ptrace), SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(reboot), SCMP_SYS(kexec_load),
                 SCMP_SYS(kexec_file_load), SCMP_SYS(init_module), SCMP_SYS(finit_module), SCMP_SYS(delete_module),
                 SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(chroot), SCMP_SYS(pivot_root), SCMP_SYS(bpf),
                 SCMP_SYS(perf_event_open), SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key),
                 SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
                 SCMP_SYS(open_by_handle_at), SCMP_SYS(name_to_handle_at), SCMP_SYS(acct), SCMP_SYS(settimeofday),
                 SCMP_SYS(clock_settime), SCMP_SYS(sethostname), SCMP_SYS(setdomainname), SCMP_SYS(iopl),
                 SCMP_SYS(ioperm), SCMP_SYS(quotactl), SCMP_SYS(userfaultfd), SCMP_SYS(mount_setattr),
                 SCMP_SYS(fsopen), SCMP_SYS(fsmount), SCMP_SYS(move_mount), SCMP_SYS(open_tree)}) {
    rc |= deny(nr);
  }
  if (strict) {
    rc |= deny(SCMP_SYS(socket));
    rc |= deny(SCMP_SYS(tkill));
    rc |= deny(SCMP_SYS(pidfd_send_signal));
    // pid_t is 32 bits: compare the low half of the argument.
    auto deny_pid = [&](int nr, int32_t pid) {
      return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint32_t>(pid)));
    };
    const pid_t pgrp = getpgid(server);
    std::vector<int32_t> targets = {static_cast<int32_t>(server), -1};
    if (pgrp > 1) targets.push_back(-static_cast<int32_t>(pgrp));
    for (int32_t target : targets) rc |= deny_pid(SCMP_SYS(kill), target);
    for (int nr : {SCMP_SYS(tgkill), SCMP_SYS(rt_sigqueueinfo), SCMP_SYS(rt_tgsigqueueinfo), SCMP_SYS(pidfd_open)}) {
      rc |= deny_pid(nr, static_cast<int32_t>(server));
    }
    if (no_fork) {
      rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
      rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
      for (int nr : {SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(setsid), SCMP_SYS(setpgid)}) rc |= deny(nr);
    }
  } else {
    // No sockets except AF_UNIX (the network namespace already has no interfaces but lo).
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX));
  }
  if (rc != 0) {
    seccomp_release(ctx);
    return absl::InternalError("seccomp_rule_add failed");
  }
  int fd = memfd_create("zerorl-seccomp", MFD_CLOEXEC);
  if (fd < 0 || seccomp_export_bpf(ctx, fd) != 0) {
    seccomp_release(ctx);
    if (fd >= 0) close(fd);
    return absl::InternalError("seccomp_export_bpf failed");
  }
  seccomp_release(ctx);
  off_t size = lseek(fd, 0, SEEK_END);
  std::vector<struct sock_filter> prog(static_cast<size_t>(size) / sizeof(struct sock_filter));
  if (pread(fd, prog.data(), static_cast<size_t>(size), 0) != size) {
    close(fd);
    return absl::InternalError("reading the seccomp program failed");
  }
  close(fd);
  return prog;
}

struct rlimit Limit(rlim_t v) { return {v, v}; }

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

double MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// The input files' total size; an error for a name that is not one plain file name.
absl::StatusOr<size_t> CheckInputFiles(const std::vector<SandboxFile>& files) {
  size_t bytes = 0;
  for (const auto& f : files) {
    if (f.name.empty() || f.name == "." || f.name == ".." || f.name.find('/') != std::string::npos ||
        f.name.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("sandbox: bad file name \"", f.name, "\""));
    }
    bytes += f.content.size();
  }
  return bytes;
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat("sandbox: ", what, ": ", strerror(errno)));
}

// A host work dir under base_dir holding the input files (bwrap, Landlock,
// rlimits), owned by uid when drop_uid. *workdir is set as soon as the
// directory exists, so that Kill removes it whatever fails after.
absl::Status WriteHostWorkdir(const std::string& base_dir, const std::vector<SandboxFile>& files, bool drop_uid,
                              uid_t uid, std::string* workdir) {
  std::string wd = base_dir + "/w-XXXXXX";
  if (mkdtemp(wd.data()) == nullptr) return Errno("mkdtemp");
  *workdir = wd;
  if (drop_uid && chown(wd.c_str(), uid, uid) < 0) return Errno("chown workdir");
  for (const auto& f : files) {
    const std::string path = wd + "/" + f.name;
    std::ofstream out(path, std::ios::binary);
    out << f.content;
    if (!out) return Errno("writing " + f.name);
    out.close();
    if (drop_uid && chown(path.c_str(), uid, uid) < 0) return Errno("chown file");
  }
  return absl::OkStatus();
}

// The program's whole environment. Without a private /tmp (Landlock,
// rlimits), scratch files go to the work dir: nothing else is writable.
std::vector<std::string> ChildEnv(Isolation iso, const std::string& workdir) {
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp",
                                  "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8"};
  if (iso == Isolation::kLandlock || iso == Isolation::kRlimits) {
    env[2] = "HOME=" + workdir;
    env.push_back("TMPDIR=" + workdir);
  }
  return env;
}

// kBwrap: the bwrap command line that runs the program in workdir with `env`
// and the seccomp program read from bpf_fd.
std::vector<std::string> BwrapPrefix(const std::string& wd, const std::vector<std::string>& env, int bpf_fd) {
  std::vector<std::string> bw = {"/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                                 "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                                 "--bind", wd, wd, "--chdir", wd, "--clearenv", "--cap-drop", "ALL",
                                 "--seccomp", std::to_string(bpf_fd)};
  for (const auto& e : env) {
    const size_t eq = e.find('=');
    bw.insert(bw.end(), {"--setenv", e.substr(0, eq), e.substr(eq + 1)});
  }
  bw.push_back("--");
  return bw;
}

// The child's resource limits.
void SetChildLimits(const SandboxLimits& limits, Isolation iso, bool drop_uid, ChildPlan* plan) {
  const rlim_t cpu = static_cast<rlim_t>(std::ceil(std::max(0.001, limits.cpu_seconds)));
  plan->cpu = {cpu, cpu + 1};
  plan->as = Limit(static_cast<rlim_t>(limits.memory_bytes));
  plan->fsize = Limit(static_cast<rlim_t>(limits.max_file_bytes));
  plan->nofile = Limit(static_cast<rlim_t>(limits.max_open_files));
  plan->nproc = Limit(static_cast<rlim_t>(limits.max_processes));
  if (!drop_uid && iso != Isolation::kBwrap && iso != Isolation::kNamespaces) {
    // Our own uid: its RLIMIT_NPROC counts the server's threads and every process of the uid on the node,
    // so keep ours; the strict filter refuses new processes instead.
    getrlimit(RLIMIT_NPROC, &plan->nproc);
  }
  plan->core = Limit(0);
  if (iso == Isolation::kBwrap) {
    // bwrap itself needs a few processes and more address space than the program.
    plan->nproc = Limit(static_cast<rlim_t>(limits.max_processes + 4));
  }
}

// clone(CLONE_VM | CLONE_VFORK), like posix_spawn: no copy of our address
// space (a full fork of this large, library-heavy process cost ~15 ms per run
// in page-table copy and teardown); this thread sleeps until the child execs
// or exits. All signals stay blocked across it so no handler of ours runs in
// the child. Returns the pid, or -1 with errno set.
pid_t CloneChild(ChildPlan* plan, Isolation iso) {
  int clone_flags = CLONE_VM | CLONE_VFORK | SIGCHLD;
  if (iso == Isolation::kNamespaces) {
    clone_flags |= CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
  }
  void* stack = mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -1;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  const pid_t pid = clone(ChildMain, static_cast<char*>(stack) + kChildStackBytes, clone_flags, plan);
  const int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  munmap(stack, kChildStackBytes);
  errno = clone_errno;
  return pid;
}

// Reads (and closes) the control pipe once the child has exec'd or exited:
// it closed at exec, so a message means setup failed at the step it names.
absl::Status ChildSetupStatus(int ctl_fd) {
  char buf[256];
  ssize_t n;
  do {
    n = read(ctl_fd, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  close(ctl_fd);
  if (n <= 0) return absl::OkStatus();
  int child_errno = 0;
  std::memcpy(&child_errno, buf, std::min<size_t>(sizeof child_errno, static_cast<size_t>(n)));
  const std::string step(buf + sizeof(int), n > static_cast<ssize_t>(sizeof(int)) ? n - sizeof(int) : 0);
  return absl::InternalError(absl::StrCat("sandbox setup failed at ", step, ": ", strerror(child_errno)));
}

}  // namespace

const char* IsolationName(Isolation i) {
  switch (i) {
    case Isolation::kNamespaces: return "namespaces";
    case Isolation::kBwrap: return "bwrap";
    case Isolation::kLandlock: return "landlock";
    case Isolation::kRlimits: return "rlimits";
  }
  return "?";
}

const char* SandboxVerdictName(SandboxVerdict v) {
  switch (v) {
    case SandboxVerdict::kOk: return "ok";
    case SandboxVerdict::kRuntimeError: return "runtime_error";
    case SandboxVerdict::kTimeout: return "timeout";
    case SandboxVerdict::kOutputLimit: return "output_limit";
    case SandboxVerdict::kKilledByLimit: return "killed_by_limit";
  }
  return "?";
}

SandboxLimits SandboxLimits::FromConfig(const zerorl::v1::SandboxConfig& c) {
  SandboxLimits l;
  if (c.cpu_seconds() > 0) l.cpu_seconds = c.cpu_seconds();
  if (c.memory_mb() > 0) l.memory_bytes = c.memory_mb() << 20;
  if (c.wall_ms() > 0) l.wall_ms = c.wall_ms();
  if (c.max_output_bytes() > 0) l.max_output_bytes = c.max_output_bytes();
  if (c.max_processes() > 0) l.max_processes = c.max_processes();
  if (c.max_file_bytes() > 0) l.max_file_bytes = c.max_file_bytes();
  return l;
}

absl::StatusOr<std::unique_ptr<Sandbox>> Sandbox::Create(const Options& options) {
  signal(SIGPIPE, SIG_IGN);  // a child closing stdin early must not kill us
  std::unique_ptr<Sandbox> sb(new Sandbox(options));
  {
    absl::MutexLock lock(&sb->mu_);
    sb->slot_busy_.assign(std::clamp(options.max_parallel, 1, kMaxSlots), false);
  }
  // Each sandbox (one per process, usually) gets its own block of uids, so two
  // processes on one host do not share RLIMIT_NPROC counts or kill(-1) reach.
  sb->uid_base_ = kUidFirst + static_cast<uid_t>(getpid() % 10000) * kMaxSlots;
  ZRL_ASSIGN_OR_RETURN(sb->seccomp_, BuildSeccomp(false, false, getpid()));
  ZRL_ASSIGN_OR_RETURN(sb->seccomp_strict_, BuildSeccomp(true, geteuid() != 0, getpid()));
  std::string base = options.base_dir;
  if (base.empty()) base = getenv("TMPDIR") != nullptr ? getenv("TMPDIR") : "/tmp";
  std::string tmpl = base + "/zerorl-sandbox-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("creating the sandbox base dir under ", base, ": ", strerror(errno)));
  }
  chmod(tmpl.c_str(), 0711);  // sandbox uids traverse it to reach their own work dir
  sb->base_dir_ = tmpl;
  if (access(options.python.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("sandbox python \"", options.python, "\" is not executable"));
  }
  std::vector<Isolation> order;
  std::string why;
  if (options.isolation == "auto") {
    // Landlock with signal scoping hides the server's files, which bwrap's read-only root shows; without
    // scoping a program under the server's uid could signal it, which bwrap's pid namespace prevents.
    auto abi = LandlockAbi();
    if (abi.ok() && *abi >= 6) {
      order = {Isolation::kNamespaces, Isolation::kLandlock, Isolation::kBwrap, Isolation::kRlimits};
    } else {
      order = {Isolation::kNamespaces, Isolation::kBwrap, Isolation::kLandlock, Isolation::kRlimits};
      if (abi.ok()) absl::StrAppend(&why, "landlock: ABI ", *abi, " < 6 scopes no signals, bwrap tried first; ");
    }
  } else if (options.isolation == "namespaces") {
    order = {Isolation::kNamespaces};
  } else if (options.isolation == "bwrap") {
    order = {Isolation::kBwrap};
  } else if (options.isolation == "landlock") {
    order = {Isolation::kLandlock};
  } else if (options.isolation == "rlimits") {
    order = {Isolation::kRlimits};
  } else {
    return absl::InvalidArgumentError(absl::StrCat("reward.sandbox.isolation: unknown value \"", options.isolation,
                                                   "\" (auto, namespaces, bwrap, landlock, rlimits)"));
  }
  for (Isolation iso : order) {
    absl::Status s = sb->Probe(iso);
    if (s.ok()) {
      sb->isolation_ = iso;
      sb->why_not_stronger_ = why;
      if (geteuid() != 0 && (iso == Isolation::kLandlock || iso == Isolation::kRlimits)) {
        // Programs run under our own uid: keep our /proc/PID/{mem,environ,fd} and ptrace closed to them.
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
      }
      ZLOG(INFO) << "sandbox: " << sb->Describe()
                 << (why.empty() ? std::string() : absl::StrCat(" (not stronger layers: ", why, ")"));
      return sb;
    }
    absl::StrAppend(&why, IsolationName(iso), ": ", s.message(), "; ");
  }
  return absl::FailedPreconditionError(absl::StrCat("no sandbox isolation works here (", why, ")"));
}

Sandbox::~Sandbox() {
  std::error_code ec;
  std::filesystem::remove_all(base_dir_, ec);
}

std::string Sandbox::Describe() const {
  switch (isolation_) {
    case Isolation::kNamespaces:
      return "namespaces (pid,net,mnt,ipc,uts; read-only mounts; private /tmp and /proc; uid drop; rlimits; seccomp)";
    case Isolation::kBwrap:
      return "bwrap (--unshare-all, read-only /, private /tmp and /proc; rlimits; seccomp)";
    case Isolation::kLandlock:
      return absl::StrCat("landlock (", landlock_ ? landlock_->Describe() : std::string("?"), "; own session; ",
                          geteuid() == 0 ? "uid drop; " : "", "rlimits; seccomp, no sockets)");
    case Isolation::kRlimits:
      return geteuid() == 0 ? "rlimits (own session; uid drop; rlimits; seccomp, no sockets; NO namespaces)"
                            : "rlimits (own session; rlimits; seccomp, no sockets; NO namespaces, NO uid drop, "
                              "NO file system isolation)";
  }
  return "?";
}

absl::Status Sandbox::Probe(Isolation iso) {
  if (iso == Isolation::kBwrap && access("/usr/bin/bwrap", X_OK) != 0) {
    return absl::FailedPreconditionError("/usr/bin/bwrap not found");
  }
  if (iso == Isolation::kLandlock && landlock_ == nullptr) {
    // The interpreter's prefix (e.g. a venv outside /usr) must stay readable.
    std::vector<std::string> extra;
    std::error_code ec;
    std::filesystem::path py = std::filesystem::canonical(options_.python, ec);
    if (!ec && py.has_parent_path() && py.parent_path().has_parent_path()) {
      std::string prefix = py.parent_path().parent_path().string();
      if (prefix != "/" && prefix.rfind("/usr", 0) != 0) extra.push_back(prefix);
    }
    ZRL_ASSIGN_OR_RETURN(landlock_, LandlockPolicy::Create(extra));
  }
  isolation_ = iso;
  SandboxLimits limits;
  ZRL_ASSIGN_OR_RETURN(SandboxResult r, Run({"/bin/true"}, "", limits, {}));
  if (r.verdict != SandboxVerdict::kOk) {
    return absl::FailedPreconditionError(absl::StrCat("probe ended with ", SandboxVerdictName(r.verdict), " (exit ",
                                                      r.exit_code, ", signal ", r.signal, "): ", r.stderr_data));
  }
  return absl::OkStatus();
}

int Sandbox::AcquireSlot() {
  absl::MutexLock lock(&mu_);
  while (true) {
    for (size_t i = 0; i < slot_busy_.size(); ++i) {
      if (!slot_busy_[i]) {
        slot_busy_[i] = true;
        return static_cast<int>(i);
      }
    }
    slot_free_.Wait(&mu_);
  }
}

void Sandbox::ReleaseSlot(int slot) {
  {
    absl::MutexLock lock(&mu_);
    slot_busy_[static_cast<size_t>(slot)] = false;
  }
  slot_free_.Signal();
}

absl::StatusOr<SandboxProcess> Sandbox::Start(Isolation iso, const std::vector<std::string>& argv_in,
                                              const SandboxLimits& limits, const std::vector<SandboxFile>& files) {
  if (argv_in.empty()) return absl::InvalidArgumentError("sandbox: empty argv");
  ZRL_ASSIGN_OR_RETURN(const size_t input_bytes, CheckInputFiles(files));
  SandboxProcess proc;
  proc.slot = AcquireSlot();
  const uid_t uid = static_cast<uid_t>(uid_base_ + proc.slot);
  const bool drop_uid = geteuid() == 0 && iso != Isolation::kBwrap;
  auto fail = [&](absl::Status s) {
    Kill(&proc);
    return s;
  };
  // kNamespaces keeps the work dir inside the child's private /tmp (the child
  // writes the files); the other layers use a host directory under base_dir_.
  std::vector<ChildFile> child_files;
  if (iso == Isolation::kNamespaces) {
    for (const auto& f : files) child_files.push_back({f.name.c_str(), f.content.data(), f.content.size()});
  } else if (absl::Status s = WriteHostWorkdir(base_dir_, files, drop_uid, uid, &proc.workdir); !s.ok()) {
    return fail(s);
  }
  // The private /tmp holds the inputs plus room for what the program writes.
  const std::string tmpfs_opts = absl::StrCat(
      "size=", input_bytes + std::max<int64_t>(16ll << 20, 2 * limits.max_file_bytes), ",mode=1777");

  std::vector<std::string> argv = argv_in;
  const std::vector<std::string> env = ChildEnv(iso, proc.workdir);
  int landlock_fd = -1;
  if (iso == Isolation::kLandlock) {
    auto rs = landlock_->MakeRuleset(proc.workdir);
    if (!rs.ok()) return fail(rs.status());
    landlock_fd = *rs;
  }
  int bpf_fd = -1;
  if (iso == Isolation::kBwrap) {
    bpf_fd = memfd_create("zerorl-bpf", 0);
    const size_t bytes = seccomp_.size() * sizeof(struct sock_filter);
    if (bpf_fd < 0 || write(bpf_fd, seccomp_.data(), bytes) != static_cast<ssize_t>(bytes)) {
      const absl::Status s = Errno("bpf memfd");
      if (bpf_fd >= 0) close(bpf_fd);
      return fail(s);
    }
    lseek(bpf_fd, 0, SEEK_SET);
    const std::vector<std::string> bw = BwrapPrefix(proc.workdir, env, bpf_fd);
    argv.insert(argv.begin(), bw.begin(), bw.end());
  }
  std::vector<char*> argv_c = CStrings(argv), env_c = CStrings(env);
  const bool strict = iso == Isolation::kLandlock || iso == Isolation::kRlimits;
  std::vector<struct sock_filter>& filter = strict ? seccomp_strict_ : seccomp_;
  struct sock_fprog prog = {static_cast<unsigned short>(filter.size()), filter.data()};

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, ctl[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0) {
    const absl::Status s = Errno("pipe");
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1], ctl[0], ctl[1], bpf_fd, landlock_fd}) {
      if (fd >= 0) close(fd);
    }
    return fail(s);
  }
  ChildPlan plan;
  plan.iso = iso;
  plan.stdin_fd = in[0];
  plan.stdout_fd = out[1];
  plan.stderr_fd = err[1];
  plan.ctl_fd = ctl[1];
  plan.workdir = proc.workdir.c_str();
  plan.tmpfs_opts = tmpfs_opts.c_str();
  plan.files = child_files.data();
  plan.num_files = child_files.size();
  plan.argv = argv_c.data();
  plan.envp = env_c.data();
  plan.exe = argv[0].c_str();
  plan.drop_uid = drop_uid;
  plan.uid = uid;
  SetChildLimits(limits, iso, drop_uid, &plan);
  plan.seccomp = &prog;
  plan.keep_fd = bpf_fd;
  plan.landlock_fd = landlock_fd;

  const pid_t pid = CloneChild(&plan, iso);
  const absl::Status clone_status = pid < 0 ? Errno("clone") : absl::OkStatus();
  for (int fd : {in[0], out[1], err[1], ctl[1]}) close(fd);
  if (bpf_fd >= 0) close(bpf_fd);
  if (landlock_fd >= 0) close(landlock_fd);
  if (pid < 0) {
    for (int fd : {in[1], out[0], err[0], ctl[0]}) close(fd);
    return fail(clone_status);
  }
  proc.pid = pid;
  proc.stdin_fd = in[1];
  proc.stdout_fd = out[0];
  proc.stderr_fd = err[0];
  if (absl::Status s = ChildSetupStatus(ctl[0]); !s.ok()) return fail(s);
  return proc;
}

absl::StatusOr<SandboxProcess> Sandbox::Spawn(const std::vector<std::string>& argv, const SandboxLimits& limits,
                                              const std::vector<SandboxFile>& files) {
  return Start(isolation_, argv, limits, files);
}

void Sandbox::Kill(SandboxProcess* p) {
  if (p->pid > 0) {
    kill(-p->pid, SIGKILL);  // the whole process group (the leader's pid namespace dies with it)
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    p->pid = -1;
  }
  for (int* fd : {&p->stdin_fd, &p->stdout_fd, &p->stderr_fd}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  if (!p->workdir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(p->workdir, ec);
    p->workdir.clear();
  }
  if (p->slot >= 0) {
    ReleaseSlot(p->slot);
    p->slot = -1;
  }
}

absl::StatusOr<SandboxResult> Sandbox::Run(const std::vector<std::string>& argv, const std::string& stdin_data,
                                           const SandboxLimits& limits, const std::vector<SandboxFile>& files) {
  auto t0 = std::chrono::steady_clock::now();
  ZRL_ASSIGN_OR_RETURN(SandboxProcess p, Start(isolation_, argv, limits, files));
  SandboxResult r;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, p.pid, 0));
  fcntl(p.stdin_fd, F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (stdin_data.empty()) {
    close(p.stdin_fd);
    p.stdin_fd = -1;
  }
  bool timed_out = false, flooded = false, exited = false;
  int status = 0;
  auto deadline = t0 + std::chrono::milliseconds(limits.wall_ms);
  while (p.stdout_fd >= 0 || p.stderr_fd >= 0 || !exited) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd fds[4];
    int nfds = 0;
    auto add = [&](int fd, short ev) {
      fds[nfds].fd = fd;
      fds[nfds].events = ev;
      fds[nfds].revents = 0;
      ++nfds;
    };
    add(p.stdout_fd, POLLIN);
    add(p.stderr_fd, POLLIN);
    add(p.stdin_fd, POLLOUT);
    add(exited ? -1 : pidfd, POLLIN);
    int rc = poll(fds, nfds, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR) break;
    if (fds[2].revents != 0 && p.stdin_fd >= 0) {
      ssize_t w = write(p.stdin_fd, stdin_data.data() + written, std::min<size_t>(65536, stdin_data.size() - written));
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN) written = stdin_data.size();
      if (written >= stdin_data.size()) {
        close(p.stdin_fd);
        p.stdin_fd = -1;
      }
    }
    for (int k = 0; k < 2; ++k) {
      int* fd = k == 0 ? &p.stdout_fd : &p.stderr_fd;
      std::string* sink = k == 0 ? &r.stdout_data : &r.stderr_data;
      if (*fd < 0 || fds[k].revents == 0) continue;
      char buf[65536];
      ssize_t n = read(*fd, buf, sizeof buf);
      if (n > 0) {
        size_t room = static_cast<size_t>(limits.max_output_bytes) - std::min(sink->size(),
                                                                               static_cast<size_t>(limits.max_output_bytes));
        sink->append(buf, std::min(room, static_cast<size_t>(n)));
        if (static_cast<size_t>(n) > room) flooded = true;
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        close(*fd);
        *fd = -1;
      }
    }
    if (flooded) break;
    if (!exited && fds[3].revents != 0) {
      if (waitpid(p.pid, &status, WNOHANG) == p.pid) {
        exited = true;
        kill(-p.pid, SIGKILL);  // stragglers in the group (rlimits mode); the pid ns is already gone
        p.pid = -1;
      }
    }
  }
  if (!exited && p.pid > 0) {
    kill(-p.pid, SIGKILL);
    kill(p.pid, SIGKILL);
    while (waitpid(p.pid, &status, 0) < 0 && errno == EINTR) {
    }
    p.pid = -1;
  }
  if (pidfd >= 0) close(pidfd);
  Kill(&p);
  r.wall_ms = MsSince(t0);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (timed_out) {
    r.verdict = SandboxVerdict::kTimeout;
  } else if (flooded) {
    r.verdict = SandboxVerdict::kOutputLimit;
  } else if (r.signal == SIGXCPU || r.signal == SIGKILL) {
    r.verdict = SandboxVerdict::kTimeout;  // CPU soft limit (SIGXCPU) or hard limit (SIGKILL)
  } else if (r.signal == SIGXFSZ) {
    r.verdict = SandboxVerdict::kKilledByLimit;
  } else if (r.signal == 0 && r.exit_code == 0) {
    r.verdict = SandboxVerdict::kOk;
  } else if (r.stderr_data.find("MemoryError") != std::string::npos) {
    r.verdict = SandboxVerdict::kKilledByLimit;
  } else {
    r.verdict = SandboxVerdict::kRuntimeError;
  }
  return r;
}

}  // namespace zerorl::reward
