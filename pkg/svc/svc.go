// Package svc is what every service is built from: its dependencies, handed over by the process that runs it,
// and the connections to the other services (in this process or over the network, the same either way).
package svc

import (
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/authplane/authplane/pkg/audit"
	"github.com/authplane/authplane/pkg/authz"
	"github.com/authplane/authplane/pkg/changes"
	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/egress"
	"github.com/authplane/authplane/pkg/internalcall"
	"github.com/authplane/authplane/pkg/metrics"
	"github.com/authplane/authplane/pkg/password"
	"github.com/authplane/authplane/pkg/secrets"
)

// Service names, as used by --services and AUTHPLANE_<NAME>_ADDR.
const (
	Gateway   = "gateway"
	Tenant    = "tenant"
	Workspace = "workspace"
	Pool      = "pool"
	Schema    = "schema"
	Client    = "client"
	Token     = "token"
)

// All lists every service name in start order.
var All = []string{Tenant, Workspace, Pool, Schema, Client, Token, Gateway}

// Conns reach each gRPC service.
type Conns struct {
	Tenant, Workspace, Pool, Schema, Client, Token grpc.ClientConnInterface
}

// Deps are what a service is given.
type Deps struct {
	DB      *db.DB
	Bus     *changes.Bus
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Keyring *secrets.Keyring
	// Internal is the credential of this process's calls to the other services (internal plane).
	Internal *internalcall.Authority
	// Audit writes the audit trail (nil in processes without a database).
	Audit *audit.Log
	// AuditRetention is how long audit events are kept.
	AuditRetention time.Duration
	// Verifier is the access-token check every plane, introspection and userinfo share.
	Verifier *authz.Verifier
	Conns    Conns
	// IssuerURL is the public base URL; a workspace's issuer is IssuerURL/tenant/server.
	IssuerURL string
	// PasswordHashing bounds the password hashing pool.
	PasswordHashing password.Config
	// JWKSMaxAge is how long clients may cache a workspace's key set (0: the default, 5 minutes).
	JWKSMaxAge time.Duration
	// RootClientID and RootClientSecret are the operator's credentials from the configuration (may be empty).
	RootClientID, RootClientSecret string
	// Egress decides where connections to tenant-configured destinations (external verifiers) may go, when they
	// are configured and when they are made (nil: the built-in policy with the system's resolver).
	Egress *egress.Policy
}

// Service is a gRPC service ready to be registered on a server or an in-process connection.
type Service interface {
	Register(r grpc.ServiceRegistrar)
}
