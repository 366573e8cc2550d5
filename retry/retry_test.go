package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"git: immediate first", Backoff{Min: 100 * time.Millisecond, Max: time.Second}, []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}},
		{"mail: doubling", Backoff{First: 2 * time.Second, Max: time.Minute}, []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i, want := range tt.want {
				if got := tt.b.Delay(i + 1); got != want {
					t.Errorf("Delay(%d) = %v, want %v", i+1, got, want)
				}
			}
		})
	}
	b := Backoff{First: time.Second, Jitter: true}
	for range 100 {
		if d := b.Delay(1); d < time.Second/2 || d >= time.Second {
			t.Fatalf("jittered delay %v outside [0.5s, 1s)", d)
		}
	}
}

func TestDo(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	err := Do(context.Background(), 3, Backoff{First: time.Millisecond}, func(int) (bool, error) { calls++; return true, boom })
	if !errors.Is(err, boom) || calls != 3 {
		t.Errorf("retryable: %v after %d calls, want boom after 3", err, calls)
	}
	calls = 0
	err = Do(context.Background(), 3, Backoff{}, func(int) (bool, error) { calls++; return false, boom })
	if calls != 1 {
		t.Errorf("final error retried: %d calls", calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Do(ctx, 3, Backoff{First: time.Hour}, func(int) (bool, error) { return true, boom }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
