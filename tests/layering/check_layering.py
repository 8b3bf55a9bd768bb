#!/usr/bin/env python3
"""The layering check: no module includes a module on its own floor or above it.

Floors, from the ground up (README, "Design"):
  proto, common (+ tests/testing)  ->  model, reward, buffer  ->  weights
  ->  rollout, learner  ->  orchestrator  ->  bench  ->  cli  ->  tests/

ALLOWED below is the whole rule: a module may include itself and the modules
listed for it, nothing else. Run: check_layering.py SOURCE_DIR. Exit 0 when
every quoted include obeys the list, 1 with one line per violation
(file:line: module -> module) otherwise.
"""
import os
import re
import sys

GROUND = ["proto", "common", "testing"]
ALLOWED = {
    "proto": [],
    "common": ["proto"],
    "testing": ["common", "proto"],
    "model": GROUND,
    "reward": GROUND,
    "buffer": GROUND,
    "weights": ["model"] + GROUND,
    "rollout": ["weights", "model"] + GROUND,
    "learner": ["weights", "model"] + GROUND,
    # The orchestrator reaches the actors only through their protos; the model
    # library only for the tokenizer of the chat template.
    "orchestrator": ["model"] + GROUND,
    "bench": ["orchestrator", "learner", "rollout", "weights", "buffer", "reward", "model"] + GROUND,
    "cli": ["orchestrator", "bench", "learner", "rollout", "weights", "buffer", "reward", "model"] + GROUND,
    "tests": None,  # the top: cross-module and end-to-end tests may include anything
}
# Directories that are modules (relative to the source dir) -> module name.
MODULE_DIRS = {m: m for m in ALLOWED if m not in ("tests", "testing", "proto")}
MODULE_DIRS["tests/testing"] = "testing"
MODULE_DIRS["tests"] = "tests"
MODULE_DIRS["proto"] = "proto"

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCES = (".h", ".cc", ".cu", ".cuh")


def module_of_path(rel):
    """The module a repository-relative path belongs to, or None."""
    best = None
    for d, m in MODULE_DIRS.items():
        if rel == d or rel.startswith(d + "/"):
            if best is None or len(d) > len(best[0]):
                best = (d, m)
    return best[1] if best else None


def module_of_include(path):
    if path.startswith("zerorl/v1/") or path.startswith("grpc/"):
        return "proto"  # generated from proto/
    return module_of_path(path)


def violations(root):
    out = []
    for d in MODULE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for f in files:
                if not f.endswith(SOURCES):
                    continue
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, root)
                src = module_of_path(rel)
                if src != MODULE_DIRS[d]:
                    continue  # counted under its own (deeper) module dir
                allowed = ALLOWED[src]
                if allowed is None:
                    continue
                with open(full, encoding="utf-8", errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        dst = module_of_include(m.group(1))
                        if dst is None or dst == src or dst in allowed:
                            continue
                        out.append(f"{rel}:{n}: {src} -> {dst} (\"{m.group(1)}\"); {src} may include {', '.join(allowed) or 'nothing'}")
    return sorted(out)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    bad = violations(os.path.abspath(root))
    for line in bad:
        print(line)
    if bad:
        print(f"layering: {len(bad)} include(s) run up or sideways")
        return 1
    print("layering: every include runs down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
