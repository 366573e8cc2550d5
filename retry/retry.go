// Package retry is imagehook's one retry rule: exponential backoff with jitter, bounded attempts,
// honouring the context. The caller decides what is worth retrying: fn returns (retry, err).
package retry

import (
	"context"
	"crypto/rand"
	"math/big"
	"time"
)

// Backoff says how long to wait before each retry.
type Backoff struct {
	// First is the wait before the first retry; 0 retries at once the first time, then waits Min.
	First time.Duration
	// Min is the smallest wait after the first retry (default 100ms), doubled each time up to Max.
	Min time.Duration
	// Max caps the wait (default 30s).
	Max time.Duration
	// Jitter spreads each wait over [d/2, d), so that busy writers stop colliding.
	Jitter bool
}

// Delay returns the wait before retry number n (1 for the first retry).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	d := b.First
	for i := 1; i < n; i++ {
		d = min(max(d*2, lo), hi)
	}
	d = min(d, hi)
	if b.Jitter && d > 0 {
		if r, err := rand.Int(rand.Reader, big.NewInt(int64(d))); err == nil {
			d = d/2 + time.Duration(r.Int64())/2
		}
	}
	return d
}

// Do calls fn up to attempts times (attempt numbers from 1), waiting b.Delay between calls, until
// fn succeeds or says not to retry. It returns fn's last error, or ctx's error if ctx ends while
// waiting.
func Do(ctx context.Context, attempts int, b Backoff, fn func(attempt int) (retry bool, err error)) error {
	var err error
	for attempt := 1; ; attempt++ {
		var again bool
		if again, err = fn(attempt); err == nil || !again || attempt >= attempts {
			return err
		}
		if err := Sleep(ctx, b.Delay(attempt)); err != nil {
			return err
		}
	}
}

// Sleep waits d, or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
