// `zerorl score --spec SPEC --in FILE.jsonl [--out FILE]`: offline batch
// scoring with the same code as RewardService (SpecRegistry + RewardScorer).
//
// Input: one JSON object per line: "completion" (required), "answer" (a string
// for math; {"nums":[..],"target":N} for countdown; an input_output object, or
// its JSON text, for code), optional "id", "prompt", "completion_tokens".
// Output: one JSON object per line, same order: id, reward, correct,
// spec_version, terms {name: value}, verdicts {name: verdict}, details, and
// test_verdicts for code terms. A malformed line is reported (stderr and an
// "error" field naming the line) and scored 0; the rest still run.
// A line nested deeper than kMaxJsonDepth (common/json.h) is malformed.
// A summary line goes to stderr. Exit: 0 ok, 1 spec/file errors (a directory
// as --in included), 2 usage (--threads outside 0..1024 included).
#include <sys/stat.h>

#include <fstream>
#include <thread>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/json.h"
#include "reward/reward_spec.h"
#include "reward/scorer.h"

namespace zerorl {
namespace {

// Fills `item` from one input object; INVALID_ARGUMENT names the bad field.
absl::Status ItemFromJson(const nlohmann::json& j, zerorl::v1::ScoreItem* item) {
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  if (!j.contains("completion") || !j["completion"].is_string()) {
    return absl::InvalidArgumentError("\"completion\" must be a string");
  }
  item->set_completion(j["completion"].get<std::string>());
  if (j.contains("id")) item->set_id(j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump());
  if (j.contains("prompt") && j["prompt"].is_string()) item->set_prompt(j["prompt"].get<std::string>());
  if (j.contains("completion_tokens") && j["completion_tokens"].is_number_integer()) {
    item->set_completion_tokens(j["completion_tokens"].get<int32_t>());
  }
  if (!j.contains("answer")) return absl::InvalidArgumentError("\"answer\" is missing");
  const auto& a = j["answer"];
  if (a.is_string()) {
    auto inner = CheckJsonDepth(a.get<std::string>()).ok()
                     ? nlohmann::json::parse(a.get<std::string>(), nullptr, false)
                     : nlohmann::json(nlohmann::json::value_t::discarded);
    if (!inner.is_discarded() && inner.is_object() && inner.contains("inputs")) {
      item->mutable_answer()->set_code_tests_json(a.get<std::string>());
    } else {
      item->mutable_answer()->set_math(a.get<std::string>());
    }
  } else if (a.is_number()) {
    item->mutable_answer()->set_math(a.dump());
  } else if (a.is_object() && a.contains("nums") && a.contains("target")) {
    if (!a["nums"].is_array() || !a["target"].is_number_integer()) {
      return absl::InvalidArgumentError("answer.nums must be an array and answer.target an integer");
    }
    auto* cd = item->mutable_answer()->mutable_countdown();
    for (const auto& n : a["nums"]) {
      if (!n.is_number_integer()) return absl::InvalidArgumentError("answer.nums must hold integers");
      cd->add_nums(n.get<int64_t>());
    }
    cd->set_target(a["target"].get<int64_t>());
  } else if (a.is_object() && a.contains("inputs")) {
    item->mutable_answer()->set_code_tests_json(a.dump());
  } else {
    return absl::InvalidArgumentError("\"answer\" must be a string, {nums, target} or an input_output object");
  }
  return absl::OkStatus();
}

nlohmann::json ResultToJson(const std::string& id, const zerorl::v1::RewardResult& r) {
  nlohmann::json o;
  o["id"] = id;
  o["reward"] = r.reward();
  o["correct"] = r.correct();
  o["spec_version"] = r.spec_version();
  nlohmann::json terms = nlohmann::json::object(), verdicts = nlohmann::json::object(),
                 details = nlohmann::json::object();
  for (const auto& t : r.terms()) {
    terms[t.name()] = t.value();
    verdicts[t.name()] = t.verdict();
    if (!t.detail().empty()) details[t.name()] = t.detail();
    if (t.test_verdicts_size() > 0) {
      o["test_verdicts"][t.name()] = std::vector<std::string>(t.test_verdicts().begin(), t.test_verdicts().end());
    }
  }
  o["terms"] = terms;
  o["verdicts"] = verdicts;
  o["details"] = details;
  if (!r.error().empty()) o["error"] = r.error();
  return o;
}

}  // namespace

int ScoreCommand(int argc, char** argv) {
  CLI::App app{"Score completions offline under a reward spec.", "zerorl score"};
  std::string spec_path, in_path, out_path, isolation = "auto", python = "/usr/bin/python3";
  int threads = 0;
  app.add_option("--spec", spec_path, "RewardSpec YAML")->required();
  app.add_option("--in", in_path, "input JSONL")->required();
  app.add_option("--out", out_path, "output JSONL (default: stdout)");
  app.add_option("--threads", threads, "scoring threads (default: all cores)");
  app.add_option("--isolation", isolation, "sandbox: auto | namespaces | bwrap | rlimits");
  app.add_option("--python", python, "interpreter for code and python terms");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (auto s = ValidateThreads(threads, "--threads"); !s.ok()) {
    std::cerr << "zerorl score: " << s.message() << "\n";
    return 2;
  }
  if (struct stat st; stat(in_path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) &&
                      !S_ISCHR(st.st_mode)) {
    std::cerr << "zerorl score: --in " << in_path << ": not a file" << (S_ISDIR(st.st_mode) ? " (a directory)" : "")
              << "\n";
    return 1;
  }
  auto spec = reward::LoadRewardSpecFile(spec_path);
  if (!spec.ok()) {
    std::cerr << "zerorl score: " << spec.status().message() << "\n";
    return 1;
  }
  zerorl::v1::SandboxConfig sc;
  sc.set_isolation(isolation);
  sc.set_python(python);
  reward::SpecEnvironment env;
  env.sandbox = reward::MakeSandboxProvider(sc);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  env.python_workers = threads;
  auto registry = std::make_shared<reward::SpecRegistry>(env);
  if (auto v = registry->Set(*spec, "file", spec_path); !v.ok()) {
    std::cerr << "zerorl score: " << spec_path << ": " << v.status().message() << "\n";
    return 1;
  }
  std::ifstream in(in_path);
  if (!in) {
    std::cerr << "zerorl score: cannot open " << in_path << "\n";
    return 1;
  }
  std::vector<zerorl::v1::ScoreItem> items;
  std::vector<std::string> ids, errors;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    zerorl::v1::ScoreItem item;
    auto j = ParseJson(line);
    absl::Status s = j.ok() ? ItemFromJson(*j, &item) : j.status();
    std::string id = item.id().empty() ? absl::StrCat("line", lineno) : item.id();
    ids.push_back(id);
    errors.push_back(s.ok() ? "" : absl::StrCat(in_path, ":", lineno, ": ", s.message()));
    if (!s.ok()) std::cerr << "zerorl score: " << errors.back() << "\n";
    items.push_back(std::move(item));
  }
  reward::RewardScorer scorer(registry, threads);
  auto results = scorer.Score(items);
  if (!results.ok()) {
    std::cerr << "zerorl score: " << results.status().message() << "\n";
    return 1;
  }
  std::ofstream out_file;
  if (!out_path.empty()) {
    out_file.open(out_path);
    if (!out_file) {
      std::cerr << "zerorl score: cannot write " << out_path << "\n";
      return 1;
    }
  }
  std::ostream& out = out_path.empty() ? std::cout : out_file;
  double sum = 0;
  int correct = 0, bad = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    zerorl::v1::RewardResult r = (*results)[i];
    if (!errors[i].empty()) {
      r.Clear();
      r.set_spec_version(registry->Current().version);
      r.set_error(errors[i]);
      ++bad;
    }
    sum += r.reward();
    correct += r.correct() ? 1 : 0;
    out << ResultToJson(ids[i], r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  out.flush();
  std::cerr << "scored " << items.size() << " lines (" << bad << " malformed); mean reward "
            << (items.empty() ? 0.0 : sum / static_cast<double>(items.size())) << ", accuracy "
            << (items.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(items.size())) << "\n";
  return 0;
}

}  // namespace zerorl
