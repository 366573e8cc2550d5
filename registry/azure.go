package registry

import (
	"encoding/json"
	"time"
)

// azurePayload is an Azure Container Registry webhook ("push" action).
type azurePayload struct {
	Action    string    `json:"action"`
	Timestamp time.Time `json:"timestamp"`
	Target    struct {
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		Digest     string `json:"digest"`
	} `json:"target"`
	Request struct {
		Host string `json:"host"`
	} `json:"request"`
}

func parseAzure(r *Request) ([]Parsed, error) {
	var p azurePayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("azure: %v", err)
	}
	switch {
	case p.Action == "ping":
		return nil, &Ignored{Reason: "azure ping"}
	case p.Action != "push":
		return nil, &Ignored{Reason: "azure action " + truncate(p.Action, 32) + " is not a push"}
	case p.Target.Tag == "":
		return nil, &Ignored{Reason: "azure push without a tag"}
	case p.Target.Repository == "" || p.Request.Host == "" && (r.RegistryHost == ""):
		return nil, payloadErr("azure: target.repository or request.host is missing")
	}
	push, err := makePush("azure", withHost(r.RegistryHost, p.Request.Host, p.Target.Repository)+":"+p.Target.Tag, p.Target.Digest, "", p.Timestamp)
	if err != nil {
		return nil, err
	}
	return []Parsed{push}, nil
}
