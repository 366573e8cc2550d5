package registry

import (
	"encoding/json"
	"strings"
)

// customPayload is the body the old tool's users post from Jenkins with curl:
// {"push_data":{"tag":…},"repository":{"repo_url":…,"namespace":…,"name":…}}.
type customPayload struct {
	PushData struct {
		Tag    string `json:"tag"`
		Digest string `json:"digest"`
		Pusher string `json:"pusher"`
	} `json:"push_data"`
	Repository struct {
		RepoURL   string `json:"repo_url"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"repository"`
}

func parseCustom(r *Request) ([]Parsed, error) {
	var p customPayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("custom: %v", err)
	}
	if p.PushData.Tag == "" {
		return nil, payloadErr("custom: push_data.tag is missing")
	}
	if p.Repository.Name == "" {
		return nil, payloadErr("custom: repository.name is missing")
	}
	// repo_url is a registry address, sometimes written as a URL.
	host := p.Repository.RepoURL
	for _, scheme := range []string{"https://", "http://"} {
		host = strings.TrimPrefix(host, scheme)
	}
	host = strings.Trim(host, "/")
	repoPath := p.Repository.Name
	if p.Repository.Namespace != "" {
		repoPath = p.Repository.Namespace + "/" + repoPath
	}
	push, err := makePush("custom", withHost(r.RegistryHost, host, repoPath)+":"+p.PushData.Tag, p.PushData.Digest, p.PushData.Pusher, timeZero)
	if err != nil {
		return nil, err
	}
	return []Parsed{push}, nil
}
