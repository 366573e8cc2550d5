package registry

import (
	"encoding/json"
)

// jfrogData is a JFrog Artifactory docker event ("pushed"); the platform webhook wraps it in an
// envelope with domain, event_type and data.
type jfrogData struct {
	RepoKey   string `json:"repo_key"`
	EventType string `json:"event_type"`
	ImageName string `json:"image_name"`
	Tag       string `json:"tag"`
	SHA256    string `json:"sha256"`
}

type jfrogEnvelope struct {
	Domain    string     `json:"domain"`
	EventType string     `json:"event_type"`
	Source    string     `json:"source"`
	Data      *jfrogData `json:"data"`
}

func parseJFrog(r *Request) ([]Parsed, error) {
	var env jfrogEnvelope
	if err := json.Unmarshal(r.Body, &env); err != nil {
		return nil, payloadErr("jfrog: %v", err)
	}
	d := env.Data
	if d == nil {
		d = &jfrogData{}
		if err := json.Unmarshal(r.Body, d); err != nil {
			return nil, payloadErr("jfrog: %v", err)
		}
	}
	if env.Domain != "" && env.Domain != "docker" {
		return nil, &Ignored{Reason: "jfrog " + truncate(env.Domain, 32) + " event is not a docker push"}
	}
	if d.EventType != "pushed" {
		return nil, &Ignored{Reason: "jfrog docker event " + truncate(d.EventType, 32) + " is not a push"}
	}
	if d.ImageName == "" || d.Tag == "" {
		return nil, payloadErr("jfrog: image_name or tag is missing")
	}
	// Artifactory's payload has no registry address: the hook's registryHost names it (with the
	// repository key as a path when the instance uses the repository-path method).
	if r.RegistryHost == "" {
		return nil, payloadErr("jfrog: set the hook's registryHost, the payload does not name the registry")
	}
	digest := ""
	if d.SHA256 != "" {
		digest = "sha256:" + d.SHA256
	}
	push, err := makePush("jfrog", withHost(r.RegistryHost, "", d.ImageName)+":"+d.Tag, digest, env.Source, timeZero)
	if err != nil {
		return nil, err
	}
	return []Parsed{push}, nil
}
