package testdb

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotInstalled reports that the MariaDB server binaries (mariadbd and
// mariadb-install-db) were found neither on PATH nor in the usual system
// directories.
var ErrNotInstalled = errors.New("testdb: MariaDB not installed")

// binaries holds the absolute paths of the MariaDB programs the package runs.
type binaries struct {
	server    string // mariadbd
	installDB string // mariadb-install-db
}

// extraDirs are searched after PATH: Debian puts mariadbd in /usr/sbin, which
// is not on PATH for non-root users (and not always for root).
var extraDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin"}

func findBinaries() (binaries, error) {
	var b binaries
	var missing []string
	for _, f := range []struct {
		name string
		path *string
	}{{"mariadbd", &b.server}, {"mariadb-install-db", &b.installDB}} {
		if *f.path = findBinary(f.name); *f.path == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return binaries{}, fmt.Errorf("%w: %s not found on PATH or in %s",
			ErrNotInstalled, strings.Join(missing, ", "), strings.Join(extraDirs, " "))
	}
	return b, nil
}

// findBinary returns the absolute path of the program name, or "".
func findBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	for _, dir := range extraDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
