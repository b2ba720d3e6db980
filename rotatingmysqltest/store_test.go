package rotatingmysqltest

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"
)

// stages returns each version's labels, by version ID.
func stages(t *testing.T, st *Store, id string) map[string][]string {
	t.Helper()
	d, err := st.Describe(id)
	if err != nil {
		t.Fatal(err)
	}
	return d.VersionIDsToStages
}

func TestStoreLabelMoves(t *testing.T) {
	st := NewStore()
	arn, v1, err := st.CreateSecret("app/db", "one")
	if err != nil {
		t.Fatal(err)
	}
	v2 := mustPut(t, st, arn, "two", StagePending)
	v3 := mustPut(t, st, arn, "three", "CUSTOM")
	tests := []struct {
		name string
		op   func() error
		want map[string][]string
	}{
		{"created", func() error { return nil },
			map[string][]string{v1: {StageCurrent}, v2: {StagePending}, v3: {"CUSTOM"}}},
		{"a label lives on one version", func() error { return st.UpdateSecretVersionStage(arn, "CUSTOM", v2, v3) },
			map[string][]string{v1: {StageCurrent}, v2: {StagePending, "CUSTOM"}}},
		{"moving AWSCURRENT moves AWSPREVIOUS", func() error { return st.UpdateSecretVersionStage("app/db", StageCurrent, v2, v1) },
			map[string][]string{v1: {StagePrevious}, v2: {StagePending, "CUSTOM", StageCurrent}}},
		{"remove a label", func() error { return st.RemoveStage(arn, StagePending) },
			map[string][]string{v1: {StagePrevious}, v2: {"CUSTOM", StageCurrent}}},
		{"remove an absent label", func() error { return st.RemoveStage(arn, StagePending) },
			map[string][]string{v1: {StagePrevious}, v2: {"CUSTOM", StageCurrent}}},
		{"remove by UpdateSecretVersionStage", func() error { return st.UpdateSecretVersionStage(arn, "CUSTOM", "", v2) },
			map[string][]string{v1: {StagePrevious}, v2: {StageCurrent}}},
		{"put moves AWSCURRENT and AWSPREVIOUS", func() error { _, err := st.PutSecretValue(arn, "four", nil); return err },
			nil}, // checked below: the new version's ID is not known here
	}
	for _, tt := range tests {
		if err := tt.op(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := stages(t, st, arn); tt.want != nil && !maps.EqualFunc(got, tt.want, slices.Equal) {
			t.Fatalf("%s: stages %v, want %v", tt.name, got, tt.want)
		}
	}
	cur, err := st.GetSecretValue(arn, "", "")
	if err != nil {
		t.Fatal(err)
	}
	prev, err := st.GetSecretValue(arn, "", StagePrevious)
	if err != nil {
		t.Fatal(err)
	}
	if cur.SecretString != "four" || prev.VersionID != v2 || !slices.Equal(prev.Stages, []string{StagePrevious}) {
		t.Errorf("after put: current %q, previous %s %v", cur.SecretString, prev.VersionID, prev.Stages)
	}
	vs, err := st.ListVersions(arn)
	if err != nil || len(vs) != 4 || len(vs[0].Stages) != 0 {
		t.Errorf("ListVersions = %d versions, first %v, err %v; want 4, the first deprecated", len(vs), vs[0].Stages, err)
	}
}

func TestStoreErrors(t *testing.T) {
	st := NewStore()
	arn, v1, err := st.CreateSecret("app/db", "one")
	if err != nil {
		t.Fatal(err)
	}
	v2 := mustPut(t, st, arn, "two", StagePending)
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"unknown secret", func() error { _, err := st.GetSecretValue("nope", "", ""); return err }, ErrNotFound},
		{"empty id", func() error { _, err := st.Describe(""); return err }, ErrInvalidParameter},
		{"unknown stage", func() error { _, err := st.GetSecretValue(arn, "", StagePrevious); return err }, ErrNotFound},
		{"unknown version", func() error { _, err := st.GetSecretValue(arn, "x", ""); return err }, ErrNotFound},
		{"duplicate name", func() error { _, _, err := st.CreateSecret("app/db", "x"); return err }, ErrExists},
		{"name that is an ARN", func() error { _, _, err := st.CreateSecret(ARNPrefix+"x", "x"); return err }, ErrInvalidParameter},
		{"move without RemoveFromVersionId", func() error { return st.UpdateSecretVersionStage(arn, StageCurrent, v2, "") }, ErrInvalidParameter},
		{"RemoveFromVersionId not the holder", func() error { return st.UpdateSecretVersionStage(arn, StageCurrent, v2, v2) }, ErrInvalidParameter},
		{"move to unknown version", func() error { return st.UpdateSecretVersionStage(arn, StageCurrent, "x", v1) }, ErrInvalidParameter},
		{"remove AWSCURRENT", func() error { return st.UpdateSecretVersionStage(arn, StageCurrent, "", v1) }, ErrInvalidParameter},
		{"RemoveStage AWSCURRENT", func() error { return st.RemoveStage(arn, StageCurrent) }, ErrInvalidParameter},
		{"empty stage", func() error { _, err := st.PutSecretValue(arn, "x", []string{""}); return err }, ErrInvalidParameter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			var e *Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Message == "" {
				t.Errorf("err = %v, want %v with a message", err, tt.want)
			}
		})
	}
	if got := stages(t, st, arn); !slices.Equal(got[v1], []string{StageCurrent}) || !slices.Equal(got[v2], []string{StagePending}) {
		t.Errorf("failed calls changed labels: %v", got)
	}
}

func TestStoreCopies(t *testing.T) {
	st := NewStore()
	if _, _, err := st.CreateSecret("s", "one"); err != nil {
		t.Fatal(err)
	}
	v, _ := st.GetSecretValue("s", "", "")
	v.Stages[0] = "CHANGED"
	if again, _ := st.GetSecretValue("s", "", ""); again.Stages[0] != StageCurrent {
		t.Error("changing a returned Version changed the store")
	}
}

func TestStoreRotationDates(t *testing.T) {
	st := NewStore()
	if _, _, err := st.CreateSecret("s", "one"); err != nil {
		t.Fatal(err)
	}
	rotated := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := errors.Join(st.SetRotation("s", true, "arn:lambda", 7), st.SetLastRotated("s", rotated)); err != nil {
		t.Fatal(err)
	}
	d, err := st.Describe("s")
	if err != nil {
		t.Fatal(err)
	}
	want := Rotation{Enabled: true, LambdaARN: "arn:lambda", AutomaticallyAfterDays: 7}
	if d.Rotation != want || !d.LastRotatedDate.Equal(rotated) || !d.NextRotationDate.Equal(rotated.AddDate(0, 0, 7)) {
		t.Errorf("Describe = %+v", d)
	}
}
