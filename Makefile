# Pinned code generators; `make tools` installs them from the Go module proxy, `make generate` runs offline.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION       := v2.33.0
BUF_VERSION                := v1.75.0
GOBIN ?= $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

.PHONY: tools generate lint check-generated lint-openapi docs-assets test test-postgres build bench

tools:
	@test -x $(GOBIN)/protoc-gen-go && $(GOBIN)/protoc-gen-go --version | grep -q $(PROTOC_GEN_GO_VERSION) || go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@test -x $(GOBIN)/protoc-gen-go-grpc && $(GOBIN)/protoc-gen-go-grpc --version | grep -q $(patsubst v%,%,$(PROTOC_GEN_GO_GRPC_VERSION)) || go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@test -x $(GOBIN)/protoc-gen-grpc-gateway && $(GOBIN)/protoc-gen-grpc-gateway --version | grep -q $(GRPC_GATEWAY_VERSION) || go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
	@test -x $(GOBIN)/protoc-gen-openapiv2 && $(GOBIN)/protoc-gen-openapiv2 --version | grep -q $(GRPC_GATEWAY_VERSION) || go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
	@test -x $(GOBIN)/buf && $(GOBIN)/buf --version | grep -q $(patsubst v%,%,$(BUF_VERSION)) || go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

# buf writes the Go code and protoc-gen-openapiv2's document of the REST routes; cmd/openapigen completes that
# document (security from each RPC's plane, status codes, the OAuth endpoints of docs/openapi/authplane.yaml) into
# gen/openapiv2/authplane.openapi.json.
generate: tools
	buf lint
	rm -rf gen/go gen/openapiv2/*.json
	buf generate
	@descriptors=$$(mktemp) && trap 'rm -f "$$descriptors"' EXIT && \
	  buf build --path proto/authplane --as-file-descriptor-set -o "$$descriptors#format=binpb" && \
	  go run ./cmd/openapigen -descriptors "$$descriptors"

lint: tools
	buf lint
	gofmt -l $$(git ls-files '*.go' | grep -v '^gen/') | (! grep .)
	go vet ./...

# Fails when gen/ differs from what the protos generate.
check-generated: generate
	git diff --exit-code -- gen
	test -z "$$(git status --porcelain -- gen)"

# The Swagger UI files of GET /docs (services/gateway/apidocs), unchanged from the swagger-ui-dist release that
# docs/openapi/package.json pins.
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt
OPENAPI_NPM := cd docs/openapi && npm ci --no-audit --no-fund --loglevel=error

# Lints the generated OpenAPI document with Redocly CLI (docs/openapi/redocly.yaml) and checks that the /docs
# assets are still those of the pinned Swagger UI.
lint-openapi:
	$(OPENAPI_NPM) && npm run --silent lint
	for f in $(SWAGGER_UI_FILES); do cmp docs/openapi/node_modules/swagger-ui-dist/$$f services/gateway/apidocs/$$f || exit 1; done

# Copies the pinned Swagger UI into services/gateway/apidocs (after changing its version in docs/openapi/package.json).
docs-assets:
	$(OPENAPI_NPM)
	for f in $(SWAGGER_UI_FILES); do cp docs/openapi/node_modules/swagger-ui-dist/$$f services/gateway/apidocs/$$f; done

build:
	go build -o bin/authplane ./cmd/authplane

test:
	go test ./...

bench:
	go test -run '^$$' -bench . -benchmem ./...
