package gateway

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	accessv1 "github.com/authplane/authplane/gen/go/authplane/access/v1"
	"github.com/authplane/authplane/gen/openapiv2"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/svc"
)

// The served OpenAPI document (gen/openapiv2) against what the gateway really serves: the REST routes of the protos'
// http annotations, the planes of access.proto, the success statuses, and the gateway's own handlers.

func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapiv2.Document)
	if err != nil {
		t.Fatalf("the served document does not load: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValidOpenAPI31(t *testing.T) {
	doc := loadDocument(t)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served document is not valid: %v", err)
	}
}

// restRPC is a method with a google.api.http binding.
type restRPC struct {
	name  protoreflect.FullName
	plane accessv1.Plane
}

type opRoute struct{ method, path string }

var pathVariable = regexp.MustCompile(`\{([^}=]+)(=[^}]*)?\}`)

// restRoutes walks the http annotations of every authplane service linked into the gateway (it registers them
// all on its REST mux), so a service or RPC added later is covered without editing this test.
func restRoutes(t *testing.T) map[opRoute]restRPC {
	t.Helper()
	routes := map[opRoute]restRPC{}
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(f.Package()), "authplane.") {
			return true
		}
		for i := 0; i < f.Services().Len(); i++ {
			methods := f.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				m := methods.Get(j)
				opts := m.Options()
				plane := proto.GetExtension(opts, accessv1.E_Plane).(accessv1.Plane)
				if !proto.HasExtension(opts, annotations.E_Http) {
					continue
				}
				rule := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
				for _, b := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					method, path := httpPattern(b)
					routes[opRoute{method, pathVariable.ReplaceAllString(path, "{$1}")}] = restRPC{m.FullName(), plane}
				}
			}
		}
		return true
	})
	if len(routes) == 0 {
		t.Fatal("no REST route found in the linked descriptors")
	}
	return routes
}

func httpPattern(r *annotations.HttpRule) (string, string) {
	switch {
	case r.GetGet() != "":
		return http.MethodGet, r.GetGet()
	case r.GetPut() != "":
		return http.MethodPut, r.GetPut()
	case r.GetPost() != "":
		return http.MethodPost, r.GetPost()
	case r.GetDelete() != "":
		return http.MethodDelete, r.GetDelete()
	case r.GetPatch() != "":
		return http.MethodPatch, r.GetPatch()
	}
	return strings.ToUpper(r.GetCustom().GetKind()), r.GetCustom().GetPath()
}

func operations(doc *openapi3.T) map[opRoute]*openapi3.Operation {
	ops := map[opRoute]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[opRoute{method, path}] = op
		}
	}
	return ops
}

func TestOpenAPIHasExactlyTheRESTRoutesOfTheProtos(t *testing.T) {
	doc, routes := loadDocument(t), restRoutes(t)
	ops := operations(doc)
	for r, rpc := range routes {
		op := ops[r]
		if op == nil {
			t.Errorf("%s %s (%s) is served but not documented", r.method, r.path, rpc.name)
			continue
		}
		want := string(rpc.name.Parent().Name()) + "_" + string(rpc.name.Name())
		if !strings.HasPrefix(op.OperationID, want) {
			t.Errorf("%s %s: operationId %q, want the RPC %s", r.method, r.path, op.OperationID, rpc.name)
		}
	}
	for r := range ops {
		if _, ok := routes[r]; strings.HasPrefix(r.path, "/api/") && !ok {
			t.Errorf("%s %s is documented but no RPC is bound to it", r.method, r.path)
		}
	}
}

func TestOpenAPISecurityIsThePlaneOfEachRPC(t *testing.T) {
	// What each plane of access.proto admits, written out here rather than taken from the generator.
	want := map[accessv1.Plane][]map[string][]string{
		accessv1.Plane_PLANE_OPERATOR:    {{"operatorToken": {"manage_tenants"}}},
		accessv1.Plane_PLANE_ADMIN_READ:  {{"adminToken": {"read_configuration"}}, {"adminToken": {"manage_configuration"}}},
		accessv1.Plane_PLANE_ADMIN_WRITE: {{"adminToken": {"manage_configuration"}}},
		accessv1.Plane_PLANE_IDENTITY:    {{"identityToken": {"identity"}}},
		accessv1.Plane_PLANE_PUBLIC:      {},
	}
	doc := loadDocument(t)
	ops := operations(doc)
	for r, rpc := range restRoutes(t) {
		op := ops[r]
		if op == nil {
			continue // reported by TestOpenAPIHasExactlyTheRESTRoutesOfTheProtos
		}
		expected, ok := want[rpc.plane]
		if !ok {
			t.Errorf("%s %s: %s is on plane %s, which has no REST route", r.method, r.path, rpc.name, rpc.plane)
			continue
		}
		var got []map[string][]string
		if op.Security != nil {
			for _, req := range *op.Security {
				got = append(got, req)
			}
		}
		sameRequirement := func(a, b map[string][]string) bool { return maps.EqualFunc(a, b, slices.Equal[[]string]) }
		if op.Security == nil || !slices.EqualFunc(got, expected, sameRequirement) {
			t.Errorf("%s %s (%s, %s): security %v, want %v", r.method, r.path, rpc.name, rpc.plane, got, expected)
		}
		for _, req := range got {
			for scheme := range req {
				if doc.Components.SecuritySchemes[scheme] == nil {
					t.Errorf("%s %s: security scheme %q is not declared", r.method, r.path, scheme)
				}
			}
		}
	}
}

func TestOpenAPISuccessStatusIsWhatTheGatewayAnswers(t *testing.T) {
	ops := operations(loadDocument(t))
	for r, rpc := range restRoutes(t) {
		op := ops[r]
		if op == nil {
			continue
		}
		name := string(rpc.name.Name())
		var success []string
		for code := range op.Responses.Map() {
			if strings.HasPrefix(code, "2") {
				success = append(success, code)
			}
		}
		want := "200"
		switch {
		case strings.HasPrefix(name, "Create"):
			want = "201"
		case strings.HasPrefix(name, "Delete"):
			want = "204"
		}
		if len(success) != 1 || success[0] != want {
			t.Errorf("%s %s (%s): success answers %v, want only %s", r.method, r.path, name, success, want)
			continue
		}
		if code := strconv.Itoa(platform.RESTSuccessStatus(name)); code != want {
			t.Errorf("%s: the gateway answers %s, the document %s", name, code, want)
		}
		body := op.Responses.Value(want).Value.Content
		if want == "204" && len(body) != 0 {
			t.Errorf("%s %s: 204 with a body %v", r.method, r.path, slices.Collect(maps.Keys(body)))
		}
		if want != "204" && body.Get("application/json") == nil {
			t.Errorf("%s %s: %s without a JSON body", r.method, r.path, want)
		}
	}
}

func TestOpenAPIRESTErrorsUseTheContractsErrorSchema(t *testing.T) {
	doc := loadDocument(t)
	ops := operations(doc)
	for r, rpc := range restRoutes(t) {
		op := ops[r]
		if op == nil {
			continue
		}
		required := []string{"400", "500", "503"}
		if rpc.plane != accessv1.Plane_PLANE_PUBLIC {
			required = append(required, "401", "403")
		}
		if op.RequestBody != nil {
			required = append(required, "413")
		}
		for _, code := range required {
			if op.Responses.Value(code) == nil {
				t.Errorf("%s %s: no %s answer", r.method, r.path, code)
			}
		}
		for code, resp := range op.Responses.Map() {
			if code < "4" {
				continue
			}
			mt := resp.Value.Content.Get("application/json")
			if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
				t.Errorf("%s %s: answer %s does not carry the Error schema", r.method, r.path, code)
			}
		}
	}
	errSchema := doc.Components.Schemas["Error"].Value
	for _, f := range []string{"status_code", "error", "error_code"} {
		if !slices.Contains(errSchema.Required, f) {
			t.Errorf("the Error schema does not require %s", f)
		}
	}
}

func TestOpenAPIEveryOperationHasASummaryAnErrorAndNoDuplicateID(t *testing.T) {
	ids := map[string]opRoute{}
	for r, op := range operations(loadDocument(t)) {
		if strings.TrimSpace(op.Summary) == "" {
			t.Errorf("%s %s: no summary", r.method, r.path)
		}
		if other, dup := ids[op.OperationID]; dup || op.OperationID == "" {
			t.Errorf("%s %s: operationId %q (also %v)", r.method, r.path, op.OperationID, other)
		}
		ids[op.OperationID] = r
		hasSuccess := false
		for code := range op.Responses.Map() {
			hasSuccess = hasSuccess || code[0] == '2' || code[0] == '3'
		}
		if !hasSuccess {
			t.Errorf("%s %s: no success answer", r.method, r.path)
		}
	}
}

// appRoutes are served by pkg/app in front of the gateway.
var appRoutes = []string{"GET /healthz", "GET /readyz", "GET /metrics"}

func TestOpenAPICoversTheGatewaysOwnRoutes(t *testing.T) {
	g, err := New(context.Background(), svc.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	doc := loadDocument(t)
	served := map[string]bool{}
	for _, pattern := range append(slices.Clone(g.patterns), appRoutes...) {
		method, path, hasMethod := strings.Cut(pattern, " ")
		if !hasMethod {
			method, path = "", pattern
		}
		if path == "/" {
			continue // the catch-all 404
		}
		served[path] = true
		item := doc.Paths.Value(path)
		switch {
		case item == nil:
			t.Errorf("%s is served but not documented", pattern)
		case method != "" && item.GetOperation(method) == nil:
			t.Errorf("%s is served but only %v are documented", pattern, slices.Collect(maps.Keys(item.Operations())))
		case len(item.Operations()) == 0:
			t.Errorf("%s is documented without an operation", pattern)
		}
	}
	for _, want := range []string{tokenRoute, introspectRoute, revokeRoute, userinfoRoute, jwksRoute, discoveryRoute,
		metadataRoute, authorizeRoute, loginRoute, consentRoute, logoutRoute, apiDocsRoute} {
		if !served[want] {
			t.Errorf("the gateway does not register %s", want)
		}
	}
	for path := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/api/") && !served[path] {
			t.Errorf("%s is documented but the gateway does not serve it", path)
		}
	}
}

func TestOpenAPIOAuthEndpointsDocumentTheirBodiesAndErrors(t *testing.T) {
	doc := loadDocument(t)
	token := doc.Paths.Value(tokenRoute).Post
	for _, ct := range []string{"application/x-www-form-urlencoded", "multipart/form-data", "application/json"} {
		for _, path := range []string{tokenRoute, introspectRoute, revokeRoute} {
			body := doc.Paths.Value(path).Post.RequestBody.Value.Content.Get(ct)
			if body == nil || body.Schema == nil {
				t.Errorf("POST %s documents no %s body", path, ct)
			}
		}
	}
	// Every grant the token endpoint supports has its parameters, selected by grant_type.
	grants := map[string]bool{}
	for _, variant := range doc.Components.Schemas["TokenRequest"].Value.OneOf {
		for _, part := range variant.Value.AllOf {
			if gt := part.Value.Properties["grant_type"]; gt != nil && gt.Value.Const != nil {
				grants[gt.Value.Const.(string)] = true
			}
		}
	}
	for _, g := range platform.SupportedGrants {
		if !grants[g] {
			t.Errorf("the token request documents no %s grant", g)
		}
	}
	if s := token.Security; s == nil || len(*s) != 2 || (*s)[0]["clientBasic"] == nil {
		t.Errorf("token security %v: want Basic or credentials in the body", s)
	}
	// The OAuth endpoints answer RFC 6749 JSON errors, never the REST API's.
	for _, path := range []string{tokenRoute, introspectRoute, revokeRoute, userinfoRoute} {
		for method, op := range doc.Paths.Value(path).Operations() {
			for code, resp := range op.Responses.Map() {
				if code < "4" {
					continue
				}
				mt := resp.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/OAuthError" {
					t.Errorf("%s %s: answer %s is not an RFC 6749 error", method, path, code)
				}
			}
		}
	}
}

func TestAPIDocsPageAndAssetsComeFromThisServerOnly(t *testing.T) {
	g, err := New(context.Background(), svc.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(g.route))
	t.Cleanup(srv.Close)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+`)
	checkCSP := func(path string, resp *http.Response) {
		t.Helper()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		if external.MatchString(csp) || strings.Contains(csp, "*") || strings.Contains(csp, "unsafe-") {
			t.Errorf("%s: Content-Security-Policy %q allows another origin or inline code", path, csp)
		}
	}

	resp, page := get("/docs")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkCSP("/docs", resp)
	refs := regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("/docs references %d assets, want the script, the initializer and the style sheet: %s", len(refs), page)
	}
	if strings.Contains(strings.ToLower(page), "<script>") || strings.Contains(page, "style=") {
		t.Error("/docs holds inline script or style, which its policy refuses")
	}
	for _, ref := range refs {
		asset := ref[1]
		if !strings.HasPrefix(asset, "/docs/") || external.MatchString(asset) {
			t.Errorf("/docs references %q, not an asset of this server", asset)
			continue
		}
		resp, body := get(asset)
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("%s: %d", asset, resp.StatusCode)
		}
		checkCSP(asset, resp)
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", asset)
		}
	}

	// The initializer loads this server's document and turns off the validator badge (an external call).
	_, init := get("/docs/init.js")
	if !strings.Contains(init, `url: "/openapi.json"`) || !strings.Contains(init, "validatorUrl: null") {
		t.Errorf("init.js does not load /openapi.json with the validator off:\n%s", init)
	}
	if m := regexp.MustCompile(`https?://`).FindString(init); m != "" {
		t.Errorf("init.js names an external URL: %s", m)
	}
	for _, license := range []string{"/docs/LICENSE", "/docs/NOTICE"} {
		if resp, _ := get(license); resp.StatusCode != 200 {
			t.Errorf("%s: %d", license, resp.StatusCode)
		}
	}
	for _, missing := range []string{"/docs/missing.js", "/docs/..", "/docs/README.md"} {
		if resp, _ := get(missing); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", missing, resp.StatusCode)
		}
	}
	resp, body := get("/openapi.json")
	if resp.StatusCode != 200 || body != string(openapiv2.Document) {
		t.Errorf("/openapi.json: %d, not the generated document", resp.StatusCode)
	}
}
