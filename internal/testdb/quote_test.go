package testdb

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var literalTests = []struct {
	name, in               string
	backslash, noBackslash string // expected literals per sql_mode
}{
	{"plain", "abc", `'abc'`, `'abc'`},
	{"empty", "", `''`, `''`},
	{"quote", `it's`, `'it''s'`, `'it''s'`},
	{"backslash", `a\b`, `'a\\b'`, `'a\b'`},
	{"backslash quote", `\'`, `'\\'''`, `'\'''`},
	{"double quote and backquote", "\"`", "'\"`'", "'\"`'"},
	{"punctuation and non-ASCII", `p@ss/w:rd?#&=%'"\ ü€`, `'p@ss/w:rd?#&=%''"\\ ü€'`, `'p@ss/w:rd?#&=%''"\ ü€'`},
	{"control", "a\nb\tc\rd\x1a", "'a\nb\tc\rd\x1a'", "'a\nb\tc\rd\x1a'"},
	{"escape-like", `\0\n\Z\%\_`, `'\\0\\n\\Z\\%\\_'`, `'\0\n\Z\%\_'`},
}

func TestQuoterLiteral(t *testing.T) {
	for _, tc := range literalTests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				q    quoter
				want string
			}{{quoter{backslashEscapes: true}, tc.backslash}, {quoter{}, tc.noBackslash}} {
				got, err := c.q.literal(tc.in)
				if err != nil || got != c.want {
					t.Errorf("%+v.literal(%q) = %q, %v; want %q", c.q, tc.in, got, err, c.want)
				}
			}
		})
	}
	for _, bad := range []string{"a\x00b", "\xff"} {
		if got, err := (quoter{}).literal(bad); err == nil {
			t.Errorf("literal(%q) = %q, want an error", bad, got)
		}
	}
}

// FuzzLiteralRoundTrip checks on the server that a literal reads back as
// the string it was made from, with and without NO_BACKSLASH_ESCAPES.
func FuzzLiteralRoundTrip(f *testing.F) {
	for _, tc := range literalTests {
		f.Add(tc.in)
	}
	srv := Require(f)
	ctx := f.Context()
	type session struct {
		mode string
		conn *sql.Conn
		q    quoter
	}
	var sessions []session
	for _, mode := range []string{"default", "NO_BACKSLASH_ESCAPES"} {
		conn, err := srv.Root().Conn(ctx)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { conn.Close() })
		if mode != "default" {
			if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"); err != nil {
				f.Fatal(err)
			}
			// Reset the session before Close gives it back to the pool
			// (cleanups run last first; f.Context is canceled by then).
			f.Cleanup(func() { conn.ExecContext(context.Background(), "SET SESSION sql_mode = DEFAULT") })
		}
		q, err := newQuoter(ctx, conn)
		if err != nil {
			f.Fatal(err)
		}
		if q.backslashEscapes != (mode == "default") {
			f.Fatalf("sql_mode %s: backslashEscapes = %v", mode, q.backslashEscapes)
		}
		sessions = append(sessions, session{mode, conn, q})
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, sess := range sessions {
			lit, err := sess.q.literal(s)
			if err != nil {
				if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
					return // rejected on purpose
				}
				t.Fatalf("literal(%q): %v", s, err)
			}
			var got string
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := sess.conn.QueryRowContext(qctx, "SELECT "+lit).Scan(&got); err != nil {
				t.Fatalf("%s: SELECT %s: %v", sess.mode, lit, err)
			}
			if got != s {
				t.Errorf("%s: SELECT %s = %q, want %q", sess.mode, lit, got, s)
			}
		}
	})
}
