# Sourced by .ci/run and .ci/release-check: a candidate release, the modules
# a user imports at a version that is not tagged yet, served to the go
# command as the module proxy will serve them once it is.

# user_modules are the directories of the modules a user imports, in the
# order their tags are pushed (docs/releasing.md).
user_modules=(stepup stepup/stepuptest stores/redisstore stores/postgresstore otelstepup)

# candidate_proxy VERSION DIR writes a file-system module proxy of
# user_modules at VERSION, zipped from the working tree, into DIR
# (tools/modproxy; it fails on a module without LICENSE, with a replace, or
# requiring a placeholder version). It runs in the repository's workspace,
# whatever GOWORK says.
candidate_proxy() {
  local repo
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  (cd "$repo" && GOWORK= go run ./tools/modproxy -version "$1" -o "$2" "${user_modules[@]}")
}

# candidate_env PROXY MODCACHE exports the environment in which the go
# command, with the workspace off, gets this repository's modules from
# PROXY only and everything else as usual:
#   - GOPROXY puts PROXY first, then the module cache's download directory
#     as a second file proxy (no network for what this machine already
#     has), then the usual proxy;
#   - GONOSUMDB turns the checksum database off for this repository's
#     modules only: it has never seen the candidate's zips;
#   - GOMODCACHE is MODCACHE, a throwaway cache, so that a candidate zip
#     cached by an earlier run of a different working tree is never used,
#     and none is left in the machine's cache. Its files are read-only:
#     remove it with chmod -R u+w first.
# The caller sets GOFLAGS.
candidate_env() {
  local upstream downloads
  upstream="$(go env GOPROXY)"
  downloads="$(go env GOMODCACHE)/cache/download"
  GOPROXY="file://$1"
  if [ -d "$downloads" ]; then GOPROXY="$GOPROXY,file://$downloads"; fi
  export GOPROXY="$GOPROXY,$upstream"
  export GOWORK=off GONOSUMDB=github.com/oidc-stepup GOMODCACHE="$2"
}

# candidate_modfile DIR OUT copies the go.mod and go.sum of the module in
# DIR to OUT.mod and OUT.sum and runs go mod download and go mod tidy on the
# copies (-modfile), in the environment candidate_env set: the go.sum
# copy then holds the lines for siblings at the candidate version, which
# are not committed (.ci/run says why), and the working tree is not
# written. Commands run in DIR with GOFLAGS=-modfile=OUT.mod then see the
# module as a user's go command does.
candidate_modfile() {
  cp "$1/go.mod" "$2.mod"
  if [ -f "$1/go.sum" ]; then cp "$1/go.sum" "$2.sum"; else : > "$2.sum"; fi
  (cd "$1" && export GOFLAGS="-mod=mod -modfile=$2.mod" && go mod download && go mod tidy)
}
