package rotatingmysqltest

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/rotatingmysql/rotatingmysql/internal/testdb"
)

// TestMain runs the tests against a private MariaDB, then fails the run if
// any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(testdbMain{m}) }

// testdbMain adapts testdb.Run to goleak.VerifyTestMain.
type testdbMain struct{ m *testing.M }

func (r testdbMain) Run() int { return testdb.Run(r.m) }

// secretFields decodes the version of the secret with stage.
func secretFields(t *testing.T, st *Store, id, stage string) (Version, map[string]any) {
	t.Helper()
	v, err := st.GetSecretValue(id, "", stage)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(v.SecretString), &m); err != nil {
		t.Fatal(err)
	}
	return v, m
}

func TestRotatorStoreSteps(t *testing.T) {
	st := NewStore()
	// ssl is a field the Rotator does not know: it must survive.
	secret := `{"engine":"mysql","host":"db.example","port":3306,"username":"app","password":"old","dbname":"appdb","ssl":true}`
	if _, _, err := st.CreateSecret("app/db", secret); err != nil {
		t.Fatal(err)
	}
	r := NewRotator(st, "app/db", nil, SingleUser)
	ctx := context.Background()
	if err := r.CreateSecret(ctx); err != nil {
		t.Fatal(err)
	}
	pending, fields := secretFields(t, st, "app/db", StagePending)
	pw, _ := fields["password"].(string)
	if pw == "old" || len(pw) != DefaultPasswordLength || strings.ContainsAny(pw, DefaultExclude) {
		t.Errorf("pending password %q: want %d new characters without %s", pw, DefaultPasswordLength, DefaultExclude)
	}
	delete(fields, "password")
	want := map[string]any{"engine": "mysql", "host": "db.example", "port": 3306.0, "username": "app", "dbname": "appdb", "ssl": true}
	if got, _ := json.Marshal(fields); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("pending fields %s, want %s", got, must(json.Marshal(want)))
	}
	// A pending rotation is resumed, not replaced.
	if err := r.CreateSecret(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := st.GetSecretValue("app/db", "", StagePending); again.VersionID != pending.VersionID {
		t.Errorf("second CreateSecret replaced the pending version")
	}
	old, _ := st.GetSecretValue("app/db", "", StageCurrent)
	if err := r.FinishSecret(ctx); err != nil {
		t.Fatal(err)
	}
	want2 := map[string][]string{old.VersionID: {StagePrevious}, pending.VersionID: {StageCurrent}}
	d, err := st.Describe("app/db")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.VersionIDsToStages) != 2 || !slices.Equal(d.VersionIDsToStages[old.VersionID], want2[old.VersionID]) ||
		!slices.Equal(d.VersionIDsToStages[pending.VersionID], want2[pending.VersionID]) {
		t.Errorf("after FinishSecret: %v, want %v", d.VersionIDsToStages, want2)
	}
	if d.LastRotatedDate.IsZero() {
		t.Error("LastRotatedDate not set")
	}
	if err := r.FinishSecret(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("FinishSecret without AWSPENDING: err = %v, want ErrNotFound", err)
	}
}

func TestRotatorMultiUserAlternates(t *testing.T) {
	st := NewStore()
	if _, _, err := st.CreateSecret("app/db", SecretJSON("db.example", 3306, "app", "pw", "")); err != nil {
		t.Fatal(err)
	}
	r := NewRotator(st, "app/db", nil, MultiUser)
	for i, want := range []string{"app_clone", "app", "app_clone"} {
		if err := r.CreateSecret(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := r.FinishSecret(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, f := secretFields(t, st, "app/db", StageCurrent); f["username"] != want {
			t.Errorf("rotation %d: username %v, want %s", i+1, f["username"], want)
		}
	}
}

func TestRotatorPassword(t *testing.T) {
	tests := []struct {
		name    string
		length  int
		exclude string
		// wantKinds is how many of lower, upper, digit, punctuation appear.
		wantKinds int
	}{
		{"defaults", 0, DefaultExclude, 4},
		{"short", 4, DefaultExclude, 4},
		{"long, nothing excluded", 200, "", 4},
		{"letters only", 16, `!"#$%&'()*+,-./:;<=>?@[\]^_{|}~` + "`0123456789", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rotator{PasswordLength: tt.length, Exclude: tt.exclude}
			pw, err := r.password()
			if err != nil {
				t.Fatal(err)
			}
			if want := cmp.Or(tt.length, DefaultPasswordLength); len(pw) != want {
				t.Errorf("length %d, want %d", len(pw), want)
			}
			kinds := map[int]bool{}
			for _, c := range []byte(pw) {
				if c <= ' ' || c > '~' || strings.IndexByte(tt.exclude, c) >= 0 {
					t.Errorf("password %q has %q", pw, c)
				}
				kinds[kind(c)] = true
			}
			if len(kinds) != tt.wantKinds {
				t.Errorf("password %q has %d kinds of character, want %d", pw, len(kinds), tt.wantKinds)
			}
		})
	}
	var all []byte
	for c := byte('!'); c <= '~'; c++ {
		all = append(all, c)
	}
	if _, err := (&Rotator{Exclude: string(all)}).password(); err == nil {
		t.Error("no error with every character excluded")
	}
}

func TestQuoteString(t *testing.T) {
	tests := []struct {
		in          string
		noBackslash bool
		want        string
	}{
		{"plain", false, `'plain'`},
		{`a'b`, false, `'a''b'`},
		{`a\b`, false, `'a\\b'`},
		{"a\x00b", false, `'a\0b'`},
		{`a\'b`, true, `'a\''b'`},
		{`"@/`, false, `'"@/'`},
	}
	for _, tt := range tests {
		if got := quoteString(tt.in, tt.noBackslash); got != tt.want {
			t.Errorf("quoteString(%q, %v) = %s, want %s", tt.in, tt.noBackslash, got, tt.want)
		}
	}
}

func TestStripIdentified(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC'", "GRANT USAGE ON *.* TO `app`@`%`"},
		{"GRANT SELECT ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC' WITH GRANT OPTION", "GRANT SELECT ON *.* TO `app`@`%` WITH GRANT OPTION"},
		{"GRANT ALL PRIVILEGES ON `db`.* TO `app`@`%`", "GRANT ALL PRIVILEGES ON `db`.* TO `app`@`%`"},
	}
	for _, tt := range tests {
		if got := stripIdentified(tt.in); got != tt.want {
			t.Errorf("stripIdentified(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    creds
		wantErr bool
	}{
		{"number port", SecretJSON("h", 3307, "u", "p", "d"), creds{"h", 3307, "u", "p", "d"}, false},
		{"string port", `{"host":"h","port":"3308","username":"u","password":"p"}`, creds{"h", 3308, "u", "p", ""}, false},
		{"default port", `{"username":"u","password":"p"}`, creds{"", 3306, "u", "p", ""}, false},
		{"bad port", `{"username":"u","port":"x"}`, creds{}, true},
		{"no username", `{"password":"p"}`, creds{}, true},
		{"not JSON", `user:pass`, creds{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := parseSecret(tt.in, Keys{}.WithDefaults())
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseSecret = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// dbSecret makes a MariaDB user with password and stores its secret as
// "app/db" in a new Store.
func dbSecret(t *testing.T, srv *testdb.Server, password string) (*Store, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Skipf("server is not on TCP (%s)", srv.Addr)
	}
	user, db := srv.TempUser(t, password)
	st := NewStore()
	if _, _, err := st.CreateSecret("app/db", SecretJSON(host, must(strconv.Atoi(port)), user, password, db)); err != nil {
		t.Fatal(err)
	}
	return st, user
}

// loginErr logs in with the secret's version with stage.
func loginErr(t *testing.T, st *Store, stage string) error {
	t.Helper()
	v, err := st.GetSecretValue("app/db", "", stage)
	if err != nil {
		t.Fatal(err)
	}
	_, c, err := parseSecret(v.SecretString, Keys{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	return login(context.Background(), c)
}

func isAccessDenied(err error) bool { return errors.Is(err, &mysql.MySQLError{Number: 1045}) }

func TestRotatorSingleUserDB(t *testing.T) {
	srv := testdb.Require(t)
	ctx := context.Background()
	st, _ := dbSecret(t, srv, `old'pw\x"`)
	// A session opened before the rotation stays authenticated.
	_, c, _ := parseSecret(must(st.GetSecretValue("app/db", "", "")).SecretString, Keys{}.WithDefaults())
	oldDB := openDB(t, c)
	if err := oldDB.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	r := NewRotator(st, "app/db", srv.Root(), SingleUser)
	var steps []Step
	r.OnStep = func(s Step) {
		steps = append(steps, s)
		if s == StepTestSecret { // the window: only the pending password logs in
			if err := loginErr(t, st, StageCurrent); !isAccessDenied(err) {
				t.Errorf("AWSCURRENT during the window: err = %v, want 1045", err)
			}
		}
	}
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []Step{StepCreateSecret, StepSetSecret, StepTestSecret, StepFinishSecret}; !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if err := loginErr(t, st, StageCurrent); err != nil {
		t.Errorf("new AWSCURRENT: %v", err)
	}
	if err := loginErr(t, st, StagePrevious); !isAccessDenied(err) {
		t.Errorf("AWSPREVIOUS: err = %v, want 1045", err)
	}
	if err := oldDB.PingContext(ctx); err != nil {
		t.Errorf("session opened before the rotation: %v", err)
	}

	// Passwords with quotes and backslashes reach the server intact.
	tricky := strings.Replace(must(st.GetSecretValue("app/db", "", "")).SecretString, `"password":"`, `"password":"q'\\\\b\\\"@/`, 1)
	if _, err := st.PutSecretValue("app/db", tricky, []string{StagePending}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(r.SetSecret(ctx), r.TestSecret(ctx)); err != nil {
		t.Fatal(err)
	}
}

func TestRotatorMultiUserDB(t *testing.T) {
	srv := testdb.Require(t)
	ctx := context.Background()
	st, user := dbSecret(t, srv, "first")
	t.Cleanup(func() { srv.DropUser(context.Background(), user+cloneSuffix) })
	r := NewRotator(st, "app/db", srv.Root(), MultiUser)
	for i, want := range []string{user + cloneSuffix, user, user + cloneSuffix} {
		if err := r.Rotate(ctx); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		_, cur := secretFields(t, st, "app/db", StageCurrent)
		if cur["username"] != want {
			t.Errorf("rotation %d: username %v, want %s", i+1, cur["username"], want)
		}
		// Both users work: the clone got the grants on the database, and
		// the previous user keeps its password.
		if err := errors.Join(loginErr(t, st, StageCurrent), loginErr(t, st, StagePrevious)); err != nil {
			t.Errorf("rotation %d: %v", i+1, err)
		}
	}
}

func openDB(t *testing.T, c creds) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName, cfg.Net, cfg.Addr = c.user, c.password, c.dbname, "tcp", net.JoinHostPort(c.host, strconv.Itoa(c.port))
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRotatorCustomKeys: a secret in another shape ({"DB_USER", "DB_PASSWORD",
// ...}) is rotated under its own keys, keeping them and every other field.
func TestRotatorCustomKeys(t *testing.T) {
	srv := testdb.Require(t)
	ctx := context.Background()
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Skipf("server is not on TCP (%s)", srv.Addr)
	}
	user, db := srv.TempUser(t, "custom-First-Pw")
	doc, _ := json.Marshal(map[string]any{"DB_USER": user, "DB_PASSWORD": "custom-First-Pw", "DB_HOST": host, "DB_PORT": port, "DB_NAME": db, "team": "x"})
	st := NewStore()
	if _, _, err := st.CreateSecret("app/db", string(doc)); err != nil {
		t.Fatal(err)
	}
	r := NewRotator(st, "app/db", srv.Root(), SingleUser)
	r.Keys = Keys{Username: "DB_USER", Password: "DB_PASSWORD", Host: "DB_HOST", Port: "DB_PORT", DBName: "DB_NAME"}
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	v := must(st.GetSecretValue("app/db", "", StageCurrent))
	var got map[string]any
	if err := json.Unmarshal([]byte(v.SecretString), &got); err != nil {
		t.Fatal(err)
	}
	if got["DB_PASSWORD"] == "custom-First-Pw" || got["DB_USER"] != user || got["team"] != "x" || got["password"] != nil || got["username"] != nil {
		t.Fatalf("rotated secret has keys %v, want the same keys with a new DB_PASSWORD", slices.Sorted(maps.Keys(got)))
	}
	_, c, err := parseSecret(v.SecretString, r.Keys.WithDefaults())
	if err != nil || c.dbname != db {
		t.Fatalf("parse: %+v %v", c.dbname, err)
	}
	if err := login(ctx, c); err != nil {
		t.Fatalf("new password: %v", err)
	}
}
