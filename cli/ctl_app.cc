// zerorlctl's top level: global flags, the command tree, dispatch, and the one
// error message on stderr (see ctl_app.h).
#include "cli/ctl_app.h"

#include <CLI/CLI.hpp>

#include "cli/ctl_commands.h"
#include "common/version.h"

namespace zerorl::ctl {

CLI::Option* CommandSet::Choices(CLI::Option* opt, std::vector<std::string> values) {
  opt->check(CLI::IsMember(values));
  choices_[opt] = std::move(values);
  return opt;
}

const CommandSet::Action* CommandSet::Selected() const {
  const Action* selected = nullptr;
  size_t depth = 0;
  for (const auto& [app, action] : leaves_) {
    if (!app->parsed()) continue;
    size_t d = 0;
    for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) ++d;
    if (d > depth) {
      depth = d;
      selected = &action;
    }
  }
  return selected;
}

const std::vector<std::string>* CommandSet::ChoicesOf(const CLI::Option* opt) const {
  auto it = choices_.find(opt);
  return it == choices_.end() ? nullptr : &it->second;
}

int RunZerorlctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err, Runtime* runtime) {
  CLI::App app{"zerorlctl: inspect trajectories, steer runs and hot-swap reward specs of a zerorl deployment.",
               "zerorlctl"};
  app.fallthrough();  // global flags may follow the subcommand: `zerorlctl traj list -o json`
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("zerorlctl ") + kVersion);
  app.footer(
      "Exit codes: 0 ok, 1 server error, 2 usage, 3 unreachable, 4 unauthenticated.\n"
      "Environment: ZERORL_ADDR (--addr), ZERORL_TOKEN_FILE (--token-file),\n"
      "             ZERORL_BUFFER_ADDR (--buffer-addr), ZERORL_REWARD_ADDR (--reward-addr).");

  GlobalFlags flags;
  flags.addr = "localhost:50051";
  CommandSet set;
  app.add_option("--addr", flags.addr, "orchestrator address, or every service's when they share one port")
      ->envname("ZERORL_ADDR")
      ->capture_default_str();
  app.add_option("--buffer-addr", flags.buffer_addr, "BufferService address (default: from the orchestrator)")
      ->envname("ZERORL_BUFFER_ADDR");
  app.add_option("--reward-addr", flags.reward_addr, "RewardService address (default: from the orchestrator)")
      ->envname("ZERORL_REWARD_ADDR");
  set.File(app.add_option("--token-file", flags.token_file, "bearer token for admin calls")
               ->envname("ZERORL_TOKEN_FILE"));
  app.add_flag("--tls", flags.tls, "use TLS (system roots unless --tls-ca)");
  set.File(app.add_option("--tls-ca", flags.tls_ca, "PEM CA bundle to verify the server (implies --tls)"));
  app.add_option("--timeout", flags.timeout, "deadline of each call (10s, 500ms, 2m)")->capture_default_str();
  set.Choices(app.add_option("-o,--output", flags.output, "output format")->capture_default_str(),
              {"table", "json", "jsonl"});

  AddRunCommands(app, set);
  AddTrajCommands(app, set);
  AddRewardCommands(app, set);
  AddCompletionCommand(app, set);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // "A subcommand is required" hides the real mistake when a word was not a command.
    std::vector<std::string> extra = app.remaining(/*recurse=*/true);
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && !extra.empty()) {
      err << "zerorlctl: unknown command \"" << extra.front() << "\" (see zerorlctl --help)\n";
      return 2;
    }
    int code = app.exit(e, out, err);
    return code == 0 ? 0 : 2;
  }
  const CommandSet::Action* action = set.Selected();
  if (action == nullptr) {
    err << app.help();
    return 2;
  }
  Session session(flags, out, runtime);
  absl::Status status = session.Init();
  if (status.ok()) status = (*action)(session);
  out.flush();
  if (!status.ok()) err << "zerorlctl: " << status.message() << "\n";
  return ExitCodeFor(status);
}

}  // namespace zerorl::ctl
