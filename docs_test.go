package stepup_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docTestName is how the documentation names a test: a Test, Fuzz,
// Benchmark or Example function, optionally followed by one subtest or
// table row, as `go test -run` takes them.
var docTestName = regexp.MustCompile(`\b(Test|Fuzz|Benchmark|Example)[A-Z][A-Za-z0-9_]*(/[A-Za-z0-9_]+)?`)

// testDecl is what a *_test.go file of the repository offers to a name in
// the documentation: the function, and the strings that can name its rows.
type testDecl struct {
	file    string          // relative to the module root
	strings map[string]bool // string literals of the file, also as go test prints them
}

// TestDocsNameOnlyTestsThatExist: the threat model, the security-testing
// page and the rest of the documentation (docs/, and the READMEs of the
// root, the examples and the stores) cite tests as the proof of each
// rule. A citation of a test that was renamed, moved into a table or
// deleted proves nothing, so every cited name must exist: the function in
// some *_test.go of the repository (every module of the workspace), and a
// "/Row" part as a string literal in the file that declares it (a table
// row's name or a t.Run name, with spaces read as underscores, as go test
// prints them), or, for a fuzz target, as a seed file in its
// testdata/fuzz/<Target>/ directory, which go test runs as that subtest.
func TestDocsNameOnlyTestsThatExist(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	decls := testDecls(t, root)
	if len(decls) == 0 {
		t.Fatal("found no test functions: the walk did not reach the repository's tests")
	}

	var docs []string
	for _, pattern := range []string{"docs/*.md", "docs/idp/*.md", "README.md", "examples/*/README.md", "stores/*/README.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, m...)
	}
	if len(docs) == 0 {
		t.Fatal("found no documentation to check")
	}
	checked := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, doc)
		reported := map[string]bool{}
		for i, line := range strings.Split(string(b), "\n") {
			for _, name := range docTestName.FindAllString(line, -1) {
				checked++
				if reported[name] {
					continue
				}
				if problem := missing(root, decls, name); problem != "" {
					reported[name] = true
					t.Errorf("%s:%d: %s: %s", rel, i+1, name, problem)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("the documentation names no test at all; the pattern is broken")
	}
}

// missing says why name does not name an existing test or row, or returns
// the empty string when it does.
func missing(root string, decls map[string][]testDecl, name string) string {
	fn, row, hasRow := strings.Cut(name, "/")
	ds, ok := decls[fn]
	if !ok {
		return "no such function in any *_test.go"
	}
	if !hasRow {
		return ""
	}
	for _, d := range ds {
		if d.strings[row] {
			return ""
		}
		if strings.HasPrefix(fn, "Fuzz") {
			seed := filepath.Join(root, filepath.Dir(d.file), "testdata", "fuzz", fn, row)
			if fi, err := os.Stat(seed); err == nil && fi.Mode().IsRegular() {
				return ""
			}
		}
	}
	files := make([]string, len(ds))
	for i, d := range ds {
		files[i] = d.file
	}
	return "no row or t.Run named " + strconv.Quote(row) + " in " + strings.Join(files, ", ")
}

// moduleRoot returns the directory of the root module's go.mod: the
// package directory go test runs this test in.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("%s is not the module root: %v", dir, err)
	}
	return dir
}

// testDecls parses every *_test.go under root, in every module, and maps
// each top-level function name to the files that declare it.
func testDecls(t *testing.T, root string) map[string][]testDecl {
	t.Helper()
	decls := map[string][]testDecl{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// testdata is not compiled by go: a function there is no test.
			if path != root && (d.Name() == ".git" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		decl := testDecl{file: rel, strings: fileStrings(f)}
		for _, fd := range f.Decls {
			if fn, ok := fd.(*ast.FuncDecl); ok && fn.Recv == nil {
				if !slices.ContainsFunc(decls[fn.Name.Name], func(d testDecl) bool { return d.file == rel }) {
					decls[fn.Name.Name] = append(decls[fn.Name.Name], decl)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return decls
}

// fileStrings returns every string literal of f, as written and as go
// test prints it when it names a subtest (spaces as underscores): a table
// row's name reaches t.Run through a variable.
func fileStrings(f *ast.File) map[string]bool {
	out := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil {
				out[s] = true
				out[strings.ReplaceAll(s, " ", "_")] = true
			}
		}
		return true
	})
	return out
}
