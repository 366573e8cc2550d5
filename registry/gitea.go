package registry

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"
)

// giteaPackage is a Gitea or Forgejo "package" webhook.
type giteaPackage struct {
	Action  string `json:"action"`
	Package *struct {
		Type    string `json:"type"`
		Name    string `json:"name"`
		Version string `json:"version"`
		HTMLURL string `json:"html_url"`
		// CreatedAt is when the version was pushed: the signed body's clock, which makes a replay
		// with a new delivery header recognisable as older than what the target runs.
		CreatedAt time.Time `json:"created_at"`
		Owner     struct {
			Login string `json:"login"`
		} `json:"owner"`
		Creator struct {
			Login string `json:"login"`
		} `json:"creator"`
	} `json:"package"`
}

func parseGitea(r *Request) ([]Parsed, error) {
	ev := r.Header.Get("X-Gitea-Event")
	if ev == "" {
		ev = r.Header.Get("X-Forgejo-Event")
	}
	if ev != "" && ev != "package" {
		return nil, &Ignored{Reason: "gitea event " + truncate(ev, 32) + " is not a package push"}
	}
	var p giteaPackage
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("gitea: %v", err)
	}
	switch {
	case p.Package == nil:
		return nil, payloadErr("gitea: package is missing")
	case p.Package.Type != "container":
		return nil, &Ignored{Reason: "gitea package is not a container image"}
	case p.Action != "created":
		return nil, &Ignored{Reason: "gitea package action " + truncate(p.Action, 32) + " is not a push"}
	}
	host := ""
	if u, err := url.Parse(p.Package.HTMLURL); err == nil {
		host = u.Host
	}
	if host == "" && (r.RegistryHost == "") {
		return nil, payloadErr("gitea: package.html_url is missing (set the hook's registryHost)")
	}
	// Gitea's container registry serves owner/name in lower case.
	repo := strings.ToLower(withHost(r.RegistryHost, host, p.Package.Owner.Login+"/"+p.Package.Name))
	at := p.Package.CreatedAt
	if at.Year() < 2000 {
		at = timeZero // Gitea's test deliveries carry the zero time
	}
	push, err := makePush("gitea", repo+":"+p.Package.Version, "", p.Package.Creator.Login, at)
	if err != nil {
		return nil, err
	}
	return []Parsed{push}, nil
}
