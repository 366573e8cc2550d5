package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// edit replaces the scalar node's value.
type edit struct {
	node  *yaml.Node
	value string
}

var bom = []byte("\xef\xbb\xbf")

// spliceFiles applies each file's edits to its contents and returns the new contents by file.
func spliceFiles(contents map[string][]byte, edits map[string][]edit) (map[string][]byte, error) {
	out := make(map[string][]byte, len(edits))
	for f, es := range edits {
		data, err := splice(contents[f], es)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out[f] = data
	}
	return out, nil
}

// splice writes each edit's value over the bytes of its scalar, keeping the scalar's quoting, then
// decodes the result and refuses it unless exactly the edited values changed. The output is built
// in one pass and the line offsets are found only for the edited lines, so that a big file costs
// its size twice (before and after), not once per edit.
func splice(data []byte, edits []edit) ([]byte, error) {
	type span struct {
		start, end int
		text       string
	}
	want := make([]int, len(edits))
	for i, e := range edits {
		want[i] = e.node.Line
	}
	lines := lineOffsets(data, want)
	spans := make([]span, 0, len(edits))
	grow := 0
	for _, e := range edits {
		start, end, err := scalarSpan(data, lines, e.node)
		if err != nil {
			return nil, err
		}
		text := encodeLike(e.node.Style, e.value)
		spans = append(spans, span{start, end, text})
		grow += len(text) - (end - start)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	out := make([]byte, 0, len(data)+max(grow, 0))
	at := 0
	for _, s := range spans {
		if s.start < at {
			return nil, fmt.Errorf("%w: overlapping edits at byte %d", ErrUnsafe, s.start)
		}
		out = append(append(out, data[at:s.start]...), s.text...)
		at = s.end
	}
	out = append(out, data[at:]...)
	if err := verify(data, out, edits); err != nil {
		return nil, err
	}
	return out, nil
}

// lines maps a line number to the offset of its first byte.
type lines map[int]int

// lineOffsets finds the offsets of the given lines (1-based) in one pass.
func lineOffsets(data []byte, want []int) lines {
	out := lines{}
	need := map[int]bool{}
	last := 0
	for _, l := range want {
		need[l] = true
		last = max(last, l)
	}
	if need[1] {
		out[1] = 0
	}
	line := 1
	for i := 0; i < len(data) && line < last; i++ {
		if data[i] == '\n' {
			line++
			if need[line] {
				out[line] = i + 1
			}
		}
	}
	return out
}

func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// startsOf turns lineStarts' slice into lines.
func startsOf(starts []int) lines {
	out := make(lines, len(starts))
	for i, o := range starts {
		out[i+1] = o
	}
	return out
}

// scalarSpan finds the byte range of a single-line scalar from its node's line and column; yaml
// counts columns in characters, not bytes.
func scalarSpan(data []byte, lines lines, n *yaml.Node) (int, int, error) {
	off, ok := lines[n.Line]
	if !ok {
		return 0, 0, fmt.Errorf("%w: line %d out of range", ErrUnsafe, n.Line)
	}
	if n.Line == 1 && bytes.HasPrefix(data, bom) {
		off += len(bom)
	}
	for col := 1; col < n.Column; col++ {
		if off >= len(data) || data[off] == '\n' {
			return 0, 0, fmt.Errorf("%w: column %d beyond line %d", ErrUnsafe, n.Column, n.Line)
		}
		_, size := utf8.DecodeRune(data[off:])
		off += size
	}
	end := off
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		if off >= len(data) || data[off] != '"' {
			return 0, 0, fmt.Errorf("%w: line %d: expected a double-quoted value", ErrUnsafe, n.Line)
		}
		for end = off + 1; end < len(data) && data[end] != '"'; end++ {
			if data[end] == '\\' {
				end++
			} else if data[end] == '\n' {
				return 0, 0, fmt.Errorf("%w: line %d: quoted value spans lines", ErrUnsafe, n.Line)
			}
		}
		end++
	case n.Style&yaml.SingleQuotedStyle != 0:
		if off >= len(data) || data[off] != '\'' {
			return 0, 0, fmt.Errorf("%w: line %d: expected a single-quoted value", ErrUnsafe, n.Line)
		}
		for end = off + 1; end < len(data); end++ {
			if data[end] == '\n' {
				return 0, 0, fmt.Errorf("%w: line %d: quoted value spans lines", ErrUnsafe, n.Line)
			}
			if data[end] == '\'' {
				if end+1 < len(data) && data[end+1] == '\'' {
					end++
					continue
				}
				break
			}
		}
		end++
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return 0, 0, fmt.Errorf("%w: line %d: image is a block scalar", ErrUnsafe, n.Line)
	default:
		end = off + len(n.Value)
		if end > len(data) || string(data[off:end]) != n.Value {
			return 0, 0, fmt.Errorf("%w: line %d: plain value spans lines or does not match", ErrUnsafe, n.Line)
		}
	}
	if end > len(data) {
		return 0, 0, fmt.Errorf("%w: line %d: unterminated value", ErrUnsafe, n.Line)
	}
	return off, end, nil
}

// encodeLike renders v in the given style; a plain value that YAML 1.2 or YAML 1.1 (kyaml's rule:
// on, yes, y, 010, 1e3) would read as something other than this string is double-quoted instead.
func encodeLike(style yaml.Style, v string) string {
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		return doubleQuote(v)
	case style&yaml.SingleQuotedStyle != 0:
		return "'" + string(bytes.ReplaceAll([]byte(v), []byte("'"), []byte("''"))) + "'"
	}
	if yaml11NonString(v) {
		return doubleQuote(v)
	}
	var probe yaml.Node
	if yaml.Unmarshal([]byte("k: "+v), &probe) != nil || len(probe.Content) != 1 {
		return doubleQuote(v)
	}
	val := lookup(probe.Content[0], "k")
	if val == nil || val.Kind != yaml.ScalarNode || val.ShortTag() != "!!str" || val.Value != v || val.Style != 0 {
		return doubleQuote(v)
	}
	return v
}

func doubleQuote(v string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// verify decodes before and after and walks both node trees in step, one document at a time (a
// big file is never held decoded whole): every node must be equal except the edited scalars, which
// must now hold their new values as strings.
func verify(before, after []byte, edits []edit) error {
	want := map[[2]int]string{}
	for _, e := range edits {
		want[[2]int{e.node.Line, e.node.Column}] = e.value
	}
	da, db := yaml.NewDecoder(bytes.NewReader(before)), yaml.NewDecoder(bytes.NewReader(after))
	seen := 0
	for {
		var a, b yaml.Node
		errA, errB := da.Decode(&a), db.Decode(&b)
		endA, endB := errors.Is(errA, io.EOF), errors.Is(errB, io.EOF)
		switch {
		case errA != nil && !endA:
			return fmt.Errorf("%w: original does not parse: %v", ErrUnsafe, errA)
		case errB != nil && !endB:
			return fmt.Errorf("%w: rewritten file does not parse: %v", ErrUnsafe, errB)
		case endA != endB:
			return fmt.Errorf("%w: document count changed", ErrUnsafe)
		}
		if endA {
			break
		}
		if err := sameTree(&a, &b, want, &seen); err != nil {
			return err
		}
	}
	if seen != len(want) {
		return fmt.Errorf("%w: %d of %d edits found after rewrite", ErrUnsafe, seen, len(want))
	}
	return nil
}

// parseAll decodes every document of a YAML stream into nodes, which carry line and column (tests
// only: the code decodes through a Budget).
func parseAll(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return nil, err
		}
		docs = append(docs, &n)
	}
}

func sameTree(a, b *yaml.Node, want map[[2]int]string, seen *int) error {
	if a.Kind != b.Kind || len(a.Content) != len(b.Content) || a.Anchor != b.Anchor {
		return fmt.Errorf("%w: structure changed near line %d", ErrUnsafe, a.Line)
	}
	if v, ok := want[[2]int{a.Line, a.Column}]; ok && a.Kind == yaml.ScalarNode {
		if b.Value != v || b.ShortTag() != "!!str" {
			return fmt.Errorf("%w: line %d: value reads back as %q (%s), want %q", ErrUnsafe, a.Line, b.Value, b.ShortTag(), v)
		}
		*seen++
	} else if a.Value != b.Value || a.ShortTag() != b.ShortTag() || a.HeadComment != b.HeadComment ||
		a.LineComment != b.LineComment || a.FootComment != b.FootComment {
		return fmt.Errorf("%w: line %d changed besides the image", ErrUnsafe, a.Line)
	}
	for i := range a.Content {
		if err := sameTree(a.Content[i], b.Content[i], want, seen); err != nil {
			return err
		}
	}
	return nil
}
