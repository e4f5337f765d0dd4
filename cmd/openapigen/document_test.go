package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	accessv1 "github.com/authplane/authplane/gen/go/authplane/access/v1"
)

// A service of one RPC, as buf build and protoc-gen-openapiv2 would give it.
func thingService(name string, plane accessv1.Plane, post string) *descriptorpb.FileDescriptorSet {
	opts := &descriptorpb.MethodOptions{}
	proto.SetExtension(opts, annotations.E_Http, &annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: post}, Body: "thing"})
	proto.SetExtension(opts, accessv1.E_Plane, plane)
	return &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{{
		Name: proto.String("authplane/thing/v1/thing.proto"), Package: proto.String("authplane.thing.v1"),
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:   proto.String("ThingService"),
			Method: []*descriptorpb.MethodDescriptorProto{{Name: proto.String(name), Options: opts}},
		}},
	}}}
}

func thingSwagger(t *testing.T, name, comment string) []byte {
	t.Helper()
	doc := map[string]any{
		"swagger": "2.0", "info": map[string]any{"title": "thing", "version": "v1"},
		"consumes": []string{"application/json"}, "produces": []string{"application/json"},
		"paths": map[string]any{"/api/admin/{tenant_id}/things": map[string]any{"post": map[string]any{
			"operationId": "ThingService_" + name, "summary": comment, "tags": []string{"ThingService"},
			"parameters": []any{
				map[string]any{"name": "tenant_id", "in": "path", "required": true, "type": "string"},
				map[string]any{"name": "thing", "in": "body", "required": true, "schema": map[string]any{"$ref": "#/definitions/Thing"}},
			},
			"responses": map[string]any{
				"200": map[string]any{"description": "A successful response.", "schema": map[string]any{"$ref": "#/definitions/Thing"}},
				"409": map[string]any{"description": "The thing exists already."},
			},
		}}},
		"definitions": map[string]any{
			"Thing":  map[string]any{"type": "object", "properties": map[string]any{"id": map[string]any{"type": "string"}}},
			"Unused": map[string]any{"type": "object"},
		},
		"tags": []any{map[string]any{"name": "ThingService", "description": "Things."}},
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func fragment(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../docs/openapi/authplane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestBuildCompletesAnOperationByRule(t *testing.T) {
	out, err := Build(thingSwagger(t, "CreateThing", "Creates a thing, e.g. a widget. Its id is chosen by the caller."),
		thingService("CreateThing", accessv1.Plane_PLANE_ADMIN_WRITE, "/api/admin/{tenant_id}/things"), fragment(t))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(out)
	if err != nil {
		t.Fatal(err)
	}
	op := doc.Paths.Value("/api/admin/{tenant_id}/things").Post
	if op.Summary != "Creates a thing, e.g. a widget" || !strings.Contains(op.Description, "chosen by the caller") {
		t.Errorf("summary %q, description %q", op.Summary, op.Description)
	}
	if op.Security == nil || len(*op.Security) != 1 || (*op.Security)[0][AdminScheme][0] != "manage_configuration" {
		t.Errorf("security %v", op.Security)
	}
	if op.Responses.Value("200") != nil || op.Responses.Value("201") == nil {
		t.Errorf("a Create answers 201 only: %v", op.Responses.Keys())
	}
	for _, code := range []string{"400", "401", "403", "413", "500", "503"} {
		if r := op.Responses.Value(code); r == nil || r.Ref == "" {
			t.Errorf("no standard %s answer", code)
		}
	}
	if r := op.Responses.Value("404"); r != nil {
		t.Error("404 on a path that names only the token's tenant")
	}
	declared := op.Responses.Value("409").Value
	if declared.Description == nil || *declared.Description != "The thing exists already." ||
		declared.Content.Get("application/json").Schema.Ref != "#/components/schemas/Error" {
		t.Errorf("the declared 409 lost its description or has no Error schema: %+v", declared)
	}
	if doc.Components.Schemas["Unused"] != nil || doc.Components.Schemas["Thing"] == nil {
		t.Error("unreached schemas are not dropped, or reached ones are")
	}
	if doc.Paths.Value("/{tenant_id}/{server_id}/oauth2/token") == nil || doc.Components.SecuritySchemes[AdminScheme] == nil {
		t.Error("the fragment is not merged")
	}
}

func TestBuildRefusesAnIncompleteOperation(t *testing.T) {
	tests := []struct {
		name, rpc, comment string
		plane              accessv1.Plane
		route              string
		want               string
	}{
		{"an RPC without a comment has no summary", "CreateThing", "", accessv1.Plane_PLANE_ADMIN_WRITE,
			"/api/admin/{tenant_id}/things", "authplane.thing.v1.ThingService.CreateThing): the RPC has no comment"},
		{"an internal RPC has no REST route", "CreateThing", "Creates a thing.", accessv1.Plane_PLANE_INTERNAL,
			"/api/admin/{tenant_id}/things", "plane PLANE_INTERNAL cannot have a REST route"},
		{"a method without a plane is refused by the server", "CreateThing", "Creates a thing.", accessv1.Plane_PLANE_UNSPECIFIED,
			"/api/admin/{tenant_id}/things", "plane PLANE_UNSPECIFIED cannot have a REST route"},
		{"an operation bound to no RPC", "CreateThing", "Creates a thing.", accessv1.Plane_PLANE_ADMIN_WRITE,
			"/api/admin/{tenant_id}/other-things", "POST /api/admin/{tenant_id}/things: no RPC is bound to it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(thingSwagger(t, tc.rpc, tc.comment), thingService(tc.rpc, tc.plane, tc.route), fragment(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestBuildRefusesAFragmentThatRedefinesGeneratedSchemas(t *testing.T) {
	frag := strings.Replace(string(fragment(t)), "    Error:\n", "    Thing:\n      type: object\n    Error:\n", 1)
	_, err := Build(thingSwagger(t, "CreateThing", "Creates a thing."),
		thingService("CreateThing", accessv1.Plane_PLANE_ADMIN_WRITE, "/api/admin/{tenant_id}/things"), []byte(frag))
	if err == nil || !strings.Contains(err.Error(), "schema Thing") {
		t.Fatalf("err = %v, want a clash of schema Thing", err)
	}
}

func TestFirstSentence(t *testing.T) {
	tests := []struct {
		comment, want string
		more          bool
	}{
		{"Gets one tenant.", "Gets one tenant", false},
		{"Registers a client. The secret is\nreturned only here.", "Registers a client", true},
		{"The service, e.g. `WorkspaceService.CreateServer`, and more.", "The service, e.g. `WorkspaceService.CreateServer`, and more", false},
		{"RFC 6749 section 4.1 flows. Then", "RFC 6749 section 4.1 flows", true},
		{"No period at all", "No period at all", false},
		{"Revokes a key at once: it leaves the JWKS. More.", "Revokes a key at once", true},
		{"Lists the keys: next, current.", "Lists the keys", true},
	}
	for _, tc := range tests {
		got, more := FirstSentence(tc.comment)
		if got != tc.want || more != tc.more {
			t.Errorf("FirstSentence(%q) = %q, %v; want %q, %v", tc.comment, got, more, tc.want, tc.more)
		}
	}
}
