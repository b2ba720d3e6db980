package testdb

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// CreateUser creates database db if it does not exist, creates the account
// 'user'@'%' with password, and grants it all privileges on db. The password
// may hold any punctuation and non-ASCII text (but not NUL); it is sent as an
// escaped string literal because MariaDB takes no placeholder in CREATE USER.
// An empty db creates the account only.
func (s *Server) CreateUser(ctx context.Context, user, password, db string) error {
	return s.withRoot(ctx, func(conn *sql.Conn, q quoter) error {
		acct, err := q.account(user)
		if err != nil {
			return err
		}
		pw, err := q.literal(password)
		if err != nil {
			return err
		}
		stmts := []string{"CREATE USER " + acct + " IDENTIFIED BY " + pw}
		if db != "" {
			ident, err := quoteIdent(db)
			if err != nil {
				return err
			}
			stmts = []string{
				"CREATE DATABASE IF NOT EXISTS " + ident,
				stmts[0],
				"GRANT ALL ON " + ident + ".* TO " + acct,
			}
		}
		for _, stmt := range stmts {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("testdb: create user %q: %w", user, err)
			}
		}
		return nil
	})
}

// SetPassword changes the password of 'user'@'%' (ALTER USER). Sessions that
// are already open stay open.
func (s *Server) SetPassword(ctx context.Context, user, password string) error {
	return s.withRoot(ctx, func(conn *sql.Conn, q quoter) error {
		acct, err := q.account(user)
		if err != nil {
			return err
		}
		pw, err := q.literal(password)
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "ALTER USER "+acct+" IDENTIFIED BY "+pw); err != nil {
			return fmt.Errorf("testdb: set password of %q: %w", user, err)
		}
		return nil
	})
}

// DropUser drops 'user'@'%' if it exists. Its open sessions stay open.
func (s *Server) DropUser(ctx context.Context, user string) error {
	return s.withRoot(ctx, func(conn *sql.Conn, q quoter) error {
		acct, err := q.account(user)
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "DROP USER IF EXISTS "+acct); err != nil {
			return fmt.Errorf("testdb: drop user %q: %w", user, err)
		}
		return nil
	})
}

// DropDatabase drops database db if it exists.
func (s *Server) DropDatabase(ctx context.Context, db string) error {
	ident, err := quoteIdent(db)
	if err != nil {
		return err
	}
	if _, err := s.root.ExecContext(ctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
		return fmt.Errorf("testdb: drop database %q: %w", db, err)
	}
	return nil
}

// TempUser creates a user with password and a database of its own, both
// named by [UniqueName], and drops them when the test ends. It fails the
// test on error.
func (s *Server) TempUser(t testing.TB, password string) (user, db string) {
	t.Helper()
	user, db = UniqueName("u"), UniqueName("db")
	if err := s.CreateUser(t.Context(), user, password, db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is already canceled when cleanups run.
		ctx := context.Background()
		if err := errors.Join(s.DropUser(ctx, user), s.DropDatabase(ctx, db)); err != nil {
			t.Error(err)
		}
	})
	return user, db
}

// AccessDeniedErrors returns the server's count of rejected logins and
// other access-denied errors (global status Access_denied_errors).
func (s *Server) AccessDeniedErrors(ctx context.Context) (int64, error) {
	var name string
	var n int64
	err := s.root.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Access_denied_errors'").Scan(&name, &n)
	if err != nil {
		return 0, fmt.Errorf("testdb: read Access_denied_errors: %w", err)
	}
	return n, nil
}

// FailedLogins returns how many logins of the accounts named users the
// server refused for a wrong password or an unknown user (error 1045),
// read from the private server's error log, where MariaDB writes a warning
// for each one (log_warnings=2, which [Start] sets). Unlike
// [Server.AccessDeniedErrors], a server-wide counter, it counts only these
// accounts, so tests running in parallel each count their own. The count
// covers the server's whole life, restarts included: compare two calls. It
// returns [ErrExternal] for an external server, whose log it cannot read.
func (s *Server) FailedLogins(users ...string) (int64, error) {
	if s.External() {
		return 0, fmt.Errorf("testdb: failed logins per account: %w", ErrExternal)
	}
	f, err := os.Open(filepath.Join(s.Dir, logName))
	if err != nil {
		return 0, fmt.Errorf("testdb: failed logins per account: %w", err)
	}
	defer f.Close()
	// The warning reads: Access denied for user 'NAME'@'HOST' (using
	// password: YES).
	prefixes := make([][]byte, len(users))
	for i, u := range users {
		prefixes[i] = []byte("Access denied for user '" + u + "'@'")
	}
	var n int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte("(using password: ")) {
			continue
		}
		for _, p := range prefixes {
			if bytes.Contains(line, p) {
				n++
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("testdb: failed logins per account: %w", err)
	}
	return n, nil
}

// SetGlobal sets the global system variable name (letters, digits and
// underscores, e.g. "max_password_errors") to value: an integer, a bool (ON
// or OFF), a string, or nil for the variable's DEFAULT. It affects every test
// in the binary; [Server.TempGlobal] restores the old value.
func (s *Server) SetGlobal(ctx context.Context, name string, value any) error {
	return s.withRoot(ctx, func(conn *sql.Conn, q quoter) error {
		expr, err := q.value(value)
		if err != nil {
			return fmt.Errorf("testdb: set global %s: %w", name, err)
		}
		return setGlobal(ctx, conn, name, expr)
	})
}

// TempGlobal sets the global system variable name to value, like
// [Server.SetGlobal], and sets it back to its old value when the test ends.
// It fails the test on error.
func (s *Server) TempGlobal(t testing.TB, name string, value any) {
	t.Helper()
	var old string
	err := s.withRoot(t.Context(), func(conn *sql.Conn, q quoter) error {
		var err error
		if old, err = currentGlobal(t.Context(), conn, q, name); err != nil {
			return err
		}
		expr, err := q.value(value)
		if err != nil {
			return fmt.Errorf("testdb: set global %s: %w", name, err)
		}
		return setGlobal(t.Context(), conn, name, expr)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is already canceled when cleanups run.
		ctx := context.Background()
		err := s.withRoot(ctx, func(conn *sql.Conn, _ quoter) error {
			return setGlobal(ctx, conn, name, old)
		})
		if err != nil {
			t.Error(err)
		}
	})
}

// Global returns the value of the global system variable name as text (""
// for NULL).
func (s *Server) Global(ctx context.Context, name string) (string, error) {
	if !isVarName(name) {
		return "", fmt.Errorf("testdb: invalid variable name %q", name)
	}
	var v sql.NullString
	if err := s.root.QueryRowContext(ctx, "SELECT @@GLOBAL."+name).Scan(&v); err != nil {
		return "", fmt.Errorf("testdb: read global %s: %w", name, err)
	}
	return v.String, nil
}

// setGlobal runs SET GLOBAL name = expr. The value is not a placeholder:
// MariaDB 10.11 rejects a bound integer for some variables
// (max_password_errors: error 1232, incorrect argument type).
func setGlobal(ctx context.Context, conn *sql.Conn, name, expr string) error {
	if !isVarName(name) {
		return fmt.Errorf("testdb: invalid variable name %q", name)
	}
	if _, err := conn.ExecContext(ctx, "SET GLOBAL "+name+" = "+expr); err != nil {
		return fmt.Errorf("testdb: set global %s: %w", name, err)
	}
	return nil
}

// currentGlobal returns the value of global variable name as an SQL
// expression that SET GLOBAL accepts back: numbers bare (a quoted number is
// an error for numeric variables), text quoted.
func currentGlobal(ctx context.Context, conn *sql.Conn, q quoter, name string) (string, error) {
	if !isVarName(name) {
		return "", fmt.Errorf("testdb: invalid variable name %q", name)
	}
	rows, err := conn.QueryContext(ctx, "SELECT @@GLOBAL."+name)
	if err != nil {
		return "", fmt.Errorf("testdb: read global %s: %w", name, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return "", fmt.Errorf("testdb: read global %s: %w", name, err)
	}
	var v sql.NullString
	if !rows.Next() {
		return "", fmt.Errorf("testdb: read global %s: no row: %w", name, rows.Err())
	}
	if err := rows.Scan(&v); err != nil {
		return "", fmt.Errorf("testdb: read global %s: %w", name, err)
	}
	if !v.Valid {
		return "NULL", nil
	}
	typ := types[0].DatabaseTypeName()
	if strings.Contains(typ, "INT") || typ == "DECIMAL" || typ == "DOUBLE" || typ == "FLOAT" {
		if _, err := strconv.ParseFloat(v.String, 64); err == nil {
			return v.String, nil
		}
	}
	return q.literal(v.String)
}

// FlushPrivileges reloads the grant tables (FLUSH PRIVILEGES). On MariaDB it
// also unblocks accounts blocked by max_password_errors.
func (s *Server) FlushPrivileges(ctx context.Context) error {
	if _, err := s.root.ExecContext(ctx, "FLUSH PRIVILEGES"); err != nil {
		return fmt.Errorf("testdb: flush privileges: %w", err)
	}
	return nil
}

// withRoot runs f on one root connection, with a quoter that matches the
// connection's sql_mode.
func (s *Server) withRoot(ctx context.Context, f func(*sql.Conn, quoter) error) error {
	conn, err := s.root.Conn(ctx)
	if err != nil {
		return fmt.Errorf("testdb: root connection: %w", err)
	}
	defer conn.Close()
	q, err := newQuoter(ctx, conn)
	if err != nil {
		return err
	}
	return f(conn, q)
}

// newQuoter returns a quoter for the sql_mode of conn's session.
func newQuoter(ctx context.Context, conn *sql.Conn) (quoter, error) {
	var mode string
	if err := conn.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		return quoter{}, fmt.Errorf("testdb: read sql_mode: %w", err)
	}
	q := quoter{backslashEscapes: true}
	for _, m := range strings.Split(mode, ",") {
		if strings.EqualFold(m, "NO_BACKSLASH_ESCAPES") {
			q.backslashEscapes = false
		}
	}
	return q, nil
}

// quoter writes SQL string literals for a session's sql_mode.
type quoter struct {
	// backslashEscapes is false under sql_mode NO_BACKSLASH_ESCAPES, where
	// a backslash in a literal is an ordinary character.
	backslashEscapes bool
}

// literal returns s as a single-quoted SQL string literal.
func (q quoter) literal(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("testdb: string contains NUL")
	}
	if !utf8.ValidString(s) {
		// The connection character set is utf8mb4; the server would
		// mangle or reject other bytes.
		return "", errors.New("testdb: string is not valid UTF-8")
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\'':
			b.WriteString("''") // valid in every sql_mode
		case r == '\\' && q.backslashEscapes:
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}

// value returns v as an SQL value for SET GLOBAL.
func (q quoter) value(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "DEFAULT", nil
	case bool:
		if v {
			return "ON", nil
		}
		return "OFF", nil
	case string:
		return q.literal(v)
	case int:
		return strconv.FormatInt(int64(v), 10), nil
	case int8:
		return strconv.FormatInt(int64(v), 10), nil
	case int16:
		return strconv.FormatInt(int64(v), 10), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint8:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint16:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	default:
		return "", fmt.Errorf("unsupported value type %T", v)
	}
}

// account returns 'user'@'%'.
func (q quoter) account(user string) (string, error) {
	if user == "" {
		return "", errors.New("testdb: empty user name")
	}
	u, err := q.literal(user)
	if err != nil {
		return "", err
	}
	return u + "@'%'", nil
}

// quoteIdent returns name as a backquoted identifier.
func quoteIdent(name string) (string, error) {
	if name == "" || strings.IndexByte(name, 0) >= 0 || !utf8.ValidString(name) {
		return "", fmt.Errorf("testdb: invalid identifier %q", name)
	}
	return "`" + strings.ReplaceAll(name, "`", "``") + "`", nil
}

func isVarName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
