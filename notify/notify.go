// Package notify reports the outcome of an event to people. Notifier is one way of telling them;
// All is every configured one, which the updater's report step calls, and says what each sent:
// notify/mail mails the report, notify/chat posts it to chat robots (DingTalk, WeCom, Feishu,
// Slack, a generic signed webhook), and Log prints it instead of mail (quickstart).
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

var _ Member = Log{}

// Name is "log".
func (Log) Name() string { return "log" }

// Carries returns the group when its first event's outcome is one its hook asked to hear about.
func (Log) Carries(evs []*event.Event) []*event.Event {
	if len(evs) == 0 || !Wanted(evs[0], Failed(evs[0])) {
		return nil
	}
	return evs
}

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

// AnnounceStage prints a promotion notice instead of sending it, as Notify prints reports.
func (l Log) AnnounceStage(_ context.Context, _ []string, _ *event.Mail, n Notice) {
	l.Logger.Info("promotion notice (printed, not sent)", "title", n.Title, "text", n.Text())
}

// OtherIDs lists the ids of the events after the first, for a report about a shared commit.
func OtherIDs(evs []*event.Event) string {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs[1:] {
		ids = append(ids, ev.ID)
	}
	return strings.Join(ids, ", ")
}

// Sent is what one notifier did with a group's report: the events its message carried (none: it
// had nothing to say about them, and sent nothing) and its error.
type Sent struct {
	// Notifier names it: "mail", "log", or a chat notifier's name.
	Notifier string
	// Events are the ids of the group's events the message carried.
	Events []string
	Err    error
}

// Member is one notifier of All: it names itself and says which of a group's events its report
// carries — mail and the log every event of a group whose first event's outcome they report, a
// chat robot the events that name it.
type Member interface {
	Notifier
	Name() string
	Carries(evs []*event.Event) []*event.Event
}

// All reports through every notifier at once (mail and chat robots).
type All []Member

var _ Notifier = All(nil)

// Notify sends to each notifier concurrently and waits for all; the errors are joined, each naming
// its notifier.
func (a All) Notify(ctx context.Context, evs ...*event.Event) error {
	var errs []error
	for _, s := range a.Report(ctx, evs...) {
		errs = append(errs, s.Err)
	}
	return errors.Join(errs...)
}

// Report sends a group's report through every notifier that carries one of its events,
// concurrently, and says what each sent.
func (a All) Report(ctx context.Context, evs ...*event.Event) []Sent {
	var sent []Sent
	for _, n := range a {
		if carried := n.Carries(evs); len(carried) > 0 {
			ids := make([]string, len(carried))
			for i, ev := range carried {
				ids[i] = ev.ID
			}
			sent = append(sent, Sent{Notifier: n.Name(), Events: ids})
		}
	}
	var wg sync.WaitGroup
	for i := range sent {
		n := a.named(sent[i].Notifier)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent[i].Err = n.Notify(ctx, evs...)
		}()
	}
	wg.Wait()
	return sent
}

func (a All) named(name string) Member {
	for _, n := range a {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

// Notice is a message that is not an event's report: a promotion waiting for approval, a stage
// held. Its texts are written by imagehook (values in them are made one line by the caller); each
// button is a link a person opens (an approve link), shown as the channel shows buttons.
type Notice struct {
	Title   string
	Lines   []string
	Buttons []Button
}

// Text is the notice as plain text, for mail and the log: its lines, then each link on its own
// line.
func (n Notice) Text() string {
	var b strings.Builder
	for _, l := range n.Lines {
		b.WriteString(l + "\n")
	}
	for _, btn := range n.Buttons {
		fmt.Fprintf(&b, "\n%s:\n%s\n", btn.Text, btn.URL)
	}
	return b.String()
}

// Button is one link of a Notice.
type Button struct {
	Text string `json:"text"`
	URL  string `json:"url"`
}
