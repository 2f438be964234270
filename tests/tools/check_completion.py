#!/usr/bin/env python3
"""The bash completion and the man page know every subcommand and flag `subsyncd --help` lists.

usage: check_completion.py SUBSYNCD COMPLETION_FILE MAN_PAGE_MD

Runs the completion function in bash as the shell would (COMP_WORDS/COMP_CWORD) after each
subcommand and checks that every flag of `subsyncd SUB --help` is offered, and that the values
of every `{a,b}` choice in the help are offered after the flag. A new flag without completion or
man page entry fails here. Prints 'N passed, N failed'.
"""
import re
import subprocess
import sys

subsyncd, completion, man_md = sys.argv[1:4]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)


def help_of(*args):
    return subprocess.run([subsyncd, *args, "--help"], capture_output=True, text=True, check=True).stdout


def section(text, title):
    out, inside = [], False
    for line in text.splitlines():
        if re.match(r"^\S", line):
            inside = line.startswith(title)
            continue
        if inside:
            out.append(line)
    return out


def options(text):
    """{flag: [choices]} from the Options: section."""
    found = {}
    for line in section(text, "Options:"):
        m = re.match(r"^  ((?:-\w,)?--[\w-]+)(?:\s+\S+?:\{([^}]*)\})?", line)
        if not m:
            continue
        choices = m.group(2).split(",") if m.group(2) else []
        for flag in m.group(1).split(","):
            found[flag] = choices
    return found


def complete(*words):
    """What the completion offers with `words` typed (the last one being completed)."""
    arr = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ("subsyncd", *words))
    script = f"""source '{completion}'
COMP_WORDS=({arr}); COMP_CWORD={len(words)}; COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
_subsyncd subsyncd "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True)
    check(r.returncode == 0, f"completion of {words} ran: {r.stderr}")
    return set(r.stdout.split())


man = open(man_md).read()
top = help_of()
commands = [m.group(1) for line in section(top, "Subcommands:") if (m := re.match(r"^  ([a-z][\w-]*)\s", line))]
check(len(commands) >= 7, f"subcommands found in --help: {commands}")
offered = complete("")
for c in commands:
    check(c in offered, f"subcommand {c} is completed")
    check(re.search(rf"\b{re.escape(c)}\b", man) is not None, f"subcommand {c} is in {man_md}")
for flag in options(top):
    if flag.startswith("--"):
        check(flag in offered, f"global flag {flag} is completed")

for c in commands:
    opts = options(help_of(c))
    check(len(opts) >= 2, f"{c}: options found in its --help: {opts}")
    offered = complete(c, "-")
    for flag, choices in opts.items():
        check(flag in offered, f"{c} {flag} is completed")
        if flag.startswith("--") and flag != "--help":
            check(flag in man, f"{c} {flag} is in {man_md}")
        if choices:
            values = complete(c, flag, "")
            for v in choices:
                check(v in values, f"{c} {flag} completes its value {v} (got {sorted(values)})")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
