package registry

import (
	"encoding/json"
	"strings"
)

// quayPayload is Quay's "Repository Push" notification: one event for all tags pushed.
type quayPayload struct {
	Repository  string   `json:"repository"`
	DockerURL   string   `json:"docker_url"`
	UpdatedTags []string `json:"updated_tags"`
}

func parseQuay(r *Request) ([]Parsed, error) {
	var p quayPayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("quay: %v", err)
	}
	if p.Repository == "" {
		return nil, payloadErr("quay: repository is missing")
	}
	if len(p.UpdatedTags) == 0 {
		return nil, &Ignored{Reason: "quay notification without updated tags"}
	}
	host, path := "quay.io", p.Repository
	if p.DockerURL != "" {
		// docker_url is the pull address, with the host of a self-hosted Quay.
		if h, rest, ok := strings.Cut(p.DockerURL, "/"); ok && strings.ContainsAny(h, ".:") {
			host, path = h, rest
		}
	}
	var out []Parsed
	for _, tag := range p.UpdatedTags {
		push, err := makePush("quay", withHost(r.RegistryHost, host, path)+":"+tag, "", "", timeZero)
		if err != nil {
			return nil, err
		}
		out = append(out, push)
	}
	return out, nil
}
