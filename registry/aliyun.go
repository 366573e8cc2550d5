package registry

import (
	"encoding/json"
	"strings"
	"time"
)

// aliyunPayload is Alibaba Cloud Container Registry's trigger body (personal and Enterprise Edition
// instances send the same shape).
type aliyunPayload struct {
	PushData struct {
		Digest   string `json:"digest"`
		PushedAt string `json:"pushed_at"`
		Tag      string `json:"tag"`
	} `json:"push_data"`
	Repository struct {
		Name         string `json:"name"`
		Namespace    string `json:"namespace"`
		Region       string `json:"region"`
		RepoFullName string `json:"repo_full_name"`
	} `json:"repository"`
}

// ACR's pushed_at is local time in China without a zone.
var chinaTime = time.FixedZone("CST", 8*3600)

func parseAliyun(r *Request) ([]Parsed, error) {
	var p aliyunPayload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, payloadErr("aliyun: %v", err)
	}
	if p.PushData.Tag == "" {
		return nil, &Ignored{Reason: "aliyun delivery without a tag"}
	}
	full := p.Repository.RepoFullName
	if full == "" && p.Repository.Namespace != "" {
		full = p.Repository.Namespace + "/" + p.Repository.Name
	}
	if full == "" {
		return nil, payloadErr("aliyun: repository.repo_full_name is missing")
	}
	host := ""
	if r.RegistryHost == "" {
		if p.Repository.Region == "" {
			return nil, payloadErr("aliyun: repository.region is missing (set the hook's registryHost for an Enterprise Edition instance)")
		}
		// The old tool's net_type chose the VPC or classic-network endpoint of the same registry.
		prefix := "registry"
		switch r.Query.Get("net_type") {
		case "vpc":
			prefix = "registry-vpc"
		case "internal":
			prefix = "registry-internal"
		case "", "public":
		default:
			return nil, payloadErr("net_type %q: want vpc or internal", r.Query.Get("net_type"))
		}
		host = prefix + "." + p.Repository.Region + ".aliyuncs.com"
	}
	// ACR repository names are lower case; its documentation's samples are not always.
	image := withHost(r.RegistryHost, host, strings.ToLower(full)) + ":" + p.PushData.Tag
	at, _ := time.ParseInLocation(time.DateTime, p.PushData.PushedAt, chinaTime)
	push, err := makePush("aliyun", image, p.PushData.Digest, "", at)
	if err != nil {
		return nil, err
	}
	push.Push.ExplicitHost = r.Query.Get("net_type") != "" // the listener sets it for a hook's registryHost
	return []Parsed{push}, nil
}
