package app

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/apierr"
)

func payload(t *testing.T, v map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// structWithKey builds a Struct by hand: structpb.NewStruct refuses invalid UTF-8 itself.
func structWithKey(key string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{key: structpb.NewBoolValue(true)}}
}

// dynamicTokenRequest is a TokenRequest as a dynamic message (its maps are walked through protoreflect, not as Go
// maps) with one parameter.
func dynamicTokenRequest(t *testing.T, key, value string) proto.Message {
	t.Helper()
	m := dynamicpb.NewMessage((&tokenv1.TokenRequest{}).ProtoReflect().Descriptor())
	fd := m.Descriptor().Fields().ByName("parameters")
	m.Mutable(fd).Map().Set(protoreflect.ValueOfString(key).MapKey(), protoreflect.ValueOfString(value))
	return m
}

func TestMalformedTextIsFoundAtAnyDepth(t *testing.T) {
	cases := []struct {
		name string
		msg  proto.Message
		path string // empty: the message is fine
	}{
		{"a valid token request", &tokenv1.TokenRequest{TenantId: "acme", ServerId: "shop", GrantType: "password",
			Username: "jürgen@example.com", Parameters: map[string]string{"scope": "openid", "ünïcode": "✓"}}, ""},
		{"NUL in a field", &tokenv1.TokenRequest{TenantId: "acme", Username: "jane\x00"}, "username"},
		{"invalid UTF-8 in a field", &tokenv1.TokenRequest{ServerId: "\xff"}, "server_id"},
		{"a map value", &tokenv1.TokenRequest{Parameters: map[string]string{"scope": "a\x00b"}}, `parameters["scope"]`},
		{"a map key", &tokenv1.TokenRequest{Parameters: map[string]string{"\xfe": "x"}}, "parameters"},
		{"a map value of a dynamic message", dynamicTokenRequest(t, "scope", "a\x00b"), `parameters["scope"]`},
		{"a map key of a dynamic message", dynamicTokenRequest(t, "\xfe", "x"), "parameters"},
		{"a valid dynamic message", dynamicTokenRequest(t, "scope", "openid"), ""},
		{"a nested message", &clientv1.CreateClientRequest{TenantId: "acme", Client: &clientv1.Client{ClientName: "nul\x00name"}},
			"client.client_name"},
		{"a repeated field", &clientv1.CreateClientRequest{Client: &clientv1.Client{RedirectUris: []string{"https://a", "https://b\xc3"}}},
			"client.redirect_uris[1]"},
		{"a valid JSON payload", &poolv1.CreateUserRequest{User: &poolv1.User{Payload: payload(t, map[string]any{
			"name": "Jane", "tags": []any{"a", 1.0, true, nil}, "address": map[string]any{"city": "Zürich"}})}}, ""},
		{"a JSON string", &poolv1.CreateUserRequest{User: &poolv1.User{Payload: payload(t, map[string]any{
			"address": map[string]any{"city": "Zu\x00rich"}})}}, "user.payload.address.city"},
		{"a JSON list element", &poolv1.CreateUserRequest{User: &poolv1.User{Metadata: payload(t, map[string]any{
			"tags": []any{"ok", "bad\x00"}})}}, "user.metadata.tags[1]"},
		{"a JSON key", &poolv1.CreateUserRequest{User: &poolv1.User{Payload: structWithKey("k\xff")}}, "user.payload"},
		{"an identifier in a repeated message", &poolv1.CreateUserRequest{User: &poolv1.User{Identifiers: []*poolv1.UserIdentifier{
			{Type: "email", Identifier: "a@example.com"}, {Type: "email", Identifier: "nul\x00@example.com"}}}},
			"user.identifiers[1].identifier"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, bad := malformedText(tc.msg.ProtoReflect())
			if tc.path == "" {
				if bad {
					t.Fatalf("refused at %q, want accepted", path)
				}
				return
			}
			if !bad || path != tc.path {
				t.Fatalf("malformedText = %q, %v; want %q", path, bad, tc.path)
			}
		})
	}
}

func TestRejectMalformedTextStopsTheCallWithTheFieldNamed(t *testing.T) {
	called := false
	handler := func(context.Context, any) (any, error) { called = true; return &tokenv1.TokenResponse{}, nil }
	info := &grpc.UnaryServerInfo{FullMethod: tokenv1.TokenService_Token_FullMethodName}
	_, err := rejectMalformedText(context.Background(), &tokenv1.TokenRequest{Password: "pw\x00"}, info, handler)
	d := apierr.Describe(err)
	if status.Code(err) != codes.InvalidArgument || d.Field != "password" || d.HTTPStatus != 400 || called {
		t.Fatalf("err = %v (%+v), handler called: %v; want InvalidArgument naming password, handler not called", err, d, called)
	}
	if _, err := rejectMalformedText(context.Background(), &tokenv1.TokenRequest{Password: "pw"}, info, handler); err != nil || !called {
		t.Fatalf("a valid request: err %v, handler called: %v", err, called)
	}
}

// BenchmarkMalformedText measures the walk every RPC pays (go test -bench MalformedText -benchmem ./pkg/app/).
func BenchmarkMalformedText(b *testing.B) {
	b.Run("flat", func(b *testing.B) {
		req := (&tokenv1.TokenRequest{TenantId: "acme", ServerId: "shop", GrantType: "client_credentials",
			ClientId: "cli-1", ClientSecret: "s3cr3t-s3cr3t-s3cr3t", Scope: "orders.read orders.write"}).ProtoReflect()
		b.ReportAllocs()
		for b.Loop() {
			if _, bad := malformedText(req); bad {
				b.Fatal("refused")
			}
		}
	})
	b.Run("token request with five parameters", func(b *testing.B) {
		req := (&tokenv1.TokenRequest{TenantId: "acme", ServerId: "shop", GrantType: "password", ClientId: "cli-1",
			ClientSecret: "s3cr3t-s3cr3t-s3cr3t", Scope: "openid offline_access", Username: "jane@example.com",
			Password: "S3cure-pass!word", Parameters: map[string]string{"grant_type": "password", "scope": "openid offline_access",
				"username": "jane@example.com", "password": "S3cure-pass!word", "client_id": "cli-1"}}).ProtoReflect()
		b.ReportAllocs()
		for b.Loop() {
			if _, bad := malformedText(req); bad {
				b.Fatal("refused")
			}
		}
	})
}
