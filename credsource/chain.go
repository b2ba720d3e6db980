package credsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Chain is a Source that asks its sources in order and moves to the next
// one only when the one before is unavailable (errors.Is ErrUnavailable):
// an answer such as ErrNotFound, or a malformed secret, ends the chain.
type Chain struct {
	sources []Source
}

var _ Source = (*Chain)(nil)

// NewChain returns a chain of the given sources, tried in order.
func NewChain(sources ...Source) *Chain { return &Chain{sources: sources} }

// Sources returns the chain's sources, in order (a copy).
func (c *Chain) Sources() []Source { return append([]Source(nil), c.sources...) }

// String names the chain's members, e.g. "agent,secretsmanager".
func (c *Chain) String() string {
	names := make([]string, len(c.sources))
	for i, s := range c.sources {
		names[i] = fmt.Sprint(s)
	}
	return strings.Join(names, ",")
}

// Fetch asks each source in turn until one is reachable.
func (c *Chain) Fetch(ctx context.Context, req Request) (*Secret, error) {
	var errs []error
	for _, s := range c.sources {
		sec, err := s.Fetch(ctx, req)
		if err == nil || !errors.Is(err, ErrUnavailable) {
			return sec, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Close closes the sources that hold resources.
func (c *Chain) Close() error {
	var errs []error
	for _, s := range c.sources {
		if cl, ok := s.(io.Closer); ok {
			errs = append(errs, cl.Close())
		}
	}
	return errors.Join(errs...)
}
