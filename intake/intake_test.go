package intake

import (
	"reflect"
	"testing"
	"time"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
)

// TestEvent: an accepted push carries every rule of its hook — AllowOlder included, which
// reconcile's own copy of this rule used to drop — and who hears of it, copied so that changing
// the hook afterwards changes no event.
func TestEvent(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	targets := []event.Target{{Repo: "apps", Workload: "web"}}
	for _, tt := range []struct {
		name string
		hook config.Hook
		want event.Event
	}{
		{"plain", config.Hook{ID: "web"},
			event.Event{Hook: "web"}},
		{"every rule", config.Hook{ID: "web", Pin: "digest", NoDowngrade: true, AllowOlder: true,
			Verify: &config.Verify{Cosign: &config.Cosign{Key: "cosign.pub"}}, Notify: []string{"ops"}, Mail: config.HookMail{To: []string{"a@example.com"}}},
			event.Event{Hook: "web", Pin: "digest", NoDowngrade: true, AllowOlder: true, Verify: true, Signed: true,
				Notify: []string{"ops"}, Mail: &event.Mail{To: []string{"a@example.com"}}}},
		{"registry verify", config.Hook{ID: "web", Verify: &config.Verify{Registry: true}},
			event.Event{Hook: "web", Verify: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			push := event.Push{Image: "registry.example.com/web:1.2.0", Source: "harbor"}
			got := Event(&tt.hook, push, targets, now)
			if got.ID == "" {
				t.Error("no id")
			}
			tt.want.ID, tt.want.Push, tt.want.Targets, tt.want.ReceivedAt = got.ID, push, targets, now
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
			if len(tt.hook.Notify) > 0 {
				tt.hook.Notify[0] = "changed"
				if got.Notify[0] != "ops" {
					t.Errorf("changing the hook changed the event's notifiers: %v", got.Notify)
				}
			}
		})
	}
}
