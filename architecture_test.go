package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// module is what the architecture document may name: each package (by directory and by name),
// each file, and the identifiers each package declares — types, functions, methods, variables,
// constants and struct fields, by package and by type (a method by package too: event.Settle).
type module struct {
	dirs  map[string]bool            // "notify/chat", "updater", "" (main)
	files map[string]bool            // "updater/review.go", and the bare "review.go"
	names map[string]map[string]bool // package name → declared names, "Type.Member" included
	all   map[string]bool            // every declared name, anywhere
}

func readModule(t *testing.T) *module {
	t.Helper()
	m := &module{dirs: map[string]bool{}, files: map[string]bool{}, names: map[string]map[string]bool{}, all: map[string]bool{}}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		p = filepath.ToSlash(p)
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			m.dirs[p] = true
			if d.Name() == "testdata" {
				return filepath.SkipDir // named as a place, never read
			}
			return nil
		}
		m.files[p], m.files[d.Name()] = true, true
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, "_test.go") {
			declare(f, map[string]bool{}, m.all) // a test may be named (TestParsers), not as the package's
			return nil
		}
		dir := path.Dir(p)
		for _, key := range []string{f.Name.Name, dir} {
			if m.names[key] == nil {
				m.names[key] = map[string]bool{}
			}
			declare(f, m.names[key], m.all)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func declare(f *ast.File, names, all map[string]bool) {
	add := func(n string) { names[n], all[n] = true, true }
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				add(d.Name.Name)
				continue
			}
			t := d.Recv.List[0].Type
			if s, ok := t.(*ast.StarExpr); ok {
				t = s.X
			}
			if id, ok := t.(*ast.Ident); ok {
				// By type, and by package: event.Settle names Event's method.
				add(id.Name + "." + d.Name.Name)
				add(d.Name.Name)
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					add(s.Name.Name)
					if st, ok := s.Type.(*ast.StructType); ok {
						for _, fld := range st.Fields.List {
							for _, n := range fld.Names {
								add(s.Name.Name + "." + n.Name)
								all[n.Name] = true
							}
						}
					}
					if it, ok := s.Type.(*ast.InterfaceType); ok {
						for _, meth := range it.Methods.List {
							for _, n := range meth.Names {
								add(s.Name.Name + "." + n.Name)
								all[n.Name] = true
							}
						}
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						add(n.Name)
					}
				}
			}
		}
	}
}

var (
	codeSpan   = regexp.MustCompile("`([^`\n]+)`")
	goName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	pathLike   = regexp.MustCompile(`^[a-z0-9_./-]+\.(go|md|yaml|sh)$|^[a-z]+(/[a-z0-9_*<>-]+)+/?$`)
	exportedID = regexp.MustCompile(`^[A-Z][A-Za-z0-9_]*$`)
)

// TestArchitectureNamesExist reads docs/architecture.md: every package, file and identifier it
// names in a code span exists — a package directory, a file (by path, or by name somewhere), a
// pkg.Name or pkg.Type.Member declared in that package, an exported name declared somewhere — so
// that the document cannot go stale silently. Spans that are no Go name (config keys, commands,
// signatures) are left alone.
func TestArchitectureNamesExist(t *testing.T) {
	doc, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	m := readModule(t)
	checked := 0
	for _, match := range codeSpan.FindAllStringSubmatch(string(doc), -1) {
		span := strings.TrimSuffix(match[1], "()")
		ok, known := m.names[span] != nil || m.dirs[span], true
		switch {
		case ok:
		case pathLike.MatchString(span):
			clean := strings.TrimSuffix(span, "/")
			if i := strings.IndexAny(clean, "*<"); i >= 0 {
				clean = strings.TrimSuffix(clean[:i], "/") // a pattern: its fixed part must exist
			}
			ok = m.files[clean] || m.dirs[clean]
		case goName.MatchString(span) && strings.Contains(span, "."):
			pkg, rest, _ := strings.Cut(span, ".")
			if m.names[pkg] == nil {
				known = false // a config key such as writeBack.webhookSecret
				break
			}
			ok = m.names[pkg][rest]
		case exportedID.MatchString(span):
			ok = m.all[span]
		default:
			known = false
		}
		if !known {
			continue
		}
		checked++
		if !ok {
			t.Errorf("docs/architecture.md names %q, which does not exist", match[1])
		}
	}
	if checked < 80 {
		t.Errorf("only %d names checked: the document's spans are not being read", checked)
	}
}
