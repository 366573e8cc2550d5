package listener

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// forgeDeliveryHeaders name a forge delivery's id, by forge: Gitea sends GitHub's header too, so
// its own comes first.
var forgeDeliveryHeaders = []string{"X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery", "X-GitHub-Delivery", "X-Gitlab-Event-UUID"}

const (
	// forgeDeliveriesKept is how many delivery ids are remembered per repository (the oldest
	// are forgotten first): at the default forge rate, the last quarter of an hour and more.
	forgeDeliveriesKept = 10_000
	// forgeReadEvery is how often, at most, a forge's deliveries make imagehook read the
	// repository's pull requests: whatever arrives meanwhile is folded into the next read.
	forgeReadEvery = time.Second
)

// forgeBudget is one repository's forge deliveries: its rate budget, the delivery ids taken, and
// the read they ask for, at most one per forgeReadEvery.
type forgeBudget struct {
	limiter *rate.Limiter

	mu     sync.Mutex
	seen   map[string]bool
	order  []string
	lastAt time.Time
	// next is when the read already scheduled runs (zero: none is).
	next time.Time
}

// budgetOf returns the repository's budget, made on its first delivery.
func (f *forgeDeliveries) budgetOf(repo string) *forgeBudget {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.byRepo[repo]
	if b == nil {
		b = &forgeBudget{limiter: rate.NewLimiter(rate.Limit(f.cfg.Limits.ForgeRate), max(f.cfg.Limits.ForgeBurst, 1)), seen: map[string]bool{}}
		if f.cfg.Limits.ForgeRate == 0 {
			b.limiter = rate.NewLimiter(rate.Inf, 1)
		}
		f.byRepo[repo] = b
	}
	return b
}

// forgeDeliveryID is the forge's id of a delivery ("" when it sends none), cut to maxDeliveryID.
func forgeDeliveryID(h http.Header) string {
	for _, name := range forgeDeliveryHeaders {
		if id := h.Get(name); id != "" {
			return truncate(id, maxDeliveryID)
		}
	}
	return ""
}

// repeat records a delivery id and reports whether it was taken before.
func (b *forgeBudget) repeat(id string) bool {
	if id == "" {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[id] {
		return true
	}
	b.seen[id] = true
	b.order = append(b.order, id)
	if len(b.order) > forgeDeliveriesKept {
		delete(b.seen, b.order[0])
		b.order = b.order[1:]
	}
	return false
}

// read asks for a read of the pull requests: now, when none was made in the last
// forgeReadEvery, else once when that time is up (folding in whatever else arrives). It returns
// when the read happens.
func (b *forgeBudget) read(now time.Time, poke func()) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.next.IsZero() {
		return b.next
	}
	if at := b.lastAt.Add(forgeReadEvery); now.Before(at) {
		b.next = at
		time.AfterFunc(at.Sub(now), func() {
			b.mu.Lock()
			b.lastAt, b.next = time.Now(), time.Time{}
			b.mu.Unlock()
			poke()
		})
		return at
	}
	b.lastAt = now
	poke()
	return now
}
