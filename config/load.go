package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/imagehook/imagehook/redact"
	"go.yaml.in/yaml/v3"
)

// Load reads, expands, defaults and validates the configuration file at p.
func Load(p string) (*Config, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", p, err)
	}
	return c, nil
}

// Parse decodes data strictly, expands ${VAR} with lookup, reads ...File secrets, applies defaults
// and validates.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	// ${VAR} is swapped for a placeholder that YAML reads as plain text anywhere (a flow mapping
	// such as {password: ${TOKEN}} would otherwise not parse), then expanded in decoded strings only:
	// a variable's value can never change the YAML structure.
	data = envRef.ReplaceAll(data, []byte(envMark+"${1}"+envMark))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse: %w", decodeError{err, data})
	}
	// The same bytes as a node tree, for line numbers in validation messages.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		c.root = &root
	}
	if err := c.load(lookup); err != nil {
		return nil, err
	}
	return &c, nil
}

// decodeError is a YAML decoding error as a person should read it: a ${VAR} is named as written,
// not as the placeholder it stood as while decoding (which the decoder may quote cut short), and
// a URL the decoder quotes loses its user information.
type decodeError struct {
	err  error
	data []byte
}

// sectionNames are the config package's names of the section types components own, by the name
// the decoder gives them ("field x not found in type mail.Config", "cannot unmarshal !!seq into
// mail.Config"): messages keep saying config.Mail, as before the types moved to their components.
// gitopsconfig.Repo is decoded inline, as part of config.Repo (whose name the decoder gives), and
// is named here like every other moved type.
var sectionNames = map[string]string{
	"mail.Config": "config.Mail", "chat.Config": "config.Notifier", "chat.Mention": "config.Mention",
	"ociconfig.Registry": "config.Registry", "gitopsconfig.Auth": "config.RepoAuth", "gitopsconfig.Author": "config.Author",
	"gitopsconfig.Repo": "config.Repo", "forge.WriteBack": "config.WriteBack", "forge.CodeupRepo": "config.CodeupRepo", "deployconfig.Watch": "config.Watch",
	"deployconfig.Namespace": "config.Namespace", "event.Values": "config.Values", "journalconfig.Journal": "config.JournalConfig", "manifests.ReadLimits": "config.Limits",
}

var (
	errLine   = regexp.MustCompile(`line (\d+): `)
	typeNamed = regexp.MustCompile(`\b(type|into) (?:\*|\[\])*([a-z]+\.[A-Z][A-Za-z]*)\b`)
	quotedEnv = regexp.MustCompile("`" + envMark[:7] + "[^`]*`")
)

func (e decodeError) Error() string {
	lines := bytes.Split(e.data, []byte("\n"))
	msgs := strings.Split(e.err.Error(), "\n")
	for i, m := range msgs {
		if sub := errLine.FindStringSubmatch(m); sub != nil {
			if n, err := strconv.Atoi(sub[1]); err == nil && n >= 1 && n <= len(lines) {
				if vars := envMarked.FindAllSubmatch(lines[n-1], -1); len(vars) > 0 {
					m = quotedEnv.ReplaceAllLiteralString(m, "${"+string(vars[0][1])+"}")
				}
			}
		}
		m = typeNamed.ReplaceAllStringFunc(m, func(t string) string {
			sub := typeNamed.FindStringSubmatch(t)
			if name, ok := sectionNames[sub[2]]; ok {
				return strings.Replace(t, sub[2], name, 1)
			}
			return t
		})
		msgs[i] = envMarked.ReplaceAllString(m, "$${$1}")
	}
	return redact.URLs(strings.Join(msgs, "\n"))
}

func (e decodeError) Unwrap() error { return e.err }

// ForHooksDir is the configuration of the drop-in for the old tool: its hooks.json directory and
// MAIL_* environment, nothing else. It goes through the same expansion, defaults and validation as
// a file.
func ForHooksDir(dir, dataDir string, lookup func(string) (string, bool)) (*Config, error) {
	c := Config{HooksDir: dir, DataDir: dataDir}
	if err := c.load(lookup); err != nil {
		return nil, err
	}
	return &c, nil
}

// load completes a decoded configuration: ${VAR} expansion, ...File secrets, the old tool's MAIL_*
// environment and hooks directory, defaults, validation.
func (c *Config) load(lookup func(string) (string, bool)) error {
	if err := expandEnv(reflect.ValueOf(c).Elem(), lookup); err != nil {
		return err
	}
	if err := readFiles(c); err != nil {
		return err
	}
	trimSecrets(c)
	if err := readHolidays(c); err != nil {
		return err
	}
	var perrs problems
	resolvePipelines(c, &perrs)
	if c.Mail == nil {
		// A drop-in for the old tool: its MAIL_* environment configures mail.
		m, err := MailFromEnv(lookup)
		if err != nil {
			return err
		}
		c.Mail = m
	}
	c.ownHooks = append([]Hook(nil), c.Hooks...)
	if c.HooksDir != "" {
		if len(c.Clusters) == 0 {
			c.Clusters = []Cluster{{Name: InClusterName}}
		}
		dirHooks, err := LoadHooksDir(c.HooksDir, c.Clusters[0].Name, c.LegacyMismatchStatus)
		if err != nil {
			return err
		}
		c.Hooks = append(c.Hooks, dirHooks...)
	}
	c.applyDefaults()
	if err := errors.Join(append(perrs, c.Validate())...); err != nil {
		return err
	}
	c.warn()
	return nil
}

// ReloadHooks reads HooksDir again and returns the file's hooks with the directory's, validated
// against the rest of the configuration. On error the caller keeps serving what it has.
func (c *Config) ReloadHooks() ([]Hook, error) {
	dirHooks, err := LoadHooksDir(c.HooksDir, c.Clusters[0].Name, c.LegacyMismatchStatus)
	if err != nil {
		return nil, err
	}
	next := *c
	next.Hooks = append(append([]Hook(nil), c.ownHooks...), dirHooks...)
	next.applyDefaults()
	if err := next.Validate(); err != nil {
		return nil, err
	}
	return next.Hooks, nil
}
