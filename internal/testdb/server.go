package testdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ErrExternal is returned by [Server.Restart] for a server reached through
// [Attach]: the package did not start it, so it cannot restart it.
var ErrExternal = errors.New("testdb: external server: cannot restart it")

// Server is a MariaDB server for tests: a private one started by [Start], or
// an external one reached through [Attach]. Its methods are safe for
// concurrent use.
type Server struct {
	// Addr is the server's address: host:port for TCP (always for a private
	// server), a socket path for an external server reached over a socket.
	Addr string
	// RootDSN is a go-sql-driver/mysql DSN for the root account, with no
	// database selected. A private server's root has no password.
	RootDSN string
	// Dir is the private server's directory: data directory (data/), socket,
	// pid file and error log (error.log). It is removed by Stop. Empty for an
	// external server.
	Dir string
	// Version is the server's version as SELECT VERSION() reports it, e.g.
	// "10.11.19-MariaDB-0+deb12u1".
	Version string

	rootCfg *mysql.Config // never handed out; callers get clones
	root    *sql.DB
	bins    binaries
	port    int

	mu      sync.Mutex // serializes Stop and Restart
	proc    *process   // nil for an external server and once stopped
	stopped bool
}

const (
	// readyTimeout bounds the wait for a freshly started mariadbd to accept
	// logins; it is ready in about 0.1 s on an idle machine.
	readyTimeout = 30 * time.Second
	// stopGrace bounds the wait after SIGTERM before the server is killed;
	// a normal shutdown takes well under a second.
	stopGrace = 30 * time.Second
	// installTimeout bounds mariadb-install-db (about 0.6 s).
	installTimeout = time.Minute
	// startAttempts is how many free ports Start tries: another process may
	// take the port between the probe and mariadbd's bind.
	startAttempts = 3
	// rootIdle is the number of idle connections the root pool keeps.
	rootIdle = 4

	socketName = "mysqld.sock"
	tmpName    = "tmp"
	logName    = "error.log"
	outName    = "mariadbd.out"
)

// errExitedEarly marks a mariadbd that exited before it was ready.
var errExitedEarly = errors.New("mariadbd exited before it was ready")

// Start initialises a new data directory in a temporary directory and starts
// a private mariadbd on a free port of 127.0.0.1. It returns once root can
// log in. It returns an error wrapping [ErrNotInstalled] when the MariaDB
// binaries are missing. Call [Server.Stop] to stop the server and remove its
// directory.
func Start(ctx context.Context) (*Server, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := makeDir()
	if err != nil {
		return nil, fmt.Errorf("testdb: %w", err)
	}
	s := &Server{Dir: dir, bins: bins}
	if err := s.installDB(ctx); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	for attempt := 1; ; attempt++ {
		var port int
		port, err = freePort()
		if err == nil {
			s.setPort(port)
			err = s.launch(ctx)
		}
		if err == nil || !errors.Is(err, errExitedEarly) || attempt == startAttempts {
			break
		}
	}
	if err == nil {
		err = s.openRoot(ctx)
	}
	if err != nil {
		return nil, errors.Join(err, s.Stop())
	}
	return s, nil
}

// Attach connects to an existing server through rootDSN, a go-sql-driver/mysql
// DSN for an account that may create users and databases and set global
// variables. [Server.Stop] then only closes the root pool, and
// [Server.Restart] returns [ErrExternal].
func Attach(ctx context.Context, rootDSN string) (*Server, error) {
	cfg, err := mysql.ParseDSN(rootDSN)
	if err != nil {
		return nil, fmt.Errorf("testdb: parse root DSN: %w", err)
	}
	s := &Server{Addr: cfg.Addr, RootDSN: rootDSN, rootCfg: cfg}
	if err := s.openRoot(ctx); err != nil {
		return nil, errors.Join(err, s.Stop())
	}
	return s, nil
}

// External reports whether s is an external server reached through [Attach].
func (s *Server) External() bool { return s.Dir == "" }

// Root returns the shared connection pool for the root account. Do not close
// it; [Server.Stop] does.
func (s *Server) Root() *sql.DB { return s.root }

// RootConfig returns a new copy of the root account's connection settings.
func (s *Server) RootConfig() *mysql.Config { return s.rootCfg.Clone() }

// UserConfig returns connection settings for user with password and default
// database db (may be empty). Use it with mysql.NewConnector: the password is
// never put into a DSN string, so any punctuation is safe.
func (s *Server) UserConfig(user, password, db string) *mysql.Config {
	cfg := s.rootCfg.Clone()
	cfg.User = user
	cfg.Passwd = password
	cfg.DBName = db
	return cfg
}

// Stop closes the root pool, stops a private server (SIGTERM, then SIGKILL
// after 30 s) and removes its directory. It is safe to call more than once.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	var errs []error
	if s.root != nil {
		errs = append(errs, s.root.Close())
	}
	if s.proc != nil {
		if err := s.proc.stop(stopGrace); err != nil {
			errs = append(errs, fmt.Errorf("%w\n%s", err, s.logTail()))
		}
		s.proc = nil
	}
	if s.Dir != "" {
		errs = append(errs, os.RemoveAll(s.Dir))
	}
	return errors.Join(errs...)
}

// Restart stops the private server with SIGTERM and starts it again on the
// same port and data directory, for tests of what clients do while the
// database restarts. Users, passwords and data survive; every open
// connection, in every test of the binary, is broken. The pool returned by
// [Server.Root] stays usable. It returns [ErrExternal] for an external server.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.External() {
		return ErrExternal
	}
	if s.stopped {
		return errors.New("testdb: restart: server is stopped")
	}
	// Idle root connections die with the server; dropping them spares the
	// next caller a broken connection.
	s.root.SetMaxIdleConns(0)
	defer s.root.SetMaxIdleConns(rootIdle)
	if s.proc != nil {
		err := s.proc.stop(stopGrace)
		s.proc = nil
		if err != nil {
			return fmt.Errorf("%w\n%s", err, s.logTail())
		}
	}
	return s.launch(ctx)
}

// dirPrefix starts the name of every private server's directory.
const dirPrefix = "rotatingmysql-testdb-"

// staleAge is how old a leftover directory must be before Start removes it.
const staleAge = time.Hour

// removeStale removes directories left behind by test binaries that were
// killed (go test -timeout, ^C): their server died with them (Pdeathsig),
// but nothing removed the data. A directory is stale when it is older than
// staleAge and its pid file names no live process.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(dir, "mysqld.pid")); err == nil {
			pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
			if err != nil || alive(pid) {
				continue
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// alive reports whether process pid may still exist.
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH)
}

func makeDir() (string, error) {
	removeStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return "", err
	}
	// A Unix socket path must fit in 108 bytes; a long TMPDIR would make
	// mariadbd fail to start.
	if len(filepath.Join(dir, socketName)) < 100 {
		return dir, nil
	}
	if err := os.Remove(dir); err != nil {
		return "", err
	}
	return os.MkdirTemp("/tmp", dirPrefix)
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testdb: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// userArgs runs the server as root when the tests run as root: without
// --user=root, mariadbd refuses to start as root.
func userArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

// innodbArgs size InnoDB for a small test server; mariadb-install-db gets the
// same so the first start need not resize the redo log.
var innodbArgs = []string{
	"--innodb-buffer-pool-size=32M",
	"--innodb-log-file-size=16M",
	// io_uring and libaio are often unavailable in containers (seccomp);
	// tests do not need them.
	"--innodb-use-native-aio=0",
}

// serverArgs are the tuning flags for a fast, disposable server that takes
// hundreds of concurrent connections.
var serverArgs = []string{
	"--skip-name-resolve",
	"--character-set-server=utf8mb4",
	"--skip-log-bin",
	// A warning in the error log for each refused login, naming the
	// account: Server.FailedLogins counts them per account.
	"--log-warnings=2",
	"--max-connections=1000",
	// Fault tests abort many handshakes; never block 127.0.0.1 for it.
	"--max-connect-errors=4294967295",
	"--host-cache-size=0",
	// Keeps the open-files request (about max_connections + 2 x cache)
	// within the usual 20000 limit.
	"--table-open-cache=400",
	// Durability is not wanted: commits need not reach the disk.
	"--innodb-flush-log-at-trx-commit=2",
	"--innodb-doublewrite=0",
	"--innodb-buffer-pool-dump-at-shutdown=0",
	"--innodb-buffer-pool-load-at-startup=0",
}

func (s *Server) installDB(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	// A temporary directory of its own: the bootstrap names its temporary
	// tables in a way that two mariadb-install-db running at once in the
	// shared /tmp can collide on ("Unknown table 'mysql.tmp_user_sys'"),
	// as test binaries of several packages do.
	if err := os.Mkdir(filepath.Join(s.Dir, tmpName), 0o700); err != nil {
		return fmt.Errorf("testdb: %w", err)
	}
	args := []string{
		"--no-defaults", // must come first
		"--datadir=" + filepath.Join(s.Dir, "data"),
		"--tmpdir=" + filepath.Join(s.Dir, tmpName),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
		// Skip the check that the host name resolves: minimal containers
		// have no /etc/hosts, and the grant tables need no host names.
		"--force",
	}
	args = append(args, userArgs()...)
	args = append(args, innodbArgs...)
	out, err := exec.CommandContext(ctx, s.bins.installDB, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testdb: %s: %w\n%s%s", s.bins.installDB, err, errorLines(out, 10), tail(out, 30))
	}
	return nil
}

// setPort sets the address and root settings of a private server; Start
// calls it before the server is shared, Restart keeps them.
func (s *Server) setPort(port int) {
	s.port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = s.Addr
	cfg.User = "root"
	cfg.Timeout = 5 * time.Second
	s.rootCfg = cfg
	s.RootDSN = cfg.FormatDSN()
}

// launch starts mariadbd on s.port and waits until root can log in.
func (s *Server) launch(ctx context.Context) error {
	port := s.port
	args := []string{
		"--no-defaults", // must come first
		"--datadir=" + filepath.Join(s.Dir, "data"),
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(port),
		"--socket=" + filepath.Join(s.Dir, socketName),
		"--tmpdir=" + filepath.Join(s.Dir, tmpName),
		"--pid-file=" + filepath.Join(s.Dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(s.Dir, logName),
	}
	args = append(args, userArgs()...)
	args = append(args, innodbArgs...)
	args = append(args, serverArgs...)
	tlsArgs, err := s.tlsArgs() // tls.go
	if err != nil {
		return err
	}
	args = append(args, tlsArgs...)

	out, err := os.OpenFile(filepath.Join(s.Dir, outName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testdb: %w", err)
	}
	p, err := startProcess(s.bins.server, args, out)
	out.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("testdb: start %s: %w", s.bins.server, err)
	}
	if err := s.waitReady(ctx, p); err != nil {
		var stopErr error
		if !p.exited() {
			stopErr = p.stop(stopGrace)
		}
		return errors.Join(fmt.Errorf("%w\n%s", err, s.logTail()), stopErr)
	}
	s.proc = p
	return nil
}

// waitReady polls until root can log in over TCP, p exits, or readyTimeout
// (or ctx) runs out.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cfg := s.rootCfg.Clone()
	cfg.Timeout = time.Second
	cfg.Logger = nopLogger{} // refused and half-open probes are expected
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("testdb: %w", err)
	}
	// Probes end when the process does: a probe of a port that another
	// process holds could otherwise hang until its timeout.
	probesCtx, cancelProbes := context.WithCancel(ctx)
	defer cancelProbes()
	go func() {
		select {
		case <-p.done:
			cancelProbes()
		case <-probesCtx.Done():
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// Checked first: select picks at random among ready cases.
		if p.exited() {
			return fmt.Errorf("testdb: %w (port %d): %w", errExitedEarly, s.port, p.exitErr())
		}
		probeCtx, probeCancel := context.WithTimeout(probesCtx, 2*time.Second)
		conn, err := connector.Connect(probeCtx)
		probeCancel()
		if err == nil {
			return conn.Close()
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("testdb: mariadbd not ready on %s: %w (last login error: %w)", s.Addr, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// openRoot opens the root pool and reads the server version.
func (s *Server) openRoot(ctx context.Context) error {
	connector, err := mysql.NewConnector(s.rootCfg)
	if err != nil {
		return fmt.Errorf("testdb: %w", err)
	}
	s.root = sql.OpenDB(connector)
	s.root.SetMaxIdleConns(rootIdle)
	if err := s.root.QueryRowContext(ctx, "SELECT VERSION()").Scan(&s.Version); err != nil {
		return fmt.Errorf("testdb: root login to %s: %w", s.Addr, err)
	}
	return nil
}

// logTail returns the end of the server's error log and console output, for
// error messages.
func (s *Server) logTail() string {
	var b bytes.Buffer
	for _, name := range []string{logName, outName} {
		path := filepath.Join(s.Dir, name)
		data, err := os.ReadFile(path)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", path, tail(data, 30))
	}
	return b.String()
}

// errorLines returns the first n lines of data that hold "[ERROR]", with
// a heading, or nothing: the tail of a failed mariadb-install-db's output
// is advice, the cause is earlier.
func errorLines(data []byte, n int) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(data, []byte("\n")) {
		if n == 0 {
			break
		}
		if bytes.Contains(line, []byte("[ERROR]")) {
			if b.Len() == 0 {
				b.WriteString("--- errors ---\n")
			}
			b.Write(line)
			b.WriteByte('\n')
			n--
		}
	}
	if b.Len() > 0 {
		b.WriteString("--- output (tail) ---\n")
	}
	return b.Bytes()
}

// tail returns the last n lines of data.
func tail(data []byte, n int) []byte {
	data = bytes.TrimRight(data, "\n")
	i := len(data)
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(data[:i], '\n')
		if i < 0 {
			return data
		}
	}
	return data[i+1:]
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}
