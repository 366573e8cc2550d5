package manifests

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFiles stores res.Files under root, each through a temporary file and a rename so that a
// crash never leaves a half-written manifest; file modes are kept.
func WriteFiles(root string, res Result) error {
	for name, data := range res.Files {
		p := filepath.Join(root, filepath.FromSlash(name))
		mode := os.FileMode(0o644)
		if st, err := os.Stat(p); err == nil {
			mode = st.Mode().Perm()
		}
		tmp, err := os.CreateTemp(filepath.Dir(p), ".imagehook-*")
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		_, werr := tmp.Write(data)
		cerr := tmp.Close()
		if werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Chmod(tmp.Name(), mode)
		}
		if werr == nil {
			werr = os.Rename(tmp.Name(), p)
		}
		if werr != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", name, werr)
		}
	}
	return nil
}
