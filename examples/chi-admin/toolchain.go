package main

import (
	"go/version"
	"strings"
)

// vulnerableToolchain reports whether the Go release v (as runtime.Version
// prints it) has the standard-library vulnerabilities in net/http,
// crypto/tls, crypto/x509 and mime/multipart that the README warns of:
// every release before go1.26.10, and go1.27 before go1.27.3. A version it
// cannot read, such as a development build, is not reported.
//
// A toolchain line in go.mod does not prevent such a build: it is ignored
// when the module is a dependency, and only asks for a minimum otherwise.
func vulnerableToolchain(v string) bool {
	v, _, _ = strings.Cut(v, " ") // "go1.26.8 X:nodwarf5"
	if !version.IsValid(v) {
		return false
	}
	if version.Compare(v, "go1.26.10") < 0 {
		return true
	}
	return version.Lang(v) == "go1.27" && version.Compare(v, "go1.27.3") < 0
}
