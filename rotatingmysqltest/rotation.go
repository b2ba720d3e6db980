package rotatingmysqltest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Strategy is the rotation template a Rotator follows.
type Strategy int

const (
	// SingleUser changes the password of the secret's one user, as AWS's
	// MySQLSingleUser template does: new logins with AWSCURRENT fail from
	// SetSecret until FinishSecret.
	SingleUser Strategy = iota
	// MultiUser alternates between the user and a clone of it named with the
	// suffix "_clone", as AWS's MySQLMultiUser template does: the previous
	// user keeps working.
	MultiUser
)

// Step names a step of a rotation, as the rotation function receives it.
type Step string

// The four steps of a rotation, in order.
const (
	StepCreateSecret Step = "createSecret"
	StepSetSecret    Step = "setSecret"
	StepTestSecret   Step = "testSecret"
	StepFinishSecret Step = "finishSecret"
)

// Defaults of NewRotator, those of the AWS templates.
const (
	DefaultPasswordLength = 32
	DefaultExclude        = `/@"'\`
)

const cloneSuffix = "_clone"

// loginTimeout bounds each login the Rotator makes.
const loginTimeout = 5 * time.Second

// Rotator performs the steps of AWS's managed MySQL rotation against a real
// MySQL or MariaDB server, reading and writing the secret in a Store.
//
// Unlike the AWS templates, which log in as the user itself (SingleUser) or as
// the master user named by masterarn (MultiUser), the Rotator changes users
// through Admin, an administrator's connection pool. Like them it is
// stateless: each step finds its version by staging label, so a failed
// rotation can be resumed by running Rotate again.
type Rotator struct {
	Store    *Store
	SecretID string
	// Admin runs CREATE USER, GRANT and ALTER USER; it needs those privileges.
	Admin    *sql.DB
	Strategy Strategy
	// PasswordLength is the length of generated passwords.
	PasswordLength int
	// Exclude lists characters generated passwords never contain.
	Exclude string
	// UserHost is the host part of the accounts changed, such as "%".
	UserHost string
	// Pause is how long Rotate waits after TestSecret, before FinishSecret:
	// with SingleUser, the window in which the database accepts only the new
	// password while AWSCURRENT still holds the old one.
	Pause time.Duration
	// OnStep is called before each step Rotate runs.
	OnStep func(Step)
	// Keys names the secret's JSON keys, for secrets not in the RDS shape
	// (as rotatingmysql's usernameKey... parameters do); the zero value
	// means the RDS keys. The rotation writes the new password under
	// Keys.Password and keeps every other key as it is.
	Keys Keys
}

// NewRotator returns a Rotator for the secret id in store with the templates'
// defaults: passwords of DefaultPasswordLength characters without
// DefaultExclude, accounts at host "%", no pause.
func NewRotator(store *Store, id string, admin *sql.DB, strategy Strategy) *Rotator {
	return &Rotator{
		Store: store, SecretID: id, Admin: admin, Strategy: strategy,
		PasswordLength: DefaultPasswordLength, Exclude: DefaultExclude, UserHost: "%",
		OnStep: func(Step) {},
	}
}

// Rotate runs the four steps, calling OnStep before each and waiting Pause
// before FinishSecret. It stops at the first error, leaving AWSPENDING in
// place as a failed rotation does.
func (r *Rotator) Rotate(ctx context.Context) error {
	steps := []struct {
		step Step
		run  func(context.Context) error
	}{
		{StepCreateSecret, r.CreateSecret},
		{StepSetSecret, r.SetSecret},
		{StepTestSecret, r.TestSecret},
		{StepFinishSecret, r.FinishSecret},
	}
	for _, s := range steps {
		if s.step == StepFinishSecret {
			if err := sleep(ctx, r.Pause); err != nil {
				return fmt.Errorf("rotatingmysqltest: before %s: %w", s.step, err)
			}
		}
		if r.OnStep != nil {
			r.OnStep(s.step)
		}
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("rotatingmysqltest: %s: %w", s.step, err)
		}
	}
	return nil
}

// CreateSecret stores a copy of AWSCURRENT with a new password as a version
// labelled AWSPENDING; with MultiUser the username switches between the user
// and its clone. If a rotation is already pending it does nothing, as the
// template does when the service retries a step.
func (r *Rotator) CreateSecret(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if v, err := r.Store.GetSecretValue(r.SecretID, "", StagePending); err == nil && !slices.Contains(v.Stages, StageCurrent) {
		return nil
	}
	cur, err := r.Store.GetSecretValue(r.SecretID, "", StageCurrent)
	if err != nil {
		return err
	}
	keys := r.Keys.WithDefaults()
	fields, c, err := parseSecret(cur.SecretString, keys)
	if err != nil {
		return err
	}
	if r.Strategy == MultiUser {
		if u, ok := strings.CutSuffix(c.user, cloneSuffix); ok {
			fields[keys.Username] = u
		} else {
			fields[keys.Username] = c.user + cloneSuffix
		}
	}
	if fields[keys.Password], err = r.password(); err != nil {
		return err
	}
	_, err = r.Store.PutSecretValue(r.SecretID, encodeJSON(fields), []string{StagePending})
	return err
}

// SetSecret gives the database the AWSPENDING password. As the template does,
// it first tries to log in with AWSPENDING and stops if that works, so a
// rotation costs one failed login. With MultiUser it first creates the
// clone, if missing, with the grants of the AWSCURRENT user (SHOW GRANTS,
// minus any IDENTIFIED clause).
func (r *Rotator) SetSecret(ctx context.Context) error {
	pending, err := r.creds(StagePending)
	if err != nil {
		return err
	}
	if login(ctx, pending) == nil {
		return nil
	}
	if r.Admin == nil {
		return errors.New("rotatingmysqltest: Rotator.Admin is nil")
	}
	conn, err := r.Admin.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Literals must be escaped the way this session parses them.
	var mode string
	if err := conn.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		return err
	}
	noBackslash := strings.Contains(mode, "NO_BACKSLASH_ESCAPES")
	host := r.UserHost
	if host == "" {
		host = "%"
	}
	account := func(user string) string {
		return quoteString(user, noBackslash) + "@" + quoteString(host, noBackslash)
	}
	if r.Strategy == MultiUser {
		if err := r.createClone(ctx, conn, pending, host, account); err != nil {
			return err
		}
	}
	// ALTER USER takes no placeholders (MariaDB), hence the quoted literal.
	_, err = conn.ExecContext(ctx, "ALTER USER "+account(pending.user)+" IDENTIFIED BY "+quoteString(pending.password, noBackslash))
	return err
}

// createClone creates pending.user with the grants of the AWSCURRENT user
// unless it exists.
func (r *Rotator) createClone(ctx context.Context, conn *sql.Conn, pending creds, host string, account func(string) string) error {
	cur, err := r.creds(StageCurrent)
	if err != nil || cur.user == pending.user {
		return err
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?", pending.user, host).Scan(&n); err != nil || n > 0 {
		return err
	}
	if _, err := conn.ExecContext(ctx, "CREATE USER "+account(pending.user)); err != nil {
		return err
	}
	rows, err := conn.QueryContext(ctx, "SHOW GRANTS FOR "+account(cur.user))
	if err != nil {
		return err
	}
	var grants []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return err
		}
		grants = append(grants, g)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	from, to := " TO "+quoteIdent(cur.user)+"@"+quoteIdent(host), " TO "+quoteIdent(pending.user)+"@"+quoteIdent(host)
	for _, g := range grants {
		if _, err := conn.ExecContext(ctx, strings.ReplaceAll(stripIdentified(g), from, to)); err != nil {
			return fmt.Errorf("copy grant to %s: %w", pending.user, err)
		}
	}
	return nil
}

// stripIdentified removes the IDENTIFIED clause MariaDB shows in a grant, so
// that copying the grant does not copy the password.
func stripIdentified(grant string) string {
	i := strings.Index(grant, " IDENTIFIED ")
	if i < 0 {
		return grant
	}
	if j := strings.Index(grant[i:], " WITH "); j >= 0 {
		return grant[:i] + grant[i+j:]
	}
	return grant[:i]
}

// TestSecret logs in with AWSPENDING over a new connection and runs SELECT 1.
// A login error is the server's *mysql.MySQLError, wrapped.
func (r *Rotator) TestSecret(ctx context.Context) error {
	pending, err := r.creds(StagePending)
	if err != nil {
		return err
	}
	if err := login(ctx, pending); err != nil {
		return fmt.Errorf("log in as %s with AWSPENDING: %w", pending.user, err)
	}
	return nil
}

// FinishSecret moves AWSCURRENT to the AWSPENDING version (the service moves
// AWSPREVIOUS to the old one), removes AWSPENDING and records the rotation
// date, as the service does at the end of a rotation.
func (r *Rotator) FinishSecret(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pending, err := r.Store.GetSecretValue(r.SecretID, "", StagePending)
	if err != nil {
		return err
	}
	if !slices.Contains(pending.Stages, StageCurrent) {
		cur, err := r.Store.GetSecretValue(r.SecretID, "", StageCurrent)
		if err != nil {
			return err
		}
		if err := r.Store.UpdateSecretVersionStage(r.SecretID, StageCurrent, pending.VersionID, cur.VersionID); err != nil {
			return err
		}
	}
	if err := r.Store.RemoveStage(r.SecretID, StagePending); err != nil {
		return err
	}
	return r.Store.SetLastRotated(r.SecretID, time.Now())
}

// password generates a password as GetRandomPassword does for the templates:
// printable ASCII without space and the excluded characters, with at least
// one character of each included kind (lower, upper, digit, punctuation).
func (r *Rotator) password() (string, error) {
	var chars []byte
	for c := byte('!'); c <= '~'; c++ {
		if !strings.ContainsRune(r.Exclude, rune(c)) {
			chars = append(chars, c)
		}
	}
	n := r.PasswordLength
	if n <= 0 {
		n = DefaultPasswordLength
	}
	if len(chars) == 0 {
		return "", errors.New("rotatingmysqltest: every character is excluded")
	}
	kinds := map[int]bool{}
	for _, c := range chars {
		kinds[kind(c)] = true
	}
	buf := make([]byte, 1)
	for {
		pw := make([]byte, 0, n)
		for len(pw) < n {
			if _, err := rand.Read(buf); err != nil {
				return "", err
			}
			// Taking 7 bits and rejecting indexes past the set keeps the
			// choice uniform (the set has at most 94 characters).
			if i := int(buf[0] & 0x7f); i < len(chars) {
				pw = append(pw, chars[i])
			}
		}
		seen := map[int]bool{}
		for _, c := range pw {
			seen[kind(c)] = true
		}
		if len(seen) == len(kinds) || n < len(kinds) {
			return string(pw), nil
		}
	}
}

func kind(c byte) int {
	switch {
	case 'a' <= c && c <= 'z':
		return 0
	case 'A' <= c && c <= 'Z':
		return 1
	case '0' <= c && c <= '9':
		return 2
	}
	return 3
}

// Keys names the JSON keys of a secret's fields; empty fields are the RDS
// keys (username, password, host, port, dbname). It has the fields of
// credsource.Keys, so one converts to the other: rotatingmysqltest.Keys(k).
// (This package does not import credsource, whose tests use it.)
type Keys struct {
	Username string
	Password string
	Host     string
	Port     string
	DBName   string
}

// WithDefaults returns k with every empty key set to the RDS one.
func (k Keys) WithDefaults() Keys {
	for _, f := range []struct {
		dst *string
		def string
	}{{&k.Username, "username"}, {&k.Password, "password"}, {&k.Host, "host"}, {&k.Port, "port"}, {&k.DBName, "dbname"}} {
		if *f.dst == "" {
			*f.dst = f.def
		}
	}
	return k
}

// creds are the login fields of an RDS-format secret.
type creds struct {
	host           string
	port           int
	user, password string
	dbname         string
}

// parseSecret decodes a secret whose fields are under keys (the RDS ones by
// default), keeping every field (unknown ones too) for re-encoding. port may
// be a number or a string; it defaults to 3306.
func parseSecret(s string, keys Keys) (map[string]any, creds, error) {
	var fields map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&fields); err != nil {
		return nil, creds{}, fmt.Errorf("rotatingmysqltest: secret is not a JSON object: %w", err)
	}
	str := func(k string) string { v, _ := fields[k].(string); return v }
	c := creds{host: str(keys.Host), port: 3306, user: str(keys.Username), password: str(keys.Password), dbname: str(keys.DBName)}
	if p, ok := fields[keys.Port]; ok {
		n, err := strconv.Atoi(fmt.Sprint(p))
		if err != nil {
			return nil, creds{}, fmt.Errorf("rotatingmysqltest: secret has a bad port %v", p)
		}
		c.port = n
	}
	if c.user == "" {
		return nil, creds{}, fmt.Errorf("rotatingmysqltest: secret has no %q", keys.Username)
	}
	return fields, c, nil
}

func (r *Rotator) creds(stage string) (creds, error) {
	v, err := r.Store.GetSecretValue(r.SecretID, "", stage)
	if err != nil {
		return creds{}, err
	}
	_, c, err := parseSecret(v.SecretString, r.Keys.WithDefaults())
	return c, err
}

// login opens one new connection with c and runs SELECT 1.
func login(ctx context.Context, c creds) error {
	if c.host == "" {
		return errors.New("rotatingmysqltest: secret has no host")
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = c.user, c.password, c.dbname
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(c.host, strconv.Itoa(c.port))
	cfg.Timeout = loginTimeout
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// quoteString returns s as a single-quoted SQL string literal. Quotes are
// doubled, which every sql_mode accepts; backslashes and NUL are escaped
// unless the session has NO_BACKSLASH_ESCAPES, where they are plain.
func quoteString(s string, noBackslashEscapes bool) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			b.WriteString("''")
		case c == '\\' && !noBackslashEscapes:
			b.WriteString(`\\`)
		case c == 0 && !noBackslashEscapes:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteIdent returns s as SHOW GRANTS quotes names: in backquotes, doubled
// inside.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// SecretJSON returns an RDS-format MySQL secret for a server at host:port.
// dbname is left out when empty.
func SecretJSON(host string, port int, user, password, dbname string) string {
	fields := map[string]any{"engine": "mysql", "host": host, "port": port, "username": user, "password": password}
	if dbname != "" {
		fields["dbname"] = dbname
	}
	return encodeJSON(fields)
}

// encodeJSON encodes a secret's fields without escaping <, > and &, which
// passwords may hold.
func encodeJSON(fields map[string]any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(fields) // cannot fail: the values are strings and numbers
	return strings.TrimSuffix(b.String(), "\n")
}
