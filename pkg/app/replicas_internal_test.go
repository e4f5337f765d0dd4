package app

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	"github.com/authplane/authplane/pkg/svc"
)

func TestOnlyReadsAreSentAgainToAnotherReplica(t *testing.T) {
	tests := []struct {
		method string
		retry  bool
	}{
		{"GetJWKS", true}, {"ListRevokedTokens", true}, {"GetClientAccess", true}, {"GetServerMetadata", true},
		{"ListUsers", true}, {"Introspect", true}, {"PoolExists", true}, {"AuthenticateClient", true},
		// Each of these may have taken effect on the replica that failed under it.
		{"Token", false}, {"AuthenticatePassword", false}, {"VerifyPassword", false}, {"SubmitLogin", false},
		{"Revoke", false}, {"CreateUser", false}, {"UpdateClient", false}, {"RotateClientSecret", false},
		{"DeleteTenant", false}, {"RotateServerKey", false}, {"Logout", false},
	}
	for _, tc := range tests {
		if got := safeToRetry(tc.method); got != tc.retry {
			t.Errorf("safeToRetry(%s) = %v, want %v", tc.method, got, tc.retry)
		}
	}
}

// TestEveryServiceConfigIsAcceptedByGRPC: grpc.NewClient refuses a default service config it cannot parse, so a
// typo in one would stop the process at start; and the token service's retries name its reads, not Token.
func TestEveryServiceConfigIsAcceptedByGRPC(t *testing.T) {
	for _, name := range svc.All {
		if name == svc.Gateway {
			continue
		}
		cc, err := grpc.NewClient("passthrough:///"+name, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(serviceConfig(name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		_ = cc.Close()
	}
	var cfg struct {
		HealthCheckConfig struct{ ServiceName string }
		MethodConfig      []struct {
			Name []struct{ Service, Method string }
		}
	}
	if err := json.Unmarshal([]byte(serviceConfig(svc.Token)), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HealthCheckConfig.ServiceName != svc.Token {
		t.Errorf("health check of %q, want the name the token process reports (%q)", cfg.HealthCheckConfig.ServiceName, svc.Token)
	}
	var retried []string
	for _, n := range cfg.MethodConfig[0].Name {
		if n.Service != "authplane.token.v1.TokenService" {
			t.Errorf("a method of %s in the token service's config", n.Service)
		}
		retried = append(retried, n.Method)
	}
	if !slices.Contains(retried, "GetJWKS") || !slices.Contains(retried, "Introspect") || slices.Contains(retried, "Token") || slices.Contains(retried, "Revoke") {
		t.Errorf("the token service's retried methods: %v", retried)
	}
}

func TestOnlyClientCredentialsTokenRequestsAreSentAgain(t *testing.T) {
	tests := []struct {
		name      string
		grant     string
		failures  []codes.Code // what the attempts answer, in order; OK after them
		wantCalls int
		wantCode  codes.Code
	}{
		{"client_credentials through a replica that failed", "client_credentials", []codes.Code{codes.Unavailable}, 2, codes.OK},
		{"client_credentials when every attempt fails", "client_credentials", []codes.Code{codes.Unavailable, codes.Unavailable, codes.Unavailable}, 3, codes.Unavailable},
		{"client_credentials refused", "client_credentials", []codes.Code{codes.Unauthenticated}, 1, codes.Unauthenticated},
		{"a password grant counts a failure", "password", []codes.Code{codes.Unavailable}, 1, codes.Unavailable},
		{"a refresh rotates the token", "refresh_token", []codes.Code{codes.Unavailable}, 1, codes.Unavailable},
		{"a code is spent", "authorization_code", []codes.Code{codes.Unavailable}, 1, codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
				calls++
				if calls <= len(tc.failures) {
					return status.Error(tc.failures[calls-1], "attempt failed")
				}
				return nil
			}
			err := retryClientCredentials(context.Background(), tokenv1.TokenService_Token_FullMethodName,
				&tokenv1.TokenRequest{GrantType: tc.grant}, &tokenv1.TokenResponse{}, nil, invoker)
			if calls != tc.wantCalls || status.Code(err) != tc.wantCode {
				t.Errorf("%d calls ending %v, want %d ending %v", calls, status.Code(err), tc.wantCalls, tc.wantCode)
			}
		})
	}
	t.Run("another method is left to the service config", func(t *testing.T) {
		calls := 0
		invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			calls++
			return status.Error(codes.Unavailable, "down")
		}
		_ = retryClientCredentials(context.Background(), tokenv1.TokenService_Revoke_FullMethodName,
			&tokenv1.RevokeRequest{}, &tokenv1.TokenResponse{}, nil, invoker)
		if calls != 1 {
			t.Errorf("%d calls, want 1", calls)
		}
	})
}
