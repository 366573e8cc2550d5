package listener

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/imagehook/imagehook/config"
	"github.com/imagehook/imagehook/event"
	"github.com/imagehook/imagehook/forge"
)

// Reviews is what a forge's webhook asks of the flow: read the repository's pull requests now.
type Reviews interface {
	PokeReviews(repo string) bool
}

// forgeDeliveries takes the forges' webhooks about repositories written through pull requests:
// authenticated by package forge's table (forge.VerifyDelivery), refused through the one failure
// budget, and budgeted per repository.
type forgeDeliveries struct {
	cfg *config.Config
	// reviews is nil when the flow reads no pull requests: every repository answers 404.
	reviews  Reviews
	failures *failureBudget
	budgets  *budgets
	log      *slog.Logger

	mu     sync.Mutex
	byRepo map[string]*forgeBudget
}

// handle takes a forge's webhook about a repository written through pull requests. The body is
// never trusted for what it says: a genuine delivery only makes imagehook read the pull requests
// from the forge's API now instead of at the next poll, so a forged or replayed one can at most
// cause an early read.
func (f *forgeDeliveries) handle(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	repo := f.repo(ps.ByName("repo"))
	if repo == nil || f.reviews == nil {
		writeError(w, http.StatusNotFound, "no repository written through pull requests by that name")
		return
	}
	if err := f.authenticate(r, repo); err != nil {
		var se *statusError
		errors.As(err, &se)
		writeError(w, se.code, se.msg)
		return
	}
	// A genuine delivery: taken once per id, within the repository's rate budget, and folded
	// into one read of the forge per second however many arrive.
	budget := f.budgetOf(repo.Name)
	if id := forgeDeliveryID(r.Header); budget.repeat(id) {
		f.budgets.logRefusal("forge webhook ignored", event.ReasonDuplicate, repo.Name, "repo", repo.Name, "delivery", id)
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored", "reason": string(event.ReasonDuplicate), "detail": "delivery " + id + " was already taken"})
		return
	}
	if wait, refused := take(1, budget.limiter); refused >= 0 {
		f.budgets.logRefusal("forge webhook refused: rate limited", event.ReasonRateLimited, "forge\x00"+repo.Name, "repo", repo.Name)
		w.Header().Set("Retry-After", fmt.Sprint(int(max(wait, time.Second).Seconds()+0.999)))
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many deliveries for this repository (limits.forgeRate)", "reason": string(event.ReasonRateLimited)})
		return
	}
	now := time.Now()
	name := repo.Name
	at := budget.read(now, func() { f.reviews.PokeReviews(name) })
	resp := map[string]string{"status": "checking the repository's pull requests"}
	if at.After(now) {
		resp["detail"] = fmt.Sprintf("pull requests are read at most once a second: this delivery is folded into the read in %s", at.Sub(now).Round(time.Millisecond))
	}
	writeJSON(w, http.StatusAccepted, resp)
}

// repo is the repository of that name written through pull requests, or nil.
func (f *forgeDeliveries) repo(name string) *config.Repo {
	var repo *config.Repo
	for i := range f.cfg.Repos {
		if f.cfg.Repos[i].Name == name && f.cfg.Repos[i].WriteBack.PullRequests() {
			repo = &f.cfg.Repos[i]
		}
	}
	return repo
}

// authenticate checks a delivery by the repository's forge's scheme, with its webhook secret. The
// body is read only for an address within its failure budget and a repository that has a secret;
// every failure is charged to the address (failureBudget.refuse), and the error is a statusError.
func (f *forgeDeliveries) authenticate(r *http.Request, repo *config.Repo) error {
	addr := clientAddr(r.RemoteAddr)
	caller := authCaller{what: "forge webhook", key: "repo", name: repo.Name, code: http.StatusUnauthorized, signedOnly: true}
	if f.failures.exhausted(addr) {
		return f.failures.refuse(caller, addr, faultExhausted)
	}
	secret := repo.WriteBack.WebhookSecret
	if config.Blank(secret) {
		return f.failures.refuse(caller, addr, faultNoSecret)
	}
	body, err := readBody(r, f.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	if !forge.VerifyDelivery(repo.WriteBack.Provider, r.Header, body, secret, time.Now()) {
		return f.failures.refuse(caller, addr, faultSignature)
	}
	return nil
}
