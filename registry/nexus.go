package registry

import (
	"encoding/json"
	"strings"
)

// nexusPayload is a Nexus Repository 3 component webhook (rm:repository:component).
type nexusPayload struct {
	Action         string `json:"action"`
	Initiator      string `json:"initiator"`
	RepositoryName string `json:"repositoryName"`
	Component      *struct {
		Format  string `json:"format"`
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"component"`
}

func parseNexus(r *Request) ([]Parsed, error) {
	var p nexusPayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("nexus: %v", err)
	}
	switch {
	case p.Component == nil:
		return nil, &Ignored{Reason: "nexus event without a component"}
	case p.Component.Format != "docker":
		return nil, &Ignored{Reason: "nexus component is not a docker image"}
	case p.Action != "CREATED" && p.Action != "UPDATED":
		return nil, &Ignored{Reason: "nexus action " + truncate(p.Action, 32) + " is not a push"}
	case r.RegistryHost == "":
		return nil, payloadErr("nexus: set the hook's registryHost, the payload does not name the registry")
	}
	user, _, _ := strings.Cut(p.Initiator, "/")
	push, err := makePush("nexus", withHost(r.RegistryHost, "", p.Component.Name)+":"+p.Component.Version, "", user, timeZero)
	if err != nil {
		return nil, err
	}
	return []Parsed{push}, nil
}
