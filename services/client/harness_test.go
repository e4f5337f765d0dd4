package client_test

import (
	"context"
	"testing"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/testenv"
)

type backend = testenv.Backend

var forEachBackend = testenv.ForEachBackend

// env is a running authplane with gRPC clients of the client and workspace services, and the admin tokens of the
// tenants a test created.
type env struct {
	*testenv.Env
	clients clientv1.ClientServiceClient
	ws      workspacev1.WorkspaceServiceClient
	tokens  map[string]string
}

func start(t *testing.T, b backend) *env {
	e := testenv.Start(t, testenv.WithBackend(b))
	return &env{Env: e, clients: clientv1.NewClientServiceClient(e.GRPC), ws: workspacev1.NewWorkspaceServiceClient(e.GRPC),
		tokens: map[string]string{}}
}

// tenant creates a tenant and keeps its admin token.
func (e *env) tenant(t *testing.T, id string) { e.tokens[id] = e.AdminToken(t, id) }

// admin is a context carrying the tenant's admin token.
func (e *env) admin(t *testing.T, tenant string) context.Context {
	t.Helper()
	tok, ok := e.tokens[tenant]
	if !ok {
		t.Fatalf("tenant %s was not created", tenant)
	}
	return testenv.WithToken(context.Background(), tok)
}

// internal is a context carrying the platform's internal credential (the services' own calls to each other).
func (e *env) internal(t *testing.T) context.Context { return e.Internal(t, context.Background()) }

// operator is a context carrying the platform operator's token.
func (e *env) operator(t *testing.T) context.Context {
	return testenv.WithToken(context.Background(), e.RootToken(t))
}
