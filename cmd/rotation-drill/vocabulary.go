package main

import (
	"fmt"
	"strings"
)

// The drill's words, the README's: the live line, the report and the
// picture say the same thing the same way. A rate says "/s" (or "per
// second"), a total does not.
const (
	wordQueries   = "queries"
	wordAppErrors = "application errors"
	wordAbsorbed  = "failed logins absorbed"
	wordAPICalls  = "API calls"
)

// thousands writes n with commas between groups of three digits:
// 12345 is "12,345".
func thousands[N int | int64 | uint64](n N) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// plural writes n (with commas) and the noun, which is in the plural; a
// count of 1 drops the plural's ending: "1 query", "1 failed login
// absorbed", "3 API calls".
func plural[N int | int64 | uint64](n N, noun string) string {
	if n == 1 {
		noun = singular(noun)
	}
	return thousands(n) + " " + noun
}

// singular turns one of the drill's plural nouns into the singular.
func singular(noun string) string {
	switch noun {
	case wordQueries:
		return "query"
	case wordAppErrors:
		return "application error"
	case wordAbsorbed:
		return "failed login absorbed"
	case wordAPICalls:
		return "API call"
	}
	return strings.TrimSuffix(noun, "s")
}

// totalsText is a driver's totals in the drill's words: "12,345 queries,
// 0 application errors, 3 failed logins absorbed, 4 API calls"; the plain
// driver has no failed logins absorbed and no API calls.
func totalsText(d DriverTotal) string {
	parts := []string{plural(d.Queries, wordQueries), plural(d.Errors, wordAppErrors)}
	if d.FailedLoginsAbsorbed != nil {
		parts = append(parts, plural(*d.FailedLoginsAbsorbed, wordAbsorbed))
	}
	if d.APICalls != nil {
		parts = append(parts, plural(*d.APICalls, wordAPICalls))
	}
	return strings.Join(parts, ", ")
}

// liveFigures are one driver's figures for a line of live progress:
// rates over the last second, totals since the start.
type liveFigures struct {
	driver        string
	queriesPerSec float64
	errorsPerSec  float64
	errors        int64   // total
	absorbed      *uint64 // total; nil for the plain driver
	calls         *int    // total; nil for the plain driver
}

// liveLine is the progress line printed once a second: the time and step,
// then a line per driver with its rates and its totals, each labelled.
//
//	4.00s  window        rotatingmysql  344 queries/s    0 application errors/s   totals: 0 application errors, 2 failed logins absorbed, 3 API calls
//	                     mysql          352 queries/s  175 application errors/s   totals: 259 application errors
func liveLine(secs float64, step string, drivers ...liveFigures) string {
	var b strings.Builder
	for i, d := range drivers {
		if i == 0 {
			fmt.Fprintf(&b, "%6.2fs  %-12s  ", secs, step)
		} else {
			fmt.Fprintf(&b, "%s  ", strings.Repeat(" ", 6+1+2+12))
		}
		fmt.Fprintf(&b, "%-13s  %5.0f %s/s  %4.0f %s/s   totals: %s", d.driver,
			d.queriesPerSec, wordQueries, d.errorsPerSec, wordAppErrors, plural(d.errors, wordAppErrors))
		if d.absorbed != nil {
			fmt.Fprintf(&b, ", %s", plural(*d.absorbed, wordAbsorbed))
		}
		if d.calls != nil {
			fmt.Fprintf(&b, ", %s", plural(*d.calls, wordAPICalls))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// markLine is the progress line printed at the start of a step: "2.50s
// -- password changed (setSecret), rotation 1".
func markLine(m mark) string {
	text := m.Step
	switch {
	case stepWords[m.Step] != "":
		text = stepWords[m.Step]
	case m.Step == stepWindow:
		text = "the window begins (the database has the new password, AWSCURRENT the old one)"
	case m.Step == stepAfter:
		text = "the rotation is over"
	}
	return fmt.Sprintf("%6.2fs  -- %s, rotation %d\n", m.At.Seconds(), text, m.Rotation)
}
