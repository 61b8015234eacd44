package main

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeModule writes a module named path to a new directory with the
// given go.mod body and files, and returns the directory.
func writeModule(t *testing.T, path, gomodBody string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["go.mod"] = "module " + path + "\n\ngo 1.26.0\n" + gomodBody
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestModproxyWritesTheGoproxyLayout(t *testing.T) {
	t.Parallel()
	dir := writeModule(t, "example.com/Lib", "require example.com/dep v1.2.3\n", map[string]string{
		"LICENSE":         "licence text",
		"lib.go":          "package lib\n",
		"nested/go.mod":   "module example.com/Lib/nested\n",
		"nested/n.go":     "package nested\n",
		"internal/x/x.go": "package x\n",
	})
	out := t.TempDir()
	if err := run([]string{"-version", "v0.1.0", "-o", out, dir}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	// A second version adds to the list.
	if err := run([]string{"-version", "v0.0.9", "-o", out, dir}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(out, "example.com", "!lib", "@v") // upper case escaped
	for _, name := range []string{"v0.1.0.info", "v0.1.0.mod", "v0.1.0.zip", "v0.0.9.zip"} {
		if _, err := os.Stat(filepath.Join(vdir, name)); err != nil {
			t.Error(err)
		}
	}
	if list, _ := os.ReadFile(filepath.Join(vdir, "list")); string(list) != "v0.0.9\nv0.1.0\n" {
		t.Errorf("list = %q", list)
	}
	if info, _ := os.ReadFile(filepath.Join(vdir, "v0.1.0.info")); !strings.HasPrefix(string(info), `{"Version":"v0.1.0","Time":"`) {
		t.Errorf("info = %q", info)
	}
	if mod, _ := os.ReadFile(filepath.Join(vdir, "v0.1.0.mod")); !strings.Contains(string(mod), "require example.com/dep v1.2.3") {
		t.Errorf("mod = %q, want the module's go.mod", mod)
	}
	// The zip holds the module's files under path@version/, and not the
	// nested module's.
	zr, err := zip.OpenReader(filepath.Join(vdir, "v0.1.0.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	want := []string{"example.com/Lib@v0.1.0/LICENSE", "example.com/Lib@v0.1.0/go.mod", "example.com/Lib@v0.1.0/internal/x/x.go", "example.com/Lib@v0.1.0/lib.go"}
	if !slices.Equal(names, want) {
		t.Errorf("zip holds %q, want %q", names, want)
	}
}

func TestModproxyRefusesWhatAUserCannotBuild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		gomodBody string
		files     map[string]string
		want      string
	}{
		{"NoLicense", "", map[string]string{"lib.go": "package lib\n"}, "no LICENSE at the module's root"},
		{"LicenseInASubdirectoryOnly", "", map[string]string{"lib.go": "package lib\n", "docs/LICENSE": "licence text"}, "no LICENSE at the module's root"},
		{"Replace", "require example.com/dep v1.2.3\nreplace example.com/dep => ../dep\n", map[string]string{"LICENSE": "licence text"}, "replace example.com/dep"},
		{"Placeholder", "require example.com/dep " + placeholder + "\n", map[string]string{"LICENSE": "licence text"}, "placeholder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeModule(t, "example.com/lib", tc.gomodBody, tc.files)
			out := t.TempDir()
			err := run([]string{"-version", "v0.1.0", "-o", out, dir}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(out, "example.com", "lib", "@v", "v0.1.0.zip")); !os.IsNotExist(err) {
				t.Errorf("the refused module's zip is in the proxy (%v)", err)
			}
		})
	}
}
