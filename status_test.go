package rotatingmysql_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotatingmysql/rotatingmysql"
	"github.com/rotatingmysql/rotatingmysql/credsource"
	"github.com/rotatingmysql/rotatingmysql/rotatingmysqltest"
)

func rotationStatus(t *testing.T, c *rotatingmysql.Connector) rotatingmysql.RotationStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.RotationStatus(ctx)
	if err != nil {
		t.Fatalf("RotationStatus: %v", err)
	}
	return st
}

// versionsOf renders the versions as "id:STAGE,STAGE*" (* when in use), in
// the order RotationStatus gives them.
func versionsOf(st rotatingmysql.RotationStatus) string {
	parts := make([]string, len(st.Versions))
	for i, v := range st.Versions {
		parts[i] = v.VersionID + ":" + strings.Join(v.Stages, ",")
		if v.InUse {
			parts[i] += "*"
		}
	}
	return strings.Join(parts, " ")
}

func TestRotationStatusThroughRotation(t *testing.T) {
	t.Parallel()
	b := newBed(t, "status-Initial-pw1")
	const lambda = "arn:aws:lambda:us-east-1:123456789012:function:rotate-mysql"
	if err := b.sm.Store().SetRotation(b.arn, true, lambda, 30); err != nil {
		t.Fatal(err)
	}
	c, db := openConnectorDB(t, b)
	v1, _ := stagePassword(t, b, rotatingmysqltest.StageCurrent)

	st := rotationStatus(t, c)
	if !st.RotationEnabled || st.InProgress || st.CurrentVersionID != v1 || st.PendingVersionID != "" ||
		st.InUseVersionID != "" || !st.LastRotated.IsZero() || st.ARN != b.arn {
		t.Fatalf("before any login: %+v", st)
	}
	if !st.NextRotation.After(time.Now().AddDate(0, 0, 29)) {
		t.Errorf("next rotation %v, want about 30 days from the secret's creation", st.NextRotation)
	}
	if got, want := versionsOf(st), v1+":AWSCURRENT"; got != want {
		t.Errorf("versions %s, want %s", got, want)
	}
	ping(t, db)
	if st = rotationStatus(t, c); st.InUseVersionID != v1 || st.InUseStage != credsource.Current || versionsOf(st) != v1+":AWSCURRENT*" {
		t.Errorf("after a login: in use %q (%s), versions %s", st.InUseVersionID, st.InUseStage, versionsOf(st))
	}

	// The status before each step of a rotation, and after the last one.
	var seen []string
	var v2 string
	b.rot.OnStep = func(step rotatingmysqltest.Step) {
		st := rotationStatus(t, c)
		if step == rotatingmysqltest.StepTestSecret {
			// setSecret is done: only AWSPENDING logs in now.
			ping(t, db)
			st = rotationStatus(t, c)
			v2 = st.PendingVersionID
			if st.InUseVersionID != v2 || st.InUseStage != credsource.Pending || versionsOf(st) != v1+":AWSCURRENT "+v2+":AWSPENDING*" {
				t.Errorf("in the window: in use %q (%s), versions %s", st.InUseVersionID, st.InUseStage, versionsOf(st))
			}
		}
		seen = append(seen, fmt.Sprintf("%s:%v", step, st.InProgress))
	}
	if err := b.rot.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = rotationStatus(t, c)
	seen = append(seen, fmt.Sprintf("done:%v", st.InProgress))
	want := []string{"createSecret:false", "setSecret:true", "testSecret:true", "finishSecret:true", "done:false"}
	if !slices.Equal(seen, want) {
		t.Errorf("in progress before each step: %v, want %v", seen, want)
	}
	if v2 == "" || v2 == v1 {
		t.Fatalf("pending version %q during the rotation (current %q)", v2, v1)
	}
	if st.CurrentVersionID != v2 || st.PendingVersionID != "" || versionsOf(st) != v2+":AWSCURRENT* "+v1+":AWSPREVIOUS" {
		t.Errorf("after the rotation: current %q, pending %q, versions %s", st.CurrentVersionID, st.PendingVersionID, versionsOf(st))
	}
	if st.LastRotated.IsZero() || !st.NextRotation.Equal(st.LastRotated.AddDate(0, 0, 30)) {
		t.Errorf("last rotated %v, next %v: want next = last + 30 days", st.LastRotated, st.NextRotation)
	}

	// Some rotation functions leave AWSPENDING on the new AWSCURRENT
	// version: that is no rotation in progress.
	if err := b.sm.Store().UpdateSecretVersionStage(b.arn, rotatingmysqltest.StagePending, v2, ""); err != nil {
		t.Fatal(err)
	}
	if st = rotationStatus(t, c); st.InProgress || st.PendingVersionID != v2 || versionsOf(st) != v2+":AWSCURRENT,AWSPENDING* "+v1+":AWSPREVIOUS" {
		t.Errorf("AWSPENDING on AWSCURRENT's version: in progress %v, pending %q, versions %s", st.InProgress, st.PendingVersionID, versionsOf(st))
	}
	// The status reads DescribeSecret; it never fetches the secret value.
	if n := b.sm.Calls("DescribeSecret"); n != 9 {
		t.Errorf("DescribeSecret calls %d, want one per RotationStatus (9)", n)
	}
}

// fixedSource is a Source that always returns one version.
type fixedSource struct{ sec *credsource.Secret }

func (f fixedSource) Fetch(context.Context, credsource.Request) (*credsource.Secret, error) {
	return f.sec, nil
}

func TestRotationStatusErrors(t *testing.T) {
	t.Parallel()
	t.Run("source other than the API", func(t *testing.T) {
		cfg := rotatingmysql.NewConfig("")
		if err := cfg.Apply(rotatingmysql.WithSource(fixedSource{})); err != nil {
			t.Fatal(err)
		}
		c, err := rotatingmysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.RotationStatus(context.Background())
		if !errors.Is(err, rotatingmysql.ErrStatusUnsupported) || !strings.Contains(err.Error(), "fixedSource") {
			t.Fatalf("error %v: want ErrStatusUnsupported naming the source", err)
		}
	})
	t.Run("no such secret", func(t *testing.T) {
		sm, err := rotatingmysqltest.NewSecretsManager()
		if err != nil {
			t.Fatal(err)
		}
		defer sm.Close()
		arn := rotatingmysqltest.ARNPrefix + "missing-AbCdEf"
		cfg := rotatingmysql.NewConfig(arn)
		if err := cfg.Apply(rotatingmysql.WithAWSConfig(sm.AWSConfig())); err != nil {
			t.Fatal(err)
		}
		c, err := rotatingmysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.RotationStatus(context.Background())
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), arn) {
			t.Fatalf("error %v: want ResourceNotFoundException naming the secret", err)
		}
	})
}
