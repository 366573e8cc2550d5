// Package notify reports the outcome of an event to people. Notifier is the seam the updater
// calls; notify/mail is the SMTP implementation, and Log prints the report instead (quickstart).
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/imagehook/imagehook/event"
)

// Notifier delivers one report per finished event.
type Notifier interface {
	Notify(ctx context.Context, ev *event.Event) error
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

// Failed reports whether any step before notification failed.
func Failed(ev *event.Event) bool {
	for _, s := range ev.Steps {
		if s.Name != "notify" && s.Status == event.Failed {
			return true
		}
	}
	return ev.Error != ""
}

// Summary is a one-paragraph plain-text account of the event, shared by the log notifier and
// the mail body's fallback.
func Summary(ev *event.Event) string {
	var b strings.Builder
	outcome := "succeeded"
	if Failed(ev) {
		outcome = "failed"
	}
	fmt.Fprintf(&b, "hook %s event %s %s: %s", ev.Hook, ev.ID, outcome, ev.Push.Image)
	for _, s := range ev.Steps {
		if s.Name == "notify" {
			continue
		}
		fmt.Fprintf(&b, "; %s %s", s.Name, s.Status)
		if s.Commit != "" {
			fmt.Fprintf(&b, " commit %.12s", s.Commit)
		}
		for _, c := range s.Changes {
			fmt.Fprintf(&b, " [%s %s: %s -> %s]", c.Workload, c.Container, c.Old, c.New)
		}
		if s.Detail != "" {
			fmt.Fprintf(&b, " (%s)", s.Detail)
		}
		if s.Error != "" {
			fmt.Fprintf(&b, " error: %s", s.Error)
		}
	}
	return b.String()
}

// Log "sends" each report to the log: the quickstart's stand-in for mail.
type Log struct{ Logger *slog.Logger }

var _ Notifier = Log{}

// Notify logs the report.
func (l Log) Notify(_ context.Context, ev *event.Event) error {
	if !Wanted(ev, Failed(ev)) {
		return nil
	}
	to := []string{"(log)"}
	if ev.Mail != nil && len(ev.Mail.To) > 0 {
		to = ev.Mail.To
	}
	l.Logger.Info("mail (printed, not sent)", "event", ev.ID, "to", strings.Join(to, ","), "report", Summary(ev))
	return nil
}
