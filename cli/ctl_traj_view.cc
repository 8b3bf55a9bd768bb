// Rendering of one trajectory for `zerorlctl traj show` (see ctl_traj_view.h).
#include "cli/ctl_traj_view.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/ctl_output.h"

namespace zerorl::ctl {
namespace {

// Splits UTF-8 text into code points (each as a string).
std::vector<std::string> CodePoints(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size();) {
    size_t j = i + 1;
    while (j < text.size() && (static_cast<unsigned char>(text[j]) & 0xC0) == 0x80) ++j;
    out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string Quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '\n') q += "\\n";
    else if (c == '\t') q += "\\t";
    else if (c == '"') q += "\\\"";
    else q += c;
  }
  return q + "\"";
}

void PrintBlock(std::ostream& out, const std::string& title, const std::string& text) {
  out << title << ":\n";
  if (text.empty()) {
    out << "  (empty)\n";
    return;
  }
  for (absl::string_view line : absl::StrSplit(text, '\n')) out << "  " << line << "\n";
}

std::string AnswerText(const zerorl::v1::Answer& a) {
  switch (a.kind_case()) {
    case zerorl::v1::Answer::kMath: return a.math();
    case zerorl::v1::Answer::kCountdown:
      return absl::StrCat("target ", a.countdown().target(), " from [", absl::StrJoin(a.countdown().nums(), ", "),
                          "]");
    case zerorl::v1::Answer::kCodeTestsJson: return Preview(a.code_tests_json(), 120);
    case zerorl::v1::Answer::kText: return a.text();
    default: return "-";
  }
}

}  // namespace

LogprobSummary SummarizeLogprobs(const zerorl::v1::Sample& sample, int k) {
  LogprobSummary s;
  const int n = sample.logprobs_size();
  s.tokens = n;
  if (n == 0) return s;
  std::vector<std::string> chars = CodePoints(sample.text());
  s.has_text = static_cast<int>(chars.size()) == sample.token_ids_size() && sample.token_ids_size() == n;
  double sum = 0;
  for (float lp : sample.logprobs()) sum += lp;
  s.mean = sum / n;
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  const int top = std::min(k, n);
  std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](int a, int b) {
    return sample.logprobs(a) < sample.logprobs(b) || (sample.logprobs(a) == sample.logprobs(b) && a < b);
  });
  s.min = sample.logprobs(order[0]);
  for (int i = 0; i < top; ++i) {
    LowToken t;
    t.position = order[i];
    t.token_id = order[i] < sample.token_ids_size() ? sample.token_ids(order[i]) : -1;
    t.logprob = sample.logprobs(order[i]);
    if (s.has_text) t.text = chars[order[i]];
    s.lowest.push_back(std::move(t));
  }
  return s;
}

void PrintTerms(std::ostream& out, const zerorl::v1::RewardResult& r, const std::string& indent) {
  Table t({"TERM", "VALUE", "WEIGHT", "WEIGHTED", "VERDICT", "DETAIL"});
  for (const auto& term : r.terms())
    t.AddRow({term.name(), FormatNumber(term.value()), FormatNumber(term.weight()),
              FormatNumber(term.value() * term.weight()), term.verdict().empty() ? "-" : term.verdict(),
              Preview(term.detail(), 80)});
  std::ostringstream body;
  t.Print(body);
  for (absl::string_view line : absl::StrSplit(body.str(), '\n', absl::SkipEmpty())) out << indent << line << "\n";
  for (const auto& term : r.terms())
    if (term.test_verdicts_size() > 0)
      out << indent << term.name() << " tests: " << absl::StrJoin(term.test_verdicts(), " ") << "\n";
}

namespace {

// One line: "79 tokens x 3 MoE layers x top-2 of 8 experts (uint8, 474 bytes)",
// plus the most used expert; "none" for an empty record.
std::string RoutingRecordSummary(const zerorl::v1::RoutingRecord& rec) {
  if (rec.tokens() == 0 && rec.expert_ids().empty()) return "none";
  const int width = rec.n_experts() <= 256 ? 1 : 2;  // model/routing_record.h
  std::string s = absl::StrCat(rec.tokens(), " tokens x ", rec.moe_layers(), " MoE layers x top-", rec.top_k(),
                               " of ", rec.n_experts(), " experts (", width == 1 ? "uint8" : "uint16", ", ",
                               rec.expert_ids().size(), " bytes)");
  if (rec.n_experts() <= 0 || rec.n_experts() > 65536) return s;
  std::vector<int64_t> count(rec.n_experts(), 0);
  const auto* b = reinterpret_cast<const uint8_t*>(rec.expert_ids().data());
  const size_t n = rec.expert_ids().size() / width;
  for (size_t i = 0; i < n; ++i) {
    const int v = width == 1 ? b[i] : (b[2 * i] | (b[2 * i + 1] << 8));
    if (v < rec.n_experts()) ++count[v];
  }
  if (n == 0) return s;
  const auto top = std::max_element(count.begin(), count.end());
  absl::StrAppend(&s, "; most used expert ", top - count.begin(), " (", *top * 100 / static_cast<int64_t>(n),
                  "% of picks)");
  return s;
}

}  // namespace

void PrintTrajectory(std::ostream& out, const zerorl::v1::Trajectory& t) {
  const auto& sample = t.sample();
  const auto& reward = t.reward();
  out << "trajectory     " << FormatId(t.id()) << "\n";
  out << "created        " << FormatTime(t.created_unix_ms()) << " UTC\n";
  out << "prompt id      " << (t.prompt().id().empty() ? "-" : t.prompt().id())
      << (t.prompt().dataset().empty() ? "" : " (" + t.prompt().dataset() + ")") << "\n";
  out << "policy         version " << sample.policy_version()
      << (sample.worker().empty() ? "" : ", worker " + sample.worker()) << "\n";
  if (sample.version_spans_size() > 1) {  // a partial rollout: tokens from several versions
    out << "versions      ";
    for (int i = 0; i < sample.version_spans_size(); ++i) {
      const int32_t from = sample.version_spans(i).first_token();
      const int32_t to = i + 1 < sample.version_spans_size() ? sample.version_spans(i + 1).first_token()
                                                             : sample.token_ids_size();
      out << (i ? ", " : " ") << "v" << sample.version_spans(i).version() << " tokens " << from << "-" << to - 1;
    }
    out << "\n";
  }
  out << "reward spec    version " << reward.spec_version() << "\n";
  out << "reward         " << FormatNumber(reward.reward()) << (reward.correct() ? "  correct" : "  not correct")
      << "\n";
  if (!reward.error().empty()) out << "scoring error  " << reward.error() << "\n";
  out << "finish         " << FinishName(sample.finish_reason()) << ", " << sample.token_ids_size()
      << " tokens\n";
  if (sample.has_routing()) out << "routing        " << RoutingRecordSummary(sample.routing()) << "\n";
  out << "answer         " << AnswerText(t.prompt().answer()) << "\n\n";
  PrintBlock(out, "prompt", t.prompt().text());
  out << "\n";
  PrintBlock(out, "completion", sample.text());
  out << "\nreward terms:\n";
  if (reward.terms_size() == 0) {
    out << "  (none)\n";
  } else {
    PrintTerms(out, reward, "  ");
  }

  out << "\nlogprobs:\n";
  LogprobSummary lp = SummarizeLogprobs(sample, 5);
  if (lp.tokens == 0) {
    out << "  (none recorded)\n";
    return;
  }
  out << absl::StrFormat("  %d tokens, mean %.4f nats/token (perplexity %.3g), min %.4f\n", lp.tokens, lp.mean,
                         std::exp(-lp.mean), lp.min);
  if (sample.sampling_logprobs_size() == lp.tokens) {
    double sum = 0;
    for (float v : sample.sampling_logprobs()) sum += v;
    out << absl::StrFormat("  sampling distribution: mean %.4f nats/token\n", sum / lp.tokens);
  }
  out << "  lowest-probability tokens" << (lp.has_text ? "" : " (ids only: no tokenizer on the client)") << ":\n";
  Table low({"POS", "TOKEN", "TEXT", "LOGPROB", "PROB"});
  for (const auto& tok : lp.lowest)
    low.AddRow({absl::StrCat(tok.position), absl::StrCat(tok.token_id), lp.has_text ? Quote(tok.text) : "-",
                absl::StrFormat("%.4f", tok.logprob), absl::StrFormat("%.3g", std::exp(tok.logprob))});
  std::ostringstream body;
  low.Print(body);
  for (absl::string_view line : absl::StrSplit(body.str(), '\n', absl::SkipEmpty())) out << "    " << line << "\n";
}

}  // namespace zerorl::ctl
