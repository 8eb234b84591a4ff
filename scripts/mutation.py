"""Mutation testing of the modules that carry docs/reliability.md's promises (`make mutation`).

    python scripts/mutation.py [TARGET ...]      # default: every target; `--list` names them
    python scripts/mutation.py --survivors TARGET  # only the last run's survivors, against today's tests

Each target is one module and the fast tests that cover it. cosmic-ray mutates the module in a
scratch copy of the repository (tracked and untracked, not ignored files), never in this working
tree: several people and test runs share it, and a mutated file must not be seen by any of them.
Mutants run one at a time (the local distributor), with the tests stopping at their first failure.

Each mutant's test run is capped in memory: cosmic-ray runs the test command itself (`shlex.split`,
no shell, in a new session that a timeout kills whole), so the command is this script again,
`--capped BYTES -- python -m pytest ...`, which sets RLIMIT_AS (address space, per process, inherited
by every process the tests start) on the pytest child and passes its exit status on. A mutant that
allocates without end (one in the HTML escape grew to 15 GB RSS in a run without the cap) gets a
MemoryError, or dies of a signal, when it reaches the cap instead of taking the machine's memory
from everyone else on it; either way the tests exit non-zero, and cosmic-ray counts the mutant
killed, as it counts a timeout: the mutation broke a promise (bounded memory) that the unmutated
code keeps under the same cap, which the baseline run checks. The counts say how many were killed
so (a MemoryError or the signal line below in the test output).

Per target it prints killed / survived / timed out / incompetent (the mutant does not import) and
writes every survivor's diff to test-artifacts/mutation/<target>.txt. docs/reliability.md records
the figures and why the survivors that remain may live. `--survivors` applies each diff of that file
to a fresh scratch copy in turn and runs the same capped test command (cosmic-ray's own runner, so a
timeout or a failure kills alike): after tests were added for them, which still live, in
test-artifacts/mutation/<target>.rerun.txt; a diff that no longer applies (the module changed since)
is counted stale.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "test-artifacts" / "mutation"

# Left out to bound a run, since each mutant costs one run of the tests:
# an arithmetic operator replaced by a bitwise one, a shift, a power, a modulo or a floor division,
# and a comparison turned into an identity or membership test (`<` into `is`, `==` into `in`).
# Any test that reaches such a line kills these, or the module no longer imports; the Add/Sub/Mul/
# Div swaps and the comparisons among themselves (`<` into `<=`, `==` into `!=`, ...) remain, as do
# `is` <-> `is not` and `in` <-> `not in`.
_ARITH = r"(Add|Sub|Mul|Div|FloorDiv|Mod|Pow|RShift|LShift|BitOr|BitAnd|BitXor)"
_ORDER = r"(Eq|NotEq|Lt|LtE|Gt|GtE)"
EXCLUDED_OPERATORS = [rf"core/ReplaceBinaryOperator_{_ARITH}_(FloorDiv|Mod|Pow|RShift|LShift|BitOr|BitAnd|BitXor)$",
                      r"core/ReplaceBinaryOperator_(FloorDiv|Mod|Pow|RShift|LShift|BitOr|BitAnd|BitXor)_.*",
                      rf"core/ReplaceComparisonOperator_{_ORDER}_(Is|IsNot|In|NotIn)$",
                      r"core/ReplaceComparisonOperator_(Is|IsNot)_(Eq|NotEq|Lt|LtE|Gt|GtE|In|NotIn)$",
                      r"core/ReplaceComparisonOperator_(In|NotIn)_(Eq|NotEq|Lt|LtE|Gt|GtE|Is|IsNot)$"]


# Address space allowed to each process of a mutant's test run (`--memory-limit` to change). The
# tests need well under 1 GB (torch imported and a tiny model: about 0.8 GB of address space).
MEMORY_LIMIT_BYTES = 3 * 1024 ** 3
# What the capped runner prints when the tests died of a signal (the kernel refusing memory to C
# code, e.g. SIGSEGV or SIGABRT, rather than Python's MemoryError).
CAP_MARKER = "mutation: the capped test run died of signal"


def run_capped(limit: int, argv: list[str]) -> int:
    """Run argv with RLIMIT_AS set to ``limit`` bytes; its exit status, 128+N if it died of signal N."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    code = subprocess.run(argv, preexec_fn=cap).returncode
    if code < 0:
        print(f"{CAP_MARKER} {-code} (memory cap {limit} bytes)", flush=True)
        return 128 - code
    return code


def hit_memory_cap(output: str | None) -> bool:
    return bool(output) and ("MemoryError" in output or CAP_MARKER in output)


@dataclass
class Target:
    module: str
    tests: list[str]
    # Only these top-level names (functions, classes' methods as Class.method, constants) are mutated;
    # empty: the whole module.
    only: list[str] = field(default_factory=list)
    timeout_s: float = 90.0


TARGETS = {
    "preprocess": Target("model/preprocess.py", ["tests/test_preprocess.py"]),
    "inference": Target("model/inference.py", [
        "tests/test_inference.py",
        "tests/test_fuzz_endpoint.py::test_handlers_any_body_any_content_type"]),
    # The serving code's limits: what a request may be (head, length, chunks, time), as the worker
    # counts them around httptools, and the settings that set them. The event loop and the balancing
    # are exercised by the server tests, which start real processes and take minutes per mutant.
    "serve-limits": Target("model/serve_worker.py", [
        "tests/test_serve_limits.py"],
        only=["MAX_HEADER_BYTES", "MAX_CHUNKED_OVERHEAD", "Connection.data_received",
              "Connection.eof_received", "Connection.on_header", "Connection.on_headers_complete",
              "Connection.on_body", "Connection.on_message_complete", "Connection.finish",
              "Dispatcher.sweep", "_path_of"]),
    "serve-settings": Target("model/serve.py", [
        "tests/test_serve_limits.py",
        "tests/test_serve.py::test_configuration_from_sagemaker_environment",
        "tests/test_serve.py::test_bad_configuration_is_refused_with_a_message"],
        only=["Config.from_args", "respawn_delay"]),
    "proxy": Target("lambda/proxy/handler.py", ["tests/test_proxy_handler.py"]),
    "training-job": Target("lambda/training_job/handler.py", ["tests/test_training_job_handler.py"]),
    "settings": Target("stacks/settings.py", ["tests/test_stacks_settings.py"]),
}


def line_ranges(path: Path, names: list[str]) -> list[str]:
    """'start-end' line ranges of the named top-level definitions (``Class.method`` for methods)."""
    tree = ast.parse(path.read_text())
    found: dict[str, tuple[int, int]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = (node.lineno, node.end_lineno)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"{node.name}.{item.name}"] = (item.lineno, item.end_lineno)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    found[t.id] = (node.lineno, node.end_lineno)
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"mutation: {path} has no {', '.join(missing)} (renamed? update TARGETS)")
    return [f"{found[n][0]}-{found[n][1]}" for n in names]


def scratch_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / os.fsdecode(name)
        if src.is_file():  # deleted in the work tree but still in the index: skip
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def test_command(work: Path, target: Target, memory_limit: int) -> str:
    """The command cosmic-ray runs per mutant (split with shlex, no shell): the capped pytest run."""
    return " ".join([sys.executable, str(work / "scripts" / "mutation.py"), "--capped",
                     str(memory_limit), "--",
                     sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                     "--hypothesis-seed=0", *target.tests])


def test_env() -> dict[str, str]:
    # The tests run in the scratch copy: a relative NLTK_DATA (../shared/nltk_data) would point
    # elsewhere there, and the tests' default (the folder beside the repository) is beside this one.
    nltk_data = os.environ.get("NLTK_DATA") or str(REPO.parent / "shared" / "nltk_data")
    return {**os.environ, "NLTK_DATA": os.pathsep.join(str(Path(d).resolve())
                                                       for d in nltk_data.split(os.pathsep))}


def survivor_diffs(text: str) -> list[tuple[str, str]]:
    """(header, diff) per survivor in a test-artifacts/mutation/<target>.txt file."""
    parts = re.split(r"^(# \S+:\d+ \S+ occurrence \d+)\n", text, flags=re.M)
    return [(parts[i][2:], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


def rerun_survivors(name: str, target: Target, memory_limit: int = MEMORY_LIMIT_BYTES) -> dict:
    from cosmic_ray.testing import run_tests
    from cosmic_ray.work_item import TestOutcome

    source = OUT / f"{name}.txt"
    if not source.is_file():
        raise SystemExit(f"mutation: no {source.relative_to(REPO)}: run `scripts/mutation.py {name}` first")
    entries = survivor_diffs(source.read_text())
    work = Path(tempfile.mkdtemp(prefix=f"mutation-{name}-rerun-"))
    counts = {"killed": 0, "survived": 0, "stale": 0, "memory": 0}
    alive = []
    started = time.monotonic()
    saved_env = dict(os.environ)
    try:
        scratch_copy(work)
        module = work / target.module
        pristine = module.read_bytes()
        os.environ.update(test_env())
        cwd = os.getcwd()
        os.chdir(work)  # run_tests runs the command in the current directory, as cosmic-ray exec does
        try:
            for header, diff in entries:
                patch = diff.split("--- mutation diff ---\n", 1)[-1]
                applied = subprocess.run(["git", "apply", "-p1", "-"], input=patch, text=True, cwd=work,
                                         capture_output=True)  # git, not patch(1): the copy needs git anyway
                if applied.returncode != 0:
                    counts["stale"] += 1
                    print(f"mutation: stale (no longer applies): {header}", file=sys.stderr)
                else:
                    outcome, output = run_tests(test_command(work, target, memory_limit), target.timeout_s)
                    if outcome == TestOutcome.SURVIVED:
                        counts["survived"] += 1
                        alive.append((header, diff))
                    else:
                        counts["killed"] += 1
                        counts["memory"] += hit_memory_cap(output)
                module.write_bytes(pristine)
        finally:
            os.chdir(cwd)
        with open(OUT / f"{name}.rerun.txt", "w") as fh:
            for header, diff in alive:
                fh.write(f"# {header}\n{diff}")
        counts["seconds"] = round(time.monotonic() - started)
        return counts
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        shutil.rmtree(work, ignore_errors=True)


def run_target(name: str, target: Target, keep: bool, memory_limit: int = MEMORY_LIMIT_BYTES) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"mutation-{name}-"))
    try:
        scratch_copy(work)
        module = work / target.module
        if not module.is_file():
            raise SystemExit(f"mutation: {target.module} does not exist (moved? update TARGETS)")
        test_cmd = test_command(work, target, memory_limit)
        lines = ""
        if target.only:
            ranges = ", ".join(toml_str(r) for r in line_ranges(module, target.only))
            lines = f"\n[cosmic-ray.filters.line-filter.lines]\n{toml_str(target.module)} = [{ranges}]\n"
        excluded = ", ".join(toml_str(e) for e in EXCLUDED_OPERATORS)
        config = work / "cosmic-ray.toml"
        config.write_text(f"""[cosmic-ray]
module-path = {toml_str(target.module)}
timeout = {target.timeout_s}
excluded-modules = []
test-command = {toml_str(test_cmd)}

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = [{excluded}]
{lines}""")
        session = work / "session.sqlite"
        bindir = Path(sys.executable).parent

        env = test_env()

        def cr(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(bindir / args[0]), *args[1:]], cwd=work, text=True,
                                  capture_output=True, env=env)

        started = time.monotonic()
        for step in (("cosmic-ray", "init", str(config), str(session)),
                     ("cr-filter-pragma", str(session)),
                     ("cr-filter-operators", str(session), str(config)),
                     *((("cr-filter-lines", "--config", str(config), str(session)),) if target.only else ())):
            done = cr(*step)
            if done.returncode != 0:
                raise SystemExit(f"mutation: {' '.join(step[:2])} failed:\n{done.stderr[-3000:]}")
        baseline = cr("cosmic-ray", "baseline", str(config))
        if baseline.returncode != 0:
            raise SystemExit(f"mutation: the tests fail without any mutation ({name}):\n"
                             f"{baseline.stdout[-2000:]}{baseline.stderr[-2000:]}")
        done = cr("cosmic-ray", "exec", str(config), str(session))
        if done.returncode != 0:
            raise SystemExit(f"mutation: exec failed ({name}):\n{done.stderr[-3000:]}")
        dump = cr("cosmic-ray", "dump", str(session)).stdout
        counts = {"killed": 0, "survived": 0, "timeout": 0, "incompetent": 0, "skipped": 0,
                  "memory": 0}
        survivors = []
        for line in dump.splitlines():
            item, result = json.loads(line)
            outcome = (result or {}).get("worker_outcome")
            if outcome == "skipped":
                counts["skipped"] += 1
            elif outcome == "normal":
                kind = {"killed": "killed", "survived": "survived"}.get(result["test_outcome"],
                                                                          "incompetent")
                counts[kind] += 1
                if kind == "killed" and hit_memory_cap(result.get("output")):
                    counts["memory"] += 1  # killed, and by the memory cap
                if kind == "survived":
                    survivors.append((item, result))
            elif outcome == "timeout":
                counts["timeout"] += 1
            else:
                counts["incompetent"] += 1  # the mutant could not even be applied or imported
        OUT.mkdir(parents=True, exist_ok=True)
        with open(OUT / f"{name}.txt", "w") as fh:
            for item, result in sorted(survivors, key=lambda s: s[0]["mutations"][0]["start_pos"]):
                m = item["mutations"][0]
                fh.write(f"# {m['module_path']}:{m['start_pos'][0]} {m['operator_name']} "
                         f"occurrence {m['occurrence']}\n{result.get('diff', '')}\n")
        counts["seconds"] = round(time.monotonic() - started)
        return counts
    finally:
        if keep:
            print(f"mutation: scratch copy kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--capped"]:  # the test command cosmic-ray runs: --capped BYTES -- COMMAND ...
        if len(argv) < 4 or argv[2] != "--":
            raise SystemExit("usage: mutation.py --capped BYTES -- COMMAND ...")
        return run_capped(int(argv[1]), argv[3:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", help="targets to run (default: all)")
    p.add_argument("--list", action="store_true", help="name the targets and their tests")
    p.add_argument("--keep", action="store_true", help="keep the scratch copies (to look at a session)")
    p.add_argument("--survivors", action="store_true",
                   help="rerun only the survivors recorded by the last run of each target named")
    p.add_argument("--memory-limit", type=float, default=MEMORY_LIMIT_BYTES / 1024 ** 3, metavar="GIB",
                   help="address space per process of a mutant's tests (default %(default)g GiB)")
    args = p.parse_args(argv)
    if args.list:
        for name, t in TARGETS.items():
            print(f"{name:14} {t.module}{' (' + ', '.join(t.only) + ')' if t.only else ''}\n"
                  f"{'':14} {' '.join(t.tests)}")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        p.error(f"unknown target {', '.join(unknown)}; targets: {', '.join(TARGETS)}")
    if args.survivors:
        for name in args.targets or p.error("--survivors needs the targets to rerun"):
            counts = rerun_survivors(name, TARGETS[name], int(args.memory_limit * 1024 ** 3))
            print(f"{name}, the last run's survivors again: {counts['killed']} killed "
                  f"({counts['memory']} by the memory cap), {counts['survived']} survived, "
                  f"{counts['stale']} stale ({counts['seconds']} s); still alive in "
                  f"{(OUT / (name + '.rerun.txt')).relative_to(REPO)}", flush=True)
        return 0
    for name in args.targets or list(TARGETS):
        counts = run_target(name, TARGETS[name], args.keep, int(args.memory_limit * 1024 ** 3))
        mutants = counts["killed"] + counts["survived"] + counts["timeout"] + counts["incompetent"]
        print(f"{name}: {mutants} mutants, {counts['killed']} killed ({counts['memory']} by the memory cap), "
              f"{counts['survived']} survived, "
              f"{counts['timeout']} timed out, {counts['incompetent']} incompetent "
              f"({counts['skipped']} filtered out; {counts['seconds']} s); survivors in "
              f"{(OUT / (name + '.txt')).relative_to(REPO)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
