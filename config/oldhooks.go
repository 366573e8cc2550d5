package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// InClusterName names the cluster added for hooks.json hooks when the config has no cluster: the
// old tool patched the cluster it ran in.
const InClusterName = "in-cluster"

// oldHook is one entry of adnanh/webhook's hooks.json, as the old tool's ConfigMap holds them.
type oldHook struct {
	ID                      string   `json:"id"`
	TriggerRule             *oldRule `json:"trigger-rule"`
	MismatchCode            int      `json:"trigger-rule-mismatch-http-response-code"`
	PassEnvironmentToComand []struct {
		EnvName string `json:"envname"`
		Source  string `json:"source"`
		Name    string `json:"name"`
	} `json:"pass-environment-to-command"`
}

type oldRule struct {
	And   []oldRule `json:"and"`
	Or    []oldRule `json:"or"`
	Not   *oldRule  `json:"not"`
	Match *oldMatch `json:"match"`
}

type oldMatch struct {
	Type      string `json:"type"`
	Value     string `json:"value"`
	Secret    string `json:"secret"`
	IPRange   string `json:"ip-range"`
	Parameter struct {
		Source string `json:"source"`
		Name   string `json:"name"`
	} `json:"parameter"`
}

// setToken records a credential value rule; a second, different one cannot be expressed (imagehook
// checks one set of tokens), and a blank one would let anyone in.
func setToken(h *Hook, where, v string) error {
	if Blank(v) {
		return fmt.Errorf("value match on %s: the value is empty; it would let anyone in", where)
	}
	v = TrimSecret(v)
	if h.Token != "" && h.Token != v {
		return fmt.Errorf("value match on %s: a second credential rule is not supported: write the hook in imagehook.yaml", where)
	}
	h.Token = v
	return nil
}

// LoadHooksDir converts every *.json file of dir (each a JSON array of adnanh/webhook hooks) into
// hooks that apply directly to cluster, as the old tool did. Rules imagehook cannot honour exactly
// are refused with a message that says which.
func LoadHooksDir(dir, cluster string, legacyStatus bool) ([]Hook, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("hooksDir %s: %w", dir, err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("hooksDir: %w", err)
	}
	sort.Strings(files)
	var hooks []Hook
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("hooksDir: %w", err)
		}
		var list []oldHook
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("%s: not a hooks.json array: %w", f, err)
		}
		for _, oh := range list {
			h, err := convertOldHook(oh, cluster, legacyStatus)
			if err != nil {
				return nil, fmt.Errorf("%s: hook %q: %w", f, oh.ID, err)
			}
			hooks = append(hooks, h)
		}
	}
	return hooks, nil
}

func convertOldHook(oh oldHook, cluster string, legacyStatus bool) (Hook, error) {
	if oh.ID == "" {
		return Hook{}, errors.New("id is required")
	}
	if oh.TriggerRule == nil {
		return Hook{}, errors.New("no trigger-rule: imagehook requires a token")
	}
	cv := &ruleConverter{hook: Hook{ID: oh.ID}, target: Target{Cluster: cluster}}
	if err := cv.walk(*oh.TriggerRule); err != nil {
		return Hook{}, err
	}
	h := cv.hook
	if h.Token == "" && h.Signature == nil {
		return Hook{}, errors.New("no token rule (match on the url parameter token, or payload-hmac-*): imagehook requires one")
	}
	if cv.target.Workload == "" {
		return Hook{}, errors.New("no workload rule: the old tool's hooks name the workload in the URL")
	}
	h.Targets = []Target{cv.target}
	for _, env := range oh.PassEnvironmentToComand {
		if env.EnvName == "MAIL_TO" && env.Source == "string" {
			for _, to := range strings.FieldsFunc(env.Name, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
				h.Mail.To = append(h.Mail.To, to)
			}
		}
	}
	if legacyStatus && oh.MismatchCode != 0 {
		h.MismatchStatus = oh.MismatchCode
	}
	return h, nil
}

// ruleConverter turns a trigger rule into a hook and its target, with adnanh/webhook's meaning:
// "and" of the rules below; rules imagehook cannot honour exactly are refused.
type ruleConverter struct {
	hook   Hook
	target Target
}

func (cv *ruleConverter) walk(r oldRule) error {
	switch {
	case len(r.Or) > 0:
		return errors.New(`trigger rule "or" is not supported: write the hook in imagehook.yaml`)
	case r.Not != nil:
		return errors.New(`trigger rule "not" is not supported: write the hook in imagehook.yaml`)
	case len(r.And) > 0:
		for _, sub := range r.And {
			if err := cv.walk(sub); err != nil {
				return err
			}
		}
		return nil
	case r.Match == nil:
		return nil
	}
	return cv.match(r.Match)
}

func (cv *ruleConverter) match(m *oldMatch) error {
	h, p := &cv.hook, m.Parameter
	switch m.Type {
	case "value":
		return cv.value(m)
	case "payload-hmac-sha1", "payload-hmac-sha256", "payload-hmac-sha512", "payload-hash-sha1", "payload-hash-sha256", "payload-hash-sha512":
		if p.Source != "header" {
			return fmt.Errorf("%s must read its signature from a header", m.Type)
		}
		if h.Signature != nil {
			return errors.New("two payload signature rules in one hook are not supported: write the hook in imagehook.yaml")
		}
		if Blank(m.Secret) {
			return fmt.Errorf("%s: the secret is empty; adnanh/webhook refused every delivery with it", m.Type)
		}
		algo := m.Type[strings.LastIndex(m.Type, "-")+1:]
		// The signature keeps its own secret: combined with a URL token rule ("and"), both are
		// checked, each with its own value, as adnanh/webhook did. The header value may carry the
		// "sha256=" style prefix, and several comma-separated signatures.
		h.Signature = &Signature{Header: p.Name, Algorithm: algo, Prefix: algo + "=", Secret: TrimSecret(m.Secret)}
	case "ip-whitelist":
		if len(h.AllowedCIDRs) > 0 {
			// "and" of two address rules means an address in both ranges, which allowedCIDRs
			// (any of) cannot say.
			return errors.New("two ip-whitelist rules in one hook are not supported: write the hook in imagehook.yaml")
		}
		// One rule's ip-range may list several ranges separated by spaces: any of them matches.
		h.AllowedCIDRs = strings.Fields(m.IPRange)
	default:
		return fmt.Errorf("match type %q is not supported", m.Type)
	}
	return nil
}

// value converts an exact-match rule: the token (URL or Authorization header) or the old tool's
// ns, workload and container parameters.
func (cv *ruleConverter) value(m *oldMatch) error {
	p := m.Parameter
	if p.Source == "header" && strings.EqualFold(p.Name, "Authorization") {
		return setToken(&cv.hook, "header Authorization", m.Value)
	}
	if p.Source != "url" && p.Source != "query" {
		return fmt.Errorf("value match on %s %q is not supported (only URL parameters token, ns, workload, container)", p.Source, p.Name)
	}
	switch p.Name {
	case "token":
		return setToken(&cv.hook, "url token", m.Value)
	case "ns":
		cv.target.Namespace = m.Value
	case "workload":
		cv.target.Workload = m.Value
	case "container":
		cv.target.Container = m.Value
	default:
		return fmt.Errorf("value match on URL parameter %q is not supported", p.Name)
	}
	return nil
}
