package credsource

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

func newSMEmulator(t *testing.T) (*rotatingmysqltest.SecretsManager, string) {
	t.Helper()
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	arn, _, err := sm.Store().CreateSecret("app/db", rotatingmysqltest.SecretJSON("127.0.0.1", 3306, "app", "pw", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	return sm, arn
}

// waitConnections polls the emulator until it holds want connections, for
// at most 2 s (the server sees a client's close when it reads the EOF), and
// returns the last count.
func waitConnections(sm *rotatingmysqltest.SecretsManager, want int) int {
	n := sm.OpenConnections()
	for i := 0; i < 200 && n != want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = sm.OpenConnections()
	}
	return n
}

// fetchConcurrently makes n fetches at once, so that the client opens
// several connections.
func fetchConcurrently(t *testing.T, s Source, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Fetch(context.Background(), Request{Stage: Current})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecretsManagerCloseLeavesNoConnection checks that Close closes the
// connections of the HTTP client the source made, whether from AWSConfig or
// from the default chain, and that a fetch after Close leaves none either.
func TestSecretsManagerCloseLeavesNoConnection(t *testing.T) {
	for _, name := range []string{"AWSConfig", "default chain"} {
		t.Run(name, func(t *testing.T) {
			sm, arn := newSMEmulator(t)
			src := &SecretsManager{SecretID: arn}
			if name == "AWSConfig" {
				cfg := sm.AWSConfig()
				src.AWSConfig = &cfg
			} else {
				for k, v := range sm.Env() {
					t.Setenv(k, v)
				}
			}
			fetchConcurrently(t, src, 4)
			if n := sm.OpenConnections(); n == 0 {
				t.Fatal("the emulator saw no connection")
			}
			if err := src.Close(); err != nil {
				t.Fatal(err)
			}
			if n := waitConnections(sm, 0); n != 0 {
				t.Errorf("%d connections open after Close, want 0", n)
			}
			fetchConcurrently(t, src, 2)
			if n := waitConnections(sm, 0); n != 0 {
				t.Errorf("%d connections open after a fetch that followed Close, want 0", n)
			}
		})
	}
}

// closeRecorder is a transport that counts CloseIdleConnections calls.
type closeRecorder struct {
	*http.Transport
	closes atomic.Int32
}

func (c *closeRecorder) CloseIdleConnections() {
	c.closes.Add(1)
	c.Transport.CloseIdleConnections()
}

// TestSecretsManagerCloseKeepsCallersClient checks that Close leaves an
// HTTPClient the caller gave alone.
func TestSecretsManagerCloseKeepsCallersClient(t *testing.T) {
	sm, arn := newSMEmulator(t)
	tr := &closeRecorder{Transport: &http.Transport{}}
	t.Cleanup(tr.Transport.CloseIdleConnections)
	cfg := sm.AWSConfig()
	cfg.HTTPClient = &http.Client{Transport: tr}
	src := &SecretsManager{SecretID: arn, AWSConfig: &cfg}
	fetchConcurrently(t, src, 2)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	fetchConcurrently(t, src, 2)
	if n := tr.closes.Load(); n != 0 {
		t.Errorf("Close closed the idle connections of the caller's HTTP client (%d times)", n)
	}
}

// TestSecretsManagerCloseDuringFetches closes the source while fetches are
// under way: once they have ended, no connection is left open.
func TestSecretsManagerCloseDuringFetches(t *testing.T) {
	sm, arn := newSMEmulator(t)
	cfg := sm.AWSConfig()
	src := &SecretsManager{SecretID: arn, AWSConfig: &cfg}
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if i == 5 {
					started <- struct{}{}
				}
				if _, err := src.Fetch(context.Background(), Request{Stage: Current}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 8 {
		<-started
	}
	src.Close()
	wg.Wait()
	if n := waitConnections(sm, 0); n != 0 {
		t.Errorf("%d connections open after Close and the last fetch, want 0", n)
	}
}
