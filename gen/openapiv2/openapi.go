// Package openapiv2 embeds the OpenAPI document generated from the protos (the one file here not written by a
// generator), so the gateway serves exactly what the protos declare.
package openapiv2

import _ "embed"

// Document is the merged OpenAPI v2 document of every REST route.
//
//go:embed authplane.swagger.json
var Document []byte
