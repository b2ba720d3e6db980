package credsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func unsetenv(t *testing.T, name string) {
	t.Helper()
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func secretDoc(password string) string {
	return fmt.Sprintf(`{"engine":"mariadb","host":"db.example","port":3306,"username":"app","password":%q}`, password)
}

func TestFileSource(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.json")
	write := func(doc string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := &File{Path: path}
	for _, tc := range []struct {
		name   string
		setup  func()
		want   string
		errHas string
	}{
		{name: "RDS JSON", setup: func() { write(secretDoc("pw-1")) }, want: "pw-1"},
		{name: "missing", setup: func() { os.Remove(path) }, errHas: "no such file"},
		{name: "directory", setup: func() { os.Remove(path); os.Mkdir(path, 0o700) }, errHas: "is a directory"},
		{name: "empty (truncated before the write)", setup: func() { os.Remove(path); write("") }, errHas: "empty"},
		{name: "half-written", setup: func() { write(secretDoc("hunter2-secret")[:40]) }, errHas: "half-written"},
		{name: "too large", setup: func() { write(strings.Repeat(" ", maxSecretFile+1)) }, errHas: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			sec, err := src.Fetch(ctx, Request{})
			if tc.want != "" {
				if err != nil || sec.Creds.Password != tc.want || sec.Source != "file" || sec.ID != path {
					t.Fatalf("Fetch: %+v %v", sec, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, path, tc.errHas)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes the file: %v", err)
			}
			if errors.Is(err, ErrNotFound) {
				t.Fatalf("error %v wraps ErrNotFound: the cache would drop its last good value", err)
			}
		})
	}
	t.Run("no stages", func(t *testing.T) {
		os.RemoveAll(path)
		write(secretDoc("pw-1"))
		_, err := src.Fetch(ctx, Request{Stage: Pending})
		if !errors.Is(err, ErrNoStages) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), path) {
			t.Fatalf("AWSPENDING: %v", err)
		}
	})
	t.Run("transient read errors serve the last good value", func(t *testing.T) {
		os.RemoveAll(path)
		write(secretDoc("pw-1"))
		c := NewCache(src, CacheOptions{MinRefreshInterval: 1})
		if s, err := c.Get(ctx, Current); err != nil || s.Creds.Password != "pw-1" {
			t.Fatalf("%v %v", s, err)
		}
		write(secretDoc("pw-2")[:30])
		if s, err := c.Refresh(ctx, Current, time.Now()); err != nil || s.Creds.Password != "pw-1" {
			t.Fatalf("half-written: %v %v", s, err)
		}
		os.Remove(path)
		if s, err := c.Refresh(ctx, Current, time.Now()); err != nil || s.Creds.Password != "pw-1" {
			t.Fatalf("missing: %v %v", s, err)
		}
		write(secretDoc("pw-2"))
		if s, err := c.Refresh(ctx, Current, time.Now()); err != nil || s.Creds.Password != "pw-2" {
			t.Fatalf("rewritten: %v %v", s, err)
		}
		if st := c.Stats(); st.StaleServed != 2 || st.FetchErrors != 2 || st.LastError != nil {
			t.Fatalf("stats %+v", st)
		}
	})
}

// csiMount lays out a directory as the Secrets Store CSI driver (through
// the kubelet's atomic writer) does: the file is a symlink into ..data,
// itself a symlink to a timestamped directory; an update writes a new
// directory and renames a new ..data symlink over the old one.
type csiMount struct {
	t   *testing.T
	dir string
	n   int
}

func (m *csiMount) update(doc string) {
	m.t.Helper()
	m.n++
	ts := fmt.Sprintf("..2025_01_01_00_00_%02d.%09d", m.n, m.n)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, ts, "secret.json"), []byte(doc), 0o644); err != nil {
		m.t.Fatal(err)
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
	link := filepath.Join(m.dir, "secret.json")
	if _, err := os.Lstat(link); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", "secret.json"), link); err != nil {
			m.t.Fatal(err)
		}
	}
}

func TestFileSourceCSISymlinkSwap(t *testing.T) {
	ctx := context.Background()
	m := &csiMount{t: t, dir: t.TempDir()}
	m.update(secretDoc("pw-1"))
	src := &File{Path: filepath.Join(m.dir, "secret.json")}
	c := NewCache(src, CacheOptions{TTL: time.Hour, MinRefreshInterval: 1})
	if s, err := c.Get(ctx, Current); err != nil || s.Creds.Password != "pw-1" {
		t.Fatalf("%v %v", s, err)
	}
	m.update(secretDoc("pw-2"))
	if s, err := c.Get(ctx, Current); err != nil || s.Creds.Password != "pw-1" {
		t.Fatalf("within the TTL the cached value is served: %v %v", s, err)
	}
	// A forced refresh (what a 1045 triggers) follows the swapped link.
	if s, err := c.Refresh(ctx, Current, time.Now()); err != nil || s.Creds.Password != "pw-2" {
		t.Fatalf("after the swap: %v %v", s, err)
	}
	m.update(secretDoc("pw-3"))
	if s, err := src.Fetch(ctx, Request{Refresh: true}); err != nil || s.Creds.Password != "pw-3" {
		t.Fatalf("second swap: %v %v", s, err)
	}
}
