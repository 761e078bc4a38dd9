#!/usr/bin/env python3
"""Keeps the documentation true to the command line: every command shown in README.md and docs/*.md
that runs `build/tools/quench` or a `./tools/` script is run with `--help`, which must succeed, and
every `--flag` the command uses must appear in that help text.

Commands are read from fenced code blocks (continuation lines joined) and from inline code spans.
A launcher before the program (`mpirun -np 2 build/tools/quench ...`, `VAR=value ./tools/x.sh`) is
skipped. Prints one line per failure and a last line `docs: N commands checked, M failed`; exits 1
on any failure. Run from the repository root after building:

  ./tools/check_docs.py
"""
import glob, os, re, shlex, subprocess, sys

PROGRAMS = re.compile(r"^(build/tools/quench|\./tools/[\w.-]+)$")


def commands(path):
    """(line number, command text) for every code line or inline span of a Markdown file."""
    lines = open(path, encoding="utf-8").read().splitlines()
    fenced, pending, start = False, "", 0
    for n, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            text = line.split(" #")[0].rstrip() if not line.lstrip().startswith("#") else ""
            if not pending:
                start = n
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            yield start, pending + text
            pending = ""
        else:
            for span in re.findall(r"`([^`]+)`", line):
                yield n, span


def program_call(text):
    """The program and its arguments, or None when the text runs none of ours."""
    for piece in re.split(r"\s(?:&&|\|\||\||;)\s", text):
        try:
            tokens = shlex.split(piece.strip().lstrip("$ "))
        except ValueError:
            continue
        for i, t in enumerate(tokens):
            if PROGRAMS.match(t):
                return tokens[i], tokens[i + 1:]
    return None


def check(prog, args):
    """An error message, or None when the documented call matches the program's --help."""
    if not os.path.exists(prog):
        return f"{prog} does not exist (build first: ninja -C build)"
    call = [prog]
    if prog == "build/tools/quench":
        sub = next((a for a in args if not a.startswith("-")), None)
        if sub and not args[0].startswith("-") and not sub.isupper():  # SUBCOMMAND: a placeholder
            call.append(sub)
    call.append("--help")
    r = subprocess.run(call, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return f"`{' '.join(call)}` exited {r.returncode}: {(r.stderr or r.stdout).strip()[:200]}"
    help_text = r.stdout + r.stderr
    if len(call) == 3 and f"{prog} {call[1]} " not in help_text:
        return f"`{prog}` has no subcommand {call[1]}"
    for a in args:
        if a.startswith("--"):
            flag = a.split("=")[0]
            if not re.search(re.escape(flag) + r"(?![\w-])", help_text):
                return f"`{' '.join(call)}` does not mention {flag}"
    return None


def main():
    if len(sys.argv) > 1:
        print(__doc__.strip())
        return 0 if sys.argv[1] in ("-h", "--help") else 2
    files = ["README.md"] + sorted(glob.glob("docs/*.md"))
    checked = failed = 0
    seen = set()
    for path in files:
        for n, text in commands(path):
            call = program_call(text)
            if call is None:
                continue
            key = (call[0], tuple(call[1]))
            if key in seen:
                continue
            seen.add(key)
            checked += 1
            err = check(*call)
            if err:
                failed += 1
                print(f"{path}:{n}: {err}\n    {text.strip()}")
    print(f"docs: {checked} commands checked, {failed} failed")
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
