// Package intake freezes a hook's settings into the events it accepts: the one rule the listener
// (a registry's delivery) and reconcile (a push found by polling) share, so that an event carries
// the same promises whichever way its push arrived.
package intake

import (
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
)

// Event returns the event of one push accepted for hook h: a new id, the hook's pinning,
// downgrade, age and verify rules, the targets chosen, and who hears about it (config.Hook.Reports).
// Everything the event needs of the hook is copied, so a later config change never alters an event
// already promised. now is when it was accepted (UTC).
func Event(h *config.Hook, push event.Push, targets []event.Target, now time.Time) *event.Event {
	ev := &event.Event{ID: event.NewID(now), Hook: h.ID, Push: push, Targets: targets, ReceivedAt: now,
		Pin: h.Pin, NoDowngrade: h.NoDowngrade, AllowOlder: h.AllowOlder, Verify: h.Verify.Resolves(), Signed: h.Verify.Signed()}
	ev.Mail, ev.Notify = h.Reports()
	return ev
}
