// R1-Zero template checker (rules in format_checker.h).
#include "reward/format_checker.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace zerorl::reward {
namespace {

int Count(absl::string_view s, absl::string_view tag) {
  int n = 0;
  for (size_t p = s.find(tag); p != absl::string_view::npos; p = s.find(tag, p + tag.size())) ++n;
  return n;
}

bool Blank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

}  // namespace

FormatCheckResult CheckFormat(absl::string_view c, bool strict) {
  FormatCheckResult r;
  int open_think = Count(c, "<think>"), close_think = Count(c, "</think>");
  int open_answer = Count(c, "<answer>"), close_answer = Count(c, "</answer>");
  if (open_think > 1 || close_think != 1 || open_answer != 1 || close_answer != 1) {
    r.detail = absl::StrCat("tag counts <think>=", open_think, " </think>=", close_think, " <answer>=", open_answer,
                            " </answer>=", close_answer);
    return r;
  }
  size_t ot = c.find("<think>"), ct = c.find("</think>"), oa = c.find("<answer>"), ca = c.find("</answer>");
  if ((ot != absl::string_view::npos && ot > ct) || ct > oa || oa > ca) {
    r.detail = "tags out of order";
    return r;
  }
  if (Blank(c.substr(oa + 8, ca - oa - 8))) {
    r.detail = "empty answer";
    return r;
  }
  if (strict) {
    if (ot != absl::string_view::npos && !Blank(c.substr(0, ot))) {
      r.detail = "text before <think>";
      return r;
    }
    if (!Blank(c.substr(ct + 8, oa - ct - 8))) {
      r.detail = "text between </think> and <answer>";
      return r;
    }
    if (!Blank(c.substr(ca + 9))) {
      r.detail = "text after </answer>";
      return r;
    }
  }
  r.ok = true;
  return r;
}

absl::string_view ThinkText(absl::string_view c) {
  size_t ct = c.find("</think>");
  if (ct == absl::string_view::npos) {
    size_t oa = c.find("<answer>");
    return c.substr(0, oa);
  }
  size_t ot = c.find("<think>");
  size_t start = (ot != absl::string_view::npos && ot < ct) ? ot + 7 : 0;
  return c.substr(start, ct - start);
}

}  // namespace zerorl::reward
