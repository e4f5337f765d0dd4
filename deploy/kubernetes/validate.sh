#!/usr/bin/env bash
# Validates the manifests of deploy/kubernetes with kubeconform, in strict mode, against the JSON schemas of a
# Kubernetes release, made here from that release's OpenAPI document (api/openapi-spec/swagger.json of the
# k8s.io/kubernetes Go module) by openapi2jsonschema. Everything comes from the Go module proxy: no schema is
# fetched from anywhere else, so this runs where only package registries are reachable. Then it checks that the
# validation can fail: a misspelt field, a wrong type and an unknown API version are each refused.
set -euo pipefail
cd "$(dirname "$0")/../.."

KUBECONFORM_VERSION=v0.8.0
KUBERNETES_VERSION=v1.34.4

export PATH="$(go env GOPATH)/bin:$PATH"
installed=$(command -v kubeconform >/dev/null && go version -m "$(command -v kubeconform)" | awk '$1 == "mod" { print $3 }' || true)
if [ "$installed" != "$KUBECONFORM_VERSION" ]; then
  echo "installing kubeconform $KUBECONFORM_VERSION"
  GOFLAGS= go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Outside this module, so that its go.mod and go.sum stay as they are.
(cd "$work" && GOFLAGS= go mod download "k8s.io/kubernetes@$KUBERNETES_VERSION")
swagger="$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION/api/openapi-spec/swagger.json"
go run ./deploy/kubernetes/openapi2jsonschema "$swagger" "$work/schemas"

validate() {
  kubeconform -strict -summary -output text \
    -schema-location "$work/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -ignore-filename-pattern 'kustomization\.yaml$' -ignore-filename-pattern '\.(go|sh)$' "$@"
}

echo "Kubernetes $KUBERNETES_VERSION, kubeconform $KUBECONFORM_VERSION:"
validate deploy/kubernetes

# Each mistake must be refused, or the validation above proves nothing.
refused=0
for mistake in 's/readinessProbe:/readinesProbe:/' 's/replicas: 2/replicas: two/' 's|apiVersion: policy/v1|apiVersion: policy/v1alpha9|'; do
  sed "$mistake" deploy/kubernetes/token.yaml > "$work/mistake.yaml"
  if cmp -s deploy/kubernetes/token.yaml "$work/mistake.yaml"; then
    echo "the mistake $mistake changes nothing in token.yaml"; exit 1
  fi
  if validate "$work/mistake.yaml" > "$work/out.txt" 2>&1; then
    echo "kubeconform accepted token.yaml with $mistake:"; cat "$work/out.txt"; exit 1
  fi
  refused=$((refused + 1))
done
echo "refused $refused of 3 deliberately broken manifests"
