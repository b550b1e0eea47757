package core

import (
	"context"
	"fmt"
	"time"
)

// Sweep removes expired codes and tokens (and those of deleted plugins) once.
func (s *Service) Sweep(ctx context.Context) error {
	res, err := s.store.Sweep(ctx, s.now())
	s.observer.Swept(res.Codes, res.Grants, len(res.Undecodable))
	s.reportUndecodable(ctx, res.Undecodable)
	if err != nil {
		return err
	}
	if res.Codes+res.Grants > 0 {
		s.log.InfoContext(ctx, "swept expired records", "codes", res.Codes, "token_pairs", res.Grants)
	}
	return nil
}

// reportUndecodable logs each record the sweeper could not decode once per
// process (it is found again on every sweep until an operator acts).
func (s *Service) reportUndecodable(ctx context.Context, keys []string) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	for _, k := range keys {
		if s.undecodable[k] {
			continue
		}
		if len(s.undecodable) < 10_000 {
			s.undecodable[k] = true
		}
		s.log.ErrorContext(ctx, "sweeper skipped a record it cannot decode", "record", k)
	}
}

// RunSweeper calls Sweep every interval until ctx is done (then it returns
// nil), so that the database does not grow without bound. Expiry is also
// decided on every read, so nothing depends on when the sweeper last ran.
// An interval that is not positive is an error.
func (s *Service) RunSweeper(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("core: sweep interval must be positive, got %s", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "sweep failed", "err", err)
			}
		}
	}
}
