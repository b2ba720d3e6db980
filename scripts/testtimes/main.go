// Command testtimes prints the slowest tests of a `go test -json` run: a
// table of the N slowest tests (15 by default) with their package, and each
// package's wall time beside the sum of its tests' times (their ratio shows
// how much t.Parallel overlaps).
//
//	go test -race -count=1 -json ./... | go run ./scripts/testtimes
//	go run ./scripts/testtimes -n 30 -sub before.json after.json
//
// Top-level tests only, unless -sub: then subtests are listed too. The time
// of a parallel test excludes its wait for t.Parallel to release it (go
// test measures it so); a test whose subtests are parallel counts as long
// as its slowest subtest (go test reports 0s for it). With two files it prints both tables and, for the
// tests of the first table, the time in the second.
//
// It uses the standard library only: it adds nothing to the library's
// go.mod.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// event is the part of test2json's output that testtimes reads.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
}

type key struct{ pkg, test string }

// run is one `go test -json` output, summed.
type run struct {
	name    string
	tests   map[key]float64 // pass, fail or skip, with its time
	status  map[key]string
	pkgs    map[string]float64
	pkgFail map[string]bool
}

func main() {
	n := flag.Int("n", 15, "how many tests to list")
	sub := flag.Bool("sub", false, "list subtests too")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go test -json ... | testtimes [-n N] [-sub]\n       testtimes [-n N] [-sub] run.json [other.json]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 2 {
		flag.Usage()
		os.Exit(2)
	}
	var runs []*run
	if flag.NArg() == 0 {
		r, err := read("stdin", os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testtimes:", err)
			os.Exit(1)
		}
		runs = append(runs, r)
	}
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testtimes:", err)
			os.Exit(1)
		}
		r, err := read(path, f)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "testtimes:", err)
			os.Exit(1)
		}
		runs = append(runs, r)
	}
	for i, r := range runs {
		if i > 0 {
			fmt.Println()
		}
		var other *run
		if len(runs) == 2 && i == 0 {
			other = runs[1]
		}
		print(os.Stdout, r, other, *n, *sub)
	}
}

// read sums one test2json stream. Lines that are not JSON (a build error,
// output of `go test` without -json) are skipped.
func read(name string, r io.Reader) (*run, error) {
	out := &run{name: name, tests: map[key]float64{}, status: map[key]string{}, pkgs: map[string]float64{}, pkgFail: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Action {
		case "pass", "fail", "skip":
		default:
			continue
		}
		if e.Test == "" {
			out.pkgs[e.Package] = e.Elapsed
			out.pkgFail[e.Package] = e.Action == "fail"
			continue
		}
		k := key{e.Package, e.Test}
		out.tests[k] = e.Elapsed
		out.status[k] = e.Action
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// go test reports 0s for a test whose subtests are all parallel (its
	// body returned before they ran): such a test took at least as long as
	// its slowest subtest.
	for k, s := range out.tests {
		for p := k.test; strings.Contains(p, "/"); {
			p = p[:strings.LastIndex(p, "/")]
			pk := key{k.pkg, p}
			if t, ok := out.tests[pk]; ok && t < s {
				out.tests[pk] = s
			}
		}
	}
	if len(out.pkgs) == 0 && len(out.tests) == 0 {
		return nil, fmt.Errorf("%s: no test results (is it `go test -json` output?)", name)
	}
	return out, nil
}

func print(w io.Writer, r, other *run, n int, sub bool) {
	var keys []key
	for k := range r.tests {
		if sub || !strings.Contains(k.test, "/") {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if r.tests[keys[i]] != r.tests[keys[j]] {
			return r.tests[keys[i]] > r.tests[keys[j]]
		}
		return keys[i].test < keys[j].test
	})
	fmt.Fprintf(w, "%s: the %d slowest of %d tests\n", r.name, min(n, len(keys)), len(keys))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "#\tseconds\t"
	if other != nil {
		head += other.name + "\t"
	}
	fmt.Fprintln(tw, head+"status\t")
	for i, k := range keys {
		if i == n {
			break
		}
		line := fmt.Sprintf("%d\t%.2f\t", i+1, r.tests[k])
		if other != nil {
			if s, ok := other.tests[k]; ok {
				line += fmt.Sprintf("%.2f\t", s)
			} else {
				line += "-\t"
			}
		}
		fmt.Fprintf(tw, "%s%s\t %s %s\n", line, r.status[k], short(k.pkg), k.test)
	}
	tw.Flush()

	var pkgs []string
	for p := range r.pkgs {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	fmt.Fprintln(w, "packages: wall seconds, sum of top-level test seconds")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, p := range pkgs {
		var sum float64
		for k, s := range r.tests {
			if k.pkg == p && !strings.Contains(k.test, "/") {
				sum += s
			}
		}
		status := "ok"
		if r.pkgFail[p] {
			status = "FAIL"
		}
		fmt.Fprintf(tw, "%.2f\t%.2f\t%s\t %s\n", r.pkgs[p], sum, status, p)
	}
	tw.Flush()
}

// short drops the module path's common prefix for the table.
func short(pkg string) string {
	if i := strings.LastIndex(pkg, "/rotatingmysql/rotatingmysql"); i >= 0 {
		rest := pkg[i+len("/rotatingmysql/rotatingmysql"):]
		if rest == "" {
			return "."
		}
		return "." + rest
	}
	return pkg
}
