#!/usr/bin/env python3
"""mutants: prove the model tests of the decision code.

Each mutant is a small change to internal/ledger (a rule removed, a bound
dropped). For each, the script copies the repository to a temporary
directory, applies the change, and runs the model tests
(go test -run TestModel ./internal/ledger) at their default history counts,
and the ledger's unit tests (TestExpired, TestPollTime, TestRoundAsksCurrentAfterPending).
A mutant the tests do not catch names a hole in them. It prints a table:
mutant, caught, the test that failed and its seed (rerun with
go test ./internal/ledger -run TEST -args -rapid.seed=SEED).

Usage: python3 scripts/mutants.py [NAME ...]   (make mutants)
Exit status 1 when a mutant survives or a change no longer applies.
"""
import concurrent.futures, os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
L = "internal/ledger/ledger.go"
A = "internal/ledger/accounts.go"
T = "internal/ledger/attempt.go"

# name: (what the rule is, [(file, old, new), ...])
MUTANTS = {
    "refusals-never-cleared": ("a refusal of a proven version clears the account's older refusals", [
        (L, "if w != v && w.acct == v.acct && w.refused && w.refAt.Before(ok) {", "if false {"),
        (L, "l.acc.passwordChanged(v.acct, ok)", "_ = ok"),
        (A, "if s.proofAt.After(s.changed) {", "if false {"),
    ]),
    "failed-keeps-preference": ("a failure other than 1045 ends the preference", [
        (L, "\tcase Failed:\n\t\tif l.good == v {\n\t\t\tl.good = nil\n\t\t}", "\tcase Failed:"),
    ]),
    "cancellation-recorded-as-failed": ("a dial cut short is no evidence", [
        (T, "\tcase cut:\n\t\treturn Abandoned", "\tcase cut:\n\t\treturn Failed"),
    ]),
    "claims-without-lease": ("a claim ends after its lease", [
        (A, "if s.owner != 0 && now.Before(s.until) {", "if s.owner != 0 {"),
    ]),
    "probe-while-account-works": ("no version of an account is dialed while another works on it", [
        (L, "func (l *Ledger[T]) otherWorks(v *version[T], now time.Time) bool {",
            "func (l *Ledger[T]) otherWorks(v *version[T], now time.Time) bool {\n\tif true {\n\t\treturn false\n\t}"),
        (L, "cur != g && (cur.acct != g.acct || l.opts.Tokens) &&", "cur != g &&"),
    ]),
    "budget-per-ledger": ("trials, probes and refusals are per account across ledgers", [
        (L, "\tif o.Accounts == nil {", "\tif true {"),
    ]),
    "lock-not-held": ("a lock error holds the account", [
        (T, "\tcase IsLockNumber(number):\n\t\treturn Locked", "\tcase IsLockNumber(number):\n\t\treturn Failed"),
    ]),
    "proof-never-ages": ("a proof older than Freshness is dialed as a single trial", [
        (L, " && now.Sub(v.accepted) <= l.opts.Freshness", ""),
    ]),
    "hold-not-doubled": ("a failed probe doubles the hold", [
        (L, "v.hold = min(2*v.hold, l.opts.MaxHold)", "v.hold = min(v.hold, l.opts.MaxHold)"),
    ]),
    "both-stages-per-round": ("a refusal asks for AWSPENDING first, AWSCURRENT only when it offers nothing", [
        (T, "return Next[T]{Step: StepFetch, Stage: f.Stage,", "return Next[T]{Step: StepFetch, Stage: \"\","),
    ]),
    "current-never-after-pending": ("AWSCURRENT follows when AWSPENDING is absent or refused", [
        (L, "\tcase l.roundDone.Before(l.lastFetch) && (p == nil || p.refused):", "\tcase false && p == nil:"),
    ]),
    "round-never-served": ("a round whose AWSPENDING logged in is over: a later refusal asks for AWSPENDING again", [
        (L, "\t\tif l.labels[Pending] == v {\n\t\t\t// The round's AWSPENDING served", "\t\tif false {\n\t\t\t// The round's AWSPENDING served"),
    ]),
    "superseded-dialed": ("AWSCURRENT's version is not dialed once AWSPENDING logged in on its account, until the source labels it again", [
        (L, "v.failed != failed || v.superseded || v.expired(now) ||", "v.failed != failed || v.expired(now) ||"),
    ]),
    "expired-dialed": ("a version past its expiry (an IAM token) is neither preferred nor dialed", [
        (L, "if g := l.good; g != nil && g.expired(now) {", "if g := l.good; g != nil && false {"),
        (L, "v.superseded || v.expired(now) ||", "v.superseded ||"),
    ]),
    "poll-time-moves": ("the next poll falls due at a time fixed by the last one", [
        (L, "p := min(max(l.lastFetch.Sub(l.stuckSince), l.opts.MinInterval), l.opts.Hold)", "p := min(max(now.Sub(l.stuckSince)/2, l.opts.MinInterval), l.opts.Hold)"),
    ]),
    "trial-not-claimed": ("a version not proven is dialed by one Connect at a time", [
        (A, "\tif s.owner != 0 && now.Before(s.until) {\n\t\treturn 0, s.until, false\n\t}", ""),
    ]),
}


def copy_tree(dst):
    # The model tests need only the module's files and internal/ledger
    # (the standard library and rapid).
    for f in ("go.mod", "go.sum"):
        shutil.copy(os.path.join(ROOT, f), dst)
    shutil.copytree(os.path.join(ROOT, "internal", "ledger"), os.path.join(dst, "internal", "ledger"))


def run(name):
    rule, edits = MUTANTS[name]
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        copy_tree(tmp)
        for f, old, new in edits:
            p = os.path.join(tmp, f)
            src = open(p).read()
            if src.count(old) != 1:
                return name, rule, "stale", f"{f}: the text to change is found {src.count(old)} times", ""
            open(p, "w").write(src.replace(old, new))
        proc = subprocess.run(["go", "test", "-count=1", "-run", "TestModel|TestExpired|TestPollTime|TestRoundAsks", "./internal/ledger/"],
                              cwd=tmp, capture_output=True, text=True, timeout=1800)
        out = proc.stdout + proc.stderr
        if proc.returncode == 0:
            return name, rule, "no", "", ""
        if "[build failed]" in out or "setup failed" in out:
            return name, rule, "stale", "does not build: " + out[-300:].replace("\n", " "), ""
        m = re.search(r'-run="(\w+)" -rapid\.seed=(\d+)', out)
        test, seed = (m.group(1), m.group(2)) if m else ("?", "-")
        why = ""
        f = re.search(r"failed after \d+ tests: (.*)", out)
        if f:
            why = f.group(1)[:90]
        elif not m:
            # A unit test (no seed): its name and its first error line.
            u = re.search(r"--- FAIL: (\w+)", out)
            e = re.search(r"^\s+\w+_test\.go:\d+: (.*)$", out, re.M)
            test = u.group(1) if u else "?"
            why = e.group(1)[:90] if e else ""
        return name, rule, "yes", f"{test}: {why}", seed


def main():
    names = sys.argv[1:] or list(MUTANTS)
    for n in names:
        if n not in MUTANTS:
            sys.exit(f"mutants: no mutant {n!r}; known: {', '.join(MUTANTS)}")
    workers = max(1, (os.cpu_count() or 2) // 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        rows = list(ex.map(run, names))
    print("| mutant | rule it removes | caught | by | seed |")
    print("|---|---|---|---|---|")
    for name, rule, caught, by, seed in rows:
        print(f"| {name} | {rule} | {caught} | {by} | {seed} |")
    bad = [r for r in rows if r[2] != "yes"]
    if bad:
        print(f"\nmutants: {len(bad)} of {len(rows)} not caught", file=sys.stderr)
        sys.exit(1)
    print(f"\nmutants: all {len(rows)} caught")


if __name__ == "__main__":
    main()
