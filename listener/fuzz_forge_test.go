package listener

import (
	"net/http"
	"testing"
)

// FuzzForgeDeliveries takes any delivery-id headers: the id remembered is the forge's own
// header's, never longer than maxDeliveryID, a second delivery of it is a repeat, and the ids
// remembered stay within forgeDeliveriesKept.
func FuzzForgeDeliveries(f *testing.F) {
	f.Add("3f1c2b7e-0d6a-4c8e-9a55-1f2e3d4c5b6a", "", "")
	f.Add("", "sha-1", "uuid-2")
	f.Add("", "", "\x00\xff")
	f.Fuzz(func(t *testing.T, gitea, github, gitlab string) {
		h := http.Header{}
		h.Set("X-Gitea-Delivery", gitea)
		h.Set("X-GitHub-Delivery", github)
		h.Set("X-Gitlab-Event-UUID", gitlab)
		id := forgeDeliveryID(h)
		if len(id) > maxDeliveryID {
			t.Fatalf("id of %d bytes", len(id))
		}
		want := ""
		for _, v := range []string{h.Get("X-Gitea-Delivery"), h.Get("X-GitHub-Delivery"), h.Get("X-Gitlab-Event-UUID")} {
			if v != "" {
				want = truncate(v, maxDeliveryID)
				break
			}
		}
		if id != want {
			t.Fatalf("id %q, want %q", id, want)
		}
		b := &forgeBudget{seen: map[string]bool{}}
		if b.repeat(id) {
			t.Fatal("a first delivery is a repeat")
		}
		if id != "" && !b.repeat(id) {
			t.Fatal("a second delivery is not a repeat")
		}
		if len(b.seen) > forgeDeliveriesKept || len(b.order) != len(b.seen) {
			t.Fatalf("%d ids remembered, %d in order", len(b.seen), len(b.order))
		}
	})
}
