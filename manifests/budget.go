package manifests

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"go.yaml.in/yaml/v3"
)

// Defaults of Budget: a manifest bigger than a megabyte is not hand-written Kubernetes YAML, and one
// event never needs more than a few thousand documents.
const (
	DefaultMaxFileBytes  = 1 << 20
	DefaultMaxEventBytes = 16 << 20
	DefaultMaxEventNodes = 250_000
)

// ErrSkipped marks a file that was not read: too big, past the event's budget, or not YAML. The
// message names the file and why; the event lists it, so that a target in it is not silently missed.
var ErrSkipped = errors.New("skipped")

// Budget bounds what one event may read and parse of a manifests repository, whatever people commit
// to it: a file larger than MaxFileBytes is not read, and once MaxBytes of YAML or MaxNodes YAML
// nodes are parsed, further files are skipped. Share one Budget across the calls made for one
// event. The zero value (and nil) use the defaults. Not safe for concurrent use.
type Budget struct {
	MaxFileBytes int64
	MaxBytes     int64
	MaxNodes     int

	bytes int64
	nodes int
}

func (b *Budget) maxFile() int64 {
	if b == nil || b.MaxFileBytes <= 0 {
		return DefaultMaxFileBytes
	}
	return b.MaxFileBytes
}

func (b *Budget) limits() (int64, int) {
	maxBytes, maxNodes := int64(DefaultMaxEventBytes), DefaultMaxEventNodes
	if b != nil && b.MaxBytes > 0 {
		maxBytes = b.MaxBytes
	}
	if b != nil && b.MaxNodes > 0 {
		maxNodes = b.MaxNodes
	}
	return maxBytes, maxNodes
}

// read returns the file's bytes, or an ErrSkipped error when it is over the per-file limit. The
// read itself stops at the limit: a huge blob costs no more than the limit.
func (b *Budget) read(fsys fs.FS, name string) ([]byte, error) {
	limit := b.maxFile()
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		// Only a file over the limit pays for a Stat, to say how big it is.
		if st, err := f.Stat(); err == nil {
			return nil, fmt.Errorf("%w %s: %s over the %s limit", ErrSkipped, name, size(st.Size()), size(limit))
		}
		return nil, fmt.Errorf("%w %s: over the %s limit", ErrSkipped, name, size(limit))
	}
	return data, nil
}

// parse decodes every document of a file, charging its bytes and nodes to the budget. A file that
// would take the event past its budget is not decoded (the node count is estimated from the bytes
// first, since decoding is what costs memory).
func (b *Budget) parse(name string, data []byte) ([]*yaml.Node, error) {
	maxBytes, maxNodes := b.limits()
	var usedBytes int64
	var usedNodes int
	if b != nil {
		usedBytes, usedNodes = b.bytes, b.nodes
	}
	if usedBytes+int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w %s: the event's budget of %s of YAML is used up", ErrSkipped, name, size(maxBytes))
	}
	if est := estimateNodes(data); usedNodes+est > maxNodes {
		return nil, fmt.Errorf("%w %s: about %d YAML nodes, past the event's budget of %d", ErrSkipped, name, est, maxNodes)
	}
	docs, err := parseAll(data)
	if err != nil {
		return nil, fmt.Errorf("%w %s: not valid YAML: %v", ErrSkipped, name, err)
	}
	n := 0
	for _, d := range docs {
		n += countNodes(d)
	}
	if b != nil {
		b.bytes += int64(len(data))
		b.nodes += n
	}
	if usedNodes+n > maxNodes {
		return nil, fmt.Errorf("%w %s: %d YAML nodes, past the event's budget of %d", ErrSkipped, name, n, maxNodes)
	}
	return docs, nil
}

// estimateNodes bounds from above, roughly, the nodes a YAML text decodes to: every node but the
// document's needs a line, a comma, a flow bracket, a colon or a dash of its own.
func estimateNodes(data []byte) int {
	n := 1
	for _, c := range data {
		switch c {
		case '\n', ',', '[', '{', ':', '-':
			n++
		}
	}
	return n
}

func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// size prints a byte count the way a person reads it: "4.0 MiB", "512 KiB".
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
