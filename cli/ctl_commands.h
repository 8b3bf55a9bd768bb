// zerorlctl's command tree: each group of commands registers its CLI11
// subcommands, the action each leaf runs, and completion hints (an option's
// fixed values, or "complete file names here").
//
// Actions return absl::Status; ctl_app.cc prints a failure once on stderr and
// exits with ExitCodeFor(status) (ctl_session.h).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "cli/ctl_session.h"

namespace zerorl::ctl {

class CommandSet {
 public:
  using Action = std::function<absl::Status(Session&)>;

  // `app` runs `action` when it is the command given.
  void Add(CLI::App* app, Action action) { leaves_.emplace_back(app, std::move(action)); }
  // Restricts `opt` to `values` (usage error otherwise) and completes them.
  CLI::Option* Choices(CLI::Option* opt, std::vector<std::string> values);
  // Completes file names for `opt`.
  CLI::Option* File(CLI::Option* opt) {
    files_.insert(opt);
    return opt;
  }

  // The action of the deepest parsed command, or null when none was given.
  const Action* Selected() const;
  const std::vector<std::string>* ChoicesOf(const CLI::Option* opt) const;
  bool IsFile(const CLI::Option* opt) const { return files_.count(opt) > 0; }

 private:
  std::vector<std::pair<CLI::App*, Action>> leaves_;
  std::map<const CLI::Option*, std::vector<std::string>> choices_;
  std::set<const CLI::Option*> files_;
};

// runs list|show|pause|resume|stop, workers list, metrics (OrchestratorService).
void AddRunCommands(CLI::App& root, CommandSet& set);
// traj list|show|tail|export (BufferService).
void AddTrajCommands(CLI::App& root, CommandSet& set);
// reward get|set|history|rollback|test (RewardService, BufferService for test).
void AddRewardCommands(CLI::App& root, CommandSet& set);
// completion bash|zsh, generated from `root` (call last: it walks the tree at run time).
void AddCompletionCommand(CLI::App& root, CommandSet& set);

// Completion scripts for the tree under `root` (ctl_completion.cc).
std::string BashCompletion(const CLI::App& root, const CommandSet& set);
std::string ZshCompletion(const CLI::App& root, const CommandSet& set);

}  // namespace zerorl::ctl
