package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

// awsBed is the world of an -aws drill without AWS: the embedded server
// with an application account, the Secrets Manager emulator holding its
// secret (reached through the environment, as config.LoadDefaultConfig
// finds the real service), and a rotator that plays the rotation function.
type awsBed struct {
	sm  *rotatingmysqltest.SecretsManager
	arn string
	rot *rotatingmysqltest.Rotator
}

func newAWSBed(t *testing.T, rotation bool) *awsBed {
	t.Helper()
	ctx := context.Background()
	e, err := startEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	root, err := openDB(ctx, e.rootConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	acct := account{user: "app", password: newPassword(), db: "appdb"}
	if err := createAccount(ctx, root, acct); err != nil {
		t.Fatal(err)
	}
	sm, err := rotatingmysqltest.NewSecretsManager()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	for k, v := range sm.Env() {
		t.Setenv(k, v)
	}
	host, portStr, _ := net.SplitHostPort(e.addr)
	port, _ := strconv.Atoi(portStr)
	b := &awsBed{sm: sm}
	b.arn, _, err = sm.Store().CreateSecret("staging/app", rotatingmysqltest.SecretJSON(host, port, acct.user, acct.password, acct.db))
	if err != nil {
		t.Fatal(err)
	}
	if rotation {
		if err := sm.Store().SetRotation(b.arn, true, "arn:aws:lambda:us-east-1:123456789012:function:rotate-mysql", 30); err != nil {
			t.Fatal(err)
		}
	}
	b.rot = rotatingmysqltest.NewRotator(sm.Store(), b.arn, root, rotatingmysqltest.SingleUser)
	return b
}

// lambda runs the rotation's steps after each RotateSecret the emulator
// receives, as the service invokes the rotation function, pausing before
// finishSecret; with finish false it stops there, as a rotation whose
// finishSecret fails.
func (b *awsBed) lambda(t *testing.T, pause time.Duration, finish bool) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen := 0
		for sleep(ctx, 10*time.Millisecond) == nil {
			n := b.sm.Calls("RotateSecret")
			if n == seen {
				continue
			}
			seen = n
			for _, step := range []func(context.Context) error{b.rot.CreateSecret, b.rot.SetSecret, b.rot.TestSecret} {
				if err := step(ctx); err != nil {
					t.Errorf("rotation function: %v", err)
					return
				}
			}
			if !finish || sleep(ctx, pause) != nil {
				continue
			}
			if err := b.rot.FinishSecret(ctx); err != nil {
				t.Errorf("rotation function: finishSecret: %v", err)
			}
		}
	}()
}

func TestAWSRefusesSecretWithoutRotation(t *testing.T) {
	b := newAWSBed(t, false)
	_, stderr := runJSON(t, exitCannotRun, "-aws", "-secret", b.arn, "-duration", "1s")
	for _, want := range []string{"no rotation configured", "secretsmanager:RotateSecret", "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "lambda:InvokeFunction"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("refusal lacks %q:\n%s", want, stderr)
		}
	}
	if n := b.sm.Calls("RotateSecret"); n != 0 {
		t.Errorf("RotateSecret called %d times on a secret without rotation", n)
	}
}

func TestAWSRefusesRotationUnderWay(t *testing.T) {
	b := newAWSBed(t, true)
	if err := b.rot.CreateSecret(context.Background()); err != nil { // AWSPENDING left behind
		t.Fatal(err)
	}
	_, stderr := runJSON(t, exitCannotRun, "-aws", "-secret", b.arn, "-duration", "1s")
	if !strings.Contains(stderr, "rotation under way or stuck") {
		t.Errorf("refusal does not say a rotation is under way:\n%s", stderr)
	}
	if n := b.sm.Calls("RotateSecret"); n != 0 {
		t.Errorf("RotateSecret called %d times", n)
	}
}

func TestAWSFollowsRotation(t *testing.T) {
	b := newAWSBed(t, true)
	b.lambda(t, 500*time.Millisecond, true)
	rep, _ := runJSON(t, exitPass, "-aws", "-secret", b.arn, "-duration", "2s", "-poll", "20ms", "-plain-workers", "2")
	var steps []string
	for _, m := range rep.Marks {
		steps = append(steps, m.Step)
	}
	if got, want := strings.Join(steps, ","), "before,rotateSecret,pending,after"; got != want {
		t.Errorf("steps %s, want %s", got, want)
	}
	if n := b.sm.Calls("RotateSecret"); n != 1 {
		t.Errorf("RotateSecret called %d times, want 1", n)
	}
	if n := b.sm.Calls("DescribeSecret"); n < 3 {
		t.Errorf("DescribeSecret called %d times: the drill did not follow the rotation", n)
	}
	rm := driverTotal(t, rep, driverRotating)
	if rm.Errors != 0 || deref(rm.PendingUsed) == 0 {
		t.Errorf("rotatingmysql: %d errors (%v), %d logins with AWSPENDING; want 0 errors and AWSPENDING used", rm.Errors, rm.ErrorKinds, deref(rm.PendingUsed))
	}
	if _, e := stepErrors(rep, driverPlain, stepPending); e == 0 {
		t.Errorf("plain driver: no error while AWSPENDING was pending")
	}
	if _, e := stepErrors(rep, driverPlain, stepAfter); e == 0 {
		t.Errorf("plain driver: no error after the rotation")
	}
}

func TestAWSPlainWorkersOffByDefault(t *testing.T) {
	b := newAWSBed(t, true)
	b.lambda(t, 100*time.Millisecond, true)
	rep, _ := runJSON(t, exitPass, "-aws", "-secret", b.arn, "-duration", "1s", "-poll", "20ms")
	if rep.PlainWorkers != 0 || len(rep.Drivers) != 1 || len(rep.Timeline.Series) != 1 {
		t.Errorf("plain workers ran against a real secret without -plain-workers: %d workers, drivers %+v", rep.PlainWorkers, rep.Drivers)
	}
	for _, r := range rep.Steps {
		if r.Driver == driverPlain {
			t.Errorf("report has a plain driver row: %+v", r)
		}
	}
}

func TestAWSStuckRotation(t *testing.T) {
	b := newAWSBed(t, true)
	b.lambda(t, 0, false)
	rep, _ := runJSON(t, exitFail, "-aws", "-secret", b.arn, "-duration", "1s", "-poll", "20ms", "-timeout", "500ms")
	if rep.Pass || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "rotation stuck") {
		t.Errorf("problems %q, want a stuck rotation", rep.Problems)
	}
	if rm := driverTotal(t, rep, driverRotating); rm.Errors != 0 {
		t.Errorf("rotatingmysql: %d errors during a stuck rotation (%v), want 0: AWSPENDING logs in", rm.Errors, rm.ErrorKinds)
	}
}

func TestAWSAccessDeniedNamesPermissions(t *testing.T) {
	b := newAWSBed(t, true)
	b.sm.Fail("DescribeSecret", rotatingmysqltest.Fault{Type: "AccessDeniedException", Status: 400})
	_, stderr := runJSON(t, exitCannotRun, "-aws", "-secret", b.arn, "-duration", "1s")
	for _, want := range []string{"DescribeSecret on secret " + b.arn, "AccessDeniedException", "secretsmanager:RotateSecret", "lambda:InvokeFunction"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, stderr)
		}
	}
}
