package listener

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
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

// forgeSignatures are the webhook signatures of each forge: GitHub's and Gitea's HMAC schemes are
// the ones their registries use too (GHCR, Gitea's package registry); Gitea also sends GitHub's
// header, which is accepted as well.
var forgeSignatures = map[string][]string{
	"github": {"ghcr"},
	"gitea":  {"gitea", "ghcr"},
}

// handleForge takes a forge's webhook about a repository written through pull requests. The body
// is never trusted for what it says: a genuine delivery only makes imagehook read the pull
// requests from the forge's API now instead of at the next poll, so a forged or replayed one can
// at most cause an early read.
func (s *Server) handleForge(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	var repo *config.Repo
	for i := range s.cfg.Repos {
		if s.cfg.Repos[i].Name == ps.ByName("repo") && s.cfg.Repos[i].WriteBack.PullRequests() {
			repo = &s.cfg.Repos[i]
		}
	}
	reviews, _ := s.updater.(Reviews)
	if repo == nil || reviews == nil {
		writeError(w, http.StatusNotFound, "no repository written through pull requests by that name")
		return
	}
	addr := clientAddr(r.RemoteAddr)
	refuse := func(why string) {
		within, logNow := s.failures.charge(addr, time.Now())
		if logNow >= 0 {
			s.log.Warn("forge webhook refused: "+why, "repo", repo.Name, "remote", addr, "unlogged_since_last", logNow)
		}
		if !within {
			writeError(w, http.StatusTooManyRequests, "too many failed authentications from this address")
			return
		}
		writeError(w, http.StatusUnauthorized, "invalid or missing signature")
	}
	if s.failures.exhausted(addr) {
		refuse("too many failed authentications")
		return
	}
	secret := repo.WriteBack.WebhookSecret
	if config.Blank(secret) {
		refuse("the repository has no writeBack.webhookSecret")
		return
	}
	body, err := s.readBody(r)
	if err != nil {
		resp := s.errResponse(err)
		writeJSON(w, resp.code, resp.body)
		return
	}
	ok := false
	switch repo.WriteBack.Provider {
	case "gitlab":
		got, want := sha256.Sum256([]byte(config.TrimSecret(r.Header.Get("X-Gitlab-Token")))), sha256.Sum256([]byte(secret))
		ok = r.Header.Get("X-Gitlab-Token") != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1
	case "gitee":
		ok = forge.VerifyGitee(r.Header, secret, time.Now())
	case "codeup":
		ok = forge.VerifyCodeup(r.Header, secret)
	default:
		for _, scheme := range forgeSignatures[repo.WriteBack.Provider] {
			if sig := signatureOf(scheme); sig != nil && sig.verify([]string{secret}, r.Header, body) {
				ok = true
			}
		}
	}
	if !ok {
		refuse("bad or missing signature")
		return
	}
	// A genuine delivery: taken once per id, within the repository's rate budget, and folded
	// into one read of the forge per second however many arrive.
	budget := s.forgeBudgetOf(repo.Name)
	if id := forgeDeliveryID(r.Header); budget.repeat(id) {
		s.logRefusal("forge webhook ignored", event.ReasonDuplicate, repo.Name, "repo", repo.Name, "delivery", id)
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored", "reason": string(event.ReasonDuplicate), "detail": "delivery " + id + " was already taken"})
		return
	}
	if wait, refused := take(1, budget.limiter); refused >= 0 {
		s.logRefusal("forge webhook refused: rate limited", event.ReasonRateLimited, "forge\x00"+repo.Name, "repo", repo.Name)
		w.Header().Set("Retry-After", fmt.Sprint(int(max(wait, time.Second).Seconds()+0.999)))
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many deliveries for this repository (limits.forgeRate)", "reason": string(event.ReasonRateLimited)})
		return
	}
	now := time.Now()
	name := repo.Name
	at := budget.read(now, func() { reviews.PokeReviews(name) })
	resp := map[string]string{"status": "checking the repository's pull requests"}
	if at.After(now) {
		resp["detail"] = fmt.Sprintf("pull requests are read at most once a second: this delivery is folded into the read in %s", at.Sub(now).Round(time.Millisecond))
	}
	writeJSON(w, http.StatusAccepted, resp)
}
