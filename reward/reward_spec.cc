// RewardSpec validation, defaults and scoring (contract in reward_spec.h).
#include "reward/reward_spec.h"

#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/status.h"
#include "reward/code_checker.h"
#include "reward/countdown_checker.h"
#include "reward/extra_terms.h"
#include "reward/format_checker.h"
#include "reward/math_checker.h"
#include "reward/python_term.h"

namespace zerorl::reward {
namespace {

using zerorl::v1::RewardSpec;
using zerorl::v1::RewardTerm;
using zerorl::v1::TermKind;

std::string KindName(TermKind k) {
  std::string n = zerorl::v1::TermKind_Name(k);
  if (n.rfind("TERM_KIND_", 0) == 0) n = n.substr(10);
  return absl::AsciiStrToLower(n);
}

absl::Status TermError(int i, const RewardTerm& t, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("terms[", i, "] (", t.name(), "): ", msg));
}

std::string AnswerJson(const zerorl::v1::Answer& a) {
  nlohmann::json j;
  switch (a.kind_case()) {
    case zerorl::v1::Answer::kMath: j = a.math(); break;
    case zerorl::v1::Answer::kText: j = a.text(); break;
    case zerorl::v1::Answer::kCountdown:
      j["nums"] = std::vector<int64_t>(a.countdown().nums().begin(), a.countdown().nums().end());
      j["target"] = a.countdown().target();
      break;
    case zerorl::v1::Answer::kCodeTestsJson: {
      if (CheckJsonDepth(a.code_tests_json()).ok()) j = nlohmann::json::parse(a.code_tests_json(), nullptr, false);
      if (j.is_discarded()) j = a.code_tests_json();
      break;
    }
    default: j = nullptr;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

absl::StatusOr<std::shared_ptr<Sandbox>> SandboxProvider::Get() {
  absl::MutexLock lock(&mu_);
  if (!tried_) {
    tried_ = true;
    auto sb = Sandbox::Create(options_);
    if (sb.ok()) {
      sandbox_ = std::move(*sb);
    } else {
      error_ = sb.status();
    }
  }
  if (sandbox_ == nullptr) return error_;
  return sandbox_;
}

std::shared_ptr<SandboxProvider> MakeSandboxProvider(const zerorl::v1::SandboxConfig& c) {
  Sandbox::Options o;
  if (!c.isolation().empty()) o.isolation = c.isolation();
  if (!c.python().empty()) o.python = c.python();
  return std::make_shared<SandboxProvider>(o, SandboxLimits::FromConfig(c));
}

absl::StatusOr<RewardSpec> ParseRewardSpecYaml(const std::string& yaml, const std::string& source) {
  RewardSpec spec;
  ZRL_RETURN_IF_ERROR(MergeYamlInto(yaml, source, &spec));
  return spec;
}

absl::StatusOr<RewardSpec> LoadRewardSpecFile(const std::string& path) {
  ZRL_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseRewardSpecYaml(text, path);
}

RewardSpec DefaultRewardSpec(zerorl::v1::DatasetKind kind) {
  RewardSpec s;
  auto add = [&](TermKind k, double w) {
    RewardTerm* t = s.add_terms();
    t->set_kind(k);
    t->set_weight(w);
  };
  switch (kind) {
    case zerorl::v1::DATASET_KIND_GSM8K:
    case zerorl::v1::DATASET_KIND_MATH:
      s.set_name("r1zero-math");
      add(zerorl::v1::TERM_KIND_MATH, 1.0);
      add(zerorl::v1::TERM_KIND_FORMAT, 0.1);
      break;
    case zerorl::v1::DATASET_KIND_CODE:
      s.set_name("code");
      add(zerorl::v1::TERM_KIND_CODE, 1.0);
      break;
    default:
      s.set_name("countdown");
      add(zerorl::v1::TERM_KIND_COUNTDOWN, 1.0);
      add(zerorl::v1::TERM_KIND_FORMAT, 0.1);
      break;
  }
  return s;
}

CompiledSpec::~CompiledSpec() = default;

absl::StatusOr<std::shared_ptr<const CompiledSpec>> CompiledSpec::Compile(const RewardSpec& in,
                                                                          const SpecEnvironment& env) {
  std::shared_ptr<CompiledSpec> c(new CompiledSpec());
  c->env_ = env;
  c->spec_ = in;
  if (c->spec_.terms().empty()) return absl::InvalidArgumentError("reward spec has no terms");
  if (auto s = CheckFinite(c->spec_, ""); !s.ok()) return s;
  std::set<std::string> names;
  // A term that says `accuracy: true` makes the unmarked terms non-deciding;
  // otherwise unmarked math/countdown/code terms decide. An explicit false is false.
  bool any_accuracy = false;
  for (const auto& t : c->spec_.terms()) any_accuracy |= t.has_accuracy() && t.accuracy();
  for (int i = 0; i < c->spec_.terms_size(); ++i) {
    RewardTerm& t = *c->spec_.mutable_terms(i);
    if (t.kind() == zerorl::v1::TERM_KIND_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("terms[", i, "].kind: missing (math, format, countdown, code, "
                                                     "language_consistency, overlong, length, python)"));
    }
    if (t.name().empty()) t.set_name(KindName(t.kind()));
    if (!names.insert(t.name()).second) return TermError(i, t, "duplicate term name");
    // Unset means the default 1.0; an explicit 0 switches the term off (a live swap's most common use).
    if (!t.has_weight()) t.set_weight(1.0);
    const bool acc = t.has_accuracy() ? t.accuracy()
                     : any_accuracy   ? false
                                      : (t.kind() == zerorl::v1::TERM_KIND_MATH ||
                                         t.kind() == zerorl::v1::TERM_KIND_COUNTDOWN ||
                                         t.kind() == zerorl::v1::TERM_KIND_CODE);
    c->accuracy_.push_back(acc);
    std::unique_ptr<PythonTerm> py;
    switch (t.kind()) {
      case zerorl::v1::TERM_KIND_MATH: {
        auto* m = t.mutable_math();
        if (m->extractors().empty()) {
          for (const char* e : {"boxed", "answer_tag", "gsm8k", "the_answer_is"}) m->add_extractors(e);
        }
        std::vector<std::string> ex(m->extractors().begin(), m->extractors().end());
        if (auto s = ValidateExtractors(ex); !s.ok()) return TermError(i, t, absl::StrCat("math.extractors: ", s.message()));
        if (!m->has_rel_tolerance()) m->set_rel_tolerance(1e-9);
        if (m->rel_tolerance() < 0 || m->rel_tolerance() > 0.1) {
          return TermError(i, t, "math.rel_tolerance must be in [0, 0.1]");
        }
        if (m->multiple_boxed().empty()) m->set_multiple_boxed("last");
        if (m->multiple_boxed() != "last" && m->multiple_boxed() != "all_equal") {
          return TermError(i, t, absl::StrCat("math.multiple_boxed: \"", m->multiple_boxed(), "\" (last, all_equal)"));
        }
        break;
      }
      case zerorl::v1::TERM_KIND_COUNTDOWN:
        // Unset means the default; an explicit 0 stays 0.
        if (!t.countdown().has_correct()) t.mutable_countdown()->set_correct(1.0);
        if (!t.countdown().has_well_formed()) t.mutable_countdown()->set_well_formed(0.1);
        if (t.countdown().correct() < t.countdown().well_formed()) {
          return TermError(i, t, "countdown.correct must be >= countdown.well_formed");
        }
        break;
      case zerorl::v1::TERM_KIND_CODE:
      case zerorl::v1::TERM_KIND_PYTHON: {
        if (t.kind() == zerorl::v1::TERM_KIND_CODE && t.code().max_tests() < 0) {
          return TermError(i, t, "code.max_tests must be >= 0");
        }
        if (env.sandbox == nullptr) return TermError(i, t, "no sandbox available for code execution");
        auto sb = env.sandbox->Get();
        if (!sb.ok()) return TermError(i, t, absl::StrCat("sandbox: ", sb.status().message()));
        c->sandbox_ = *sb;
        if (t.kind() == zerorl::v1::TERM_KIND_PYTHON) {
          if (t.python().file().empty()) return TermError(i, t, "python.file: missing");
          if (!t.python().has_timeout_s()) t.mutable_python()->set_timeout_s(2.0);
          if (!(t.python().timeout_s() > 0)) return TermError(i, t, "python.timeout_s must be > 0");
          auto term = PythonTerm::Create(*sb, t.python().file(), t.python().timeout_s(), env.python_workers,
                                         env.sandbox->limits());
          if (!term.ok()) return TermError(i, t, std::string(term.status().message()));
          py = std::move(*term);
        }
        break;
      }
      case zerorl::v1::TERM_KIND_LANGUAGE_CONSISTENCY:
        if (t.language().script().empty()) t.mutable_language()->set_script("latin");
        if (auto s = ValidateScript(t.language().script()); !s.ok()) {
          return TermError(i, t, absl::StrCat("language.script: ", s.message()));
        }
        break;
      case zerorl::v1::TERM_KIND_OVERLONG: {
        auto* o = t.mutable_overlong();
        if (!o->has_max_tokens()) o->set_max_tokens(env.default_max_tokens);
        if (!o->has_buffer_tokens()) o->set_buffer_tokens(64);
        if (o->max_tokens() <= 0 || o->buffer_tokens() <= 0 || o->buffer_tokens() > o->max_tokens()) {
          return TermError(i, t, "overlong: need 0 < buffer_tokens <= max_tokens");
        }
        break;
      }
      case zerorl::v1::TERM_KIND_LENGTH: {
        auto* o = t.mutable_length();
        if (!o->has_per_token()) o->set_per_token(0.001);
        if (o->target_tokens() < 0 || o->per_token() < 0 || !std::isfinite(o->per_token())) {
          return TermError(i, t, "length: target_tokens and per_token must be >= 0");
        }
        break;
      }
      default:
        break;
    }
    c->python_.push_back(std::move(py));
  }
  return std::shared_ptr<const CompiledSpec>(std::move(c));
}

zerorl::v1::TermScore CompiledSpec::ScoreTerm(size_t i, const zerorl::v1::ScoreItem& item, bool* correct) const {
  const RewardTerm& t = spec_.terms(static_cast<int>(i));
  zerorl::v1::TermScore ts;
  ts.set_name(t.name());
  ts.set_weight(t.weight());
  const std::string& completion = item.completion();
  const auto& answer = item.answer();
  auto wrong_answer_kind = [&](const char* want) {
    ts.set_verdict("error");
    ts.set_detail(absl::StrCat("answer is not ", want));
    *correct = false;
  };
  int64_t tokens = item.completion_tokens() > 0 ? item.completion_tokens() : EstimateTokens(completion);
  switch (t.kind()) {
    case zerorl::v1::TERM_KIND_MATH: {
      if (answer.kind_case() != zerorl::v1::Answer::kMath) {
        wrong_answer_kind("a math answer");
        break;
      }
      MathCheckOptions o;
      o.extractors.assign(t.math().extractors().begin(), t.math().extractors().end());
      o.rel_tolerance = t.math().rel_tolerance();
      o.all_boxed_equal = t.math().multiple_boxed() == "all_equal";
      MathCheckResult r = CheckMath(completion, answer.math(), o);
      ts.set_value(r.verdict == MathVerdict::kCorrect ? 1.0 : 0.0);
      ts.set_verdict(MathVerdictName(r.verdict));
      ts.set_detail(r.detail.empty() ? r.extracted : r.detail);
      *correct = r.verdict == MathVerdict::kCorrect;
      break;
    }
    case zerorl::v1::TERM_KIND_FORMAT: {
      FormatCheckResult r = CheckFormat(completion, t.format().strict());
      ts.set_value(r.ok ? 1.0 : 0.0);
      ts.set_verdict(r.ok ? "correct" : "wrong");
      ts.set_detail(r.detail);
      *correct = r.ok;
      break;
    }
    case zerorl::v1::TERM_KIND_COUNTDOWN: {
      if (answer.kind_case() != zerorl::v1::Answer::kCountdown) {
        wrong_answer_kind("a countdown task");
        break;
      }
      CountdownScores s{t.countdown().correct(), t.countdown().well_formed(), t.countdown().no_answer(),
                        t.countdown().at_most_once()};
      std::vector<int64_t> nums(answer.countdown().nums().begin(), answer.countdown().nums().end());
      CountdownResult r = CheckCountdown(completion, nums, answer.countdown().target(), s);
      ts.set_value(r.score);
      ts.set_verdict(r.verdict);
      ts.set_detail(r.detail);
      *correct = r.verdict == "correct";
      break;
    }
    case zerorl::v1::TERM_KIND_CODE: {
      if (answer.kind_case() != zerorl::v1::Answer::kCodeTestsJson) {
        wrong_answer_kind("code tests");
        break;
      }
      auto tests = ParseCodeTests(answer.code_tests_json());
      if (!tests.ok()) {
        ts.set_verdict("error");
        ts.set_detail(std::string(tests.status().message()));
        *correct = false;
        break;
      }
      CodeCheckOptions o;
      o.all_or_nothing = t.code().all_or_nothing();
      o.max_tests = t.code().max_tests();
      CodeCheckResult r = CheckCode(*sandbox_, completion, *tests, o, env_.sandbox->limits());
      ts.set_value(r.score);
      ts.set_verdict(r.total > 0 && r.passed == r.total ? "correct" : (r.passed > 0 ? "partial" : "wrong"));
      ts.set_detail(r.detail);
      for (const auto& v : r.verdicts) ts.add_test_verdicts(v);
      *correct = r.total > 0 && r.passed == r.total;
      break;
    }
    case zerorl::v1::TERM_KIND_LANGUAGE_CONSISTENCY: {
      double v = LanguageConsistency(ThinkText(completion), t.language().script());
      ts.set_value(v);
      ts.set_verdict(v >= 0.99 ? "consistent" : "mixed");
      *correct = v >= 0.99;
      break;
    }
    case zerorl::v1::TERM_KIND_OVERLONG: {
      double v = OverlongPenalty(tokens, t.overlong().max_tokens(), t.overlong().buffer_tokens());
      ts.set_value(v);
      ts.set_verdict(v < 0 ? "overlong" : "ok");
      ts.set_detail(absl::StrCat(tokens, " tokens", item.completion_tokens() > 0 ? "" : " (estimated)"));
      *correct = v == 0;
      break;
    }
    case zerorl::v1::TERM_KIND_LENGTH: {
      double v = LengthPenalty(tokens, t.length().target_tokens(), t.length().per_token());
      ts.set_value(v);
      ts.set_verdict(v < 0 ? "long" : "ok");
      ts.set_detail(absl::StrCat(tokens, " tokens", item.completion_tokens() > 0 ? "" : " (estimated)"));
      *correct = v == 0;
      break;
    }
    case zerorl::v1::TERM_KIND_PYTHON: {
      nlohmann::json meta;
      meta["id"] = item.id();
      meta["completion_tokens"] = tokens;
      meta["finish_reason"] = zerorl::v1::FinishReason_Name(item.finish_reason());
      auto v = python_[i]->Call(item.prompt(), completion, AnswerJson(answer), meta.dump());
      if (v.ok()) {
        ts.set_value(*v);
        ts.set_verdict("ok");
        *correct = *v > 0;
      } else {
        ts.set_verdict(v.status().code() == absl::StatusCode::kDeadlineExceeded ? "timeout" : "error");
        ts.set_detail(std::string(v.status().message()));
        *correct = false;
      }
      break;
    }
    default:
      ts.set_verdict("error");
      ts.set_detail("unknown term kind");
      *correct = false;
  }
  return ts;
}

zerorl::v1::RewardResult CompiledSpec::Score(const zerorl::v1::ScoreItem& item) const {
  zerorl::v1::RewardResult r;
  double total = 0;
  bool all_correct = true, any_accuracy = false;
  for (size_t i = 0; i < static_cast<size_t>(spec_.terms_size()); ++i) {
    bool correct = false;
    zerorl::v1::TermScore ts = ScoreTerm(i, item, &correct);
    total += ts.weight() * ts.value();
    if (accuracy_[i]) {
      any_accuracy = true;
      all_correct &= correct;
    }
    *r.add_terms() = std::move(ts);
  }
  r.set_reward(total);
  r.set_correct(any_accuracy && all_correct);
  return r;
}

}  // namespace zerorl::reward
