package rotatingmysql

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotatingmysql/rotatingmysql/credsource"
)

// ErrStatusUnsupported is returned by Connector.RotationStatus when the
// connector's credential source is not the Secrets Manager API: only the
// API's DescribeSecret tells the state of a rotation.
var ErrStatusUnsupported = errors.New("rotatingmysql: rotation status needs the Secrets Manager API source (source=secretsmanager)")

// SecretVersion is one version of the secret that carries staging labels.
type SecretVersion struct {
	VersionID string
	// Stages are its staging labels: AWSCURRENT, AWSPENDING and
	// AWSPREVIOUS first, in that order, then any others.
	Stages []string
	// InUse reports whether this process's new connections log in with it.
	InUse bool
}

// RotationStatus is what Secrets Manager says of the secret's rotation
// (DescribeSecret) together with the version this process uses. See
// Connector.RotationStatus.
type RotationStatus struct {
	// ARN and Name identify the secret.
	ARN, Name string
	// RotationEnabled reports whether the secret has rotation turned on.
	RotationEnabled bool
	// LastRotated is when the last rotation finished; zero if never.
	LastRotated time.Time
	// NextRotation is the date by which the next rotation is scheduled;
	// zero when none is.
	NextRotation time.Time
	// Versions are the versions that carry staging labels: AWSCURRENT's
	// first, then AWSPENDING's, AWSPREVIOUS's, then the rest by id.
	Versions []SecretVersion
	// CurrentVersionID is the version labelled AWSCURRENT.
	CurrentVersionID string
	// PendingVersionID is the version labelled AWSPENDING; empty when no
	// version is.
	PendingVersionID string
	// InProgress reports whether a rotation is under way: an AWSPENDING
	// version distinct from AWSCURRENT exists. It is true from the
	// rotation's createSecret step until its finishSecret step, and stays
	// true while a rotation is stuck between them.
	InProgress bool
	// InUseVersionID is the version this process's new connections log in
	// with (Stats().CurrentVersionID); empty before the first login.
	InUseVersionID string
	// InUseStage is the stage that version was fetched as: AWSPENDING
	// while the database has the new password and AWSCURRENT does not.
	InUseStage credsource.Stage
}

// RotationStatus asks Secrets Manager (DescribeSecret, one API call) about
// the secret's rotation and reports it with the version this process uses,
// for dashboards and operators. It needs the Secrets Manager API source
// (the default) and the secretsmanager:DescribeSecret permission; with any
// other source it returns an error wrapping ErrStatusUnsupported.
func (c *Connector) RotationStatus(ctx context.Context) (RotationStatus, error) {
	sm, ok := c.sh.src.(*credsource.SecretsManager)
	if !ok {
		return RotationStatus{}, fmt.Errorf("%w; this connector's source is %s", ErrStatusUnsupported, sourceName(c.sh.src))
	}
	api, err := sm.API(ctx)
	if err != nil {
		return RotationStatus{}, credsource.Redact(fmt.Errorf("rotatingmysql: rotation status: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, credsource.DefaultFetchTimeout)
	defer cancel()
	out, err := api.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(sm.SecretID)})
	if err != nil {
		return RotationStatus{}, credsource.Redact(fmt.Errorf("rotatingmysql: rotation status: describe secret %q: %w", sm.SecretID, err))
	}
	st := RotationStatus{
		ARN:             aws.ToString(out.ARN),
		Name:            aws.ToString(out.Name),
		RotationEnabled: aws.ToBool(out.RotationEnabled),
		LastRotated:     aws.ToTime(out.LastRotatedDate),
		NextRotation:    aws.ToTime(out.NextRotationDate),
	}
	stats := c.Stats()
	st.InUseVersionID, st.InUseStage = stats.CurrentVersionID, stats.CurrentStage
	for id, stages := range out.VersionIdsToStages {
		stages = slices.Clone(stages)
		slices.SortFunc(stages, func(a, b string) int {
			return cmp.Or(cmp.Compare(stageRank(a), stageRank(b)), cmp.Compare(a, b))
		})
		for _, s := range stages {
			switch credsource.Stage(s) {
			case credsource.Current:
				st.CurrentVersionID = id
			case credsource.Pending:
				st.PendingVersionID = id
			}
		}
		st.Versions = append(st.Versions, SecretVersion{VersionID: id, Stages: stages, InUse: id != "" && id == st.InUseVersionID})
	}
	slices.SortFunc(st.Versions, func(a, b SecretVersion) int {
		return cmp.Or(cmp.Compare(versionRank(a), versionRank(b)), cmp.Compare(a.VersionID, b.VersionID))
	})
	st.InProgress = st.PendingVersionID != "" && st.PendingVersionID != st.CurrentVersionID
	return st, nil
}

// stageRank orders staging labels as a rotation moves through them.
func stageRank(s string) int {
	switch credsource.Stage(s) {
	case credsource.Current:
		return 0
	case credsource.Pending:
		return 1
	case credsource.Previous:
		return 2
	}
	return 3
}

// versionRank orders versions by their first staging label.
func versionRank(v SecretVersion) int {
	if len(v.Stages) == 0 {
		return stageRank("")
	}
	return stageRank(v.Stages[0])
}

// sourceName names a source for error messages.
func sourceName(src credsource.Source) string {
	if s, ok := src.(fmt.Stringer); ok {
		return fmt.Sprintf("%q (%T)", s.String(), src)
	}
	return fmt.Sprintf("%T", src)
}
