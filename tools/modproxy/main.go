// Command modproxy writes a module proxy on the file system, to be used as
// GOPROXY=file://DIR, that serves modules of this repository at a
// candidate version, zipped from the working tree the way the module
// proxy zips a tagged module: the module's directory without its nested
// modules, by golang.org/x/mod/zip.CreateFromDir, the code the go command
// uses. .ci/release-check points a go command with the workspace off at it,
// so that the modules a user imports are built as a user gets them before
// any tag exists. From the repository's root:
//
//	go run ./tools/modproxy -version v0.1.0 -o /tmp/proxy stepup stepup/stepuptest otelstepup
//
// For each module directory it writes the files the GOPROXY protocol
// names (go.dev/ref/mod#goproxy-protocol): <escaped module path>/@v/list,
// and <version>.info, .mod and .zip beside it.
//
// It refuses a module that would not work for a user as it is:
//   - a zip without LICENSE at the module's root. pkg.go.dev shows no
//     documentation for a module without a licence it recognises. The go
//     command, zipping a tagged nested module that has none, copies the
//     repository root's LICENSE into it; a zip made from the directory
//     does not, so a module without its own LICENSE would get a zip here
//     that differs from the one the proxy will serve;
//   - a go.mod with a replace directive: the go command ignores a
//     dependency's replace directives, so the module would build here and
//     not for a user;
//   - a go.mod requiring a placeholder pseudo-version
//     (v0.0.0-00010101000000-000000000000), which no proxy serves.
//
// CreateFromDir zips what is in the directory, committed or not, as a
// check before committing should; run it on a clean checkout of the
// commit to tag for the exact release.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"
)

// placeholder is the pseudo-version a go.mod names for a module that a
// replace directive or a workspace provides: no proxy serves it.
const placeholder = "v0.0.0-00010101000000-000000000000"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "modproxy:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("modproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "the candidate version, such as v0.1.0 (required)")
	out := fs.String("o", "", "the proxy's directory, created if missing (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: modproxy -version vX.Y.Z -o DIR MODULE_DIR...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version == "" || *out == "" || fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	if !semver.IsValid(*version) || semver.Canonical(*version) != *version || semver.Build(*version) != "" {
		return fmt.Errorf("-version %q is not a canonical semantic version such as v0.1.0", *version)
	}
	var failed []string
	for _, dir := range fs.Args() {
		summary, err := add(*out, dir, *version)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		fmt.Fprintln(stdout, summary)
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\n"))
	}
	return nil
}

// add writes the module in dir at version to the proxy in out and returns
// a line that says what it wrote.
func add(out, dir, version string) (string, error) {
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	f, err := modfile.Parse(filepath.Join(dir, "go.mod"), gomod, nil)
	if err != nil {
		return "", err
	}
	if f.Module == nil {
		return "", errors.New("go.mod has no module directive")
	}
	if err := checkGoMod(f); err != nil {
		return "", err
	}
	mv := module.Version{Path: f.Module.Mod.Path, Version: version}
	if err := module.Check(mv.Path, mv.Version); err != nil {
		return "", err
	}

	var zipped bytes.Buffer
	if err := zip.CreateFromDir(&zipped, mv, dir); err != nil {
		return "", err
	}
	escPath, err := module.EscapePath(mv.Path)
	if err != nil {
		return "", err
	}
	escVersion, err := module.EscapeVersion(mv.Version)
	if err != nil {
		return "", err
	}
	vdir := filepath.Join(out, filepath.FromSlash(escPath), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return "", err
	}
	zipFile := filepath.Join(vdir, escVersion+".zip")
	if err := os.WriteFile(zipFile, zipped.Bytes(), 0o644); err != nil {
		return "", err
	}
	// CheckZip reads the zip back as the go command will, and lists the
	// files it holds.
	checked, err := zip.CheckZip(mv, zipFile)
	if err == nil {
		err = checked.Err()
	}
	if err == nil && !slices.Contains(checked.Valid, mv.Path+"@"+mv.Version+"/LICENSE") {
		err = fmt.Errorf("%s's zip has no LICENSE at the module's root", mv)
	}
	if err != nil {
		os.Remove(zipFile)
		return "", err
	}

	info := fmt.Sprintf("{\"Version\":%q,\"Time\":%q}\n", mv.Version, time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(vdir, escVersion+".info"), []byte(info), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(vdir, escVersion+".mod"), gomod, 0o644); err != nil {
		return "", err
	}
	if err := addToList(filepath.Join(vdir, "list"), mv.Version); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %d files, %d bytes zipped", mv, len(checked.Valid), zipped.Len()), nil
}

// checkGoMod refuses what works in this repository and not for a user who
// requires the module.
func checkGoMod(f *modfile.File) error {
	var problems []string
	for _, r := range f.Replace {
		problems = append(problems, fmt.Sprintf("replace %s: the go command ignores a dependency's replace directives", r.Old.Path))
	}
	for _, r := range f.Require {
		if r.Mod.Version == placeholder {
			problems = append(problems, fmt.Sprintf("require %s %s: a placeholder no proxy serves", r.Mod.Path, r.Mod.Version))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("go.mod of %s:\n\t%s", f.Module.Mod.Path, strings.Join(problems, "\n\t"))
	}
	return nil
}

// addToList adds version to the proxy's list of a module's versions, which
// may already name others.
func addToList(list, version string) error {
	data, err := os.ReadFile(list)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	versions := strings.Fields(string(data))
	if !slices.Contains(versions, version) {
		versions = append(versions, version)
	}
	semver.Sort(versions)
	return os.WriteFile(list, []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}
