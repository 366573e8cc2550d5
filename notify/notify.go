// Package notify reports the outcome of an event to people. Notifier is the seam the updater
// calls; notify/mail is the SMTP implementation, and Log prints the report instead (quickstart).
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/imagehook/imagehook/event"
)

// Notifier delivers one report per finished event, or per group of events that share a commit
// (the first is the one the report is about: the others were carried by the same commit).
type Notifier interface {
	Notify(ctx context.Context, evs ...*event.Event) error
}

// Wanted reports whether the event's outcome is one its hook asked to hear about (all by default).
func Wanted(ev *event.Event, failed bool) bool {
	if ev.Mail == nil || len(ev.Mail.On) == 0 {
		return true
	}
	if failed {
		return slices.Contains(ev.Mail.On, "failure")
	}
	return slices.Contains(ev.Mail.On, "success")
}

// Failed reports whether the event failed (event.Settle's rule).
func Failed(ev *event.Event) bool { return ev.Failed() }

// Summary is a one-paragraph plain-text account of the event, shared by the log notifier and
// the mail body's fallback.
func Summary(ev *event.Event) string {
	var b strings.Builder
	outcome := "succeeded"
	if Failed(ev) {
		outcome = "failed"
	}
	fmt.Fprintf(&b, "hook %s event %s %s: %s", event.OneLine(ev.Hook), ev.ID, outcome, event.OneLine(ev.Push.Image))
	for _, s := range ev.Steps {
		if s.Name == event.StepNotify {
			continue
		}
		fmt.Fprintf(&b, "; %s %s", s.Name, s.Status)
		if s.Commit != "" {
			fmt.Fprintf(&b, " commit %.12s", s.Commit)
		}
		for _, c := range s.Changes {
			fmt.Fprintf(&b, " [%s %s: %s -> %s]", event.OneLine(c.Workload), event.OneLine(c.Container), event.OneLine(c.Old), event.OneLine(c.New))
		}
		if s.Detail != "" {
			fmt.Fprintf(&b, " (%s)", event.OneLine(s.Detail))
		}
		if s.Error != "" {
			fmt.Fprintf(&b, " error: %s", event.OneLine(s.Error))
		}
	}
	return b.String()
}

// Log "sends" each report to the log: the quickstart's stand-in for mail.
type Log struct{ Logger *slog.Logger }

var _ Notifier = Log{}

// Notify logs the report.
func (l Log) Notify(_ context.Context, evs ...*event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ev := evs[0]
	if !Wanted(ev, Failed(ev)) {
		return nil
	}
	to := []string{"(log)"}
	if ev.Mail != nil && len(ev.Mail.To) > 0 {
		to = ev.Mail.To
	}
	args := []any{"event", ev.ID, "to", strings.Join(to, ","), "report", Summary(ev)}
	if len(evs) > 1 {
		args = append(args, "also", OtherIDs(evs))
	}
	l.Logger.Info("mail (printed, not sent)", args...)
	return nil
}

// OtherIDs lists the ids of the events after the first, for a report about a shared commit.
func OtherIDs(evs []*event.Event) string {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs[1:] {
		ids = append(ids, ev.ID)
	}
	return strings.Join(ids, ", ")
}

// All reports through every notifier at once (mail and chat robots); the errors are joined, each
// naming its notifier, so the event records which failed.
type All []Notifier

// Notify sends to each notifier concurrently and waits for all.
func (a All) Notify(ctx context.Context, evs ...*event.Event) error {
	errs := make([]error, len(a))
	var wg sync.WaitGroup
	for i, n := range a {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Notify(ctx, evs...)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
