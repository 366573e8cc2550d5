package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imagehook/imagehook/event"
)

// Defaults of Budget. A legitimate manifest can be big: a vendored upstream install bundle (Argo
// CD's install.yaml is 1.9 MB, kserve's and spark-operator's are over 2 MB) holds thousands of CRDs
// beside the workload, so a file is refused for its size only past 64 MiB. What a hostile file
// could cost is bounded per document instead: no document is decoded past DefaultMaxDocumentNodes
// YAML nodes by the estimator's count (about 25 MB decoded; a CRD counts one per 19 bytes or so,
// so the biggest the API server stores, about 1.5 MiB, counts some 85,000), and an event keeps at
// most DefaultMaxEventNodes nodes (about 17 MB) of the documents that can hold its target — its
// workload's, a few hundred nodes — while the others are dropped as soon as they are looked at.
const (
	DefaultMaxFileBytes     = 64 << 20
	DefaultMaxEventBytes    = 128 << 20
	DefaultMaxEventNodes    = 100_000
	DefaultMaxDocumentNodes = 150_000
)

// ErrSkipped marks a file that was not read, or not wholly: too big, past the event's budget, or
// not YAML. Such errors are NotRead values, which name the file and say why.
var ErrSkipped = errors.New("skipped")

// ErrFilesNotRead marks a target that was not found while files that could hold it were not read
// (a *FilesNotReadError, which names them).
var ErrFilesNotRead = errors.New("files that could hold the target were not read")

// NotRead is a file that was not read, or not wholly: a target in it would not be found. Reason is
// for code (one of event's file reasons), Detail for people.
type NotRead struct {
	File   string
	Reason event.Reason
	Detail string
}

// String is the line a person reads: "skipped FILE: DETAIL".
func (n NotRead) String() string { return "skipped " + n.File + ": " + n.Detail }

// Error makes a NotRead an error that matches ErrSkipped.
func (n NotRead) Error() string { return n.String() }

// Is reports whether target is ErrSkipped.
func (n NotRead) Is(target error) bool { return target == ErrSkipped }

// Malformed reports whether the file was not read for what it holds (it is not YAML), rather than
// for a limit or a failed read.
func (n NotRead) Malformed() bool { return n.Reason == event.ReasonNotYAML }

// FilesNotReadError is the error of a target that was not found while files that could hold it
// were not read. It matches ErrNotFound and ErrFilesNotRead, and carries event.ReasonFilesNotRead.
type FilesNotReadError struct {
	// What names the target and where it was looked for, as a person reads it.
	What  string
	Files []NotRead
}

// maxNamed is how many files an error message names; Files (and a step's Skipped) holds them all.
const maxNamed = 20

func (e *FilesNotReadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v; ", e.What, ErrNotFound)
	if len(e.Files) == 1 {
		b.WriteString("1 file that could hold it was not read: ")
	} else {
		fmt.Fprintf(&b, "%d files that could hold it were not read: ", len(e.Files))
	}
	for i, f := range e.Files {
		if i == maxNamed {
			fmt.Fprintf(&b, "; and %d more", len(e.Files)-maxNamed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s (%s)", f.File, f.Detail)
	}
	return b.String()
}

// Is reports whether target is ErrNotFound or ErrFilesNotRead.
func (e *FilesNotReadError) Is(target error) bool {
	return target == ErrNotFound || target == ErrFilesNotRead
}

// Reason is the step's typed reason for this error.
func (e *FilesNotReadError) Reason() event.Reason { return event.ReasonFilesNotRead }

// notFound is the error of a target not found under what: a *FilesNotReadError when files were
// not read, else plain ErrNotFound.
func notFound(what string, notRead []NotRead) error {
	if len(notRead) > 0 {
		return &FilesNotReadError{What: what, Files: notRead}
	}
	return fmt.Errorf("%s: %w", what, ErrNotFound)
}

// ReadLimits is the limits: section's part that bounds what the manifests cost to read
// (limits.maxFileBytes, maxEventBytes, maxEventNodes); config holds it inline.
type ReadLimits struct {
	// MaxFileBytes skips manifest files larger than this (named on the event); default 64 MiB, so
	// that vendored install bundles are read. A hostile file is bounded per document instead.
	MaxFileBytes int64 `yaml:"maxFileBytes"`
	// MaxEventBytes and MaxEventNodes bound what one event may decode of the manifests (default
	// 128 MiB) and keep of the documents that can hold its target (default 100,000 nodes): files
	// past the budget are not read and named on the event.
	MaxEventBytes int64 `yaml:"maxEventBytes"`
	MaxEventNodes int   `yaml:"maxEventNodes"`
}

// SetDefaults sets the limits left zero to the defaults.
func (l *ReadLimits) SetDefaults() {
	if l.MaxFileBytes == 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxEventBytes == 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.MaxEventNodes == 0 {
		l.MaxEventNodes = DefaultMaxEventNodes
	}
}

// Budget is one event's (or the index's) budget under these limits.
func (l ReadLimits) Budget() Budget {
	return Budget{MaxFileBytes: l.MaxFileBytes, MaxBytes: l.MaxEventBytes, MaxNodes: l.MaxEventNodes}
}

// Budget bounds what one event may read and decode of a manifests repository, whatever people
// commit to it: a file larger than MaxFileBytes is not read; no document is decoded past
// MaxDocumentNodes YAML nodes (the file it is in is then not read); once MaxBytes of YAML have been
// decoded, or the documents kept (those that can hold the target) reach MaxNodes nodes, further
// files are not read. Every such file is named (NotRead). Share one Budget across the calls made
// for one event. The zero value (and nil) use the defaults. Not safe for concurrent use.
type Budget struct {
	MaxFileBytes     int64
	MaxBytes         int64
	MaxNodes         int
	MaxDocumentNodes int

	bytes int64
	nodes int
}

func (b *Budget) maxFile() int64 {
	if b == nil || b.MaxFileBytes <= 0 {
		return DefaultMaxFileBytes
	}
	return b.MaxFileBytes
}

func (b *Budget) limits() (maxBytes int64, maxNodes, maxDoc int) {
	maxBytes, maxNodes, maxDoc = DefaultMaxEventBytes, DefaultMaxEventNodes, DefaultMaxDocumentNodes
	if b != nil && b.MaxBytes > 0 {
		maxBytes = b.MaxBytes
	}
	if b != nil && b.MaxNodes > 0 {
		maxNodes = b.MaxNodes
	}
	if b != nil && b.MaxDocumentNodes > 0 {
		maxDoc = b.MaxDocumentNodes
	}
	return maxBytes, maxNodes, maxDoc
}

// tooBig is the NotRead of a file of size bytes over the per-file limit.
func (b *Budget) tooBig(name string, size int64) NotRead {
	return NotRead{File: name, Reason: event.ReasonFileTooBig, Detail: fmt.Sprintf("%s, over the %s limit per file", byteSize(size), byteSize(b.maxFile()))}
}

// read returns the file's bytes, or a NotRead error when it is over the per-file limit (the read
// stops at the limit: a huge blob costs no more than the limit) or cannot be read; a file that
// does not exist gives its fs error.
func (b *Budget) read(fsys fs.FS, name string) ([]byte, error) {
	limit := b.maxFile()
	f, err := fsys.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return nil, NotRead{File: name, Reason: event.ReasonFileUnreadable, Detail: fmt.Sprintf("cannot be read: %v", err)}
	}
	defer f.Close()
	// Read into a buffer of the file's size when it is known: no doubling, no garbage of twice a
	// big file's size.
	var buf bytes.Buffer
	if st, err := f.Stat(); err == nil && st.Size() > 0 && st.Size() <= limit {
		buf.Grow(int(st.Size()) + bytes.MinRead)
	}
	_, err = buf.ReadFrom(io.LimitReader(f, limit+1))
	data := buf.Bytes()
	if err != nil {
		return nil, NotRead{File: name, Reason: event.ReasonFileUnreadable, Detail: fmt.Sprintf("cannot be read: %v", err)}
	}
	if int64(len(data)) > limit {
		// Only a file over the limit pays for a Stat, to say how big it is.
		if st, err := f.Stat(); err == nil {
			return nil, b.tooBig(name, st.Size())
		}
		return nil, NotRead{File: name, Reason: event.ReasonFileTooBig, Detail: fmt.Sprintf("over the %s limit per file", byteSize(limit))}
	}
	return data, nil
}

// errDocumentBudget is what the meter answers the decoder once a document is over its budget.
var errDocumentBudget = errors.New("document over its node budget")

// decode decodes the documents of one file in one decoder loop, so that positions stay absolute,
// one document at a time: keep sees each document and says whether to keep it; the others are
// dropped at once. No document is decoded past the per-document budget: the decoder reads the file
// through a meter that counts the nodes the bytes read could decode to, and fails the read beyond
// the budget (so the bound holds while decoding, not after). The bytes decoded and the kept
// documents' nodes are charged to the event. Any error is a NotRead: the file is then not read at
// all, and nothing of it is kept.
func (b *Budget) decode(name string, data []byte, keep func(doc *yaml.Node) bool) ([]*yaml.Node, error) {
	maxBytes, maxNodes, maxDoc := b.limits()
	var usedBytes int64
	var usedNodes int
	if b != nil {
		usedBytes, usedNodes = b.bytes, b.nodes
	}
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) {
		// The node count and the splice read UTF-8; Kubernetes manifests are UTF-8.
		return nil, NotRead{File: name, Reason: event.ReasonNotYAML, Detail: "UTF-16 text; imagehook reads UTF-8 YAML"}
	}
	if usedBytes+int64(len(data)) > maxBytes {
		return nil, NotRead{File: name, Reason: event.ReasonEventBudget,
			Detail: fmt.Sprintf("%s, past the event's budget of %s of YAML (%s used)", byteSize(int64(len(data))), byteSize(maxBytes), byteSize(usedBytes))}
	}
	m := &meter{r: bytes.NewReader(data), limit: maxDoc}
	charge := func() {
		if b != nil {
			b.bytes += m.read
		}
	}
	dec := yaml.NewDecoder(m)
	var kept []*yaml.Node
	keptNodes := 0
	for i := 1; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			charge()
			if m.over {
				return nil, NotRead{File: name, Reason: event.ReasonDocumentTooBig,
					Detail: fmt.Sprintf("%s; its document %d decodes to over %d YAML nodes, the budget of one document", byteSize(int64(len(data))), i, maxDoc)}
			}
			return nil, NotRead{File: name, Reason: event.ReasonNotYAML, Detail: fmt.Sprintf("not valid YAML: %v", err)}
		}
		m.count = 0
		if !keep(&doc) {
			continue
		}
		keptNodes += countNodes(&doc)
		if usedNodes+keptNodes > maxNodes {
			charge()
			return nil, NotRead{File: name, Reason: event.ReasonEventBudget,
				Detail: fmt.Sprintf("keeping its documents would pass the event's budget of %d YAML nodes (%d kept before it)", maxNodes, usedNodes)}
		}
		kept = append(kept, &doc)
	}
	charge()
	if b != nil {
		b.nodes += keptNodes
	}
	return kept, nil
}

// keepAll keeps every document.
func keepAll(*yaml.Node) bool { return true }

// meter is the reader a decoder reads a file through: it counts the nodes the bytes handed out
// could decode to (estimator) since the last document was returned (count, which the caller
// resets), and fails the read past limit. The decoder reads ahead by at most a couple of KiB, so a
// document decodes to at most limit plus a few thousand nodes.
type meter struct {
	r     io.Reader
	limit int
	count int
	read  int64
	est   estimator
	over  bool
}

func (m *meter) Read(p []byte) (int, error) {
	if m.over {
		return 0, errDocumentBudget
	}
	n, err := m.r.Read(p)
	m.read += int64(n)
	m.count += m.est.feed(p[:n])
	if m.count > m.limit {
		m.over = true
		return 0, errDocumentBudget
	}
	return n, err
}

// estimator bounds from above the YAML nodes a text decodes to, fed in pieces. Every node but a
// document's and its first key's follows a separator: a line break (a lone CR, LF, NEL, LS or
// PS) before a key; a colon, a dash or a question mark before a value or entry; a comma or an
// opening flow bracket before a flow entry. A collection node follows none of its own, so every
// separator but a line break counts twice: once for the entry, once for the collection or the
// implicit key: value pair it may open. A line break counts once.
type estimator struct {
	prev byte // the last byte fed
	cr   bool // the last byte was a CR, not yet known to start a CRLF
}

func (e *estimator) feed(p []byte) int {
	n := 0
	for _, c := range p {
		if e.cr && c != '\n' {
			n++
		}
		e.cr = false
		switch c {
		case '\n':
			n++
		case ':', '-', '?', ',', '[', '{':
			n += 2
		case '\r':
			e.cr = true
		case 0x85: // NEL is C2 85
			if e.prev == 0xc2 {
				n++
			}
		case 0xa8, 0xa9: // LS and PS are E2 80 A8 and E2 80 A9
			if e.prev == 0x80 {
				n++
			}
		}
		e.prev = c
	}
	return n
}

// estimateNodes is the estimator's bound for a whole text, plus its document's node and first key.
func estimateNodes(data []byte) int {
	var e estimator
	n := 2 + e.feed(data)
	if e.cr {
		n++
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

// candidate is a file to read, with its size when the listing knew it (-1 when not).
type candidate struct {
	path string
	size int64
}

// bySize orders candidates smallest first, so that an event's budget is spent on the big files
// last: a few huge files cannot crowd out the ordinary file that holds the target.
func bySize(files []candidate) {
	sort.SliceStable(files, func(i, j int) bool { return files[i].size < files[j].size })
}

// entrySize is a directory entry's size, or -1 when its Info cannot be had.
func entrySize(e fs.DirEntry) int64 {
	info, err := e.Info()
	if err != nil {
		return -1
	}
	return info.Size()
}

// byteSize prints a byte count the way a person reads it: "4.0 MiB", "512 KiB".
func byteSize(n int64) string {
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
