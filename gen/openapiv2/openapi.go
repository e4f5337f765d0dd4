// Package openapiv2 embeds the OpenAPI document generated from the protos and docs/openapi/authplane.yaml by
// `make generate` (this file is the one here not written by a generator), so the gateway serves exactly what was
// generated. The package keeps the name of the plugin it started from; the document is OpenAPI 3.1.
package openapiv2

import _ "embed"

// Document is the OpenAPI 3.1 document of every route: the REST facade, the OAuth and OpenID Connect endpoints,
// browser sign-in and the service's own routes.
//
//go:embed authplane.openapi.json
var Document []byte
