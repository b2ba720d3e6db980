package credsource

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEnvSource(t *testing.T) {
	const name = "ROTATINGMYSQL_TEST_DB_SECRET"
	ctx := context.Background()
	src := &Env{Name: name}
	for _, tc := range []struct {
		name    string
		value   *string // nil: unset
		want    string  // password, or "" for an error
		errHas  string
		errWrap error
	}{
		{name: "RDS JSON", value: ptr(`{"engine":"mysql","host":"h","port":"3307","username":"u","password":"p@ss{}"}`), want: "p@ss{}"},
		{name: "unset", errHas: name + " is not set"},
		{name: "empty", value: ptr(""), errHas: name + " is empty"},
		{name: "blank", value: ptr(" \n"), errHas: name + " is empty"},
		{name: "not JSON", value: ptr(`password=hunter2`), errHas: "not valid JSON", errWrap: &SecretError{}},
		{name: "no password", value: ptr(`{"username":"u"}`), errHas: `field "password"`, errWrap: &SecretError{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.value == nil {
				t.Setenv(name, "")
				unsetenv(t, name)
			} else {
				t.Setenv(name, *tc.value)
			}
			sec, err := src.Fetch(ctx, Request{Stage: Current})
			if tc.want != "" {
				if err != nil || sec.Creds.Password != tc.want || sec.Source != "env" || sec.ID != name {
					t.Fatalf("Fetch: %+v %v", sec, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, name, tc.errHas)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes the value: %v", err)
			}
			var se *SecretError
			if tc.errWrap != nil && !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SecretError", err)
			}
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v wraps ErrNotFound or ErrUnavailable: the cache would drop its last good value", err)
			}
		})
	}
	t.Run("refresh re-reads", func(t *testing.T) {
		t.Setenv(name, `{"username":"u","password":"one"}`)
		c := NewCache(src, CacheOptions{MinRefreshInterval: 1})
		if s, err := c.Get(ctx, Current); err != nil || s.Creds.Password != "one" {
			t.Fatalf("%v %v", s, err)
		}
		t.Setenv(name, `{"username":"u","password":"two"}`)
		if s, err := c.Get(ctx, Current); err != nil || s.Creds.Password != "one" {
			t.Fatalf("Get within the TTL: %v %v", s, err)
		}
		if s, err := c.Refresh(ctx, Current, time.Now()); err != nil || s.Creds.Password != "two" {
			t.Fatalf("Refresh: %v %v", s, err)
		}
	})
	t.Run("no stages", func(t *testing.T) {
		t.Setenv(name, `{"username":"u","password":"one"}`)
		_, err := src.Fetch(ctx, Request{Stage: Pending, Refresh: true})
		if !errors.Is(err, ErrNoStages) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), name) {
			t.Fatalf("AWSPENDING: %v", err)
		}
	})
}
