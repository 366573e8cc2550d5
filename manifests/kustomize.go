package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/imageref"
)

var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// setKustomizeImage updates the images: entry for the pushed image in the kustomization of dir, with
// kustomize's semantics (newName, newTag, digest; a new tag drops a stale digest). It reports
// found=false when dir has no kustomization or no entry for the image.
func setKustomizeImage(fsys fs.FS, dir string, pushed imageref.Ref, opts Options) (Result, bool, error) {
	var res Result
	var file string
	var data []byte
	if st, err := fs.Stat(fsys, dir); err != nil || !st.IsDir() {
		return res, false, nil // a file, not an overlay's directory
	}
	for _, name := range kustomizationNames {
		p := path.Join(dir, name)
		d, err := opts.Budget.read(fsys, p)
		var nr NotRead
		if errors.As(err, &nr) {
			// It could hold the image's entry: the workload search names it if nothing is found.
			res.NotRead = []NotRead{nr}
			return res, false, nil
		}
		if err == nil {
			file, data = p, d
			break
		}
	}
	if file == "" || !bytes.Contains(data, []byte("images")) {
		return res, false, nil
	}
	docs, err := opts.Budget.decode(file, data, keepAll)
	if err != nil || len(docs) != 1 || len(docs[0].Content) != 1 {
		var nr NotRead
		if errors.As(err, &nr) && !nr.Malformed() {
			res.NotRead = []NotRead{nr}
		}
		return res, false, nil // the workload search reports unparseable files
	}
	images := elements(docs[0].Content[0], "images")
	if images == nil {
		return res, false, nil
	}
	for idx, entry := range images {
		name := scalar(entry, "name")
		newName := scalar(entry, "newName")
		effective := name
		if newName != "" {
			effective = newName
		}
		cur, err := imageref.Parse(effective)
		if err != nil || cur.Path() != pushed.Path() && !cur.SameRepository(pushed) {
			// kustomize matches name against the image without tag; also accept a renamed entry.
			if n, err := imageref.Parse(name); err != nil || n.Path() != pushed.Path() {
				continue
			}
		}
		cur.Tag, cur.Digest = scalar(entry, "newTag"), scalar(entry, "digest")
		o := opts
		if pushed.Digest == "" && o.Pin == PinAuto {
			o.Pin = PinTag // kustomize's rule: setting a tag drops a digest unless a digest is given
		}
		val, err := NewValue(cur, pushed, o)
		if err != nil {
			return res, true, fmt.Errorf("%s: images[%d]: %w", file, idx, err)
		}
		next, _ := imageref.Parse(val)
		want := map[string]string{"newTag": next.Tag, "digest": next.Digest}
		if next.Repo != cur.Repo {
			want["newName"] = next.Repo
		}
		out, err := editMapping(data, entry, want)
		if err != nil {
			return res, true, fmt.Errorf("%s: images[%d]: %w", file, idx, err)
		}
		old := cur.String()
		res.Changes = append(res.Changes, Change{File: file, Place: PlaceKustomize, Kind: "Kustomization", Name: name, Container: "images", Line: entry.Line, Old: old, New: val})
		res.Files = map[string][]byte{}
		if !bytes.Equal(out, data) {
			res.Files[file] = out
		}
		return res, true, nil
	}
	return res, false, nil
}

// byteEdit replaces data[start:end] with text.
type byteEdit struct {
	start, end int
	text       string
}

// editMapping sets (or, for an empty value, removes) keys of a block or flow mapping by editing its
// bytes: existing values are replaced in their own quoting, new keys are inserted on a line of their
// own after the mapping's last one, removed keys lose their line. The result must decode to the
// original with exactly those keys changed.
func editMapping(data []byte, m *yaml.Node, want map[string]string) ([]byte, error) {
	starts := lineStarts(data)
	lines := startsOf(starts)
	eol := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		eol = "\r\n"
	}
	var edits []byteEdit
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := want[k]
		var keyN, valN *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == k {
				keyN, valN = m.Content[i], m.Content[i+1]
			}
		}
		switch {
		case valN != nil && v != "":
			if valN.Value == v {
				continue
			}
			start, end, err := scalarSpan(data, lines, valN)
			if err != nil {
				return nil, err
			}
			edits = append(edits, byteEdit{start, end, encodeLike(valN.Style, v)})
		case valN != nil: // remove the key
			if m.Style&yaml.FlowStyle != 0 || keyN == m.Content[0] || valN.Line != keyN.Line {
				return nil, fmt.Errorf("%w: cannot remove %s here; remove it by hand", ErrUnsafe, k)
			}
			end := len(data)
			if keyN.Line < len(starts) {
				end = starts[keyN.Line]
			}
			edits = append(edits, byteEdit{starts[keyN.Line-1], end, ""})
		case v != "": // add the key
			last := m.Content[len(m.Content)-1]
			if m.Style&yaml.FlowStyle != 0 || last.Kind != yaml.ScalarNode || last.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				return nil, fmt.Errorf("%w: cannot add %s to this entry; use a block mapping", ErrUnsafe, k)
			}
			at := len(data)
			prefix, suffix := "", eol
			if last.Line < len(starts) {
				at = starts[last.Line]
			} else if !bytes.HasSuffix(data, []byte("\n")) {
				// The file has no final newline: the new line goes before it, and it keeps none.
				prefix, suffix = eol, ""
			}
			indent := strings.Repeat(" ", m.Content[0].Column-1)
			edits = append(edits, byteEdit{at, at, prefix + indent + k + ": " + encodeLike(0, v) + suffix})
		}
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].start > edits[j].start })
	out := bytes.Clone(data)
	for _, e := range edits {
		out = append(out[:e.start:e.start], append([]byte(e.text), out[e.end:]...)...)
	}
	if err := verifyMapping(data, out, m, want); err != nil {
		return nil, err
	}
	return out, nil
}

// verifyMapping decodes both versions and checks that the only difference is the wanted keys of
// the edited mapping, found by its position.
func verifyMapping(before, after []byte, m *yaml.Node, want map[string]string) error {
	var a, b any
	if err := yaml.Unmarshal(before, &a); err != nil {
		return fmt.Errorf("%w: original does not parse: %v", ErrUnsafe, err)
	}
	if err := yaml.Unmarshal(after, &b); err != nil {
		return fmt.Errorf("%w: rewritten file does not parse: %v", ErrUnsafe, err)
	}
	target := findMapping(a, before, m)
	if target == nil {
		return fmt.Errorf("%w: edited entry not found again", ErrUnsafe)
	}
	for k, v := range want {
		if v == "" {
			delete(target, k)
		} else {
			target[k] = v
		}
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("%w: the rewrite changed more than %v", ErrUnsafe, want)
	}
	return nil
}

// findMapping returns the decoded map that corresponds to node m: the images entry at the same
// index of the top-level images list.
func findMapping(doc any, data []byte, m *yaml.Node) map[string]any {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) != 1 {
		return nil
	}
	images := lookup(root.Content[0], "images")
	top, _ := doc.(map[string]any)
	list, _ := top["images"].([]any)
	if images == nil {
		return nil
	}
	for i, e := range images.Content {
		if e.Line == m.Line && e.Column == m.Column && i < len(list) {
			entry, _ := list[i].(map[string]any)
			return entry
		}
	}
	return nil
}
