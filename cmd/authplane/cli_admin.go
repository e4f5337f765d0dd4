package main

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
)

// The operator's and the admin plane's commands: tenants; and a tenant's workspaces, scopes, clients and signing
// keys, of the tenant of the admin login.

func init() {
	register("tenant", "list", &clientCommand{summary: "list the tenants", run: tenantList})
	register("tenant", "get", &clientCommand{args: "TENANT", summary: "show a tenant", run: tenantGet})
	register("tenant", "create", &clientCommand{args: "TENANT", summary: "create a tenant; prints its admin client's secret, once", run: tenantCreate})
	register("tenant", "delete", &clientCommand{args: "TENANT", summary: "delete a tenant and everything it owns", run: tenantDelete})

	register("workspace", "list", &clientCommand{summary: "list the workspaces", run: workspaceList})
	register("workspace", "get", &clientCommand{args: "WORKSPACE", summary: "show a workspace", run: workspaceGet})
	register("workspace", "create", &clientCommand{args: "[WORKSPACE]", summary: "create a workspace (its id generated when not given)", run: workspaceCreate})
	register("workspace", "update", &clientCommand{args: "WORKSPACE", summary: "change the fields named by flags (or in --file)", run: workspaceUpdate})
	register("workspace", "delete", &clientCommand{args: "WORKSPACE", summary: "delete a workspace with its scopes and clients", run: workspaceDelete})

	register("scope", "list", &clientCommand{summary: "list a workspace's scopes (--workspace)", run: scopeList})
	register("scope", "create", &clientCommand{args: "NAME", summary: "define a scope in a workspace (--workspace)", run: scopeCreate})
	register("scope", "delete", &clientCommand{args: "SCOPE_ID | --workspace W NAME", summary: "delete a scope, by id or by its name in a workspace", run: scopeDelete})

	register("client", "list", &clientCommand{summary: "list the clients (of one workspace with --workspace)", run: clientList})
	register("client", "get", &clientCommand{args: "CLIENT_ID", summary: "show a client (never its secret)", run: clientGet})
	register("client", "create", &clientCommand{summary: "register a client (--workspace); prints its secret, once", run: clientCreate})
	register("client", "update", &clientCommand{args: "CLIENT_ID", summary: "change the fields named by flags (or in --file)", run: clientUpdate})
	register("client", "delete", &clientCommand{args: "CLIENT_ID", summary: "delete a client; its tokens stop working", run: clientDelete})
	register("client", "rotate-secret", &clientCommand{args: "CLIENT_ID", summary: "replace a client's secret; prints the new one, once", run: clientRotateSecret})

	register("key", "list", &clientCommand{summary: "list a workspace's signing keys (--workspace)", run: keyList})
	register("key", "rotate", &clientCommand{summary: "rotate now: the next key signs, the current one retires (--workspace)", run: keyRotate})
	register("key", "revoke", &clientCommand{args: "KID", summary: "revoke a key at once: tokens it signed are refused (--workspace)", run: keyRevoke})
}

// secretWarning goes to stderr whenever a secret is printed, so that it reaches the person even when stdout is
// captured.
func secretWarning(c *call, what string) {
	fmt.Fprintf(c.env.stderr, "authplane: the %s is shown only now and cannot be read back: store it safely\n", what)
}

// ---- tenants (operator)

var tenantColumns = []column[*tenantv1.Tenant]{
	{"ID", func(t *tenantv1.Tenant) string { return t.Id }},
	{"NAME", func(t *tenantv1.Tenant) string { return t.Name }},
	{"CREATED", func(t *tenantv1.Tenant) string { return ts(t.CreatedAt) }},
}

func tenantList(c *call) error {
	limit := c.limitFlag(0)
	if err := c.parse(0, 0); err != nil {
		return err
	}
	conn, _, err := c.connect(planeOperator)
	if err != nil {
		return err
	}
	defer conn.Close()
	api := tenantv1.NewTenantServiceClient(conn)
	items, err := listAll(c.ctx, *limit, func(ctx context.Context, tok string, size int32) ([]*tenantv1.Tenant, string, error) {
		r, err := api.ListTenants(ctx, &tenantv1.ListTenantsRequest{PageSize: size, PageToken: tok})
		return r.GetTenants(), r.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}
	return printItems(c, items, tenantColumns)
}

func tenantGet(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, _, err := c.connect(planeOperator)
	if err != nil {
		return err
	}
	defer conn.Close()
	t, err := tenantv1.NewTenantServiceClient(conn).GetTenant(c.ctx, &tenantv1.GetTenantRequest{TenantId: c.arg(0)})
	if err != nil {
		return err
	}
	return printItem(c, t, tenantColumns)
}

func tenantCreate(c *call) error {
	name := c.fs.String("name", "", "the tenant's name (default: its id)")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, _, err := c.connect(planeOperator)
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := tenantv1.NewTenantServiceClient(conn).CreateTenant(c.ctx, &tenantv1.CreateTenantRequest{
		Tenant: &tenantv1.Tenant{Id: c.arg(0), Name: orDefault(*name, c.arg(0))}})
	if err != nil {
		return err
	}
	secretWarning(c, "admin client's secret")
	return printItem(c, r, []column[*tenantv1.CreateTenantResponse]{
		{"ID", func(r *tenantv1.CreateTenantResponse) string { return r.GetTenant().GetId() }},
		{"NAME", func(r *tenantv1.CreateTenantResponse) string { return r.GetTenant().GetName() }},
		{"ADMIN_CLIENT_ID", func(r *tenantv1.CreateTenantResponse) string { return r.GetAdminClient().GetClientId() }},
		{"ADMIN_CLIENT_SECRET", func(r *tenantv1.CreateTenantResponse) string { return r.GetAdminClient().GetClientSecret() }},
	})
}

func tenantDelete(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, _, err := c.connect(planeOperator)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := tenantv1.NewTenantServiceClient(conn).DeleteTenant(c.ctx, &tenantv1.DeleteTenantRequest{TenantId: c.arg(0)}); err != nil {
		return err
	}
	return printDone(c, "deleted tenant %s", c.arg(0))
}

// ---- workspaces (admin)

var workspaceColumns = []column[*workspacev1.Server]{
	{"ID", func(s *workspacev1.Server) string { return s.Id }},
	{"TYPE", func(s *workspacev1.Server) string { return s.Type }},
	{"NAME", func(s *workspacev1.Server) string { return s.Name }},
	{"GRANT_TYPES", func(s *workspacev1.Server) string { return joined(s.GrantTypes) }},
	{"SIGNING_ALG", func(s *workspacev1.Server) string { return s.SigningAlg }},
	{"ISSUER", func(s *workspacev1.Server) string { return s.IssuerUrl }},
}

func workspaceList(c *call) error {
	limit := c.limitFlag(0)
	if err := c.parse(0, 0); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	api := workspacev1.NewWorkspaceServiceClient(conn)
	items, err := listAll(c.ctx, *limit, func(ctx context.Context, tok string, size int32) ([]*workspacev1.Server, string, error) {
		r, err := api.ListServers(ctx, &workspacev1.ListServersRequest{TenantId: l.Tenant, PageSize: size, PageToken: tok})
		return r.GetServers(), r.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}
	return printItems(c, items, workspaceColumns)
}

func workspaceGet(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := workspacev1.NewWorkspaceServiceClient(conn).GetServer(c.ctx, &workspacev1.GetServerRequest{TenantId: l.Tenant, ServerId: c.arg(0)})
	if err != nil {
		return err
	}
	return printItem(c, s, workspaceColumns)
}

func workspaceFields(c *call, s *workspacev1.Server) *binder {
	b := newBinder(c, s, "workspace")
	b.str("name", "name", "the workspace's name", func(v string) { s.Name = v })
	b.str("description", "description", "a description", func(v string) { s.Description = v })
	b.strs("grant-types", "grant_types", "grants its clients may use: client_credentials, password, refresh_token, authorization_code", func(v []string) { s.GrantTypes = v })
	b.duration("access-token-ttl", "access_token_ttl", "access token lifetime", func(d *durationpb.Duration) { s.AccessTokenTtl = d })
	b.duration("refresh-token-ttl", "refresh_token_ttl", "refresh token lifetime", func(d *durationpb.Duration) { s.RefreshTokenTtl = d })
	b.duration("id-token-ttl", "id_token_ttl", "ID token lifetime", func(d *durationpb.Duration) { s.IdTokenTtl = d })
	b.duration("session-ttl", "session_ttl", "a login session's absolute lifetime", func(d *durationpb.Duration) { s.SessionTtl = d })
	b.str("signing-alg", "signing_alg", "ES256, EdDSA or RS256", func(v string) { s.SigningAlg = v })
	b.duration("key-rotation-period", "key_rotation_period", "how long a signing key signs", func(d *durationpb.Duration) { s.KeyRotationPeriod = d })
	b.str("display-name", "display_name", "the name the sign-in page shows", func(v string) { s.DisplayName = v })
	b.str("logo-url", "logo_url", "the sign-in page's logo", func(v string) { s.LogoUrl = v })
	b.str("primary-color", "primary_color", "the sign-in page's accent colour (#rrggbb)", func(v string) { s.PrimaryColor = v })
	return b
}

func workspaceCreate(c *call) error {
	s := &workspacev1.Server{}
	b := workspaceFields(c, s)
	if err := c.parse(0, 1); err != nil {
		return err
	}
	if _, err := b.apply(); err != nil {
		return err
	}
	if len(c.args) == 1 {
		s.Id = c.arg(0)
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := workspacev1.NewWorkspaceServiceClient(conn).CreateServer(c.ctx, &workspacev1.CreateServerRequest{TenantId: l.Tenant, Server: s})
	if err != nil {
		return err
	}
	return printItem(c, out, workspaceColumns)
}

func workspaceUpdate(c *call) error {
	s := &workspacev1.Server{}
	b := workspaceFields(c, s)
	if err := c.parse(1, 1); err != nil {
		return err
	}
	mask, err := b.apply()
	if err != nil {
		return err
	}
	if len(mask) == 0 {
		return usageErrorf("nothing to change: name a field by its flag (or give --file)")
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := workspacev1.NewWorkspaceServiceClient(conn).UpdateServer(c.ctx, &workspacev1.UpdateServerRequest{
		TenantId: l.Tenant, ServerId: c.arg(0), Server: s, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
	if err != nil {
		return err
	}
	return printItem(c, out, workspaceColumns)
}

func workspaceDelete(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := workspacev1.NewWorkspaceServiceClient(conn).DeleteServer(c.ctx, &workspacev1.DeleteServerRequest{TenantId: l.Tenant, ServerId: c.arg(0)}); err != nil {
		return err
	}
	return printDone(c, "deleted workspace %s", c.arg(0))
}

// ---- scopes (admin)

var scopeColumns = []column[*workspacev1.Scope]{
	{"ID", func(s *workspacev1.Scope) string { return s.Id }},
	{"WORKSPACE", func(s *workspacev1.Scope) string { return s.AuthorizationServerId }},
	{"NAME", func(s *workspacev1.Scope) string { return s.Name }},
	{"SYSTEM", func(s *workspacev1.Scope) string { return yesNo(s.System) }},
	{"DESCRIPTION", func(s *workspacev1.Scope) string { return s.Description }},
}

func listScopes(ctx context.Context, api workspacev1.WorkspaceServiceClient, tenant, workspace string, limit int) ([]*workspacev1.Scope, error) {
	return listAll(ctx, limit, func(ctx context.Context, tok string, size int32) ([]*workspacev1.Scope, string, error) {
		r, err := api.ListScopes(ctx, &workspacev1.ListScopesRequest{TenantId: tenant, ServerId: workspace, PageSize: size, PageToken: tok})
		return r.GetScopes(), r.GetNextPageToken(), err
	})
}

func scopeList(c *call) error {
	workspace := c.fs.String("workspace", "", "the workspace (required)")
	limit := c.limitFlag(0)
	if err := c.parse(0, 0); err != nil {
		return err
	}
	if err := requireFlag("workspace", *workspace); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	items, err := listScopes(c.ctx, workspacev1.NewWorkspaceServiceClient(conn), l.Tenant, *workspace, *limit)
	if err != nil {
		return err
	}
	return printItems(c, items, scopeColumns)
}

func scopeCreate(c *call) error {
	workspace := c.fs.String("workspace", "", "the workspace (required)")
	description := c.fs.String("description", "", "what the scope allows")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	if err := requireFlag("workspace", *workspace); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := workspacev1.NewWorkspaceServiceClient(conn).CreateScope(c.ctx, &workspacev1.CreateScopeRequest{TenantId: l.Tenant,
		Scope: &workspacev1.Scope{AuthorizationServerId: *workspace, Name: c.arg(0), Description: *description}})
	if err != nil {
		return err
	}
	return printItem(c, s, scopeColumns)
}

func scopeDelete(c *call) error {
	workspace := c.fs.String("workspace", "", "read the argument as a scope name of this workspace")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	api := workspacev1.NewWorkspaceServiceClient(conn)
	id := c.arg(0)
	if *workspace != "" {
		scopes, err := listScopes(c.ctx, api, l.Tenant, *workspace, 0)
		if err != nil {
			return err
		}
		id = ""
		for _, s := range scopes {
			if s.Name == c.arg(0) {
				id = s.Id
			}
		}
		if id == "" {
			return &cliError{code: exitNotFound, msg: fmt.Sprintf("workspace %s has no scope %q", *workspace, c.arg(0))}
		}
	}
	if _, err := api.DeleteScope(c.ctx, &workspacev1.DeleteScopeRequest{TenantId: l.Tenant, ScopeId: id}); err != nil {
		return err
	}
	return printDone(c, "deleted scope %s", c.arg(0))
}

// ---- clients (admin)

var clientColumns = []column[*clientv1.Client]{
	{"CLIENT_ID", func(cl *clientv1.Client) string { return cl.ClientId }},
	{"WORKSPACE", func(cl *clientv1.Client) string { return cl.AuthorizationServerId }},
	{"NAME", func(cl *clientv1.Client) string { return cl.ClientName }},
	{"GRANT_TYPES", func(cl *clientv1.Client) string { return joined(cl.GrantTypes) }},
	{"SCOPES", func(cl *clientv1.Client) string { return joined(cl.Scopes) }},
	{"AUTH_METHOD", func(cl *clientv1.Client) string { return cl.TokenEndpointAuthMethod }},
}

func clientList(c *call) error {
	workspace := c.fs.String("workspace", "", "only this workspace's clients")
	limit := c.limitFlag(0)
	if err := c.parse(0, 0); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	api := clientv1.NewClientServiceClient(conn)
	items, err := listAll(c.ctx, *limit, func(ctx context.Context, tok string, size int32) ([]*clientv1.Client, string, error) {
		r, err := api.ListClients(ctx, &clientv1.ListClientsRequest{TenantId: l.Tenant, ServerId: *workspace, PageSize: size, PageToken: tok})
		return r.GetClients(), r.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}
	return printItems(c, items, clientColumns)
}

func clientGet(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	cl, err := clientv1.NewClientServiceClient(conn).GetClient(c.ctx, &clientv1.GetClientRequest{TenantId: l.Tenant, ClientId: c.arg(0)})
	if err != nil {
		return err
	}
	return printItem(c, cl, clientColumns)
}

func clientFields(c *call, cl *clientv1.Client) *binder {
	b := newBinder(c, cl, "client")
	b.str("name", "client_name", "the client's name", func(v string) { cl.ClientName = v })
	b.str("description", "description", "a description", func(v string) { cl.Description = v })
	b.strs("grant-types", "grant_types", "grants it may use (default client_credentials)", func(v []string) { cl.GrantTypes = v })
	b.strs("scopes", "scopes", "scopes it is granted", func(v []string) { cl.Scopes = v })
	b.strs("audience", "audience", "its access tokens' aud (default: its id)", func(v []string) { cl.Audience = v })
	b.str("auth-method", "token_endpoint_auth_method", "client_secret_basic (default), client_secret_post, or none for a public client", func(v string) { cl.TokenEndpointAuthMethod = v })
	b.str("token-policy", "token_policy_id", "its token policy", func(v string) { cl.TokenPolicyId = v })
	b.strs("redirect-uris", "redirect_uris", "where the authorization endpoint may send the browser back", func(v []string) { cl.RedirectUris = v })
	b.strs("post-logout-redirect-uris", "post_logout_redirect_uris", "where logout may send the browser afterwards", func(v []string) { cl.PostLogoutRedirectUris = v })
	b.strs("allowed-origins", "allowed_origins", "browser origins that may call the token endpoints (CORS)", func(v []string) { cl.AllowedOrigins = v })
	b.boolean("trusted", "trusted", "a first-party client: users sign in without a consent page", func(v bool) { cl.Trusted = v })
	return b
}

var clientSecretColumns = append(clientColumns[:3:3], column[*clientv1.Client]{"CLIENT_SECRET", func(cl *clientv1.Client) string { return cl.GetClientSecret() }})

func clientCreate(c *call) error {
	cl := &clientv1.Client{}
	b := clientFields(c, cl)
	workspace := c.fs.String("workspace", "", "the workspace it belongs to (required, unless in --file)")
	id := c.fs.String("id", "", "its client id (default: generated)")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	if _, err := b.apply(); err != nil {
		return err
	}
	if *workspace != "" {
		cl.AuthorizationServerId = *workspace
	}
	if *id != "" {
		cl.ClientId = *id
	}
	if err := requireFlag("workspace", cl.AuthorizationServerId); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := clientv1.NewClientServiceClient(conn).CreateClient(c.ctx, &clientv1.CreateClientRequest{TenantId: l.Tenant, Client: cl})
	if err != nil {
		return err
	}
	if out.GetClientSecret() != "" {
		secretWarning(c, "client secret")
	}
	return printItem(c, out, clientSecretColumns)
}

func clientUpdate(c *call) error {
	cl := &clientv1.Client{}
	b := clientFields(c, cl)
	if err := c.parse(1, 1); err != nil {
		return err
	}
	mask, err := b.apply()
	if err != nil {
		return err
	}
	if len(mask) == 0 {
		return usageErrorf("nothing to change: name a field by its flag (or give --file)")
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := clientv1.NewClientServiceClient(conn).UpdateClient(c.ctx, &clientv1.UpdateClientRequest{
		TenantId: l.Tenant, ClientId: c.arg(0), Client: cl, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}})
	if err != nil {
		return err
	}
	return printItem(c, out, clientColumns)
}

func clientDelete(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := clientv1.NewClientServiceClient(conn).DeleteClient(c.ctx, &clientv1.DeleteClientRequest{TenantId: l.Tenant, ClientId: c.arg(0)}); err != nil {
		return err
	}
	return printDone(c, "deleted client %s", c.arg(0))
}

func clientRotateSecret(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	id := c.arg(0)
	r, err := clientv1.NewClientServiceClient(conn).RotateClientSecret(c.ctx, &clientv1.RotateClientSecretRequest{TenantId: l.Tenant, ClientId: id})
	if err != nil {
		return err
	}
	secretWarning(c, "new client secret")
	return printItem(c, r, []column[*clientv1.RotateClientSecretResponse]{
		{"CLIENT_ID", func(*clientv1.RotateClientSecretResponse) string { return id }},
		{"CLIENT_SECRET", func(r *clientv1.RotateClientSecretResponse) string { return r.ClientSecret }},
	})
}

// ---- signing keys (admin)

var keyColumns = []column[*tokenv1.SigningKey]{
	{"KID", func(k *tokenv1.SigningKey) string { return k.Kid }},
	{"ALG", func(k *tokenv1.SigningKey) string { return k.Alg }},
	{"STATE", func(k *tokenv1.SigningKey) string { return k.State }},
	{"CREATED", func(k *tokenv1.SigningKey) string { return ts(k.CreatedAt) }},
	{"ACTIVATED", func(k *tokenv1.SigningKey) string { return ts(k.ActivatedAt) }},
	{"RETIRED", func(k *tokenv1.SigningKey) string { return ts(k.RetiredAt) }},
	{"REVOKED", func(k *tokenv1.SigningKey) string { return ts(k.RevokedAt) }},
}

func keyCall(c *call, args int, do func(api tokenv1.TokenServiceClient, tenant, workspace string) error) error {
	workspace := c.fs.String("workspace", "", "the workspace (required)")
	if err := c.parse(args, args); err != nil {
		return err
	}
	if err := requireFlag("workspace", *workspace); err != nil {
		return err
	}
	conn, l, err := c.connect(planeAdmin)
	if err != nil {
		return err
	}
	defer conn.Close()
	return do(tokenv1.NewTokenServiceClient(conn), l.Tenant, *workspace)
}

func keyList(c *call) error {
	return keyCall(c, 0, func(api tokenv1.TokenServiceClient, tenant, workspace string) error {
		r, err := api.ListServerKeys(c.ctx, &tokenv1.ListServerKeysRequest{TenantId: tenant, ServerId: workspace})
		if err != nil {
			return err
		}
		return printItems(c, r.Keys, keyColumns)
	})
}

func keyRotate(c *call) error {
	return keyCall(c, 0, func(api tokenv1.TokenServiceClient, tenant, workspace string) error {
		k, err := api.RotateServerKey(c.ctx, &tokenv1.RotateServerKeyRequest{TenantId: tenant, ServerId: workspace})
		if err != nil {
			return err
		}
		return printItem(c, k, keyColumns)
	})
}

func keyRevoke(c *call) error {
	return keyCall(c, 1, func(api tokenv1.TokenServiceClient, tenant, workspace string) error {
		k, err := api.RevokeServerKey(c.ctx, &tokenv1.RevokeServerKeyRequest{TenantId: tenant, ServerId: workspace, Kid: c.arg(0)})
		if err != nil {
			return err
		}
		return printItem(c, k, keyColumns)
	})
}
