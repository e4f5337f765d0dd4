// Command openapigen writes the platform's OpenAPI document (gen/openapiv2/authplane.openapi.json), the one the
// gateway serves at /openapi.json. `make generate` runs it after buf.
//
// protoc-gen-openapiv2 writes what the protos say of the REST facade (OpenAPI 2.0: routes, bodies, schemas, and
// the RPCs' comments and openapiv2_operation options). This command converts that to OpenAPI 3.1 and completes it
// with what the gateway does by rule rather than by annotation, taken from the same sources the gateway uses, so
// the document cannot drift from it:
//   - each operation's security, from its RPC's plane (authplane.access.v1.plane), the option the authorization
//     interceptor enforces;
//   - its success status (platform.RESTSuccessStatus): 201 for Create, 204 without a body for Delete;
//   - the error answers every route can give, all with the contract's error schema, besides those an RPC
//     declares itself in its openapiv2_operation option (409, 412, 429);
//   - a one-sentence summary, the first sentence of the RPC's comment (the comment stays whole as the description).
//
// It then merges the hand-written part (docs/openapi/authplane.yaml): the OAuth 2.0 and OpenID Connect endpoints,
// browser sign-in, the service routes, the security schemes and the shared schemas. It fails, naming the RPC, when
// a REST operation has no comment or no plane, so a new RPC cannot go undocumented.
package main

import (
	"flag"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	// Registered so that the descriptors' options parse into their extensions.
	_ "github.com/authplane/authplane/gen/go/authplane/access/v1"
	_ "google.golang.org/genproto/googleapis/api/annotations"
)

func main() {
	swagger := flag.String("swagger", "gen/openapiv2/authplane.swagger.json", "protoc-gen-openapiv2's merged output; removed once read")
	descriptors := flag.String("descriptors", "", "the protos as a FileDescriptorSet (buf build --as-file-descriptor-set)")
	fragment := flag.String("fragment", "docs/openapi/authplane.yaml", "the hand-written part of the document")
	out := flag.String("out", "gen/openapiv2/authplane.openapi.json", "where to write the document")
	flag.Parse()
	if err := run(*swagger, *descriptors, *fragment, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}

func run(swaggerPath, descriptorsPath, fragmentPath, outPath string) error {
	swagger, err := os.ReadFile(swaggerPath)
	if err != nil {
		return fmt.Errorf("%w (run buf generate first)", err)
	}
	raw, err := os.ReadFile(descriptorsPath)
	if err != nil {
		return err
	}
	var files descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &files); err != nil {
		return fmt.Errorf("read %s: %w", descriptorsPath, err)
	}
	fragment, err := os.ReadFile(fragmentPath)
	if err != nil {
		return err
	}
	doc, err := Build(swagger, &files, fragment)
	if err != nil {
		return err
	}
	if err := os.WriteFile(outPath, doc, 0o644); err != nil {
		return err
	}
	// The intermediate document is incomplete; only the complete one is kept (and served).
	return os.Remove(swaggerPath)
}
