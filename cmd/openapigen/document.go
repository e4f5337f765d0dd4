package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	accessv1 "github.com/authplane/authplane/gen/go/authplane/access/v1"
	"github.com/authplane/authplane/pkg/platform"
)

// OpenAPIVersion is the version of the document written: 3.1 lets a Bearer requirement name the scopes it needs
// (3.0 allows that only for OAuth 2.0 schemes, and a tenant's token URL is not one fixed URL).
const OpenAPIVersion = "3.1.0"

// Security scheme names, declared in the fragment.
const (
	OperatorScheme = "operatorToken"
	AdminScheme    = "adminToken"
	IdentityScheme = "identityToken"
)

// PlaneSecurity is what each plane of access.proto requires, in OpenAPI terms: a Bearer token of the plane's
// workspace carrying one of the scopes listed (alternatives are separate requirements). PLANE_PUBLIC needs
// nothing; PLANE_INTERNAL and PLANE_UNSPECIFIED have no REST route.
var PlaneSecurity = map[accessv1.Plane]openapi3.SecurityRequirements{
	accessv1.Plane_PLANE_OPERATOR: {{OperatorScheme: {platform.ScopeManageTenants}}},
	accessv1.Plane_PLANE_ADMIN_READ: {
		{AdminScheme: {platform.ScopeReadConfiguration}},
		{AdminScheme: {platform.ScopeManageConfiguration}},
	},
	accessv1.Plane_PLANE_ADMIN_WRITE: {{AdminScheme: {platform.ScopeManageConfiguration}}},
	accessv1.Plane_PLANE_IDENTITY:    {{IdentityScheme: {platform.ScopeIdentity}}},
	accessv1.Plane_PLANE_PUBLIC:      {},
}

// RPC is a method of a service with a REST route.
type RPC struct {
	FullName string // authplane.client.v1.ClientService.CreateClient
	Name     string // CreateClient
	Plane    accessv1.Plane
}

// Route is one HTTP binding of an RPC, with its path in OpenAPI form.
type Route struct{ Method, Path string }

var pathVariable = regexp.MustCompile(`\{([^}=]+)(=[^}]*)?\}`)

// RESTRoutes walks the google.api.http annotations (additional bindings included) of every method of files.
func RESTRoutes(files *descriptorpb.FileDescriptorSet) (map[Route]RPC, error) {
	routes := map[Route]RPC{}
	for _, f := range files.GetFile() {
		for _, s := range f.GetService() {
			for _, m := range s.GetMethod() {
				if !proto.HasExtension(m.GetOptions(), annotations.E_Http) {
					continue
				}
				rule := proto.GetExtension(m.GetOptions(), annotations.E_Http).(*annotations.HttpRule)
				rpc := RPC{
					FullName: f.GetPackage() + "." + s.GetName() + "." + m.GetName(),
					Name:     m.GetName(),
					Plane:    proto.GetExtension(m.GetOptions(), accessv1.E_Plane).(accessv1.Plane),
				}
				for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					route, err := routeOf(r)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", rpc.FullName, err)
					}
					if other, dup := routes[route]; dup {
						return nil, fmt.Errorf("%s %s is bound to both %s and %s", route.Method, route.Path, other.FullName, rpc.FullName)
					}
					routes[route] = rpc
				}
			}
		}
	}
	return routes, nil
}

func routeOf(r *annotations.HttpRule) (Route, error) {
	var method, path string
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		method, path = "GET", p.Get
	case *annotations.HttpRule_Put:
		method, path = "PUT", p.Put
	case *annotations.HttpRule_Post:
		method, path = "POST", p.Post
	case *annotations.HttpRule_Delete:
		method, path = "DELETE", p.Delete
	case *annotations.HttpRule_Patch:
		method, path = "PATCH", p.Patch
	case *annotations.HttpRule_Custom:
		method, path = strings.ToUpper(p.Custom.GetKind()), p.Custom.GetPath()
	default:
		return Route{}, errors.New("an http rule without a pattern")
	}
	return Route{method, pathVariable.ReplaceAllString(path, "{$1}")}, nil
}

// Build returns the complete document as indented JSON: protoc-gen-openapiv2's swagger output completed by rule
// from the descriptors, merged with the hand-written fragment (OpenAPI 3.1 YAML or JSON).
func Build(swagger []byte, files *descriptorpb.FileDescriptorSet, fragment []byte) ([]byte, error) {
	var doc2 openapi2.T
	if err := json.Unmarshal(swagger, &doc2); err != nil {
		return nil, fmt.Errorf("read protoc-gen-openapiv2's document: %w", err)
	}
	doc, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("convert to OpenAPI 3: %w", err)
	}
	routes, err := RESTRoutes(files)
	if err != nil {
		return nil, err
	}
	frag, err := openapi3.NewLoader().LoadFromData(fragment)
	if err != nil {
		return nil, fmt.Errorf("read the fragment: %w", err)
	}

	var problems []string
	seen := map[Route]bool{}
	for _, path := range slices.Sorted(maps.Keys(doc.Paths.Map())) {
		item := doc.Paths.Value(path)
		for _, method := range slices.Sorted(maps.Keys(item.Operations())) {
			route := Route{method, path}
			rpc, ok := routes[route]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s %s: no RPC is bound to it", method, path))
				continue
			}
			seen[route] = true
			problems = append(problems, complete(item.GetOperation(method), route, rpc)...)
		}
	}
	for _, route := range slices.SortedFunc(maps.Keys(routes), compareRoutes) {
		if !seen[route] {
			problems = append(problems, fmt.Sprintf("%s %s (%s): missing from protoc-gen-openapiv2's document", route.Method, route.Path, routes[route].FullName))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New("the REST operations are incomplete:\n  " + strings.Join(problems, "\n  "))
	}
	if err := pruneUnusedSchemas(doc); err != nil {
		return nil, err
	}
	if err := merge(doc, frag); err != nil {
		return nil, err
	}

	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	// What is written must load and validate on its own.
	loaded, err := openapi3.NewLoader().LoadFromData(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("the document written does not load: %w", err)
	}
	if err := loaded.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the document written is not valid OpenAPI: %w", err)
	}
	return out.Bytes(), nil
}

func compareRoutes(a, b Route) int {
	if c := strings.Compare(a.Path, b.Path); c != 0 {
		return c
	}
	return strings.Compare(a.Method, b.Method)
}

// complete sets what the gateway does by rule on one REST operation: summary, security, success status and
// error answers. It returns what is missing.
func complete(op *openapi3.Operation, route Route, rpc RPC) []string {
	var problems []string
	where := fmt.Sprintf("%s %s (%s)", route.Method, route.Path, rpc.FullName)

	comment := strings.TrimSpace(op.Summary)
	if comment == "" {
		problems = append(problems, where+": the RPC has no comment; its first sentence is the operation's summary")
	} else if summary, more := FirstSentence(comment); more {
		op.Summary = summary
		op.Description = strings.TrimSpace(comment + "\n\n" + op.Description)
	} else {
		op.Summary = summary
	}

	security, ok := PlaneSecurity[rpc.Plane]
	switch {
	case !ok:
		problems = append(problems, fmt.Sprintf("%s: plane %s cannot have a REST route", where, rpc.Plane))
	case len(security) == 0:
		op.Security = &openapi3.SecurityRequirements{} // public: no credentials, whatever the document's default
	default:
		s := slices.Clone(security)
		op.Security = &s
	}

	ok200 := op.Responses.Value("200")
	if ok200 == nil {
		return append(problems, where+": protoc-gen-openapiv2 wrote no 200 answer")
	}
	switch code := platform.RESTSuccessStatus(rpc.Name); code {
	case 200:
	case 204:
		op.Responses.Delete("200")
		op.Responses.Set("204", &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("Done; the answer has no body.")})
	default:
		op.Responses.Delete("200")
		op.Responses.Set(strconv.Itoa(code), ok200)
	}

	// Errors an RPC declares itself (openapiv2_operation responses) keep their description and get the schema.
	for code, r := range op.Responses.Map() {
		if n, err := strconv.Atoi(code); err == nil && n >= 400 && r.Ref == "" && r.Value != nil {
			r.Value.Content = openapi3.NewContentWithJSONSchemaRef(&openapi3.SchemaRef{Ref: "#/components/schemas/Error"})
		}
	}
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		delete(op.RequestBody.Value.Extensions, "x-originalParamName") // the converter's note to itself
	}
	for code, name := range standardErrors(op, route, rpc) {
		if op.Responses.Value(code) == nil {
			op.Responses.Set(code, &openapi3.ResponseRef{Ref: "#/components/responses/" + name})
		}
	}
	return problems
}

// standardErrors are the error answers (status → component of the fragment) that any REST operation of its
// kind can give, whatever its RPC does.
func standardErrors(op *openapi3.Operation, route Route, rpc RPC) map[string]string {
	errs := map[string]string{
		"400": "BadRequest",    // malformed JSON, unknown field, invalid UTF-8, a bad page token, a field refused
		"500": "InternalError", // a bug, logged with the request id
		"503": "Unavailable",   // the database or a service cannot be reached
	}
	if len(PlaneSecurity[rpc.Plane]) > 0 {
		errs["401"] = "Unauthorized"
		errs["403"] = "Forbidden"
	}
	if namesResource(route.Path, rpc.Plane) {
		errs["404"] = "NotFound"
	}
	if op.RequestBody != nil {
		errs["413"] = "PayloadTooLarge"
	}
	return errs
}

// namesResource reports a path that names a resource that may not exist: any variable but the tenant of an
// admin or identity plane route, whose token already proves the tenant exists.
func namesResource(path string, plane accessv1.Plane) bool {
	for _, m := range pathVariable.FindAllStringSubmatch(path, -1) {
		if m[1] != "tenant_id" || plane == accessv1.Plane_PLANE_OPERATOR {
			return true
		}
	}
	return false
}

var schemaRef = regexp.MustCompile(`"#/components/schemas/([^"]+)"`)

// pruneUnusedSchemas drops the schemas no operation reaches: protoc-gen-openapiv2 writes some for the
// well-known types (google.protobuf.NullValue beside Struct) that the routes never use.
func pruneUnusedSchemas(doc *openapi3.T) error {
	reached := map[string]bool{}
	var visit func(v any) error
	visit = func(v any) error {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		for _, m := range schemaRef.FindAllSubmatch(raw, -1) {
			name := string(m[1])
			if reached[name] || doc.Components.Schemas[name] == nil {
				continue
			}
			reached[name] = true
			if err := visit(doc.Components.Schemas[name]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(doc.Paths); err != nil {
		return err
	}
	for name := range doc.Components.Schemas {
		if !reached[name] {
			delete(doc.Components.Schemas, name)
		}
	}
	return nil
}

var abbreviations = []string{"e.g.", "i.e.", "etc.", "cf."}

// FirstSentence returns the first sentence of a comment (on one line, without its final period), up to a colon
// that introduces its details, and whether more text follows.
func FirstSentence(comment string) (string, bool) {
	flat := strings.Join(strings.Fields(comment), " ")
	sentence := flat
	for i := 0; i < len(flat); i++ {
		if flat[i] != '.' || (i+1 < len(flat) && flat[i+1] != ' ') {
			continue
		}
		if slices.ContainsFunc(abbreviations, func(a string) bool { return strings.HasSuffix(flat[:i+1], " "+a) || flat[:i+1] == a }) {
			continue
		}
		sentence = flat[:i]
		break
	}
	if head, _, found := strings.Cut(sentence, ": "); found {
		sentence = head
	}
	return sentence, len(sentence) < len(strings.TrimSuffix(flat, "."))
}

// merge adds the fragment's paths, components and tags to doc, and takes its info and servers. A name both
// define is an error: the fragment completes the generated part, it never overrides it.
func merge(doc, frag *openapi3.T) error {
	doc.OpenAPI = OpenAPIVersion
	doc.Info = frag.Info
	doc.Servers = frag.Servers
	doc.Security = frag.Security
	doc.ExternalDocs = frag.ExternalDocs
	doc.Extensions = frag.Extensions
	if doc.Components == nil {
		doc.Components = &openapi3.Components{}
	}
	var clashes []string
	for path, item := range frag.Paths.Map() {
		if doc.Paths.Value(path) != nil {
			clashes = append(clashes, "path "+path)
			continue
		}
		doc.Paths.Set(path, item)
	}
	c, fc := doc.Components, frag.Components
	clashes = append(clashes, mergeMap(&c.Schemas, fc.Schemas, "schema")...)
	clashes = append(clashes, mergeMap(&c.Responses, fc.Responses, "response")...)
	clashes = append(clashes, mergeMap(&c.Parameters, fc.Parameters, "parameter")...)
	clashes = append(clashes, mergeMap(&c.Headers, fc.Headers, "header")...)
	clashes = append(clashes, mergeMap(&c.RequestBodies, fc.RequestBodies, "request body")...)
	clashes = append(clashes, mergeMap(&c.SecuritySchemes, fc.SecuritySchemes, "security scheme")...)
	clashes = append(clashes, mergeMap(&c.Examples, fc.Examples, "example")...)
	for _, t := range frag.Tags {
		if doc.Tags.Get(t.Name) != nil {
			clashes = append(clashes, "tag "+t.Name)
			continue
		}
		doc.Tags = append(doc.Tags, t)
	}
	if len(clashes) > 0 {
		slices.Sort(clashes)
		return errors.New("the fragment redefines what the protos generate: " + strings.Join(clashes, ", "))
	}
	return nil
}

func mergeMap[M ~map[string]V, V any](dst *M, src M, what string) []string {
	if *dst == nil && len(src) > 0 {
		*dst = M{}
	}
	var clashes []string
	for k, v := range src {
		if _, dup := (*dst)[k]; dup {
			clashes = append(clashes, what+" "+k)
			continue
		}
		(*dst)[k] = v
	}
	return clashes
}
