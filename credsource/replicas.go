package credsource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Replica regions: defaults of SecretsManager's ProbeInterval and
// RegionTimeout.
const (
	// DefaultProbeInterval is how often, while a replica region serves,
	// the secret's own region is asked again.
	DefaultProbeInterval = 30 * time.Second
	// DefaultRegionTimeout bounds a region's answer when another region
	// could still be asked (a hung region is left for the next).
	DefaultRegionTimeout = 3 * time.Second
)

// replicaState is which region answered last, and when the secret's own
// region may be asked again.
type replicaState struct {
	serving  string    // the region that answered last; "" before any
	probeAt  time.Time // while a replica serves: when the primary is asked again
	byRegion map[string]uint64
}

// ReplicaID returns the id of the secret id in region: an ARN with its
// region swapped (a replica's ARN differs in its region only); a name
// stays the name.
func ReplicaID(id, region string) string {
	a, err := arn.Parse(id)
	if err != nil || a.Service != "secretsmanager" {
		return id
	}
	a.Region = region
	return a.String()
}

// RegionOrder returns the regions to ask, in order: the secret's own
// (primary) first and then the replicas in their order while the primary
// serves (serving is primary or ""); while a replica serves, that replica
// first, then the other replicas, then the primary, unless probe (the
// interval since the primary was last asked has passed), when the primary
// goes first.
func RegionOrder(primary string, replicas []string, serving string, probe bool) []string {
	out := make([]string, 0, len(replicas)+1)
	add := func(r string) {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	switch {
	case serving == "" || serving == primary || !slices.Contains(replicas, serving):
		add(primary)
	case probe:
		add(primary)
		add(serving)
	default:
		add(serving)
	}
	for _, r := range replicas {
		add(r)
	}
	add(primary)
	return out
}

// RegionalError reports whether err, an answer of the Secrets Manager API
// in one region, is that region's fault rather than the caller's: no
// connection, a reset or dropped connection, a timeout, a 5xx answer,
// throttling (after the SDK's own retries). Not found, access denied, a
// decryption failure or an invalid request are the caller's: every
// replica would say the same.
func RegionalError(err error) bool {
	if err == nil {
		return false
	}
	var send *smithyhttp.RequestSendError
	var resp *awshttp.ResponseError
	var api smithy.APIError
	var ne net.Error
	switch {
	case errors.As(err, &send), errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &api):
		switch api.ErrorCode() {
		case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
			"InternalServiceError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout":
			return true
		}
		if errors.As(err, &resp) {
			return resp.HTTPStatusCode() >= 500
		}
		return false
	case errors.As(err, &resp):
		return resp.HTTPStatusCode() >= 500
	}
	return false
}

// fetchReplicated asks the regions in RegionOrder until one answers or one
// fails with an error that is the caller's. A region other than the last
// to ask gets RegionTimeout (and at most half the time the caller has
// left). The region that answered is remembered; while it is a replica,
// the primary is asked again at most once per ProbeInterval.
func (s *SecretsManager) fetchReplicated(ctx context.Context, api SecretsManagerAPI, stage Stage) (*Secret, error) {
	primary := s.clientRegion()
	now := s.clock()
	s.repMu.Lock()
	serving := s.rep.serving
	probe := serving != "" && serving != primary && !now.Before(s.rep.probeAt)
	s.repMu.Unlock()
	order := RegionOrder(primary, s.ReplicaRegions, serving, probe)
	var errs error
	for i, region := range order {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if i < len(order)-1 {
			limit := s.regionTimeout()
			if dl, ok := ctx.Deadline(); ok {
				limit = min(limit, time.Until(dl)/2)
			}
			actx, cancel = context.WithTimeout(ctx, limit)
		}
		id := s.SecretID
		if region != primary {
			id = ReplicaID(id, region)
		}
		sec, raw, err := s.fetchIn(actx, api, region, id, stage)
		cancel()
		if err == nil {
			s.answered(region, primary, region == primary || serving != region || probe)
			return sec, nil
		}
		if errs == nil {
			errs = err
		} else {
			errs = fmt.Errorf("%w; in %s: %v", errs, region, err)
		}
		if ctx.Err() != nil || !RegionalError(raw) {
			return nil, errs
		}
	}
	s.repMu.Lock()
	if s.rep.serving != "" && s.rep.serving != primary {
		// The primary was asked (last, or as the probe): not again before
		// the interval.
		s.rep.probeAt = now.Add(s.probeInterval())
	}
	s.repMu.Unlock()
	return nil, errs
}

// answered records that region answered. A replica's answer after the
// primary's failure (or a failed probe) starts a new interval before the
// primary is asked again.
func (s *SecretsManager) answered(region, primary string, newInterval bool) {
	s.repMu.Lock()
	defer s.repMu.Unlock()
	if s.rep.byRegion == nil {
		s.rep.byRegion = make(map[string]uint64)
	}
	s.rep.byRegion[region]++
	if region != primary && newInterval {
		s.rep.probeAt = s.clock().Add(s.probeInterval())
	}
	s.rep.serving = region
}

// RegionStats returns how many fetches each region answered (only with
// ReplicaRegions set), and the region that answered last.
func (s *SecretsManager) RegionStats() (byRegion map[string]uint64, serving string) {
	s.repMu.Lock()
	defer s.repMu.Unlock()
	return maps.Clone(s.rep.byRegion), s.rep.serving
}

func (s *SecretsManager) probeInterval() time.Duration {
	if s.ProbeInterval > 0 {
		return s.ProbeInterval
	}
	return DefaultProbeInterval
}

func (s *SecretsManager) regionTimeout() time.Duration {
	if s.RegionTimeout > 0 {
		return s.RegionTimeout
	}
	return DefaultRegionTimeout
}

func (s *SecretsManager) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}
