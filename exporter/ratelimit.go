package exporter

import (
	"context"
	"sync"
	"time"
)

// rateLimiter spaces requests so that no more than rate start per second, with a
// burst of a tenth of a second's worth. A nil *rateLimiter does not limit.
//
// It keeps the time at which the next request may start (a virtual schedule) and
// hands out slots on it; a request that finds the schedule behind the clock starts
// at once, up to the burst.
type rateLimiter struct {
	mu       sync.Mutex
	interval time.Duration // between two requests
	burst    time.Duration // how far the schedule may lag behind the clock
	next     time.Time     // when the next request may start
}

func newRateLimiter(opsPerSecond float64) *rateLimiter {
	if opsPerSecond <= 0 {
		return nil
	}
	interval := time.Duration(float64(time.Second) / opsPerSecond)
	return &rateLimiter{interval: interval, burst: max(100*time.Millisecond, interval)}
}

// wait blocks until n requests may start, or ctx ends.
func (l *rateLimiter) wait(ctx context.Context, n int) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	if earliest := now.Add(-l.burst); l.next.Before(earliest) {
		l.next = earliest
	}
	at := l.next
	l.next = l.next.Add(time.Duration(n) * l.interval)
	l.mu.Unlock()
	d := at.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
