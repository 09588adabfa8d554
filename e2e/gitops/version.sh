# The GitOps health harness's cache key: a hash of the files that decide the
# binary (sourced by e2e/cluster/build.sh and lib.sh).
gitops_version() {
  (cd "$REPO/e2e/gitops" && cat go.mod go.sum main.go | sha256sum | cut -c1-12)
}
