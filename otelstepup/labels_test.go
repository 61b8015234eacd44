package otelstepup

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// libraryConsts returns the string constants of the given type that the
// library (this repository's stepup/, not its tests) declares.
func libraryConsts(t *testing.T, typ string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "stepup", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the library's source is not at ../stepup: %v", err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typ {
					continue
				}
				for i, name := range vs.Names {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						out[name.Name] = v
					}
				}
			}
		}
	}
	return out
}

// TestEveryReasonOfTheLibraryIsKnown: each Reason and Bound that stepup
// declares is a label value of some instrument here. A reason added to
// the library without being added to labels.go would be counted as
// "other", hiding, say, a new denial an operator should alert on; this
// test fails first.
func TestEveryReasonOfTheLibraryIsKnown(t *testing.T) {
	t.Parallel()
	reasons := libraryConsts(t, "Reason")
	if len(reasons) < 40 {
		t.Fatalf("found %d Reason constants in ../stepup, expected more: the parser missed them", len(reasons))
	}
	union := knownUnion()
	for name, v := range reasons {
		if !union[v] {
			t.Errorf("stepup.%s (%q) is no label value of any instrument: add it to labels.go", name, v)
		}
	}
	bounds := libraryConsts(t, "Bound")
	if len(bounds) == 0 {
		t.Fatal("found no Bound constants in ../stepup")
	}
	for name, v := range bounds {
		if !knownBounds[v] {
			t.Errorf("stepup.%s (%q) is not a known bound: add it to labels.go", name, v)
		}
	}
	for v := range union {
		if v == Other {
			t.Errorf("%q is a known reason: it would be indistinguishable from an unknown one", Other)
		}
	}
}
