package rotatingmysql_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rotatingmysql/rotatingmysql"
)

// logRecorder is a slog.Handler that keeps every record at every level.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// WithAttrs and WithGroup are not used by the library; the test fails if
// it starts to, since the logRecorder would then drop attributes.
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { panic("logRecorder: WithAttrs") }
func (r *logRecorder) WithGroup(string) slog.Handler      { panic("logRecorder: WithGroup") }

func (r *logRecorder) records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// attrs returns a record's attributes by key, resolved.
func recordAttrs(rec slog.Record) map[string]slog.Value {
	m := make(map[string]slog.Value, rec.NumAttrs())
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Resolve()
		return true
	})
	return m
}

// logBuffer is a bytes.Buffer safe for the handlers' concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The messages of the connector's events and their levels; see doc.go.
const (
	msgFetched  = "rotatingmysql: secret fetched"
	msgNotFound = "rotatingmysql: secret version not found"
	msgStale    = "rotatingmysql: serving cached secret, fetch failed"
	msgFailed   = "rotatingmysql: secret fetch failed"
	msgRefused  = "rotatingmysql: login refused (1045)"
	msgPending  = "rotatingmysql: using AWSPENDING: the database has the new password, AWSCURRENT not yet"
	msgGaveUp   = "rotatingmysql: gave up connecting"
)

func TestLogThroughRotation(t *testing.T) {
	// Serial: the script's exact counts assume its 1 s retry timeout,
	// which the CPU load of parallel tests can exhaust at the cold start.
	b := newBed(t, "log-Initial-pw1")
	rec := &logRecorder{}
	var text, js logBuffer
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	logger := slog.New(teeHandler(rec, slog.NewTextHandler(&text, opts), slog.NewJSONHandler(&js, opts)))

	s := runRotationScript(t, b, nil, rotatingmysql.WithLogger(logger))
	st := s.c.Stats()

	byMsg := map[string][]slog.Record{}
	for _, r := range rec.records() {
		byMsg[r.Message] = append(byMsg[r.Message], r)
	}
	for msg, rs := range byMsg {
		t.Logf("%d × %s %q", len(rs), rs[0].Level, msg)
	}

	// Each event once per occurrence: as many records as the counters say,
	// and as many as the script made happen.
	fetched := st.FetchesBySource["secretsmanager"]
	for _, c := range []struct {
		msg   string
		level slog.Level
		stat  uint64
		want  int
	}{
		{msgFetched, slog.LevelDebug, fetched, 2},
		{msgNotFound, slog.LevelDebug, 0, 0},
		{msgStale, slog.LevelWarn, st.StaleServed, 1},
		{msgFailed, slog.LevelWarn, st.FetchErrors - st.StaleServed, 0},
		// Phase 6 refuses AWSPENDING, then AWSCURRENT's trial (its older
		// refusal is cleared when the password is seen to change).
		{msgRefused, slog.LevelInfo, st.AuthRefused, 3},
		{msgPending, slog.LevelInfo, st.PendingUsed, 1},
		{msgGaveUp, slog.LevelError, st.GaveUp, 1},
	} {
		rs := byMsg[c.msg]
		delete(byMsg, c.msg)
		if len(rs) != c.want || uint64(len(rs)) != c.stat {
			t.Errorf("%q logged %d times; the script makes %d, Stats counts %d", c.msg, len(rs), c.want, c.stat)
		}
		for _, r := range rs {
			if r.Level != c.level {
				t.Errorf("%q at level %s, want %s", c.msg, r.Level, c.level)
			}
		}
	}
	for msg, rs := range byMsg {
		t.Errorf("unexpected event %q logged %d times", msg, len(rs))
	}

	// The fields of each event.
	type row struct{ stage, version string }
	collect := func(msg string, check func(a map[string]slog.Value)) []row {
		var rows []row
		for _, r := range rec.records() {
			if r.Message != msg {
				continue
			}
			a := recordAttrs(r)
			if got := a["secret"].String(); got != b.arn {
				t.Errorf("%q: secret %q, want %q", msg, got, b.arn)
			}
			if check != nil {
				check(a)
			}
			rows = append(rows, row{a["stage"].String(), a["version_id"].String()})
		}
		return rows
	}
	wantRows := func(msg string, got []row, want ...row) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%q (stage, version): %v, want %v", msg, got, want)
		}
	}
	// Compare in stage order (a poll fetches both stages in parallel).
	byStage := func(rows []row) []row {
		slices.SortStableFunc(rows, func(x, y row) int { return strings.Compare(x.stage, y.stage) })
		return rows
	}
	cur, pend := "AWSCURRENT", "AWSPENDING"
	wantRows(msgFetched, byStage(collect(msgFetched, func(a map[string]slog.Value) {
		if a["source"].String() != "secretsmanager" || a["latency"].Kind() != slog.KindDuration || a["latency"].Duration() <= 0 {
			t.Errorf("%q: source %v, latency %v", msgFetched, a["source"], a["latency"])
		}
	})), row{cur, s.v1}, row{pend, s.v2})
	wantRows(msgStale, byStage(collect(msgStale, func(a map[string]slog.Value) {
		if err, _ := a["error"].Any().(error); err == nil || !strings.Contains(err.Error(), "InternalServiceError") {
			t.Errorf("%q: error %v, want the API's InternalServiceError", msgStale, a["error"])
		}
	})), row{pend, s.v2})
	wantRows(msgRefused, collect(msgRefused, func(a map[string]slog.Value) {
		if a["user"].String() != b.user || a["already_refused"].Bool() {
			t.Errorf("%q: user %v, already_refused %v", msgRefused, a["user"], a["already_refused"])
		}
	}), row{cur, s.v1}, row{pend, s.v2}, row{cur, s.v1})
	wantRows(msgPending, collect(msgPending, nil), row{pend, s.v2})
	for _, r := range rec.records() {
		if r.Message == msgGaveUp {
			a := recordAttrs(r)
			err, _ := a["error"].Any().(error)
			if a["secret"].String() != b.arn || a["attempts"].Int64() != 2 || err == nil || !strings.Contains(err.Error(), "1045") {
				t.Errorf("%q: secret %v, attempts %v, error %v", msgGaveUp, a["secret"], a["attempts"], a["error"])
			}
		}
	}

	// No password, AWS secret key or session token in any output format.
	for _, out := range []struct{ name, s string }{{"text", text.String()}, {"json", js.String()}} {
		if !strings.Contains(out.s, msgGaveUp) {
			t.Fatalf("%s output is missing events:\n%s", out.name, out.s)
		}
		for _, secret := range append(slices.Clone(s.passwords), scriptSecretKey, scriptSessionToken) {
			if strings.Contains(out.s, secret) {
				t.Errorf("%s log output contains a secret (%d characters)", out.name, len(secret))
			}
		}
	}
	if testing.Verbose() {
		t.Logf("text log:\n%s", text.String())
	}
}

// teeHandler sends every record to each handler (slog.NewMultiHandler needs
// Go 1.26; the module supports Go 1.24).
func teeHandler(hs ...slog.Handler) slog.Handler { return tee(hs) }

type tee []slog.Handler

func (t tee) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t tee) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t tee) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(tee, len(t))
	for i, h := range t {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (t tee) WithGroup(name string) slog.Handler {
	out := make(tee, len(t))
	for i, h := range t {
		out[i] = h.WithGroup(name)
	}
	return out
}
