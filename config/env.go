package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/imagehook/imagehook/internal/confyaml"
)

var (
	envRef    = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	envMark   = confyaml.EnvMark
	envMarked = confyaml.EnvMarked
)

// expandEnv replaces ${VAR} in every string of v; an unset variable is an error, so that a typo
// never silently becomes an empty token.
func expandEnv(v reflect.Value, lookup func(string) (string, bool)) error {
	switch v.Kind() {
	case reflect.String:
		var missing []string
		out := envMarked.ReplaceAllStringFunc(v.String(), func(m string) string {
			name := m[len(envMark) : len(m)-len(envMark)]
			val, ok := lookup(name)
			if !ok {
				missing = append(missing, name)
			}
			return val
		})
		if len(missing) > 0 {
			return fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
		}
		v.SetString(out)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				if err := expandEnv(v.Field(i), lookup); err != nil {
					return err
				}
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if err := expandEnv(v.Index(i), lookup); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return expandEnv(v.Elem(), lookup)
		}
	}
	return nil
}
